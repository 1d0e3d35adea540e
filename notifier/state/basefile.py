"""The state file read in place: a document found by its id without parsing the other 78 MB.

The store writes its file one document per line (`storefile.write_tables`):

    {
    "accounts":{
    "acc1":{"company":...},
    "acc2":{"company":...}
    },
    "invoices":{
    ...
    }
    }

A line starts with `"` only when it is a document or a table's header, and a raw newline never
occurs inside a line (JSON escapes it), so `\\n"ID":` marks exactly the line of document ID within its
table's bytes. `BaseFile` reads the file where asked (never mapped: see `_Reader`) and finds
each table's bytes once (a handful of searches); `LazyTable` is a transaction's table over it: a document is looked up where it is asked for, the
whole table parsed only when it is walked (an import, an archive) or looked up many times, and
every change is kept apart (`changes`) for the journal. `write_folded` streams a new base from the
old one and the journal's documents, copying the lines nothing changed.
"""
from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import orjson

from notifier.state.journal import MARKER_KEY, MARKER_TABLE, Marker, document, head_marker
from notifier.state.storefile import table_name

# Point lookups in one table before it is parsed whole: past this, a search of the table's bytes
# per document would cost more than one parse.
LOOKUPS = 16


class NotOurLayout(Exception):
    """The file is not laid out as the store writes it (hand-edited, written by TinyDB...)."""


class _Reader:
    """The bytes of an open file, read where asked (`os.pread`) instead of mapped: searching a
    mapped 160 MB state file for a table's end or a document's line made every page it passed
    resident in the process (the console's resident memory counted the whole file for the
    length of a transaction); read through a window of a few megabytes, it stays in the page cache."""

    WINDOW = 4 << 20

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self.size = fd, size

    def __getitem__(self, where: slice) -> bytes:
        start, stop, _ = where.indices(self.size)
        return os.pread(self._fd, max(0, stop - start), start) if stop > start else b""

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        """Where `sub` first occurs in [start, end), as `bytes.find`; -1 when nowhere."""
        end = self.size if end is None else min(end, self.size)
        start = max(start, 0)
        step = self.WINDOW - len(sub) + 1  # windows overlap by len(sub) - 1: nothing falls between two
        while start + len(sub) <= end:
            window = self[start:min(end, start + self.WINDOW)]
            at = window.find(sub)
            if at >= 0:
                return start + at
            start += step
        return -1


class BaseFile:
    """A state file in our layout, open read-only: each table's document lines as a byte range."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            # As the store's `_stamp` tells versions apart: the marker at the head included.
            self.stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, head_marker(f.read(256)))
            if st.st_size < 4:
                raise NotOurLayout
            self._fd = os.dup(f.fileno())
        self._mm = _Reader(self._fd, st.st_size)
        try:
            self.tables = _table_ranges(self._mm)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "BaseFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def marker(self) -> Marker:
        return Marker.of(self.find(MARKER_TABLE, MARKER_KEY))

    def region(self, name: str) -> bytes:
        """Table `name`'s document lines, each ending with a newline (b"" when empty or absent)."""
        start, end = self.tables.get(name, (0, 0))
        return self._mm[start:end]

    def find(self, name: str, key: str) -> dict | None:
        """Document `key` of table `name`, parsed from its line alone; None when absent."""
        if name not in self.tables:
            return None
        start, end = self.tables[name]
        at = self._mm.find(b"\n" + orjson.dumps(key) + b":", start - 1, end)
        if at < 0:
            return None
        line = self._mm[at + 1:self._mm.find(b"\n", at + 1)]
        try:
            doc = orjson.loads(b"{" + line.removesuffix(b",") + b"}")[key]
        except (orjson.JSONDecodeError, KeyError):
            raise NotOurLayout from None
        if type(doc) is not dict:
            raise NotOurLayout
        return doc

    def table(self, name: str) -> dict[str, Any]:
        """Table `name` parsed whole (its documents checked to be objects)."""
        region = self.region(name)
        if not region:
            return {}
        try:
            docs = orjson.loads(b"{" + region + b"}")
        except orjson.JSONDecodeError:
            raise NotOurLayout from None
        if not all(type(doc) is dict for doc in docs.values()):
            raise NotOurLayout
        return docs


