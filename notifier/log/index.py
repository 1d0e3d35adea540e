"""Where things are in the attempt log: a compact index derived from the log, in memory and on disk.

The customer page shows an account's whole contact history, the task queue every open task, the
Registro page finance's filtered view of every attempt; at a million records a scan of the log
per question takes seconds. `LogIndex` reads the log once and keeps, in arrays (a few bytes a
line, not a Python object per line):
- each line's byte offset (its length: up to the next one's), and for an outcome or status line
  the line before it about the same attempt (so an attempt's updates are found without a search);
- per account, the numbers of its lines (the customer page, the audit) and of its attempts (two
  flat lists, each account's part from where it starts), its id found through a hash table;
- one row per `sending`: its line, account, São Paulo day (the configured zone), and codes for its
  channel, stage, actor, the provider of its outcome and its latest status (the Registro's
  filters, `notifier/log/query.py`); an attempt id finds its row through a hash table of the
  ids' first 64 bits (`_Ids`);
- the lines that make or close staff tasks, with their sendings' (and the tasks themselves, `task_list`), the payments
  recorded by hand, and WhatsApp's `sent` and `blocked` outcomes with their days (the Painel's
  first-time delinquents without WhatsApp).
At each question it reads only what was appended since.

It is never a second source of truth: the records are read back from the log at each question and
checked (`account`, `id`, `ref` really are the ones asked), and the index is thrown away and
built again whenever the log is not the one it was built from: shorter than what was read, or the
first line or the last line read no longer where they were, byte for byte. The last line read
carries `prev`, the SHA-256 of the line before it, which carries the one before: the same last
line at the same place means the same log up to it (a log altered in the middle breaks its chain,
which `verify-log` reports).

A large log's index is kept on disk beside it (`attempts.jsonl.index`, `save`), and used from
there: the file is mapped (copy-on-write: a row's new status stays in the process) and only the
pages a question reads count in the process's memory, given back after each question (~1 MB for
the console at 1,000,000 records and 50,000 accounts, where the arrays in memory took 61 MB). A
fresh process (`notifier attempts --account`, `show`, `audit`, a restarted console) maps it and
reads the log's new lines instead of the whole log; those stay in small arrays beside the mapped
part (`Column`) until enough of them make it worth writing the file again (every 2% of the log),
and a first build writes the file every 65,536 lines instead of holding everything it read. The
file is checked like the index in memory (the first and last lines it names, by their SHA-256)
and as a whole (its own SHA-256), and ignored (then replaced) when it does not match, is damaged,
or was built for another time zone or format. It is replaced by renaming, never changed in place:
a process keeps the file it mapped.

Lines are matched as bytes (the record's `account`, `id`, `ref`, `event`); what a question
returns is parsed and checked, so a byte match by accident costs a parse, never a wrong answer.
An outcome or status record without an `account` (written by another process than its
sending's) belongs to its sending's account.
"""
from __future__ import annotations

import hashlib
import mmap
import operator
import os
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from itertools import chain, islice
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from notifier.log.attempts import is_sending, parse_line, ref_of, unreadable

# Events that make or close a staff task (notifier/staff/actions.py `tasks`), besides the
# `sent` of a staff-task channel and the staff channel's sendings, matched below.
TASK_EVENTS = (b"task", b"unknown", b"bounced", b"task_done", b"task_assigned")
PAYMENT_EVENTS = (b"payment", b"payment_corrected")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
EPOCH = date(2000, 1, 1)  # a row's day is days since then (array 'H': until 2179)
NONE = 0xFFFFFFFF  # no account
SAVE_FROM = 20_000  # lines: a smaller log is read whole faster than its index file would be
FORMAT = 3  # 2: the WhatsApp outcomes' lines; 3: mapped (arrays aligned, the whole file's SHA-256, accounts' flat lists)


def _text(raw: bytes, key: bytes, start: int = 0, within: int = 1 << 30) -> str | None:
    """The string value of the first `"key":"..."` in the line's bytes (ids, events, accounts:
    never an escaped quote inside), or None."""
    at = raw.find(key, start, within)
    if at < 0:
        return None
    start = at + len(key)
    end = raw.find(b'"', start)
    return raw[start:end].decode("utf-8", "replace") if end > 0 else None


class Codes:
    """Small integer codes for the values of one column (a channel, a stage, an actor...), in the
    order first seen; code 0 is `first` (a row's value before it has one)."""

    def __init__(self, first: str = "", limit: int = 0xFFFF):
        self.limit = limit
        self.names: list[str] = [first]
        self.codes: dict[str, int] = {first: 0}

    def code(self, name: str | None) -> int:
        name = name or ""
        found = self.codes.get(name)
        if found is None:
            if len(self.names) >= self.limit:
                return self.limit  # beyond 65,534 values of one column: not filterable (never seen)
            found = self.codes[name] = len(self.names)
            self.names.append(name)
        return found


# The index file's arrays, in its order, with their items' types: first those changed in place (a
# row's latest update), then, from a page of their own, those never changed: one item a line, one
# a row (a sending), the lists of a few kinds of lines; each account's lines and rows as two flat
# lists with each account's start in them; the attempt ids' hash table.
COLUMNS = (("row_last", "I"), ("row_status", "H"), ("row_provider", "H"), ("line_off", "Q"), ("line_prev", "I"),
           ("row_line", "I"), ("row_account", "I"), ("row_day", "H"), ("row_channel", "H"), ("row_stage", "H"),
           ("row_actor", "H"), ("payments", "I"), ("whatsapp", "I"), ("whatsapp_sending", "I"),
           ("whatsapp_day", "H"), ("task_off", "Q"), ("task_len", "I"), ("task_sending_off", "Q"),
           ("task_sending_len", "I"))
