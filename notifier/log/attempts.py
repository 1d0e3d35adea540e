"""The contact-attempt log: append-only JSON Lines that finance shows a customer as proof.

One record per event. A customer notice is a `sending` record, written and fsynced before the
provider is called (write-ahead: if the process dies mid-send, the log still says an attempt was
started, to whom and with what), then its outcome (`sent`, `failed`, `task`, `blocked`), then any
later status (`delivered`, `read`, `undelivered`, `bounced`...). Outcome and status records point
at their `sending` by `ref`. Other events (`skipped`, `contact`, `hold`, `unknown`...) stand alone.

Tamper evidence, and the one canonical form: a record *is* its line's bytes. Every line is
`{"seq":N,...,"prev":"<hex>"}`, where `seq` counts records from 1 and `prev` is the SHA-256 of the
previous record's line (without its newline; 64 zeros for the first). Nothing is re-serialised to
check it: `verify.py` hashes the bytes as they are on disk, so any edit of a record breaks the link
of the next, a removed or inserted record breaks `seq`, and the last record is held by the head
(count, hash) that the state store keeps at every write and the staff summary carries out of the
machine.

Appending never reads or rewrites the file: the head is kept in memory after one read of the
last line at the first write (seeking from the end), so an append costs the same at a thousand
records and at a million. Several processes may append (the daemon, a staff command): an flock
on the log serialises them, and a writer re-reads the tail only when the file's size shows that
someone else appended since.

A crash mid-write leaves a torn last line. Readers skip it, and the next append starts on a new
line, so the torn bytes stay on a line of their own, ignored, and no record is lost with them.
A record cut only of its newline is whole: it is kept and chained on.

The head the state keeps (`HeadFile`, `attempts.jsonl.head`: one per log, whichever state files
write to it) is moved by every append, in `AttemptLog._write`, the one place every writer goes
through, under the log's flock, in this order:
1. the log's tail is compared with the kept head: a log cut, replaced at its end, deleted, or
   grown by records this program did not append stops the write (`LogError`) before anything is
   written or sent;
2. the kept head gets an intent, "records up to N may follow" (`upto`);
3. the messages' bytes go into their pack, the records into the log, fsynced;
4. the kept head becomes the new one, `upto` cleared (one fsync per append, the intent's: this
   write is flushed by the next one, and until then the intent on disk covers the records).
A crash between 2 and 4 leaves the state behind the log, never ahead of it (it never claims a
record the log lacks), and the intent tells the next reader that the records after the head, up
to N, are a stopped writer's own: the next write adopts them. Growth past the head without such
an intent is reported: only this program appends to the log, and it always records the head.

The exact bytes handed to each provider are in the message store beside the log
(`messagestore.py`); the `sending` record carries their SHA-256 and where they are, and what the
customer read (subject and text, or the WhatsApp template and its variables) in `content`.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import orjson

from notifier.log.messagestore import MessageStore, Stored, folder_for
from notifier.state.fsync import fsync_dir as _fsync_dir

GENESIS = "0" * 64
TAIL_BLOCK = 1 << 16
# Outcomes of a `sending` (channels.Result.status, plus `unknown` after a crash).
OUTCOMES = frozenset({"sent", "outbox", "failed", "task", "blocked", "unknown"})
UNKNOWN_DETAIL = ("the notifier stopped after recording this attempt and before the provider answered: "
                  "check with the provider whether it was received; it is not sent again automatically")


class LogError(Exception):
    """The log cannot be read or written (disk full, permissions, a folder in its place), or it
    does not end where the state's head says; names the file."""


class Line(NamedTuple):
    """One line of the log as read: its number (from 1), its bytes without the newline, the record
    (None for a line that is not a record: a torn write), and whether it ended with a newline."""
    number: int
    raw: bytes
    record: dict | None
    terminated: bool


class Head(NamedTuple):
    count: int
    hash: str


def unreadable(path: Path, exc: OSError) -> LogError:
    """The error of a log that cannot be read, naming it; a folder in its place said as such."""
    if isinstance(exc, IsADirectoryError):
        return LogError(f"{path}: is a folder, not the attempt log (check `attempt_log` in the config)")
    return LogError(f"{path}: cannot read the attempt log: {exc.strerror or exc}")


def line_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class Kept(NamedTuple):
    """The head the state keeps: `count` records, the last hashing to `hash`, the log file then
    `size` bytes long; `upto` set while a writer may be appending records up to that count."""
    count: int
    hash: str
    size: int
    upto: int | None = None


