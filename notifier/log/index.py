"""Where things are in the attempt log: a compact index derived from the log, in memory and on disk.

The customer page shows an account's whole contact history, the task queue every open task, the
Registro page finance's filtered view of every attempt; at a million records a scan of the log
per question takes seconds. `LogIndex` reads the log once and keeps, in `array`s (a few bytes a
line, not a Python object per line):
- each line's byte offset and length, and for an outcome or status line the line before it about
  the same attempt (so an attempt's updates are found without a search);
- per account, the numbers of its lines (the customer page, the audit) and of its attempts;
- one row per `sending`: its line, account, São Paulo day (the configured zone), and codes for its
  channel, stage, actor, the provider of its outcome and its latest status (the Registro's
  filters, `notifier/log/query.py`); an attempt id finds its row through a hash table of the
  ids' first 64 bits (`_Ids`);
- the lines that make or close staff tasks (and the tasks themselves, `task_list`), the payments
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

A large log's index is also kept on disk beside it (`attempts.jsonl.index`, `save`), so that a
fresh process (`notifier attempts --account`, `show`, `audit`, a restarted console) reads it and
the log's new lines instead of the whole log. The file is checked like the index in memory (the
first and last lines it names, by their SHA-256), and ignored (then replaced) when it does not
match, is damaged, or was built for another time zone.

Lines are matched as bytes (the record's `account`, `id`, `ref`, `event`); what a question
returns is parsed and checked, so a byte match by accident costs a parse, never a wrong answer.
An outcome or status record without an `account` (written by another process than its
sending's) belongs to its sending's account.
"""
from __future__ import annotations

import hashlib
import os
import threading
from array import array
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
FORMAT = 2  # 2: the WhatsApp outcomes' lines


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