LISTS = (("account_line_start", "Q"), ("account_row_start", "Q"), ("account_line_list", "I"),
         ("account_row_list", "I"), ("id_keys", "Q"), ("id_rows", "I"), ("account_names", "B"),
         ("account_name_end", "Q"), ("account_slots", "I"))
TYPES = dict(COLUMNS + LISTS)
UPDATED = ("row_last", "row_status", "row_provider")  # the only arrays changed in place: a row's latest update
ID_SLOTS = 1 << 12  # the ids' table's smallest size
PAGE = 4096  # where the arrays never changed in place start in the file
CHUNK = 1 << 16  # lines read from the log before they join the mapped part (what a first build holds)
BLOCK = 1 << 20  # bytes copied at once when the index is written
PREFIX = 16  # the file's first bytes: where its header is, and its length


class Column:
    """One column of the index, used as an `array` is (an item read or written, `len`, `append`,
    iteration): its first `size` items in the index file, mapped (only the pages read count in the
    process's memory), then the items appended since, in an array."""

    __slots__ = ("base", "size", "tail", "append")

    def __init__(self, typecode: str, base: memoryview | None = None):
        self.base = base if base is not None else memoryview(array(typecode))
        self.size = len(self.base)
        self.tail = array(typecode)
        self.append = self.tail.append  # the array's own (a build appends a few million items)

    def __len__(self) -> int:
        return self.size + len(self.tail)

    def __getitem__(self, i: int) -> int:
        if 0 <= i < self.size:
            return self.base[i]
        if i < 0:
            return self[self._positive(i)]
        return self.tail[i - self.size]

    def __setitem__(self, i: int, value: int) -> None:
        if 0 <= i < self.size:
            self.base[i] = value
        elif i < 0:
            self[self._positive(i)] = value
        else:
            self.tail[i - self.size] = value

    def _positive(self, i: int) -> int:
        if i + len(self) < 0:
            raise IndexError("index out of range")
        return i + len(self)

    def __iter__(self):
        return chain(self.base, self.tail)

    def between(self, start: int, stop: int) -> bytes:
        """The bytes of items `start` to `stop` (the Registro's masks read a column's byte planes)."""
        size = self.size
        return (self.base[min(start, size):min(stop, size)].tobytes()
                + self.tail[max(0, start - size):max(0, stop - size)].tobytes())


class _Ids:
    """Attempt id -> row: open addressing over two arrays in the index file, keyed by the id's
    first 64 bits (a dict of half a million ids would take ~50 MB; this takes 12 bytes a slot,
    mapped), and the ids added since in a dict. Two ids sharing 64 bits would share a row; every
    answer read back is checked against the record's `id`."""

    def __init__(self, keys=None, rows=None, used: int = 0):
        self.keys = keys if keys is not None else array("Q")
        self.rows = rows if rows is not None else array("I")
        self.used = used  # slots taken in `keys`
        self.added: dict[int, int] = {}

    @staticmethod
    def key(attempt_id: str) -> int:
        if len(attempt_id) == 32:
            try:
                return int(attempt_id[:16], 16) or 1
            except ValueError:
                pass
        return int.from_bytes(hashlib.blake2b(attempt_id.encode(), digest_size=8).digest(), "little") or 1

    def get(self, attempt_id: str) -> int | None:
        k = self.key(attempt_id)
        found = self.added.get(k)
        if found is not None or not len(self.keys):
            return found
        keys, mask = self.keys, len(self.keys) - 1
        i = k & mask
        while keys[i]:
            if keys[i] == k:
                return self.rows[i]
            i = (i + 1) & mask
        return None

    def put(self, attempt_id: str, row: int) -> None:
        self.added[self.key(attempt_id)] = row

    def slots(self, grow: float = 1.0) -> int:
        """The table's size once the added ids join it (`grow` times as many, when more are
        expected): kept, or doubled until at most 70% full."""
        slots = max(len(self.keys), ID_SLOTS)
        while (self.used + len(self.added)) * grow * 10 > slots * 7:
            slots *= 2
        return slots

    def patches(self, keys, size: int) -> tuple[array, array, array, int]:
        """Where the added ids go in a table of `size` slots, the table as it is (`keys[i]`: its
        key in slot i; None: empty): their slots, keys and rows (flat arrays, not a tuple each),
        and the slots then taken."""
        mask, taken, used = size - 1, set(), self.used
        slots, found_keys, rows = array("Q"), array("Q"), array("I")
        for k, row in self.added.items():
            i = k & mask
            while True:
                found = None if i in taken else keys[i] if keys is not None else 0
                if found is not None and (not found or found == k):
                    break
                i = (i + 1) & mask
            used += not found
            taken.add(i)
            slots.append(i)
            found_keys.append(k)
            rows.append(row)
        return slots, found_keys, rows, used

    def rebuilt(self, slots: int, base: "_Base") -> "_Ids":
        """A table of `slots` slots (in memory) holding every id, those of the table as it is
        copied from `base` a block at a time: when the table grows."""
        new = _Ids(array("Q", [0]) * slots, array("I", [0]) * slots)
        step = BLOCK // 8
        for start in range(0, len(self.keys), step):
            stop = min(len(self.keys), start + step)
            keys, rows = array("Q", b"".join(base.blocks("id_keys", start, stop))), \
                array("I", b"".join(base.blocks("id_rows", start, stop)))
            for k, row in zip(keys, rows):
                if k:
                    new._put(k, row)
        for k, row in self.added.items():
            new._put(k, row)
        return new

    def _put(self, k: int, row: int) -> None:
        keys, mask = self.keys, len(self.keys) - 1
        i = k & mask
        while keys[i] and keys[i] != k:
            i = (i + 1) & mask
        if not keys[i]:
            self.used += 1
        keys[i], self.rows[i] = k, row