def head_file_for(log_path: Path) -> Path:
    """`attempts.jsonl` -> `attempts.jsonl.head`: the log's head as the notifier's state keeps it,
    in a file of its own, so that the log and its messages cut or rolled back do not take it with
    them. One per log, not per state file: several states (a rehearsal copy, the README's
    example) may write to one log, and each must see the others' appends as the notifier's."""
    return Path(log_path).with_name(Path(log_path).name + ".head")


SLOT = 256  # bytes per copy of the head; two copies, written in turn


class HeadFile:
    """The log's head as the state keeps it, rewritten at every append: a small file of two
    fixed slots, each the head as JSON with a generation number and a checksum. A write goes to
    the older slot with one pwrite (and one fsync when durable: an atomic rename would cost two
    fsyncs more), so a write torn by a crash spoils only that slot, and the reader takes the valid
    slot of the highest generation: the head before the torn write."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._gen = 0

    def read(self) -> Kept | None:
        """The newest head written, or None when none was ever written."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LogError(f"{self.path}: cannot read the log's head kept by the state: {exc.strerror or exc}") from None
        slots = [doc for doc in (_slot(data[i:i + SLOT]) for i in (0, SLOT)) if doc is not None]
        if not slots:
            if not data:
                return None
            raise LogError(f"{self.path}: the log's head kept by the state is damaged (not written by the notifier); "
                           "`notifier verify-log` checks the log itself")
        doc = max(slots, key=lambda d: d["gen"])
        self._gen = doc["gen"]
        return Kept(doc["count"], doc["hash"], doc["size"], doc["upto"])

    def write(self, kept: Kept, durable: bool = True) -> None:
        """Replace the head (call `read` first: the generation goes on from the newest slot);
        fsynced unless not `durable` (see `AttemptLog._write`)."""
        self._gen += 1
        body = orjson.dumps({"gen": self._gen, **kept._asdict()})
        line = body[:-1] + b',"sum":"%s"}' % hashlib.sha256(body).hexdigest()[:16].encode()
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
            try:
                os.pwrite(fd, line.ljust(SLOT - 1) + b"\n", (self._gen % 2) * SLOT)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)
        except OSError as exc:
            raise LogError(f"{self.path}: cannot record the log's head in the state: {exc.strerror or exc}") from None


def _slot(data: bytes) -> dict | None:
    """One slot's head when it is whole and its checksum holds, else None."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or type(doc.get("gen")) is not int:
        return None
    digest = doc.pop("sum", None)
    if digest != hashlib.sha256(orjson.dumps(doc)).hexdigest()[:16]:
        return None
    return doc


def disagreement(path: Path, kept: Kept | None, head: Head) -> str | None:
    """What is wrong with a log that ends at `head` when the state kept `kept`, or None when they
    agree (or the log only holds a stopped writer's records after the head, which its intent
    announced, `grown_by_a_stopped_writer`). One sentence for an operator, saying what to do."""
    if kept is None or (head.count == kept.count and head.hash == kept.hash):
        return None
    seen = f"the state recorded {kept.count:,} records (last hash {kept.hash})"
    if head.count > kept.count:
        if grown_by_a_stopped_writer(path, kept, head):
            return None
        return (f"{path}: records {kept.count + 1:,} to {head.count:,} were appended after the head the state "
                f"recorded at its last write ({seen}): only the notifier appends to this log, and it records the "
                "head every time: something else wrote them. `notifier verify-log` says more; if you know where they "
                "come from, `notifier verify-log --accept-cut --by NAME` goes on with the log as it is")
    if not path.exists():
        what = f"{path}: the attempt log is missing and the state saw {kept.count:,} records: it was deleted or moved"
    elif head.count < kept.count:
        what = (f"{path}: the attempt log has {head.count:,} records and the state saw {kept.count:,}: records were "
                "cut off its end")
    else:
        what = (f"{path}: the attempt log has {head.count:,} records and record {head.count:,} is not the one the "
                f"state saw (hash {kept.hash[:12]}…): it was replaced")
    return (what + ". Nothing was changed; `notifier verify-log` says where. Restore the log from a backup "
            "before going on, or, with none, accept the cut: `notifier verify-log --accept-cut --by NAME`")


def grown_by_a_stopped_writer(path: Path, kept: Kept, head: Head) -> bool:
    """Whether the records after `kept` (to `head`) are those a writer announced (`upto`) before
    it stopped between its append and the head's move: they chain on from the kept head."""
    if kept.upto is None or not kept.count < head.count <= kept.upto:
        return False
    count, last = kept.count, kept.hash
    try:
        with open(path, "rb") as f:
            f.seek(kept.size)
            for data in f:
                record = parse_line(data.rstrip(b"\n"))
                if record is None:
                    continue  # a torn line
                if record["seq"] != count + 1 or record["prev"] != last:
                    return False
                count, last = count + 1, line_hash(data.rstrip(b"\n"))
    except OSError:
        return False
    return (count, last) == tuple(head)