class _Ids:
    """Attempt id -> row: open addressing over two arrays, keyed by the id's first 64 bits (a
    dict of half a million ids would take ~50 MB; this takes 12 bytes a slot). Two ids sharing
    64 bits would share a row; every answer read back is checked against the record's `id`."""

    def __init__(self, slots: int = 1 << 12):
        self.keys = array("Q", bytes(8 * slots))
        self.rows = array("I", bytes(4 * slots))
        self.used = 0

    @staticmethod
    def key(attempt_id: str) -> int:
        if len(attempt_id) == 32:
            try:
                return int(attempt_id[:16], 16) or 1
            except ValueError:
                pass
        return int.from_bytes(hashlib.blake2b(attempt_id.encode(), digest_size=8).digest(), "little") or 1

    def get(self, attempt_id: str) -> int | None:
        keys, mask, k = self.keys, len(self.keys) - 1, self.key(attempt_id)
        i = k & mask
        while keys[i]:
            if keys[i] == k:
                return self.rows[i]
            i = (i + 1) & mask
        return None

    def put(self, attempt_id: str, row: int) -> None:
        if (self.used + 1) * 10 > len(self.keys) * 7:
            self._grow()
        self._put(self.key(attempt_id), row)

    def _put(self, k: int, row: int) -> None:
        keys, mask = self.keys, len(self.keys) - 1
        i = k & mask
        while keys[i] and keys[i] != k:
            i = (i + 1) & mask
        if not keys[i]:
            self.used += 1
        keys[i], self.rows[i] = k, row

    def _grow(self) -> None:
        keys, rows = self.keys, self.rows
        self.keys = array("Q", bytes(16 * len(keys)))
        self.rows = array("I", bytes(8 * len(keys)))
        self.used = 0
        for k, row in zip(keys, rows):
            if k:
                self._put(k, row)


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
        self._saved_lines = 0  # lines in the index file this process last read or wrote
        # one entry per whole line read
        self.line_off = array("Q")
        self.line_len = array("I")
        self.line_prev = array("I")  # an update line: the line (+1) of the previous update of its attempt, else 0
        # accounts
        self.accounts = Codes(limit=NONE - 1)
        self.account_lines: list[array] = [array("I")]  # per account code: its line numbers
        self.account_rows: list[array] = [array("I")]  # per account code: its rows
        # one row per sending
        self.row_line = array("I")
        self.row_account = array("I")
        self.row_day = array("H")
        self.row_last = array("I")  # the line (+1) of its latest update, 0 while none
        self.channels, self.stages, self.actors = Codes(), Codes(), Codes()
        self.statuses, self.providers = Codes("sending"), Codes()
        self.row_channel, self.row_stage, self.row_actor = array("H"), array("H"), array("H")
        self.row_status, self.row_provider = array("H"), array("H")
        self.ids = _Ids()
        # staff work
        self.staff: set[str] = set()  # ids of the staff channel's sendings (deletion tasks)
        self.tasks: list[tuple[int, str | None]] = []  # (line, ref) making or closing tasks
        self.payments = array("I")  # lines of payments recorded by hand
        self.whatsapp = array("I")  # lines of WhatsApp sendings' `sent` and `blocked` outcomes,
        self.whatsapp_sending = array("I")  # the line of each one's sending,
        self.whatsapp_day = array("H")  # and each one's local day (as a row's)
        self._book = None  # the tasks of `tasks[:_booked]` (`task_list`): thrown away with the rest
        self._booked = 0
        self._days: dict[str, int] = {}  # "YYYY-MM-DDTHH" (UTC) -> local day, for hours within one day

    def _start_over(self) -> None:
        self._reset()
        self.rebuilds += 1

    # --- questions -------------------------------------------------------------------------------

    def account_records(self, account: str) -> list[dict]:
        """Every record about `account`, in log order (sendings, their outcomes and statuses,
        staff records)."""
        with self._lock:
            self._refresh()
            code = self.accounts.codes.get(account)
            spans = self.spans(self.account_lines[code]) if code else []
        return [rec for rec in self.read(spans) if (rec.get("account") or self._owner(rec.get("ref"))) == account]

    def task_records(self) -> list[dict]:
        """The records `staff.actions.tasks()` needs, in log order: the task lines and the
        sendings they refer to."""
        with self._lock:
            self._refresh()
            lines = {line for line, _ in self.tasks}
            for _, ref in self.tasks:
                row = self.ids.get(ref) if ref else None
                if row is not None:
                    lines.add(self.row_line[row])
            spans = self.spans(sorted(lines))
        return list(self.read(spans))

    def task_list(self) -> list:
        """The log's staff tasks (`staff.actions.tasks`, the same list), kept: only the task lines
        appended since the last question (and the sendings they refer to) are read and parsed. A
        queue of 22,000 DMs was parsed whole at every view of the Tarefas page and the Painel."""
        from notifier.staff.actions import TaskBook  # the rules of a task live with the staff's actions
        with self._lock:
            self._refresh()
            if self._book is None:
                self._book, self._booked = TaskBook(), 0
            new = self.tasks[self._booked:]
            lines = {line for line, _ in new}
            for _, ref in new:
                row = self.ids.get(ref) if ref else None
                if row is not None:
                    lines.add(self.row_line[row])
            self._book.add(self.read(self.spans(sorted(lines))))  # all read, or none added
            self._booked = len(self.tasks)
            return self._book.tasks()

    def whatsapp_records(self, first: date, last: date) -> list[dict]:
        """The `sent` and `blocked` outcomes of WhatsApp sendings dated from `first` to `last`
        (local days, a day more each side: the caller checks the dates in its zone), each after
        its sending, in log order: what `staff.actions.without_whatsapp` reads."""
        low, high = (first - EPOCH).days - 1, (last - EPOCH).days + 1
        with self._lock:
            self._refresh()
            lines = set()
            for line, sending, day in zip(self.whatsapp, self.whatsapp_sending, self.whatsapp_day):
                if low <= day <= high:
                    lines.update((line, sending))
            spans = self.spans(sorted(lines))
        return list(self.read(spans))

    def sending(self, attempt_id: str) -> dict | None:
        """The `sending` record of an attempt, or None."""
        with self._lock:
            self._refresh()
            row = self.ids.get(attempt_id)
            spans = self.spans([self.row_line[row]]) if row is not None else []
        found = list(self.read(spans))
        return found[0] if found and found[0].get("id") == attempt_id else None

    def payment_records(self) -> list[dict]:
        """The payments recorded by hand (`payment`, `payment_corrected`), in log order."""
        with self._lock:
            self._refresh()
            spans = self.spans(self.payments)
        return [rec for rec in self.read(spans) if rec.get("event") in ("payment", "payment_corrected")]

    def spans(self, lines) -> list[tuple[int, int]]:
        off, length = self.line_off, self.line_len
        return [(off[n], length[n]) for n in lines]

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
        return self.accounts.names[self.row_account[row]]

    # --- keeping up with the log -----------------------------------------------------------------

    def refresh(self) -> None:
        with self._lock:
            self._refresh()

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
            offset = self._end
            add, off, length = self._add, self.line_off, self.line_len
            last = b""
            for data in f:
                if not data.endswith(b"\n"):
                    break  # being written, or torn by a crash: read it again next time
                line = len(off)
                off.append(offset)
                length.append(len(data) - 1)
                self.line_prev.append(0)
                add(line, data[:-1])
                if offset == 0:
                    self._first = (0, len(data), hashlib.sha256(data).hexdigest())
                offset += len(data)
                last = data
            if last:
                self._last = (offset - len(last), len(last), hashlib.sha256(last).hexdigest())
            self._end = offset
        if self.persist and len(self.line_off) >= SAVE_FROM and \
                len(self.line_off) - self._saved_lines >= max(SAVE_FROM // 2, len(self.line_off) // 50):
            self.save()

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

    def _add(self, line: int, raw: bytes) -> None:
        account = None
        if is_sending(raw):
            head = raw[:raw.find(b',"content":')] if b',"content":' in raw else raw  # the notice's own fields
            attempt = _text(head, b'"id":"', 0, 80)
            account = _text(head, b'"account":"')
            code = self._account(account) if account is not None else NONE
            if attempt is not None:
                row = len(self.row_line)
                self.ids.put(attempt, row)
                self.row_line.append(line)
                self.row_account.append(code)
                self.row_day.append(self._day(_text(head, b'"time":"', 0, 160)))
                self.row_last.append(0)
                self.row_channel.append(self.channels.code(_text(head, b'"channel":"')))
                self.row_stage.append(self.stages.code(_text(head, b'"stage":"')))
                self.row_actor.append(self.actors.code(_text(head, b'"actor":"')))
                self.row_status.append(0)
                self.row_provider.append(0)
                if code != NONE:
                    self.account_rows[code].append(row)
                if b'"channel":"staff"' in head:
                    self.staff.add(attempt)
        else:
            ref = ref_of(raw)
            event = (_text(raw, b'"event":"', 0, 120) or "").encode()
            row = self.ids.get(ref) if ref else None
            account = _text(raw, b'"account":"')
            if row is not None:
                if account is None and self.row_account[row] != NONE:
                    account = self.accounts.names[self.row_account[row]]
                self.line_prev[line] = self.row_last[row]
                if not self.row_last[row]:  # its outcome: the provider that answered
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
                self.tasks.append((line, ref))
            elif event in PAYMENT_EVENTS:
                self.payments.append(line)
        if account is not None:
            self.account_lines[self._account(account)].append(line)

    def _account(self, account: str) -> int:
        code = self.accounts.code(account)
        if code == len(self.account_lines):
            self.account_lines.append(array("I"))
            self.account_rows.append(array("I"))
        return code

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

    # --- on disk ---------------------------------------------------------------------------------

    _ARRAYS = ("line_off", "line_len", "line_prev", "row_line", "row_account", "row_day", "row_last", "row_channel",
               "row_stage", "row_actor", "row_status", "row_provider", "payments", "whatsapp", "whatsapp_sending",
               "whatsapp_day")

    def save(self) -> None:
        """Write the index beside the log (under a temporary name, then renamed: a reader finds
        the old file or the new one). Best effort: a folder that cannot be written only means the
        next process reads the whole log."""
        with self._lock:
            account_lines = array("I")
            account_rows = array("I")
            bounds = array("Q")
            for lines, rows in zip(self.account_lines, self.account_rows):
                account_lines.extend(lines)
                account_rows.extend(rows)
                bounds.extend((len(account_lines), len(account_rows)))
            arrays = [(name, getattr(self, name)) for name in self._ARRAYS] + [
                ("account_lines", account_lines), ("account_rows", account_rows), ("account_bounds", bounds),
                ("id_keys", self.ids.keys), ("id_rows", self.ids.rows)]
            header = {"format": FORMAT, "tz": self.tz.key, "end": self._end, "first": self._first, "last": self._last,
                      "arrays": [(name, a.typecode, len(a)) for name, a in arrays], "ids_used": self.ids.used,
                      "codes": {name: getattr(self, name).names for name in
                                ("accounts", "channels", "stages", "actors", "statuses", "providers")},
                      "staff": sorted(self.staff), "tasks": self.tasks}
            tmp = self.file.with_name(f"{self.file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                with open(tmp, "wb") as out:
                    blob = orjson.dumps(header)
                    out.write(len(blob).to_bytes(8, "little") + blob)
                    for _, a in arrays:
                        a.tofile(out)
                    out.write(hashlib.sha256(blob).digest())
                os.chmod(tmp, 0o640)
                os.replace(tmp, self.file)
                self._saved_lines = len(self.line_off)
            except OSError:
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def _load(self, f, size: int) -> None:
        """Take the index file when it is whole, for this zone, and names lines the log still
        holds where it says; otherwise stay empty (the log is read from the start)."""
        try:
            with open(self.file, "rb") as src:
                n = int.from_bytes(src.read(8), "little")
                blob = src.read(n)
                header = orjson.loads(blob)
                if header.get("format") != FORMAT or header.get("tz") != self.tz.key:
                    return
                arrays = {}
                for name, typecode, count in header["arrays"]:
                    a = array(typecode)
                    a.fromfile(src, count)
                    arrays[name] = a
                if src.read() != hashlib.sha256(blob).digest():
                    return
        except (OSError, EOFError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return
        self._end, self._first, self._last = header["end"], tuple(header["first"]), tuple(header["last"])
        if not self._same_log(f, size):
            self._reset()
            return
        for name in self._ARRAYS:
            setattr(self, name, arrays[name])
        for name, names in header["codes"].items():
            codes = getattr(self, name)
            codes.names, codes.codes = names, {v: i for i, v in enumerate(names)}
        lines, rows, bounds = arrays["account_lines"], arrays["account_rows"], arrays["account_bounds"]
        self.account_lines, self.account_rows = [], []
        at_line = at_row = 0
        for i in range(0, len(bounds), 2):
            self.account_lines.append(lines[at_line:bounds[i]])
            self.account_rows.append(rows[at_row:bounds[i + 1]])
            at_line, at_row = bounds[i], bounds[i + 1]
        self.ids.keys, self.ids.rows, self.ids.used = arrays["id_keys"], arrays["id_rows"], header["ids_used"]
        self.staff = set(header["staff"])
        self.tasks = [(line, ref) for line, ref in header["tasks"]]
        self._saved_lines = len(self.line_off)
        self.loaded = True

    def memory(self) -> int:
        """Bytes held by the index's arrays and tables (about; for the bench)."""
        import sys
        total = sum(a.buffer_info()[1] * a.itemsize for a in
                    [getattr(self, n) for n in self._ARRAYS] + [self.ids.keys, self.ids.rows]
                    + self.account_lines + self.account_rows)
        total += 64 * 2 * len(self.account_lines)  # the arrays' own objects
        for codes in (self.accounts, self.channels, self.stages, self.actors, self.statuses, self.providers):
            total += sys.getsizeof(codes.codes) + sys.getsizeof(codes.names) + sum(sys.getsizeof(s) for s in codes.names)
        return total


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