def _table_ranges(mm: _Reader) -> dict[str, tuple[int, int]]:
    """name -> (start, end) of each table's document lines; NotOurLayout when the file is not laid
    out as the store writes it (the caller then reads it whole, which gives the verdict)."""
    if mm[:2] != b"{\n":
        raise NotOurLayout
    tables: dict[str, tuple[int, int]] = {}
    pos = 2
    while True:
        nl = mm.find(b"\n", pos)
        name = table_name(mm[pos:nl], tables) if nl >= 0 else None
        if name is None:
            raise NotOurLayout
        start = nl + 1
        close = mm.find(b"\n}", nl)  # the first line that starts with "}" ends the table
        if close < 0:
            raise NotOurLayout
        tables[name] = (start, close + 1)
        after = mm[close + 1:close + 4]
        if after == b"},\n":
            pos = close + 4
        elif after == b"}\n}" and not mm[close + 4:].strip():
            return tables
        else:
            raise NotOurLayout


_GONE = object()


class LazyTable(MutableMapping):
    """One table of a transaction: the base file's documents, the journal's on top (`overlay`: id ->
    document, None when deleted), and this transaction's changes on top of both (`changes`)."""

    def __init__(self, name: str, base: BaseFile | None, overlay: dict[str, Any]):
        self.name = name
        self.stored = base is not None and name in base.tables  # the base file has the table
        self._base = base
        self._overlay = overlay
        self.changes: dict[str, Any] = {}  # id -> document, or None: deleted
        self._found: dict[str, Any] = {}  # documents read from the base or the overlay (the same object each time)
        self._all: dict[str, Any] | None = None
        self._lookups = 0

    def whole(self) -> dict[str, Any]:
        """The table as a plain dict (parsed once); changes made through this table stay in it."""
        if self._all is None:
            docs = self._base.table(self.name) if self._base is not None else {}
            for source in (self._overlay, self._found, self.changes):
                for key, doc in source.items():
                    if doc is None:
                        docs.pop(key, None)
                    else:
                        docs[key] = document(doc) if source is self._overlay else doc
            self._all = docs
        return self._all

    def __getitem__(self, key: str) -> dict:
        if self._all is not None:
            return self._all[key]
        for source in (self.changes, self._found, self._overlay):
            if key in source:
                doc = source[key]
                if doc.__class__ is bytes:
                    # The journal's document kept as JSON, in the overlay the store's view shares
                    # with other transactions (never changed): read once into this one's own.
                    doc = self._found[key] = document(doc)
                break
        else:
            self._lookups += 1
            if self._lookups > LOOKUPS:
                return self.whole()[key]
            doc = self._base.find(self.name, key) if self._base is not None else None
            if doc is not None:
                self._found[key] = doc
        if doc is None:
            raise KeyError(key)
        return doc

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def __setitem__(self, key: str, doc: dict) -> None:
        self.changes[key] = doc
        if self._all is not None:
            self._all[key] = doc

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError when absent
        self.changes[key] = None
        if self._all is not None:
            del self._all[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.whole())

    def __len__(self) -> int:
        return len(self.whole())

    def keys(self):
        return self.whole().keys()

    def values(self):
        return self.whole().values()

    def items(self):
        return self.whole().items()


def write_folded(out: BinaryIO, base: BaseFile, overlay: dict[str, dict[str, Any]], marker: Marker) -> None:
    """Write the base with the journal's documents (`overlay`) in place, in the store's layout:
    the lines of a table the journal left alone are copied as they are, a changed document takes
    its old line's place, a new one goes at its table's end (as a dict keeps it)."""
    dumps = orjson.dumps
    names = [MARKER_TABLE] + [n for n in base.tables if n != MARKER_TABLE]
    names += [n for n in overlay if n not in base.tables and n != MARKER_TABLE]
    out.write(b"{\n")
    for i, name in enumerate(names):
        out.write(dumps(name) + b":{\n")
        if name == MARKER_TABLE:
            out.write(dumps(MARKER_KEY) + b":" + dumps(marker.doc()) + b"\n")
        else:
            region, changes = base.region(name), dict(overlay.get(name, {}))
            if not changes:
                out.write(region)
            else:
                lines = []
                for line in region.split(b"\n"):
                    if not line:
                        continue
                    body = line.removesuffix(b",")
                    key = _key_of(body)
                    if key in changes:
                        doc = changes.pop(key)
                        if doc is not None:
                            lines.append(dumps(key) + b":" + dumps(doc))
                    else:
                        lines.append(body)
                lines += [dumps(key) + b":" + dumps(doc) for key, doc in changes.items() if doc is not None]
                if lines:
                    out.write(b",\n".join(lines) + b"\n")
        out.write(b"},\n" if i + 1 < len(names) else b"}\n")
    out.write(b"}\n")


def _key_of(body: bytes) -> str:
    """The id of a document line `"ID":{...}`: up to the first `":` when the id has no escapes."""
    end = body.find(b'":', 1)
    if end > 0 and b"\\" not in body[:end]:
        return body[1:end].decode()
    return next(iter(orjson.loads(b"{" + body + b"}")))
