"""Where each account's records are in the attempt log: an index derived from the log, in memory.

The customer page shows an account's whole contact history, and the task queue every open task;
at 100,000 records a scan of the log per page view takes about a second. `LogIndex` reads the log
once, keeps the byte offset and length of each account's lines (and of the lines that make or
close staff tasks), then at each question reads only what was appended since. It is never a
second source of truth: the records are read back from the log at each question, and the index
is thrown away and built again whenever the log is not the one it was built from (shorter than
what was read, or the first line or the last line read no longer where they were: a restored
or rewritten log).

Lines are matched as bytes (the record's `account`, `id`, `ref`, `event`); what a question
returns is parsed and checked (`account` or the sending's account really is the one asked), so a
byte match by accident costs a parse, never a wrong answer. An outcome or status record without
an `account` (written by another process than its sending's) belongs to its sending's account.
"""
from __future__ import annotations

import os
import threading
from collections import defaultdict
from pathlib import Path

from notifier.log.attempts import LogError, is_sending, parse_line, ref_of

# Events that make or close a staff task (notifier/staff/actions.py `tasks`), besides the
# `sent` of a staff-task channel and the staff channel's sendings, matched below.
TASK_EVENTS = (b"task", b"unknown", b"bounced", b"task_done", b"task_assigned")


def _text(raw: bytes, key: bytes, within: int = 1 << 30) -> str | None:
    """The string value of the first `"key":"..."` in the line's bytes (ids, events, accounts:
    never an escaped quote inside), or None."""
    at = raw.find(key, 0, within)
    if at < 0:
        return None
    start = at + len(key)
    end = raw.find(b'"', start)
    return raw[start:end].decode("utf-8", "replace") if end > 0 else None


class LogIndex:
    """Offsets of the log's lines by account, and of the task lines, kept up to date."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.rebuilds = -1  # how often the index started over after its first build (-1: not built yet)
        self._reset()

    def _reset(self) -> None:
        self._end = 0  # bytes indexed: every whole line before it
        self._first = b""  # the first line read, and the last: the log is still the one indexed
        self._last = (0, b"")  # while both are still at their offsets
        self._by_account: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._owner: dict[str, str] = {}  # sending id -> its account
        self._sendings: dict[str, tuple[int, int]] = {}  # sending id -> its line (for tasks)
        self._staff: set[str] = set()  # ids of the staff channel's sendings (deletion tasks)
        self._tasks: list[tuple[tuple[int, int], str | None]] = []  # (line, ref) making or closing tasks

    def _start_over(self) -> None:
        self._reset()
        self.rebuilds += 1

    # --- questions -------------------------------------------------------------------------------

    def account_records(self, account: str) -> list[dict]:
        """Every record about `account`, in log order (sendings, their outcomes and statuses,
        staff records)."""
        with self._lock:
            self._refresh()
            spans = list(self._by_account.get(account, ()))
        records = []
        for rec in self._read(spans):
            if (rec.get("account") or self._owner.get(rec.get("ref"))) == account:
                records.append(rec)
        return records

    def task_records(self) -> list[dict]:
        """The records `staff.actions.tasks()` needs, in log order: the task lines and the
        sendings they refer to."""
        with self._lock:
            self._refresh()
            spans = {span for span, _ in self._tasks}
            spans.update(self._sendings[ref] for _, ref in self._tasks if ref in self._sendings)
        return list(self._read(sorted(spans)))

    def sending(self, attempt_id: str) -> dict | None:
        """The `sending` record of an attempt, or None."""
        with self._lock:
            self._refresh()
            span = self._sendings.get(attempt_id)
        found = list(self._read([span])) if span else []
        return found[0] if found and found[0].get("id") == attempt_id else None

    # --- keeping up with the log -----------------------------------------------------------------

    def _refresh(self) -> None:
        try:
            f = open(self.path, "rb", buffering=1 << 20)
        except FileNotFoundError:
            self._start_over()
            return
        except OSError as exc:
            raise LogError(f"{self.path}: cannot read the attempt log: {exc.strerror or exc}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            if self.rebuilds < 0 or not self._same_log(f, size):
                self._start_over()
            if size == self._end:
                return
            f.seek(self._end)
            offset = self._end
            for data in f:
                if not data.endswith(b"\n"):
                    break  # being written, or torn by a crash: read it again next time
                self._add(offset, data[:-1])
                if offset == 0:
                    self._first = data
                self._last = (offset, data)
                offset += len(data)
            self._end = offset

    def _same_log(self, f, size: int) -> bool:
        """Whether the file still holds, where they were, the first and last lines indexed."""
        if size < self._end:
            return False
        for offset, data in ((0, self._first), self._last):
            if data:
                f.seek(offset)
                if f.read(len(data)) != data:
                    return False
        return True

    def _add(self, offset: int, raw: bytes) -> None:
        span = (offset, len(raw))
        if is_sending(raw):
            attempt = _text(raw, b'"id":"', 80)
            account = _text(raw, b'"account":"')
            if attempt is not None:
                self._sendings[attempt] = span
                if account is not None:
                    self._owner[attempt] = account
            if attempt is not None and b'"channel":"staff"' in raw:
                self._staff.add(attempt)
        else:
            ref = ref_of(raw)
            account = _text(raw, b'"account":"') or self._owner.get(ref or "")
            event = (_text(raw, b'"event":"', 120) or "").encode()
            if event in TASK_EVENTS or ref in self._staff or b'"provider":"staff-task"' in raw:
                self._tasks.append((span, ref))
        if account is not None:
            self._by_account[account].append(span)

    def _read(self, spans):
        """The records at `spans`, parsed; a line that no longer parses is passed over."""
        if not spans:
            return
        with open(self.path, "rb") as f:
            for offset, length in spans:
                f.seek(offset)
                rec = parse_line(f.read(length))
                if rec is not None:
                    yield rec


_indexes: dict[Path, LogIndex] = {}
_indexes_lock = threading.Lock()


def index_for(path: Path) -> LogIndex:
    """The one index of the log at `path` in this process (the console's requests share it)."""
    path = Path(path).resolve()
    with _indexes_lock:
        if path not in _indexes:
            _indexes[path] = LogIndex(path)
        return _indexes[path]