def utc_iso(when: datetime) -> str:
    """UTC, ISO 8601, milliseconds: `2026-11-24T11:00:00.000Z`. A naive time is a bug upstream."""
    if when.tzinfo is None:
        raise ValueError("the attempt log needs an aware datetime")
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def content_of(message) -> dict:
    """What the customer read: the subject and plain text, or the WhatsApp template and its
    variables (the channel sends a message with a `content_sid` as that template, never its text)."""
    content: dict[str, Any] = {}
    if message.subject:
        content["subject"] = message.subject
    if message.content_sid:
        content["content_sid"] = message.content_sid
        content["content_variables"] = dict(message.content_variables or {})
    else:
        content["text"] = message.text
    return content


def parse_line(raw: bytes) -> dict | None:
    """The record on one line (without its newline), or None when the line is not a record."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(record) is not dict or type(record.get("seq")) is not int or type(record.get("prev")) is not str:
        return None
    return record


def raw_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number from 1, bytes without the newline, whether it had one) of every line of the
    log file, unparsed; nothing when the file does not exist. Readers that need a few records out
    of many parse only those."""
    try:
        f = open(path, "rb", buffering=1 << 20)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise unreadable(path, exc) from None
    with f:
        for number, data in enumerate(f, 1):
            terminated = data.endswith(b"\n")
            yield number, data[:-1] if terminated else data, terminated


class Mark(NamedTuple):
    """A place in the log file: `records` records lie before byte `offset`. Readers that want
    only what came after an earlier read start there instead of at the top."""
    records: int
    offset: int

    @classmethod
    def of(cls, doc) -> "Mark | None":
        """A mark as the state stores it ({"records": N, "offset": B}), or None."""
        if isinstance(doc, Mapping) and type(doc.get("records")) is int and type(doc.get("offset")) is int:
            return cls(doc["records"], doc["offset"])
        return None

    def doc(self) -> dict:
        return {"records": self.records, "offset": self.offset}


_MARK_WINDOW = 1 << 20  # bytes read before a mark to find the start of the line that ends there


class LinesAfter:
    """The raw lines of the log after `since` (all of them when it is None or no longer falls
    between record `since.records` and the next: the log was restored or rewritten, the state
    edited by hand); `end` is then the mark after the last whole line read. A torn last line (no
    newline) is passed, but the mark does not go past it."""

    def __init__(self, path: Path, since: Mark | None = None):
        self.path, self.since = path, since
        self.end: Mark | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            f = open(self.path, "rb", buffering=1 << 20)
        except FileNotFoundError:
            self.end = Mark(0, 0)
            return
        except OSError as exc:
            raise unreadable(self.path, exc) from None
        with f:
            records, offset = self._start(f)
            f.seek(offset)
            for data in f:
                if not data.endswith(b"\n"):
                    yield data
                    break
                raw = data[:-1]
                seq = seq_of(raw)
                if seq is not None:
                    records = seq
                offset += len(data)
                yield raw
        self.end = Mark(records, offset)

    def _start(self, f) -> tuple[int, int]:
        """(records, offset) to start from: the mark when the line ending at it is record
        `since.records` and the next one, if any, is the record after; else the file's start."""
        since = self.since
        if since is None or since.offset <= 0 or since.records <= 0:
            return 0, 0
        f.seek(max(0, since.offset - _MARK_WINDOW))
        before = f.read(since.offset - f.tell())
        after = f.read(40)
        start = before.rfind(b"\n", 0, len(before) - 1) + 1
        if start == 0 and since.offset > _MARK_WINDOW:
            return 0, 0  # a line longer than the window: no telling
        last = before[start:]
        if (last.endswith(b"\n") and seq_of(last) == since.records
                and (not after or after.startswith(b'{"seq":%d,' % (since.records + 1)))):
            return since.records, since.offset
        return 0, 0