class _Names:
    """Account id <-> code (code 0: none, NONE for a line without one), as `Codes` has them, for
    the tens of thousands of accounts: those of the index file read from it (their ids one after
    another in `account_names`, each one's end in `account_name_end`, and a hash table of their
    codes (+1) by the CRC-32 of their ids, `account_slots`), those seen since in a list and a dict
    (50,000 ids as strings in a dict took 6 MB)."""

    def __init__(self, base: "_Base"):
        self.blob = base.view("account_names")
        self.ends = base.view("account_name_end")
        self.hashed = base.view("account_slots")
        self.mapped = len(self.ends)  # codes in the file
        self.added: list[str] = [] if self.mapped else [""]  # the codes from `mapped` on
        self.codes: dict[str, int] = {name: code for code, name in enumerate(self.added, self.mapped)}

    def __len__(self) -> int:
        return self.mapped + len(self.added)

    def name(self, code: int) -> str:
        if code >= self.mapped:
            return self.added[code - self.mapped]
        return bytes(self.blob[self.ends[code - 1] if code else 0:self.ends[code]]).decode()

    def find(self, name: str) -> int | None:
        """The code of account `name`, or None."""
        found = self.codes.get(name)
        table = self.hashed
        if found is not None or not len(table):
            return found
        raw, mask = name.encode(), len(table) - 1
        i = zlib.crc32(raw) & mask
        while table[i]:
            code = table[i] - 1
            if self.blob[self.ends[code - 1] if code else 0:self.ends[code]] == raw:
                return code
            i = (i + 1) & mask
        return None

    def code(self, name: str) -> int:
        found = self.find(name)
        if found is None:
            if len(self) >= NONE - 1:
                return NONE - 1  # beyond 4 billion accounts: not found by its id (never seen)
            found = self.codes[name] = len(self)
            self.added.append(name)
        return found

    def size(self) -> int:
        """Bytes of every id, one after another."""
        return len(self.blob) + sum(len(name.encode()) for name in self.added)

    def every(self, base: "_Base") -> tuple[bytearray, array]:
        """Every id, one after another, and where each ends: the file's, read from it, then those
        seen since."""
        ends = array("Q", b"".join(base.blocks("account_name_end")))
        names = bytearray(b"".join(base.blocks("account_names")))
        for name in self.added:
            names += name.encode()
            ends.append(len(names))
        return names, ends

    @staticmethod
    def slots(count: int) -> int:
        slots = 8
        while slots < 2 * count:
            slots *= 2
        return slots

    @staticmethod
    def table(names: bytearray, ends: array) -> array:
        """The hash table of the codes (+1) by the CRC-32 of their ids, open addressing, half full at most."""
        table = array("I", [0]) * _Names.slots(len(ends))
        mask, start = len(table) - 1, 0
        for code, end in enumerate(ends):
            i = zlib.crc32(names[start:end]) & mask
            while table[i]:
                i = (i + 1) & mask
            table[i] = code + 1
            start = end
        return table


class _Base:
    """The index's arrays in one buffer: the index file mapped copy-on-write (what the index changes
    in place, a row's latest update, stays in this process, never reaches the file) or, when no
    file could be written, memory. `layout`: name -> (typecode, count, offset)."""

    def __init__(self, buffer, layout: dict[str, tuple[str, int, int]], file=None):
        self.buffer = buffer
        self.layout = layout
        self.file = file  # the mapped file, open: the arrays never changed in place are copied from it
        start = min(offset for name, (_, _, offset) in layout.items() if name not in UPDATED)
        self.clean = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE  # from there on, the file's bytes as they are

    def release(self) -> None:
        """Give back the pages of the mapped file that a question read, as glibc's `malloc_trim`
        gives back the heap's (the file's pages stay in the system's cache; read again, they come
        back without reading the disk): random reads (a customer's lines, an id) bring in 64 KB
        each, and over a day of questions the whole file would count in the console's memory.
        Only the arrays never changed in place: a dropped page of those is read again from the
        file as it was, while a page changed in place would lose the change."""
        if self.file is not None and len(self.buffer) > self.clean:
            try:
                self.buffer.madvise(mmap.MADV_DONTNEED, self.clean, len(self.buffer) - self.clean)
            except (OSError, ValueError, AttributeError):
                pass

    def view(self, name: str) -> memoryview:
        typecode, count, offset = self.layout[name]
        return memoryview(self.buffer)[offset:offset + count * array(typecode).itemsize].cast(typecode)

    def items(self, name: str):
        """Items of an array one at a time (`items(name)[i]`), read from the file when the array
        is never changed in place: the ids' table probed for the ids to add, without bringing its
        pages in."""
        if self.file is None or name in UPDATED:
            return self.view(name)
        return _Items(self.file.fileno(), *self.layout[name])

    def blocks(self, name: str, start: int = 0, stop: int | None = None):
        """The bytes of items `start` to `stop` of an array, a block at a time: read from the file
        when the array is never changed in place (the mapping's pages stay out of memory), else
        from the buffer."""
        typecode, count, offset = self.layout[name]
        size = array(typecode).itemsize
        first, last = offset + start * size, offset + (count if stop is None else stop) * size
        for at in range(first, last, BLOCK):
            n = min(BLOCK, last - at)
            if self.file is not None and name not in UPDATED:
                data = os.pread(self.file.fileno(), n, at)
                if len(data) != n:
                    raise OSError(f"{self.file.name}: cut short")
                yield data
            else:
                yield memoryview(self.buffer)[at:at + n]


