"""The state file's format: one TinyDB database in one JSON file, written atomically, one document
a line, and read back a few thousand documents at a time (see `notifier/state/store.py` for what
the tables hold, and `basefile.py` for reading one document where it lies).

- `AtomicJSONStorage` writes a new file beside the state, fsyncs it, renames it over the old one and
  fsyncs the directory: a crash leaves the old or the new file, never a torn one. (TinyDB's own
  `JSONStorage` rewrites the file in place and can leave it truncated.)
- A state file that cannot be read or is not a TinyDB store stops the command with `StoreError`
  and is never written over.
"""
from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import orjson
from tinydb.storages import Storage

from notifier.state.fsync import fsync_dir as _fsync_dir

# Mode of a new state or archive file, as of the attempt log and its messages: customers' personal
# data (LGPD), readable by the notifier's user and its group (finance's exports), nobody else.
PRIVATE = 0o640
CHUNK = 5000  # documents parsed or serialised per call: bounds the raw dicts alive at once


class StoreError(Exception):
    """A problem with the state file that a person must fix; the message names the file."""


# Reading and writing the file


class AtomicJSONStorage(Storage):
    """A TinyDB storage that never leaves a torn file: write a new file, fsync, rename, fsync dir.

    It does no locking of its own (the temporary file has one fixed name, `state.json.tmp`, so a
    crashed write leaves one stale file, not one per attempt): `Store` holds the lock around it.
    """

    def __init__(self, path: str | os.PathLike, **_ignored: Any) -> None:
        super().__init__()
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]] | None:
        """The raw tables, or None when the file does not exist (an empty store, created on first
        write). StoreError when the file is unreadable or not a TinyDB store."""
        sink = _RawTables(self.path)
        return sink.tables if _read(self.path, sink) else None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.replace(self.write_new(data))

    def write_new(self, data: dict[str, dict[str, Any]]) -> Path:
        """Write `data` to the temporary file beside the state and fsync it; the state is untouched.

        On any failure (a value JSON cannot hold, a full disk) the temporary file is removed.
        """
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE), "wb") as f:
                _write(f, data)
                f.flush()
                os.fsync(f.fileno())
            _keep_mode(self.path, tmp)
        except BaseException as exc:
            _discard(tmp)
            if isinstance(exc, OSError):
                raise StoreError(f"{self.path}: cannot write the state file: {exc.strerror or exc}") from None
            raise
        return tmp

    def replace(self, tmp: Path) -> None:
        try:
            os.replace(tmp, self.path)
        except OSError as exc:
            _discard(tmp)
            raise StoreError(f"{self.path}: cannot replace the state file: {exc.strerror or exc}") from None
        _fsync_dir(self.path.parent)


def _discard(tmp: Path) -> None:
    """Remove a temporary state file that will not replace the state; what is in the way (a
    folder of that name) only stays, and the error being reported is the one that counts."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:
        pass


def _write(f: BinaryIO, tables: dict[str, dict[str, Any]]) -> None:
    """The layout `_read` expects: `{`, then per table a `"name":{` line, one `"id":{...}` line per
    document, a `}` line (`},` between tables), and a closing `}`. Plain JSON all the same."""
    f.write(b"{\n")
    names = list(tables)
    dumps = orjson.dumps
    for i, name in enumerate(names):
        f.write(dumps(name) + b":{\n")
        keys, docs = iter(tables[name]), iter(tables[name].values())
        separator = b""
        # Each line `"id":{...}` from the key and the document dumped apart, joined in C: a third
        # less than one dict per document made to be dumped.
        while batch := list(islice(keys, CHUNK)):
            f.write(separator + b",\n".join(map(b"%b:%b".__mod__, zip(map(dumps, batch), map(dumps, islice(docs, len(batch)))))))
            separator = b",\n"
        if separator:
            f.write(b"\n")
        f.write(b"},\n" if i + 1 < len(names) else b"}\n")
    f.write(b"}\n")


class _NotOurLayout(Exception):
    """The file is not laid out as `_write` lays it out (hand-edited, written by TinyDB...)."""


def _read(path: Path, sink) -> bool:
    """Feed the tables of the file to `sink`, a few thousand documents at a time; False if missing.

    Files in `_write`'s layout are parsed chunk by chunk; any other file is parsed whole, which also
    gives the verdict on a file that is not valid JSON. The sink is reset before the second try, so
    nothing of the first reaches the caller. The garbage collector is paused meanwhile: the parse
    creates hundreds of thousands of acyclic objects, and collections would double its time.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the state file: {exc.strerror or exc}") from None
    with f, gc_paused():
        try:
            try:
                _read_our_layout(f, sink)
                return True
            except _NotOurLayout:
                sink.reset()
            f.seek(0)
            blob = f.read()
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the state file: {exc.strerror or exc}") from None
        if not blob.strip():
            raise StoreError(f"{path}: not a valid state file: the file is empty (delete it to start a new store)")
        try:
            data = orjson.loads(blob)
        except orjson.JSONDecodeError as exc:
            # orjson >= 3.13 refuses JSON nested deeper than 1,024 levels, which no state of ours is.
            what = "nested too deep" if str(exc).startswith("depth limit") else "not JSON"
            raise StoreError(f"{path}: not a valid state file: {what} ({exc})") from None
        del blob
        if not isinstance(data, dict):
            raise StoreError(f"{path}: not a valid state file: the top level must be an object of tables")
        for name, docs in data.items():
            if not isinstance(docs, dict):
                raise StoreError(f"{path}: not a valid state file: table {name!r} is not an object of documents")
            sink.add(name, docs)
        return True


