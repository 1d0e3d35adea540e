"""Finance's view of the attempt log: the attempts that match filters, newest first, a page at a time.

One function answers `notifier attempts` and the console's Registro page (and its CSV), so the two
always list the same attempts: `select(index, query)` picks the rows of the log index
(notifier/log/index.py) that match, `page()` reads one page of them back from the log, `stream()`
all of them. An attempt is its `sending` and every record that refers to it (outcome, statuses),
read from the log at each question (`history.Attempt`, what `reports/exports.row` flattens).

The filters are the index's columns: the day (São Paulo, or the configured zone) of the sending,
account, channel, stage, actor (who started it: "daemon" or a person), the provider that answered
it, and its latest status. A period is a run of rows found by bisection (the log is written in
time order; after a clock set back, each row's day is tested). The other filters are matched on
the columns' bytes in C (`bytes.translate` of a column's byte planes, masks joined as big
integers), not row by row in Python: a month's Registro page at a million attempts takes about
10 ms. An account's attempts come from its own row list.
The one filter the index has no column for, an invoice (`attempts --invoice`), is checked on the
parsed records of the rows the others selected.
"""
from __future__ import annotations

import operator
import sys
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from functools import reduce
from typing import Iterator

from notifier.log.attempts import parse_line
from notifier.log.history import Attempt
from notifier.log.index import EPOCH, Column, LogIndex

PAGE_SIZE = 50
CHUNK = 500  # rows whose lines are looked up at once while streaming (the index's lock held meanwhile)
GAP = 8 * 1024  # bytes between two lines read below which they are read together (`_lines`)
_LOW = 0 if sys.byteorder == "little" else 1  # which byte of an array('H') item is its low byte


@dataclass(frozen=True)
class Query:
    """What to select; every field optional. Days are local (the index's zone), inclusive."""
    since: date | None = None
    until: date | None = None
    account: str | None = None
    channel: str | None = None
    stage: str | None = None
    status: str | None = None
    actor: str | None = None
    provider: str | None = None
    invoice: str | None = None


@dataclass
class Selection:
    """The rows a query selected among the index's first `rows` rows: all (`mask` and `listed`
    None), those whose byte in `mask` is 1, or those `listed` (ascending)."""
    rows: int
    mask: bytes | None = None
    listed: list[int] | None = None
    matched: int = 0  # the 1s in `mask` (counted when the masks were joined)

    @property
    def count(self) -> int:
        if self.listed is not None:
            return len(self.listed)
        return self.rows if self.mask is None else self.matched

    def newest(self, skip: int = 0) -> Iterator[int]:
        """Rows newest first, after the first `skip`."""
        if self.listed is not None:
            yield from reversed(self.listed[:len(self.listed) - skip] if skip else self.listed)
        elif self.mask is None:
            yield from range(self.rows - 1 - skip, -1, -1)
        else:
            end, mask = self.rows, self.mask
            while True:
                end = mask.rfind(1, 0, end)
                if end < 0:
                    return
                if skip:
                    skip -= 1
                else:
                    yield end

    def oldest(self) -> Iterator[int]:
        if self.listed is not None:
            yield from self.listed
        elif self.mask is None:
            yield from range(self.rows)
        else:
            at, mask = -1, self.mask
            while (at := mask.find(1, at + 1)) >= 0:
                yield at


@dataclass
class Page:
    attempts: list[Attempt]
    total: int  # attempts matching, on every page
    number: int  # from 1
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def select(index: LogIndex, query: Query) -> Selection:
    """The rows matching `query` (all but its invoice), the index brought up to date first."""
    with index.locked() as ix:
        wanted, wide = {}, {}
        for name, column, codes in (("channel", ix.row_channel, ix.channels), ("stage", ix.row_stage, ix.stages),
                                    ("status", ix.row_status, ix.statuses), ("actor", ix.row_actor, ix.actors),
                                    ("provider", ix.row_provider, ix.providers)):
            value = getattr(query, name)
            if value is not None:
                code = codes.codes.get(value)
                if code is None:
                    return Selection(len(ix.row_line), listed=[])
                wanted[name] = (column, code)
                wide[name] = len(codes.names) > 256
        low = (query.since - EPOCH).days if query.since else None
        high = (query.until - EPOCH).days if query.until else None
        n = len(ix.row_line)
        if query.account is not None:
            code = ix.accounts.find(query.account)
            rows = ix.account_rows(code) if code is not None else []
            day = ix.row_day
            listed = [r for r in rows if all(column[r] == c for column, c in wanted.values())
                      and (low is None or day[r] >= low) and (high is None or day[r] <= high)]
            return Selection(n, listed=listed)
        period = ix.day_rows(low, high, n) if low is not None or high is not None else (0, n)
        first, end = period or (0, n)
        masks = [_equal(column, code, first, end, wide[name]) for name, (column, code) in wanted.items()]
        if period is None:  # a clock set back: every row's day is tested
            if low is not None:
                masks.append(_at_least(ix.row_day, low, first, end))
            if high is not None:
                masks.append(_at_most(ix.row_day, high, first, end))
        if not masks and (first, end) == (0, n):
            return Selection(n)
        mask = reduce(operator.and_, masks, -1)  # -1: every row of the period
        part = b"\1" * (end - first) if mask == -1 else mask.to_bytes(end - first, "little")
        return Selection(n, mask=bytes(first) + part + bytes(n - end),
                         matched=end - first if mask == -1 else mask.bit_count())