class _Items:
    """Items of an array of a file read one at a time (`pread`)."""

    def __init__(self, fd: int, typecode: str, count: int, offset: int):
        self.fd, self.typecode, self.count, self.offset = fd, typecode, count, offset
        self.size = array(typecode).itemsize

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self.count:
            raise IndexError("index out of range")
        item = array(self.typecode)
        item.frombytes(os.pread(self.fd, self.size, self.offset + i * self.size))
        return item[0]


class _Out:
    """Where the index is written: a file, or a buffer of the known size; the SHA-256 of all of it."""

    def __init__(self, file=None, size: int = 0):
        self.file = file
        self.buffer = bytearray(size) if file is None else None
        self.at = 0
        self.digest = hashlib.sha256()

    def write(self, data) -> None:
        data = memoryview(data).cast("B")
        if self.file is not None:
            self.digest.update(data)
            self.file.write(data)
        else:
            self.buffer[self.at:self.at + len(data)] = data
        self.at += len(data)

    def to(self, offset: int) -> None:
        """Zeros up to `offset` (where the next array starts)."""
        self.write(bytes(offset - self.at))


class LogIndex:
    """Offsets of the log's lines by account, the attempts' columns, the task and payment lines,
    kept up to date. `tz`: the zone of the rows' days."""

    def __init__(self, path: Path, tz: ZoneInfo = SAO_PAULO, persist: bool = True):
        self.path = Path(path)
        self.tz = tz
        self.persist = persist
        self.file = self.path.with_name(self.path.name + ".index")
        self._lock = threading.RLock()
        self.rebuilds = -1  # how often the index started over after its first build (-1: not built yet)
        self.loaded = False  # whether the last start came from the index file
        self._reset()

    def _reset(self) -> None:
        self._end = 0  # bytes indexed: every whole line before it
        self._first = (0, 0, "")  # the first line read, and the last: (offset, length, sha256)
        self._last = (0, 0, "")  # the log is still the one indexed while both are where they were
        self.channels, self.stages, self.actors = Codes(), Codes(), Codes()
        self.statuses, self.providers = Codes("sending"), Codes()
        self.staff: set[str] = set()  # ids of the staff channel's sendings (deletion tasks)
        self._book = None  # the tasks of the first `_booked` task lines (`task_list`): thrown away with the rest
        self._booked = 0
        self._days: dict[str, int] = {}  # "YYYY-MM-DDTHH" (UTC) -> local day, for hours within one day
        self._in_order = 0  # the first rows whose days never go back (`day_rows`)
        self._out_of_order = False  # a row's day before the previous one's: the clock went back
        self._take(_Base(b"", {name: (typecode, 0, 0) for name, typecode in COLUMNS + LISTS}))

    def _take(self, base: _Base, ids_used: int = 0) -> None:
        """Use the arrays of `base` (the index file just mapped, or written to memory); nothing
        appended since yet. Columns, one item:
        - a line: its byte offset (`line_off`; its length is up to the next one's), and for an
          outcome or status line the line (+1) of the previous update of its attempt, else 0
          (`line_prev`);
        - a row (a sending): its line, account, local day, the line (+1) of its latest update (0
          while none), the codes of its channel, stage, actor, latest status and the provider of
          its outcome;
        - a payment recorded by hand: its line; a WhatsApp `sent` or `blocked` outcome: its line,
          its sending's line, its local day (as a row's);
        - a line making or closing a staff task: its offset and length, and those of the sending
          it refers to (length 0: none), so that the task list (read at every start of the
          console) looks nothing up in the other columns."""
        old = getattr(self, "_base", None)
        if old is not None and old.file is not None:
            old.file.close()  # its mapping lives on while a view of it does
        self._base = base
        for name, typecode in COLUMNS:
            setattr(self, name, Column(typecode, base.view(name)))
        self._account_starts = (base.view("account_line_start"), base.view("account_row_start"))
        self._account_lists = (base.view("account_line_list"), base.view("account_row_list"))
        self.line_account = array("I")  # a line read since: its account's code, or NONE
        self.ids = _Ids(base.view("id_keys"), base.view("id_rows"), ids_used)
        self.accounts = _Names(base)

    def _start_over(self) -> None:
        self._reset()
        self.rebuilds += 1

    # --- questions -------------------------------------------------------------------------------

    def account_records(self, account: str) -> list[dict]:
        """Every record about `account`, in log order (sendings, their outcomes and statuses,
        staff records)."""
        with self.locked():
            code = self.accounts.find(account)
            spans = self.spans(self.account_lines(code)) if code else []
        records = list(self.read(spans))
        with self._lock:  # an outcome without an account is its sending's: the columns read held still
            return [rec for rec in records if (rec.get("account") or self._owner(rec.get("ref"))) == account]

    def account_lines(self, code: int) -> list[int]:
        """The lines of the account of `code`, in log order (call under `locked()`)."""
        return self._account(code, 0, self.line_account, self.line_off.size)

    def account_rows(self, code: int) -> list[int]:
        """The rows (sendings) of the account of `code`, in log order (call under `locked()`)."""
        return self._account(code, 1, self.row_account.tail, self.row_account.size)

    def _account(self, code: int, which: int, since: array, first: int) -> list[int]:
        starts, items = self._account_starts[which], self._account_lists[which]
        found = items[starts[code]:starts[code + 1]].tolist() if code + 1 < len(starts) else []
        return found + _positions(since, code, first)

    def task_records(self) -> list[dict]:
        """The records `staff.actions.tasks()` needs, in log order: the task lines and the
        sendings they refer to."""
        with self.locked():
            spans = self._task_spans(0)
        return list(self.read(spans))

    def task_list(self) -> list:
        """The log's staff tasks (`staff.actions.tasks`, the same list), kept: only the task lines
        appended since the last question (and the sendings they refer to) are read and parsed. A
        queue of 22,000 DMs was parsed whole at every view of the Tarefas page and the Painel."""
        from notifier.staff.actions import TaskBook  # the rules of a task live with the staff's actions
        with self.locked():
            if self._book is None:
                self._book, self._booked = TaskBook(), 0
            self._book.add(self.read(self._task_spans(self._booked)))  # all read, or none added
            self._booked = len(self.task_off)
            return self._book.tasks()

    def _task_spans(self, first: int) -> list[tuple[int, int]]:
        """The spans of the task lines from the `first`, and of the sendings they refer to, in log order."""
        spans = set()
        for at in range(first, len(self.task_off)):
            spans.add((self.task_off[at], self.task_len[at]))
            if self.task_sending_len[at]:
                spans.add((self.task_sending_off[at], self.task_sending_len[at]))
        return sorted(spans)

    def whatsapp_records(self, first: date, last: date) -> list[dict]:
        """The `sent` and `blocked` outcomes of WhatsApp sendings dated from `first` to `last`
        (local days, a day more each side: the caller checks the dates in its zone), each after
        its sending, in log order: what `staff.actions.without_whatsapp` reads."""
        low, high = (first - EPOCH).days - 1, (last - EPOCH).days + 1
        with self.locked():
            lines = set()
            for line, sending, day in zip(self.whatsapp, self.whatsapp_sending, self.whatsapp_day):
                if low <= day <= high:
                    lines.update((line, sending))
            spans = self.spans(sorted(lines))
        return list(self.read(spans))

    def sending(self, attempt_id: str) -> dict | None:
        """The `sending` record of an attempt, or None."""
        with self.locked():
            row = self.ids.get(attempt_id)
            spans = self.spans([self.row_line[row]]) if row is not None else []
        found = list(self.read(spans))
        return found[0] if found and found[0].get("id") == attempt_id else None

    def payment_records(self) -> list[dict]:
        """The payments recorded by hand (`payment`, `payment_corrected`), in log order."""
        with self.locked():
            spans = self.spans(self.payments)
        return [rec for rec in self.read(spans) if rec.get("event") in ("payment", "payment_corrected")]

    def day_rows(self, low: int | None, high: int | None, n: int) -> tuple[int, int] | None:
        """(first, end): the rows among the first `n` whose day is from `low` to `high` (None: no
        bound), found by bisection, when the rows' days never go back; None when one does.

        A row's day is its sending's time, and the log is appended in time order, so a period is
        one run of rows: the Registro then reads a month's rows instead of testing every row's
        day. Only a clock set back breaks the order (checked once per row, in C)."""
        if self._out_of_order:
            return None
        day = self.row_day
        if self._in_order < n:
            days = array("H", day.between(max(0, self._in_order - 1), n))
            if not all(map(operator.le, days, islice(days, 1, None))):
                self._out_of_order = True
                return None
            self._in_order = n
        first = 0 if low is None else bisect_left(day, low, 0, n)
        end = n if high is None else bisect_right(day, high, first, n)
        return first, end

    def spans(self, lines) -> list[tuple[int, int]]:
        """(offset, length) of each line: a line ends a byte (its newline) before the next one starts."""
        off, count, end = self.line_off, len(self.line_off), self._end
        found = []
        for n in lines:
            start = off[n]
            found.append((start, (off[n + 1] if n + 1 < count else end) - start - 1))
        return found

    def update_lines(self, row: int) -> list[int]:
        """The lines of a row's outcome and later statuses, in log order (call under `locked()`)."""
        lines, at = [], self.row_last[row]
        while at:
            lines.append(at - 1)
            at = self.line_prev[at - 1]
        lines.reverse()
        return lines

    def locked(self):
        """The index brought up to date and held still (`with index.locked():`), for a reader of
        its columns (notifier/log/query.py)."""
        return _Locked(self)

    def _owner(self, ref: str | None) -> str | None:
        row = self.ids.get(ref) if ref else None
        if row is None or self.row_account[row] == NONE:
            return None
        return self.accounts.name(self.row_account[row])

    # --- keeping up with the log -----------------------------------------------------------------

    def refresh(self) -> None:
        with self.locked():
            pass

    def _refresh(self) -> None:
        try:
            f = open(self.path, "rb", buffering=1 << 20)
        except FileNotFoundError:
            self._start_over()
            return
        except OSError as exc:
            raise unreadable(self.path, exc) from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if self.rebuilds < 0:
                self._start_over()
                if self.persist:
                    self._load(f, size)
            elif not self._same_log(f, size):
                self._start_over()
            if size == self._end:
                return
            f.seek(self._end)
            offset, line, last, joined = self._end, len(self.line_off), b"", False
            for data in f:
                if not data.endswith(b"\n"):
                    break  # being written, or torn by a crash: read it again next time
                self._add(line, offset, data[:-1])
                if offset == 0:
                    self._first = (0, len(data), hashlib.sha256(data).hexdigest())
                offset += len(data)
                line += 1
                last = data
                if line - self.line_off.size >= CHUNK:  # a first build: what was read joins the mapped part
                    self._end, self._last = offset, (offset - len(data), len(data), hashlib.sha256(data).hexdigest())
                    self._compact(self.persist, size / offset)
                    joined = True
                elif not line % 8192:
                    self._base.release()  # the pages the outcomes' updates read
            if last:
                self._last = (offset - len(last), len(last), hashlib.sha256(last).hexdigest())
            self._end = offset
        lines = len(self.line_off)
        if joined or (self.persist and lines >= SAVE_FROM and lines - self.line_off.size >= max(SAVE_FROM // 2, lines // 50)):
            self._compact(self.persist)  # a first build ends with all of it in the file

    def _same_log(self, f, size: int) -> bool:
        """Whether the file still holds, where they were, the first and last lines indexed."""
        if size < self._end:
            return False
        for offset, length, digest in (self._first, self._last):
            # pread, not seek and read: the file is opened with a 1 MB buffer for the new lines,
            # and a buffered read of one line filled it (2 MB read at every refresh, that is at
            # every page of the console, most of whose refreshes find nothing new).
            if length and hashlib.sha256(os.pread(f.fileno(), length, offset)).hexdigest() != digest:
                return False
        return True

    def _add(self, line: int, offset: int, raw: bytes) -> None:
        account, prev = NONE, 0  # the line's account's code
        if is_sending(raw):
            head = raw[:raw.find(b',"content":')] if b',"content":' in raw else raw  # the notice's own fields
            attempt = _text(head, b'"id":"', 0, 80)
            name = _text(head, b'"account":"')
            account = self.accounts.code(name) if name is not None else NONE
            if attempt is not None:
                row = len(self.row_line)
                self.ids.put(attempt, row)
                self.row_line.append(line)
                self.row_account.append(account)
                self.row_day.append(self._day(_text(head, b'"time":"', 0, 160)))
                self.row_last.append(0)
                self.row_channel.append(self.channels.code(_text(head, b'"channel":"')))
                self.row_stage.append(self.stages.code(_text(head, b'"stage":"')))
                self.row_actor.append(self.actors.code(_text(head, b'"actor":"')))
                self.row_status.append(0)
                self.row_provider.append(0)
                if b'"channel":"staff"' in head:
                    self.staff.add(attempt)
        else:
            ref = ref_of(raw)
            event = (_text(raw, b'"event":"', 0, 120) or "").encode()
            row = self.ids.get(ref) if ref else None
            name = _text(raw, b'"account":"')
            if name is not None:
                account = self.accounts.code(name)
            if row is not None:
                if name is None:
                    account = self.row_account[row]
                prev = self.row_last[row]
                if not prev:  # its outcome: the provider that answered
                    evidence = raw.find(b'"evidence":')
                    self.row_provider[row] = self.providers.code(
                        _text(raw, b'"provider":"', 0, evidence if evidence > 0 else len(raw)))
                self.row_last[row] = line + 1
                self.row_status[row] = self.statuses.code(event.decode())
            if row is not None and event in (b"sent", b"blocked") and \
                    self.channels.names[self.row_channel[row]] == "whatsapp":
                self.whatsapp.append(line)
                self.whatsapp_sending.append(self.row_line[row])
                self.whatsapp_day.append(self._day(_text(raw, b'"time":"')))
            if event in TASK_EVENTS or ref in self.staff or b'"provider":"staff-task"' in raw:
                self.task_off.append(offset)
                self.task_len.append(len(raw))
                start = end = 0
                if row is not None:
                    sending = self.row_line[row]
                    start = self.line_off[sending]
                    end = self.line_off[sending + 1] - 1 if sending + 1 < line else offset - 1
                self.task_sending_off.append(start)
                self.task_sending_len.append(end - start)
            elif event in PAYMENT_EVENTS:
                self.payments.append(line)
        self.line_off.append(offset)
        self.line_prev.append(prev)
        self.line_account.append(account)

    def _day(self, utc_text: str | None) -> int:
        """The local day of a log time as days since 2000-01-01 (0 when unreadable); the day of
        each UTC hour is remembered when the whole hour falls on one local day."""
        if not utc_text:
            return 0
        hour = utc_text[:13]
        found = self._days.get(hour)
        if found is not None:
            return found
        try:
            when = datetime.fromisoformat(utc_text.replace("Z", "+00:00"))
        except ValueError:
            return 0
        if when.tzinfo is None:
            return 0
        day = (when.astimezone(self.tz).date() - EPOCH).days
        start = when.replace(minute=0, second=0, microsecond=0)
        if (start.astimezone(self.tz).date() - EPOCH).days == day == \
                ((start + timedelta(minutes=59, seconds=59, microseconds=999999)).astimezone(self.tz).date() - EPOCH).days:
            self._days[hour] = day
        return max(0, min(day, 0xFFFF))

    def read(self, spans):
        """The records at `spans`, parsed; a line that no longer parses is passed over."""
        if not spans:
            return
        with open(self.path, "rb") as f:
            for offset, length in spans:
                f.seek(offset)
                rec = parse_line(f.read(length))
                if rec is not None:
                    yield rec

    # --- on disk, mapped -------------------------------------------------------------------------

    def save(self) -> None:
        """Write the index beside the log and map it (what was read since joins the mapped part)."""
        with self._lock:
            self._compact(True)

    def _compact(self, save: bool, grow: float = 1.0) -> None:
        """Write the whole index (the mapped part and what was read since) and use what was written:
        the index file, under a temporary name, then renamed (a reader finds the old file or the
        new one), mapped; or, when it may not or cannot be written (best effort: a folder that
        cannot be written only means the next process reads the whole log), a buffer in memory.
        The part already mapped is copied from its file, not read through the mapping, so that
        writing does not bring the whole old file into memory beside the new one. `grow`: how many
        times the ids known now are expected (a first build: the log's size over what was read),
        so that the ids' table is not made again at each doubling."""
        codes = len(self.accounts)
        lines = _Grouped(self.line_account, self.line_off.size, codes)
        rows = _Grouped(self.row_account.tail, self.row_account.size, codes)
        slots = self.ids.slots(grow)
        if slots == len(self.ids.keys) or not len(self.ids.keys):  # kept, or the first: the added ids put in it
            keys = self._base.items("id_keys") if len(self.ids.keys) else None
            *patches, used = self.ids.patches(keys, slots)
            ids = self.ids
        else:
            ids, patches = self.ids.rebuilt(slots, self._base), None
            used = ids.used
        counts = {name: len(getattr(self, name)) for name, _ in COLUMNS}
        counts.update(account_line_start=codes + 1, account_row_start=codes + 1,
                      account_line_list=len(self._account_lists[0]) + len(lines),
                      account_row_list=len(self._account_lists[1]) + len(rows),
                      id_keys=slots, id_rows=slots, account_names=self.accounts.size(), account_name_end=codes,
                      account_slots=_Names.slots(codes))
        layout, at = {}, PREFIX
        for name, typecode in COLUMNS + LISTS:
            align = PAGE if name == COLUMNS[len(UPDATED)][0] else 8
            at = -(-at // align) * align
            layout[name] = (typecode, counts[name], at)
            at += counts[name] * array(typecode).itemsize
        at = -(-at // 8) * 8
        parts = (lines, rows, ids, patches)
        base = self._write_file(layout, at, used, parts) if save else None
        if base is None:
            out = _Out(size=at)
            out.write(bytes(PREFIX))
            self._write(out, layout, parts)
            base = _Base(out.buffer, layout)
        self._take(base, used)

    def _write_file(self, layout: dict, at: int, used: int, parts: tuple) -> _Base | None:
        header = orjson.dumps({
            "format": FORMAT, "tz": self.tz.key, "end": self._end, "first": self._first, "last": self._last,
            "arrays": [(name, *layout[name]) for name, _ in COLUMNS + LISTS], "ids_used": used,
            "codes": {name: getattr(self, name).names for name in
                      ("channels", "stages", "actors", "statuses", "providers")},
            "staff": sorted(self.staff)})
        tmp = self.file.with_name(f"{self.file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        f = None
        try:
            f = open(tmp, "w+b")
            out = _Out(f)
            out.write(at.to_bytes(8, "little") + len(header).to_bytes(8, "little"))
            self._write(out, layout, parts)
            out.to(at)
            out.write(header)
            f.write(out.digest.digest())
            f.flush()
            os.chmod(tmp, 0o640)
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            os.replace(tmp, self.file)
            return _Base(buffer, layout, f)
        except (OSError, ValueError):
            if f is not None:
                f.close()
            try:
                tmp.unlink()
            except OSError:
                pass
            return None

    def _write(self, out: _Out, layout: dict, parts: tuple) -> None:
        """The arrays, in the file's order, each where `layout` says."""
        lines, rows, ids, patches = parts
        old = self._base
        for name, _ in COLUMNS:
            out.to(layout[name][2])
            for block in old.blocks(name):
                out.write(block)
            out.write(getattr(self, name).tail)
        for name, starts, added in zip(("account_line_start", "account_row_start"), self._account_starts, (lines, rows)):
            out.to(layout[name][2])
            out.write(_starts(starts, len(self.accounts), added))
        for which, (name, added) in enumerate((("account_line_list", lines), ("account_row_list", rows))):
            out.to(layout[name][2])
            self._write_lists(out, which, name, added)
        if ids is self.ids:  # the same table, the added ids put in their slots
            slots, *values = patches
            for name, new in zip(("id_keys", "id_rows"), values):
                typecode, count, offset = layout[name]
                out.to(offset)
                first = 0
                empty = (bytes(min(BLOCK, (count - at) * array(typecode).itemsize)) for at in
                         range(0, count, BLOCK // array(typecode).itemsize))
                for block in old.blocks(name) if len(self.ids.keys) else empty:
                    items = array(TYPES[name])
                    items.frombytes(block)
                    for slot, value in zip(slots, new):
                        if first <= slot < first + len(items):
                            items[slot - first] = value
                    first += len(items)
                    out.write(items)
        else:
            for name, table in (("id_keys", ids.keys), ("id_rows", ids.rows)):
                out.to(layout[name][2])
                out.write(table)
        names, ends = self.accounts.every(old)
        for name, data in (("account_names", names), ("account_name_end", ends),
                           ("account_slots", _Names.table(names, ends))):
            out.to(layout[name][2])
            out.write(data)

    def _write_lists(self, out: _Out, which: int, name: str, added: _Grouped) -> None:
        """Each account's list (lines or rows): its part already mapped, then what was read since."""
        starts, codes = self._account_starts[which], len(self.accounts)
        mapped = len(starts) - 1  # accounts the mapped part knows
        batch = array("I")
        for c0 in range(0, codes, 4096):
            c1 = min(codes, c0 + 4096)
            known = array("I")
            if c0 < mapped:
                for block in self._base.blocks(name, starts[c0], starts[min(c1, mapped)]):
                    known.frombytes(block)
            at = starts[c0] if c0 < mapped else 0
            for code in range(c0, c1):
                if code < mapped:
                    batch.extend(known[starts[code] - at:starts[code + 1] - at])
                batch.extend(added.items(code))
            if len(batch) * 4 >= BLOCK:
                out.write(batch)
                batch = array("I")
        out.write(batch)

    def _load(self, f, size: int) -> None:
        """Map the index file when it is whole (its SHA-256), for this zone and this format, and
        names lines the log still holds where it says; otherwise stay empty (the log is read from
        the start)."""
        try:
            src = open(self.file, "rb")
        except OSError:
            return
        try:
            total = os.fstat(src.fileno()).st_size
            prefix = src.read(PREFIX)
            at, length = int.from_bytes(prefix[:8], "little"), int.from_bytes(prefix[8:], "little")
            if len(prefix) != PREFIX or at + length + 32 != total:
                raise ValueError("not an index file")
            header = orjson.loads(os.pread(src.fileno(), length, at))
            if header.get("format") != FORMAT or header.get("tz") != self.tz.key:
                raise ValueError("another format or zone")
            digest = hashlib.sha256()
            for start in range(0, total - 32, BLOCK):
                digest.update(os.pread(src.fileno(), min(BLOCK, total - 32 - start), start))
            if os.pread(src.fileno(), 32, total - 32) != digest.digest():
                raise ValueError("damaged")
            layout = {name: (typecode, count, offset) for name, typecode, count, offset in header["arrays"]}
            for name, typecode in COLUMNS + LISTS:
                found, count, offset = layout[name]
                if found != typecode or offset % 8 or offset < PREFIX or offset + count * array(typecode).itemsize > at:
                    raise ValueError("arrays out of place")
            buffer = mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_COPY)
        except (OSError, EOFError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            src.close()
            return
        self._end, self._first, self._last = header["end"], tuple(header["first"]), tuple(header["last"])
        if not self._same_log(f, size):
            src.close()
            self._reset()
            return
        for name in ("channels", "stages", "actors", "statuses", "providers"):  # the accounts' are arrays of the file
            codes, names = getattr(self, name), header["codes"][name]
            codes.names, codes.codes = names, {v: i for i, v in enumerate(names)}
        self.staff = set(header["staff"])
        self._take(_Base(buffer, layout, src), header["ids_used"])
        self.loaded = True

    def memory(self) -> int:
        """Bytes the index holds besides its mapped file (about; for the bench): what was read
        since it was mapped, the ids added since, the codes' tables."""
        import sys
        total = sum(getattr(self, name).tail.buffer_info()[1] * getattr(self, name).tail.itemsize for name, _ in COLUMNS)
        total += self.line_account.buffer_info()[1] * 4 + sys.getsizeof(self.ids.added) + 64 * len(self.ids.added)
        if not isinstance(self._base.buffer, mmap.mmap):
            total += len(self._base.buffer)
        total += sys.getsizeof(self.accounts.codes) + sum(sys.getsizeof(s) for s in self.accounts.added)
        for codes in (self.channels, self.stages, self.actors, self.statuses, self.providers):
            total += sys.getsizeof(codes.codes) + sys.getsizeof(codes.names) + sum(sys.getsizeof(s) for s in codes.names)
        return total


class _Grouped:
    """The positions (from `first`) of the items of `codes` (of `count` possible codes, NONE left
    out), grouped by code: counted, then placed (a counting sort into two flat arrays, not a list
    per account)."""

    def __init__(self, codes: array, first: int, count: int):
        starts = array("I", [0]) * (count + 1)
        for code in codes:
            if code != NONE:
                starts[code + 1] += 1
        for code in range(count):
            starts[code + 1] += starts[code]
        order, fill = array("I", [0]) * starts[count], array("I", starts)
        for at, code in enumerate(codes, first):
            if code != NONE:
                order[fill[code]] = at
                fill[code] += 1
        self.starts, self.order = starts, order

    def __len__(self) -> int:
        return len(self.order)

    def count(self, code: int) -> int:
        return self.starts[code + 1] - self.starts[code]

    def items(self, code: int) -> array:
        return self.order[self.starts[code]:self.starts[code + 1]]


def _positions(codes: array, code: int, first: int) -> list[int]:
    """The positions (from `first`) of `code` in `codes`, found in C (an account's lines among the
    few thousand read since the index was mapped)."""
    data, item, width = codes.tobytes(), array(codes.typecode, [code]).tobytes(), codes.itemsize
    found, at = [], data.find(item)
    while at >= 0:
        if at % width:
            at = data.find(item, at + 1)
        else:
            found.append(first + at // width)
            at = data.find(item, at + width)
    return found


def _starts(starts, codes: int, added: _Grouped) -> array:
    """Where each of `codes` accounts' list starts once what was read since joins it (and where
    the last one ends)."""
    mapped = len(starts) - 1
    new, total = array("Q"), 0
    for code in range(codes):
        new.append(total)
        if code < mapped:
            total += starts[code + 1] - starts[code]
        total += added.count(code)
    new.append(total)
    return new


class _Locked:
    def __init__(self, index: LogIndex):
        self.index = index

    def __enter__(self) -> LogIndex:
        self.index._lock.acquire()
        try:
            self.index._refresh()
        except BaseException:
            self.index._lock.release()
            raise
        return self.index

    def __exit__(self, *exc) -> None:
        try:
            self.index._base.release()
        finally:
            self.index._lock.release()


_indexes: dict[Path, LogIndex] = {}
_indexes_lock = threading.Lock()


def index_for(path: Path, tz: ZoneInfo | None = None) -> LogIndex:
    """The one index of the log at `path` in this process (the console's requests share it);
    `tz` the zone of its days (the configured one), when the caller knows it."""
    path = Path(path).resolve()
    with _indexes_lock:
        index = _indexes.get(path)
        if index is None or (tz is not None and index.tz.key != tz.key):
            index = _indexes[path] = LogIndex(path, tz or SAO_PAULO)
        return index