def scan(path: Path) -> Iterator[Line]:
    """Every line of the log file, in order, parsed; nothing when the file does not exist."""
    for number, raw, terminated in raw_lines(path):
        yield Line(number, raw, parse_line(raw), terminated)


def is_sending(raw: bytes) -> bool:
    """Whether a line is a `sending` record, from its bytes alone (the event comes right after the
    seq and id): readers skip the other lines without parsing them."""
    return b'"event":"sending"' in raw[:120]


def ref_of(raw: bytes) -> str | None:
    """The `ref` of an outcome or status line, from its bytes alone (readers parse only the lines
    whose ref they want; the caller still checks the parsed record's `ref`)."""
    at = raw.find(b'"ref":"')
    if at < 0:
        return None
    start = at + 7
    return raw[start:raw.find(b'"', start)].decode("ascii", "replace")


def seq_of(raw: bytes) -> int | None:
    """The `seq` of a line written in the log's own layout (`{"seq":N,...`), from its bytes alone,
    or None (another layout, a torn line): readers that want only the newest records skip the
    others unparsed."""
    if not raw.startswith(b'{"seq":'):
        return None
    digits = raw[7:27].partition(b",")[0]
    return int(digits) if digits.isdigit() else None


def _default(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} into the attempt log")


class _Tail(NamedTuple):
    head: Head
    size: int
    needs_newline: bool