def page(index: LogIndex, query: Query, number: int = 1, size: int = PAGE_SIZE) -> Page:
    """Page `number` (from 1) of the matching attempts, newest first, and how many match."""
    if query.invoice is not None:  # no column: every candidate read (the CLI's --invoice)
        found = list(stream(index, query))
        return Page(found[(number - 1) * size:number * size], len(found), number, size)
    chosen = select(index, query)
    rows = []
    for row in chosen.newest((number - 1) * size):
        rows.append(row)
        if len(rows) == size:
            break
    return Page(_read(index, rows), chosen.count, number, size)


def stream(index: LogIndex, query: Query, newest_first: bool = True) -> Iterator[Attempt]:
    """Every matching attempt, newest first (or oldest first), read a chunk of rows at a time."""
    chosen = select(index, query)
    rows = chosen.newest() if newest_first else chosen.oldest()
    while True:
        chunk = [row for _, row in zip(range(CHUNK), rows)]
        if not chunk:
            return
        for attempt in _read(index, chunk):
            if query.invoice is None or query.invoice in (attempt.sending.get("invoices") or ()):
                yield attempt


def attempt(index: LogIndex, attempt_id: str) -> Attempt | None:
    """One attempt with its whole status history, or None when there is no such sending."""
    with index.locked() as ix:
        row = ix.ids.get(attempt_id)
    if row is None:
        return None
    found = _read(index, [row])
    return found[0] if found and found[0].id == attempt_id else None


def actors(index: LogIndex) -> list[str]:
    """Who started attempts ("daemon", people), for the filter's choices."""
    with index.locked() as ix:
        return sorted(name for name in ix.actors.names if name)


def providers(index: LogIndex) -> list[str]:
    with index.locked() as ix:
        return sorted(name for name in ix.providers.names if name)


def _read(index: LogIndex, rows: list[int]) -> list[Attempt]:
    """The attempts of `rows`, in that order, read back from the log and checked: the sending is
    one, its updates refer to it."""
    with index.locked() as ix:
        wanted = [(ix.spans([ix.row_line[r]])[0], ix.spans(ix.update_lines(r))) for r in rows]
    found = []
    with open(index.path, "rb") as f:
        line = _lines(f, [span for sending, updates in wanted for span in (sending, *updates)])
        for (offset, length), updates in wanted:
            sending = parse_line(line(offset, length))
            if sending is None or sending.get("event") != "sending" or "id" not in sending:
                continue
            records = []
            for offset, length in updates:
                rec = parse_line(line(offset, length))
                if rec is not None and rec.get("ref") == sending["id"]:
                    rec.pop("prev", None)  # the chain's link: only verify-log needs it
                    records.append(rec)
            found.append(Attempt(sending, records))
    return found


def _lines(f, spans: list[tuple[int, int]]):
    """`line(offset, length)`: the bytes of one of `spans` of file `f`, read a run at a time: spans
    less than `GAP` apart are read together and sliced. A stream of consecutive days (the month's
    report reads half a million lines) then costs a few reads per chunk instead of a seek and a
    read per line; one account's lines, spread out, are still read each by itself."""
    runs: list[list[int]] = []  # [start, end] of the bytes read together
    for offset, length in sorted(spans):
        if runs and offset - runs[-1][1] <= GAP:
            runs[-1][1] = max(runs[-1][1], offset + length)
        else:
            runs.append([offset, offset + length])
    starts, blocks = [], []
    for begin, stop in runs:
        f.seek(begin)
        starts.append(begin)
        blocks.append(f.read(stop - begin))

    def line(offset: int, length: int) -> bytes:
        i = bisect_right(starts, offset) - 1
        return blocks[i][offset - starts[i]:offset - starts[i] + length]
    return line


# --- masks: one bit per row, as a big integer: bit 8·k is 1 when row `first` + k matches --------

def _table(test) -> bytes:
    return bytes(1 if test(i) else 0 for i in range(256))


def _bits(flags: bytes) -> int:
    """A mask from one byte per row (0 or 1): joined with & and | in C, a machine word at a time."""
    return int.from_bytes(flags, "little")


def _items(column, first: int, end: int) -> bytes:
    """The bytes of the items `first` to `end` of a column of 'H' (the index's, or an array)."""
    return column.between(first, end) if isinstance(column, Column) else memoryview(column)[first:end].tobytes()


def _planes(column, first: int, end: int) -> tuple[bytes, bytes]:
    """The low and high bytes of the items `first` to `end` of a column of 'H'."""
    data = _items(column, first, end)
    return data[_LOW::2], data[1 - _LOW::2]


def _equal(column, value: int, first: int, end: int, wide: bool = True) -> int:
    """column == value. A column of at most 256 codes (every one but the actors', in practice)
    has only zeros in its high bytes: they are not read."""
    if not wide:
        if value > 0xFF:
            return 0
        return _bits(_items(column, first, end)[_LOW::2].translate(_table(lambda b: b == value)))
    low, high = _planes(column, first, end)
    return _bits(low.translate(_table(lambda b: b == value & 0xFF))) & _bits(high.translate(_table(lambda b: b == value >> 8)))


def _at_least(column, value: int, first: int, end: int) -> int:
    """column >= value: a higher high byte, or the same high byte and a low byte at least as high."""
    low, high = _planes(column, first, end)
    vh, vl = value >> 8, value & 0xFF
    return _bits(high.translate(_table(lambda b: b > vh))) | (
        _bits(high.translate(_table(lambda b: b == vh))) & _bits(low.translate(_table(lambda b: b >= vl))))


def _at_most(column, value: int, first: int, end: int) -> int:
    low, high = _planes(column, first, end)
    vh, vl = value >> 8, value & 0xFF
    return _bits(high.translate(_table(lambda b: b < vh))) | (
        _bits(high.translate(_table(lambda b: b == vh))) & _bits(low.translate(_table(lambda b: b <= vl))))
