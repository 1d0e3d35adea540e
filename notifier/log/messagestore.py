"""The message store: the exact bytes handed to each provider, compressed, beside the attempt log.

An audit must show what a customer received, byte for byte (the whole `.eml` as it went to the
SMTP server, the request fields posted to Twilio), and prove it was not edited since. The log's
`sending` record holds the SHA-256 of those bytes and where they are; this module keeps them.

Layout: one append-only pack file per month (`<log>.messages/2026-11.pack`), each entry a header
line and the zlib-compressed payload:

    {"id":"<attempt id>","sha256":"<hex of the raw bytes>","size":N,"zsize":M,"zsha256":"<hex of the M bytes>"}\\n<M bytes>\\n

Why a pack and not one file per attempt: a month of the default ladder for 5,000 accounts is tens
of thousands of messages of a few kilobytes each; as separate files each takes a whole disk block
and an inode, and each needs its own fsync (plus one of its directory) before the send may go on.
A pack takes one write and one fsync per group of sends (group commit) and no block is wasted.
The pointer in the log (`Stored`) makes the log the pack's index; the header lines also let a pack
be read on its own (`entries()`), addressed by attempt id, without the log.

Each entry is compressed on its own (zlib, level 9), so one message is read without the others.
A crash mid-append leaves at most a torn entry at the end of a pack that no log record points to
(the pack is written and fsynced before the log's `sending` record). The next append cuts it
before writing (`_cut_torn_tail`): left there, it would sit between whole entries, where neither
`entries()` nor `verify` could tell it from bytes someone put there. A write that fails (a full
disk) takes back what it wrote.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import orjson

from notifier.state.fsync import fsync_dir as _fsync_dir

LEVEL = 9


class MessageStoreError(Exception):
    """A stored message that cannot be read back (missing pack, damaged entry)."""


@dataclass(frozen=True)
class Stored:
    """Where one payload is and what it hashes to: what the `sending` record carries."""
    pack: str
    offset: int  # of the compressed bytes, after the header line
    zsize: int
    size: int
    sha256: str  # of the payload: what an audit shows and anyone can recompute from the .eml
    zsha256: str | None = None  # of the compressed bytes as stored; None in entries written before it

    def to_json(self) -> dict:
        data = {"pack": self.pack, "offset": self.offset, "zsize": self.zsize, "size": self.size,
                "sha256": self.sha256}
        if self.zsha256 is not None:
            data["zsha256"] = self.zsha256
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Stored":
        return cls(data["pack"], int(data["offset"]), int(data["zsize"]), int(data["size"]), data["sha256"],
                   data.get("zsha256"))


def entry_header(attempt_id: str, where: Stored) -> bytes:
    """The header line `put_many` writes before the bytes `where` points at: a check rebuilds it
    from the log's record and compares, so a changed byte in a header is found too."""
    doc = {"id": attempt_id, "sha256": where.sha256, "size": where.size, "zsize": where.zsize}
    if where.zsha256 is not None:
        doc["zsha256"] = where.zsha256
    return orjson.dumps(doc) + b"\n"


def folder_for(log_path: Path) -> Path:
    """`attempts.jsonl` -> `attempts.jsonl.messages/`, beside the log."""
    return Path(log_path).with_name(Path(log_path).name + ".messages")


class MessageStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._readers: dict[str, int] = {}  # pack name -> open descriptor: verify reads thousands
        # pack name -> an offset known to end a whole entry (this store's last append, or the end
        # of a walk): the bytes before it never change, so the next check starts there.
        self._whole: dict[str, int] = {}

    def put_many(self, month: str, items: list[tuple[str, bytes]]) -> list[Stored]:
        """Append (attempt id, payload) pairs to the pack of `month` ("YYYY-MM") with one write and
        one fsync; returns their pointers, in order. The caller writes the log only after this."""
        if not items:
            return []
        name = f"{month}.pack"
        path = self.folder / name
        created = not path.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)  # read: the tail check
        try:
            # Several processes may send at once: the lock makes the offsets we compute true.
            fcntl.flock(fd, fcntl.LOCK_EX)
            offset = self._cut_torn_tail(fd, name)
            blob = bytearray()
            stored = []
            for attempt_id, payload in items:
                packed = zlib.compress(payload, LEVEL)
                digest = hashlib.sha256(payload).hexdigest()
                zdigest = hashlib.sha256(packed).hexdigest()
                header = orjson.dumps({"id": attempt_id, "sha256": digest, "size": len(payload),
                                       "zsize": len(packed), "zsha256": zdigest}) + b"\n"
                start = offset + len(blob) + len(header)
                blob += header + packed + b"\n"
                stored.append(Stored(name, start, len(packed), len(payload), digest, zdigest))
            _write_all(fd, blob, offset)
            os.fsync(fd)
            self._whole[name] = offset + len(blob)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.folder)
        return stored

    def _cut_torn_tail(self, fd: int, name: str) -> int:
        """The pack's size once an entry torn by a crash at its end is cut off: where the next
        entry goes. Called under the pack's lock, so no other writer is mid-append.

        The walk goes from header to header, from the last offset this store knows to end an
        entry or, the first time, from the last entry's header found near the end: a restart
        does not read a month of headers. Only bytes that can be nothing but the start of an
        entry cut short are cut: no record points at them (the pack is fsynced before the log's
        record). Anything else that does not frame as an entry (a damaged or edited pack) is left
        for `verify` to report."""
        size = os.fstat(fd).st_size
        at = self._whole.get(name)
        if at is None:
            at = _last_header(fd, size)
        while at < size:
            step = _entry_size(fd, at, size)
            if step is None:
                break  # not an entry as written: not ours to cut
            if step == 0:
                os.ftruncate(fd, at)  # made durable by the append's fsync that follows
                return at
            at += step
        self._whole[name] = at
        return size

    def get(self, where: Stored) -> bytes:
        """The payload `where` points at, checked against its SHA-256 (MessageStoreError if not)."""
        payload = self.read(where)
        if hashlib.sha256(payload).hexdigest() != where.sha256:
            raise MessageStoreError(f"{self.folder / where.pack} at {where.offset}: the stored bytes do not match "
                                    "their SHA-256: the message was changed")
        return payload

    def read(self, where: Stored) -> bytes:
        """The payload `where` points at, not checked (`get` and `matches` check it)."""
        return self._inflate(self._packed(where), where)

    def matches(self, where: Stored) -> bool:
        """Whether the bytes at `where` are still the ones written (MessageStoreError when they
        cannot be read). With `zsha256` (every entry written since it exists) the compressed
        bytes are hashed as stored: any changed byte still changes the hash, and a check no longer
        inflates every message and hashes three times the bytes. An older entry, without it, is
        inflated and its payload checked against `sha256`, as before."""
        packed = self._packed(where)
        if where.zsha256 is not None:
            return len(packed) == where.zsize and hashlib.sha256(packed).hexdigest() == where.zsha256
        data = self._inflate(packed, where)
        return len(data) == where.size and hashlib.sha256(data).hexdigest() == where.sha256

    def header_size(self, attempt_id: str, where: Stored) -> int | None:
        """The size of the header `put_many` wrote for `attempt_id` before the entry `where` points
        at, or None when the entry is not framed as written (another header, no newline after).
        A pointer without `zsha256` (an entry written before it existed) may have either header."""
        headers = [entry_header(attempt_id, where)]
        if where.zsha256 is None:
            zsha = hashlib.sha256(self._packed(where)).hexdigest()
            headers.append(entry_header(attempt_id, replace(where, zsha256=zsha)))
        for header in headers:
            if (self._pread(where.pack, len(header), where.offset - len(header)) == header
                    and self._pread(where.pack, 1, where.offset + where.zsize) == b"\n"):
                return len(header)
        return None

    def _packed(self, where: Stored) -> bytes:
        """The compressed bytes of one entry."""
        return self._pread(where.pack, where.zsize, where.offset)

    def _pread(self, pack: str, size: int, offset: int) -> bytes:
        """One pread on a pack kept open (verify reads hundreds of thousands)."""
        try:
            fd = self._readers.get(pack)
            if fd is None:
                fd = self._readers[pack] = os.open(self.folder / pack, os.O_RDONLY)
            return os.pread(fd, size, offset) if offset >= 0 else b""
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise MessageStoreError(f"{self.folder / pack}: cannot read the stored message: {reason}") from None

    def _inflate(self, packed: bytes, where: Stored) -> bytes:
        try:
            return zlib.decompress(packed)
        except zlib.error:
            raise MessageStoreError(f"{self.folder / where.pack} at {where.offset}: the stored message is damaged "
                                    "(not the compressed bytes written)") from None

    def close(self) -> None:
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()

    def entries(self, pack: str) -> Iterator[tuple[str, Stored]]:
        """(attempt id, pointer) of every entry of one pack, read from its header lines alone."""
        path = self.folder / pack
        with open(path, "rb") as f:
            while True:
                header = f.readline()
                if not header.endswith(b"\n"):
                    return  # end, or an entry torn by a crash: no log record points at it
                try:
                    head = orjson.loads(header)
                except orjson.JSONDecodeError:
                    return
                offset = f.tell()
                f.seek(head["zsize"] + 1, os.SEEK_CUR)
                yield head["id"], Stored(pack, offset, head["zsize"], head["size"], head["sha256"], head.get("zsha256"))

    def disk_usage(self) -> int:
        """Bytes the packs take, for README's "disk per month" figure."""
        return sum(p.stat().st_size for p in self.folder.glob("*.pack")) if self.folder.exists() else 0


def _write_all(fd: int, blob: bytes, offset: int) -> None:
    """Write every byte of `blob`, or none: a write cut short (a full disk, a file size limit)
    is taken back, so a failed append leaves no torn entry for the next one to stand on."""
    view = memoryview(blob)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        os.ftruncate(fd, offset)
        raise


def _last_header(fd: int, size: int, window: int = 256 * 1024) -> int:
    """Where the last entry of a pack starts, found in its last `window` bytes (a header
    line starts the file or follows an entry's closing newline, and frames an entry); 0 when none
    does there (an entry bigger than the window), so the walk starts at the beginning."""
    start = max(0, size - window)
    data = os.pread(fd, size - start, start)
    at = len(data)
    while at > 0:
        at = data.rfind(b'\n{"id":"', 0, at)
        if at < 0:
            break
        if _entry_size(fd, start + at + 1, size) is not None:
            return start + at + 1
    return 0


def _entry_size(fd: int, at: int, size: int) -> int | None:
    """The size of the entry that starts at `at` (its header, payload and newline); 0 when the
    pack ends before the entry does (torn by a crash: a prefix of a header, or a header whose
    payload is cut short); None when the bytes there are not an entry as `put_many` writes it."""
    chunk = os.pread(fd, min(1024, size - at), at)
    nl = chunk.find(b"\n")
    if nl < 0:
        start = b'{"id":"'
        torn = chunk.startswith(start) or start.startswith(chunk)
        return 0 if torn and at + len(chunk) == size else None
    try:
        zsize = int(orjson.loads(chunk[:nl])["zsize"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    end = at + nl + 1 + zsize  # where the entry's closing newline is
    if end >= size:
        return 0
    return end + 1 - at if os.pread(fd, 1, end) == b"\n" else None