def read_tail(path: Path) -> _Tail:
    """The head of the chain from the end of the file alone: read backwards block by block until
    the last whole record (torn lines after it are passed over)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return _Tail(Head(0, GENESIS), 0, False)
    except OSError as exc:  # a folder in its place, no permission
        raise unreadable(path, exc) from None
    with f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return _Tail(Head(0, GENESIS), 0, False)
        f.seek(size - 1)
        needs_newline = f.read(1) != b"\n"
        pos, buf = size, b""
        while True:
            step = min(TAIL_BLOCK, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            lines = buf.split(b"\n")
            fragment = lines.pop()  # b"" after a final newline, else the unterminated last line
            if pos > 0:
                lines.pop(0)  # may be cut by the block boundary
            last = next((raw for raw in reversed(lines) if parse_line(raw) is not None), None)
            if last is None and pos > 0:
                continue
            head = Head(0, GENESIS) if last is None else Head(parse_line(last)["seq"], line_hash(last))
            whole = parse_line(fragment) if fragment else None
            if whole is not None and whole["seq"] == head.count + 1 and whole["prev"] == head.hash:
                head = Head(whole["seq"], line_hash(fragment))  # whole but for its newline
            return _Tail(head, size, needs_newline)


class AttemptLog:
    """The log at `path`, its message store in `messages` (default `<log name>.messages/`), and
    the head kept for it (`head_file_for(path)`).

    Every write goes through `_write`, which checks the log against the kept head and moves it
    (module docstring): a new writer (a command, the web console) gets that by writing through
    any AttemptLog method, with nothing to remember.

    Cheap to create: nothing is opened until the first read or write. `close()` releases the
    file and the writer's lock (a process that ends releases them anyway).
    """

    def __init__(self, path: Path, messages: Path | None = None):
        self.path = Path(path)
        self.messages = MessageStore(Path(messages) if messages else folder_for(self.path))
        self.kept = HeadFile(head_file_for(self.path))
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._fd: int | None = None
        self._run_fd: int | None = None
        self._tail: _Tail | None = None
        self._open_attempts: dict[str, dict] = {}  # id -> what outcome records repeat of it
        self.answered: Mark | None = None  # after `recover`: every sending before it has its outcome
        # The flocks exclude other processes, not this one's threads: two threads share one file
        # descriptor, and a flock taken on it twice is granted twice. The console's requests run in
        # a threadpool and share one AttemptLog: its writes (the tail, the head, the open fds) are
        # made one thread at a time under this lock.
        self._threads = threading.RLock()

    # --- writing ---------------------------------------------------------------------------------

    def start(self, when: datetime, message, fields: Mapping[str, Any], actor: str = "daemon",
              payload: bytes | None = None, attempt_id: str | None = None) -> str:
        """Record that `message` is about to be handed to its provider; returns the attempt id.

        `payload` is the exact bytes the provider gets (`Channel.prepare`); `attempt_id` may be
        chosen by the caller beforehand (`new_id()`) when the payload itself must carry it (the
        e-mail's VERP Return-Path)."""
        return self.start_many([(when, message, fields, actor, payload, attempt_id)])[0]

    def start_many(self, items: Sequence[tuple]) -> list[str]:
        """`start` for many messages with one fsync of the message store and one of the log (group
        commit). Each item: (when, message, fields, actor, payload[, attempt_id])."""
        return self.finish_and_start((), items)

    def finish_and_start(self, finished: Sequence[tuple], items: Sequence[tuple]) -> list[str]:
        """`finish_many(finished)` and `start_many(items)` in one append, one fsync of the log: the
        cycle's workers hand in their last outcomes and take their next claims together. The
        outcomes come first. Returns the claims' ids."""
        answers = self._answers(finished)
        records, stored_payloads = [], {}
        for item in items:
            when, message, fields, actor, payload, *rest = item
            attempt_id = (rest[0] if rest else None) or new_id()
            record = {"id": attempt_id, "event": "sending", "time": utc_iso(when), "actor": actor,
                      **fields, "channel": message.channel, "recipient": message.recipient,
                      "content": content_of(message)}
            if payload is not None:
                stored_payloads.setdefault(utc_iso(when)[:7], []).append((attempt_id, len(records), payload))
            records.append(record)

        def store_payloads() -> None:
            for month, entries in stored_payloads.items():
                pointers = self._put(month, [(aid, data) for aid, _, data in entries])
                for (_, index, _), where in zip(entries, pointers):
                    records[index]["message"] = where.to_json()
        self._write(answers + records, store_payloads)
        for record in records:
            self._open_attempts[record["id"]] = {k: record.get(k) for k in ("actor", "account", "channel", "recipient")}
        return [r["id"] for r in records]

    def finish(self, attempt_id: str, when: datetime, result) -> str:
        """Record the provider's answer to `attempt_id`: event = `result.status`."""
        return self.finish_many([(attempt_id, when, result)])[0]

    def finish_many(self, items: Sequence[tuple]) -> list[str]:
        """`finish` for many attempts with one fsync. Each item: (attempt_id, when, result)."""
        records = self._answers(items)
        self._write(records)
        return [r["id"] for r in records]

    def _answers(self, items: Sequence[tuple]) -> list[dict]:
        records = []
        for attempt_id, when, result in items:
            known = self._open_attempts.pop(attempt_id, {"actor": "daemon"})
            records.append({
                "id": new_id(), "event": result.status, "time": utc_iso(when), **known, "ref": attempt_id,
                "provider": result.provider, "provider_id": result.provider_id, "code": result.code,
                "detail": result.detail, "permanent": result.permanent, "evidence": dict(result.evidence),
            })
        return records

    def skip(self, when: datetime, fields: Mapping[str, Any], reason: str, actor: str = "daemon") -> str:
        """A notice decided not to be sent (superseded, opted out...): no `sending` before it."""
        return self.note(when, "skipped", {**fields, "reason": reason}, actor)

    def note(self, when: datetime, event: str, fields: Mapping[str, Any], actor: str = "daemon") -> str:
        """Any other record (contact, hold, release, task_done, status records...); returns its id."""
        return self.note_many([(when, event, fields, actor)])[0]

    def note_many(self, items: Sequence[tuple]) -> list[str]:
        """`note` for many records with one fsync. Each item: (when, event, fields, actor)."""
        records = []
        for when, event, fields, actor in items:
            if event == "sending":
                raise ValueError("a `sending` record is written by start(), which stores the payload")
            records.append({"id": new_id(), "event": event, "time": utc_iso(when), "actor": actor, **fields})
        self._write(records)
        return [r["id"] for r in records]

    def recover(self, when: datetime, actor: str = "daemon", since: Mark | None = None) -> list[dict]:
        """Append `unknown` for every `sending` that has no outcome; returns those sendings.

        Such an attempt was interrupted between the write-ahead record and the provider's answer:
        the provider may or may not have it. It is never sent again automatically (that could
        send a customer the same notice twice); it becomes a staff task. Done only when no other
        process has the log open for writing, since their sendings may be in flight right now;
        otherwise nothing is done and [] returned (the next start does it).

        `since` is an earlier `answered` mark: every sending before it has its outcome, so only
        the log after it is read (a daily run-once would otherwise read a longer log every day).
        After a recovery, `answered` is the mark of the log's end.
        """
        if not self._hold_run_lock(exclusive=True):
            return []
        try:
            # Matched as bytes: only the few sendings left unanswered are parsed.
            waiting: dict[str, bytes] = {}
            lines = LinesAfter(self.path, since)
            for raw in lines:
                if is_sending(raw):
                    at = raw.find(b'"id":"', 0, 40) + 6
                    waiting[raw[at:raw.find(b'"', at)].decode("ascii", "replace")] = raw
                else:
                    ref = ref_of(raw)
                    # A torn outcome line (the disk filled up mid-write) answers nothing.
                    if ref in waiting and (parse_line(raw) or {}).get("ref") == ref:
                        waiting.pop(ref)
            ours = [k for k in waiting if k in self._open_attempts]
            parsed = {k: parse_line(raw) for k, raw in waiting.items() if k not in self._open_attempts}
            # A torn sending line never finished its write-ahead, so it was never sent: not unknown.
            pending = {k: r for k, r in parsed.items() if r is not None and r.get("id") == k}
            if pending:
                self._write([_unknown(when, actor, sending) for sending in pending.values()])
                lines.end = Mark(self._tail.head.count, self._tail.size)
            # This process's own attempts in flight are not answered yet: no mark past them.
            self.answered = None if ours else lines.end
            return list(pending.values())
        finally:
            self._hold_run_lock(exclusive=False)

    # --- reading ---------------------------------------------------------------------------------

    def records(self) -> Iterator[dict]:
        """Every record, in order, streamed from the file; lines that are not records (a write
        torn by a crash) are skipped."""
        for line in scan(self.path):
            if line.record is not None:
                yield line.record

    def head(self) -> Head:
        """(number of records, SHA-256 hex of the last one); (0, 64 zeros) for an empty log."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        if self._tail is None or self._tail.size != size:
            self._tail = read_tail(self.path)
        return self._tail.head

    def check_head(self) -> None:
        """LogError unless the log ends where the state's kept head says (see `disagreement`):
        commands that change the state ask before they write anything."""
        with self._shared():
            problem = disagreement(self.path, self.kept.read(), read_tail(self.path).head)
        if problem:
            raise LogError(problem)

    def settled(self) -> tuple[Kept | None, int]:
        """(the kept head, the log's size) at one moment no writer is between its append and the
        head's move, for a check that reads the log after (writers append on meanwhile)."""
        with self._shared():
            return self.kept.read(), _size(self.path)

    @contextmanager
    def _shared(self) -> Iterator[None]:
        """The log's flock held shared: writers hold it exclusive from their check of the head to
        its move, so a log growing under a reader is never mistaken for a log grown by someone else."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            yield
            return
        except OSError as exc:
            raise unreadable(self.path, exc) from None
        with f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            yield

    def accept_head(self) -> tuple[Kept, Head] | None:
        """Make the kept head the log's present one, whatever the log holds (`verify-log
        --accept-cut`: no backup to restore); returns (the head kept before, the log's), or None
        when they agreed."""
        fd = self._log_fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            kept, tail = self.kept.read(), read_tail(self.path)
            if kept is None or disagreement(self.path, kept, tail.head) is None:
                return None
            self.kept.write(Kept(*tail.head, tail.size))
            self._tail = tail
            return kept, tail.head
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._threads:
            for fd in (self._fd, self._run_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._run_fd = None

    # --- internals -------------------------------------------------------------------------------

    def _write(self, records: list[dict], store_payloads: Callable[[], None] | None = None) -> None:
        """Append `records`, after `store_payloads()` (which puts their messages' bytes in the
        packs and their pointers in the records), moving the kept head; the order is the module
        docstring's. All under the log's flock, so that packs, log and head change together."""
        if not records:
            return
        with self._threads:
            self._write_locked(records, store_payloads)

    def _write_locked(self, records: list[dict], store_payloads: Callable[[], None] | None) -> None:
        self._hold_run_lock(exclusive=False)
        fd = self._log_fd()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            self._tail = self._agreed(size)
            count, last = self._tail.head
            self.kept.write(Kept(count, last, size, count + len(records)))
            if store_payloads is not None:
                store_payloads()
            blob = bytearray(b"\n" if self._tail.needs_newline else b"")
            for record in records:
                count += 1
                raw = orjson.dumps({"seq": count, **record, "prev": last}, default=_default)
                last = line_hash(raw)
                blob += raw + b"\n"
            try:
                _write_all(fd, blob)
                os.fsync(fd)
            except OSError as exc:
                self._tail = None  # what reached the disk is unknown: read the tail again next time
                raise LogError(f"{self.path}: cannot append to the attempt log: {exc.strerror or exc}") from None
            self._tail = _Tail(Head(count, last), size + len(blob), False)
            # Not fsynced: the next intent's fsync flushes it, and a power cut before that
            # leaves the intent on disk, which accounts for these records. A killed process
            # loses nothing: the write is in the page cache every reader sees.
            self.kept.write(Kept(count, last, size + len(blob)), durable=False)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _agreed(self, size: int) -> _Tail:
        """The log's tail, checked against the kept head (LogError when they disagree): read
        again only when the file is not as this process left it or the head is not."""
        kept = self.kept.read()
        tail = self._tail
        if tail is None or tail.size != size or (kept is not None and kept != Kept(*tail.head, size)):
            tail = read_tail(self.path)
            problem = disagreement(self.path, kept, tail.head)
            if problem:
                raise LogError(problem)
        return tail

    def _put(self, month: str, items: list[tuple[str, bytes]]) -> list[Stored]:
        try:
            return self.messages.put_many(month, items)
        except FileExistsError:  # a file where the folder should be
            raise LogError(f"{self.messages.folder}: is a file, not the folder of the stored messages") from None
        except OSError as exc:  # a full disk, no permission
            raise LogError(f"{self.messages.folder}: cannot store the messages: {exc.strerror or exc}") from None

    def _log_fd(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            self._fd = _open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            if created:
                _fsync_dir(self.path.parent)
        return self._fd

    def _hold_run_lock(self, exclusive: bool) -> bool:
        """Every writing process holds `<log>.lock` shared while it lives, so that `recover` (which
        wants it exclusive, without waiting) knows whether another writer may be mid-send."""
        if self._run_fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._run_fd = _open(self._lock_path, os.O_RDWR | os.O_CREAT)
        if not exclusive:
            fcntl.flock(self._run_fd, fcntl.LOCK_SH)
            return True
        try:
            fcntl.flock(self._run_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(self._run_fd, fcntl.LOCK_SH)  # a failed conversion may have dropped it
            return False
        return True


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _open(path: Path, flags: int) -> int:
    """os.open for writing, its failure (a read-only or full folder) a LogError naming the file."""
    try:
        return os.open(path, flags, 0o640)
    except OSError as exc:
        raise LogError(f"{path}: cannot open for writing: {exc.strerror or exc}") from None


def new_id() -> str:
    """A fresh attempt/record id: 32 hex digits (fits a VERP address's local part), a random
    (version 4) UUID. The random bytes are drawn from the system 4 KB at a time: each os.urandom
    call gives up the GIL, and during a cycle the sending threads then kept the thread that
    writes the log waiting about a millisecond to get it back, three times a message."""
    with _random_lock:
        if len(_random) < 16:
            _random[:] = os.urandom(4096)
        chunk = _random[-16:]
        del _random[-16:]
    # The version and variant bits of RFC 4122, as uuid.UUID(version=4) sets them (the uuid
    # module itself is not imported: it brings `platform`, a hundredth of a second of every start).
    chunk[6] = chunk[6] & 0x0F | 0x40
    chunk[8] = chunk[8] & 0x3F | 0x80
    return chunk.hex()


_random = bytearray()
_random_lock = threading.Lock()
os.register_at_fork(after_in_child=_random.clear)  # a child must never repeat its parent's ids


def stored_message(record: Mapping[str, Any]) -> Stored | None:
    """The message-store pointer of a `sending` record, if it has one."""
    where = record.get("message")
    return Stored.from_json(where) if where else None


def _unknown(when: datetime, actor: str, sending: dict) -> dict:
    keep = ("account", "invoices", "stage", "channel", "recipient", "notice_date", "covers", "attempt")
    return {"id": new_id(), "event": "unknown", "time": utc_iso(when), "actor": actor, "ref": sending["id"],
            **{k: sending[k] for k in keep if k in sending}, "task": "check_with_provider",
            "detail": UNKNOWN_DETAIL}


def _write_all(fd: int, blob: bytes | bytearray) -> None:
    view = memoryview(blob)
    while view:
        written = os.write(fd, view)
        view = view[written:]