def _read_our_layout(f: BinaryIO, sink) -> None:
    if f.readline() != b"{\n":
        raise _NotOurLayout
    line = f.readline()
    seen: set[str] = set()
    while line != b"}\n":
        name = table_name(line.removesuffix(b"\n"), seen)
        if name is None:
            raise _NotOurLayout
        seen.add(name)
        wanted = sink.wants(name)
        sink.add(name, {})
        chunk: list[bytes] = []
        for line in f:
            if line[0] != 34:  # not a document line, which starts with '"'
                break
            if len(chunk) == CHUNK:
                if wanted:  # a table the sink does not keep is only checked for its layout
                    sink.add_chunk(name, chunk, last=False)
                chunk = []
            chunk.append(line)
        else:
            raise _NotOurLayout  # the file ends inside a table
        if chunk and wanted:
            sink.add_chunk(name, chunk, last=True)
        if line == b"},\n":  # another table follows
            line = f.readline()
            if line == b"}\n":
                raise _NotOurLayout
        elif line == b"}\n":  # the last table: the closing brace follows
            line = f.readline()
            if line != b"}\n":
                raise _NotOurLayout
        else:
            raise _NotOurLayout
    if f.read().strip():
        raise _NotOurLayout


def _chunk_object(lines: list[bytes], last: bool) -> bytes:
    """A chunk's document lines as one JSON object. Lines end with ",\n" except the table's last
    one: checked here, so that a file the full parse would reject is never accepted chunk by chunk."""
    body = b"".join(lines)
    if body.endswith(b",\n") == last:
        raise _NotOurLayout
    return b"{" + (body if last else body[:-2]) + b"}"


def _parse_object(blob: bytes) -> dict:
    try:
        return orjson.loads(blob)
    except orjson.JSONDecodeError:
        raise _NotOurLayout from None


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (restored after). A big import or read creates
    millions of objects and no reference cycles; each full collection would walk them all again
    for nothing (on a first import of 50,000 accounts, once the parse had left the collector on,
    the store's steps paid for collections of the whole new heap). Nested uses keep it off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _keep_mode(old: Path, new: Path) -> None:
    # The state holds customers' personal data: a new one is PRIVATE, and an operator's chmod 600
    # must survive our rewrite.
    try:
        os.chmod(new, os.stat(old).st_mode & 0o7777)
    except FileNotFoundError:
        pass





class _RawTables:
    """Sink of `_read` for a transaction: the tables as stored, each document checked to be an
    object (anything else is not a TinyDB store)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.tables: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        self.tables = {}

    def wants(self, name: str) -> bool:
        return True

    def add_chunk(self, name: str, lines: list[bytes], last: bool) -> None:
        self.add(name, _parse_object(_chunk_object(lines, last)))

    def add(self, name: str, docs: dict) -> None:
        for key, doc in docs.items():
            if type(doc) is not dict:
                raise StoreError(f"{self._path}: not a valid state file: table {name!r}: document {key!r} is not an object")
        self.tables.setdefault(name, {}).update(docs)


def table_name(header: bytes, seen) -> str | None:
    """The table a header line of our layout names (`"NAME":{`, without its newline); None when the
    line is no table's header or names a table already in `seen` (the file is then not ours)."""
    if not (header.startswith(b'"') and header.endswith(b":{")):
        return None
    try:
        name = orjson.loads(header[:-2])
    except orjson.JSONDecodeError:
        return None
    return name if isinstance(name, str) and name not in seen else None
