"""The journal beside the state file (`state.json.journal`): small transactions' changes, appended.

Rewriting a 78 MB state file for one `pay` took 1.7 s on a quiet machine (and held the store's
lock the whole time); a staff action changes a handful of documents. So a transaction that
changes few documents appends them to this file instead, one JSON line per transaction, fsynced,
under the store's lock:

    {"seq":12,"changes":[["invoices","2026-11-acc1",{"account":"acc1",...,"paid":"2026-11-25"}],
                         ["holds","acc2",null]]}

`null` deletes the document. What the store holds is the base file plus every journal entry after
the base's own sequence number (the base keeps it in its `journal` table, `base` document, with
the id of its line of versions: see `Marker`). Entries are numbered without gaps; a reader applies
only those it has not seen, so nobody parses the base again for a change of a few documents.

What a crash leaves:
- mid-append: a torn last line, with no newline. It was never acknowledged (the fsync had not
  returned); readers skip it, and the next append starts on a new line so it stays apart.
- during a fold (`Store.fold`): the new base is written beside the old one and renamed over it,
  then the journal is cut down to the entries the new base does not hold. Killed before the
  rename: the old base and the whole journal. Between the two: the new base and a journal whose
  first entries it already holds, skipped by their numbers. Never an entry lost or applied twice.
- during a whole rewrite (import, archive, a big ledger write): the new base holds everything and
  records the last sequence number it holds; the journal is deleted after the rename, and
  entries a crash left in it are skipped by number.
A gap in the numbers (an entry missing, the base restored from an older backup under a newer
journal) stops every command with StoreError, as a damaged state file does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

# A base smaller than this is rewritten whole at every write (a few milliseconds): the journal
# only pays where the rewrite is slow, and a small store stays one self-contained file.
JOURNAL_FROM = 1 << 20
# A transaction that changes more documents than this rewrites the base (an import, an archive).
MAX_CHANGES = 20_000
# Past this size the process that wrote the entry folds the journal into a new base, outside the
# store's lock: readers parse at most this much journal on top of the base.
FOLD_AT = 8 << 20

MARKER_TABLE, MARKER_KEY = "journal", "base"


class JournalError(Exception):
    """The journal does not follow its base (a number missing): the store refuses to go on."""


def journal_path_for(state: Path) -> Path:
    """`state.json` -> `state.json.journal`, beside it."""
    return state.with_name(state.name + ".journal")


class Marker(NamedTuple):
    """What a base file says of the journal: the last entry it holds (`seq`) and the id of its
    line of versions. A fold keeps the id (its base is the old one plus entries a reader already
    applied); a whole rewrite or a new store gets a new one, so a reader knows to read it again."""
    seq: int = 0
    id: str = ""

    @classmethod
    def of(cls, doc: Any) -> "Marker":
        if not isinstance(doc, dict):
            return cls()
        seq, ident = doc.get("seq", 0), doc.get("id", "")
        if type(seq) is not int or seq < 0 or not isinstance(ident, str):
            raise JournalError(f"the base's journal marker is not valid: {doc!r}")
        return cls(seq, ident)

    def doc(self) -> dict:
        return {"seq": self.seq, "id": self.id}


_HEAD = b'{\n"' + MARKER_TABLE.encode() + b'":{\n"' + MARKER_KEY.encode() + b'":'


def head_marker(head: bytes) -> tuple[int, str] | None:
    """(seq, id) of the marker at the start of a base in our layout (the store writes it first),
    from the file's first bytes; None when it has none there."""
    if not head.startswith(_HEAD):
        return None
    line = head[len(_HEAD):head.find(b"\n", len(_HEAD))]
    try:
        marker = Marker.of(orjson.loads(line))
    except (orjson.JSONDecodeError, JournalError):
        return None
    return marker.seq, marker.id


def new_id() -> str:
    return os.urandom(8).hex()


Change = tuple[str, str, "dict | None"]  # table, document id, document (None: deleted)


def entry_line(seq: int, changes: list[Change]) -> bytes:
    return orjson.dumps({"seq": seq, "changes": changes}, option=orjson.OPT_APPEND_NEWLINE)


@dataclass
class Tail:
    """The entries read after a known number, and where reading stopped (to go on from there)."""
    entries: list[tuple[int, list[Change]]] = field(default_factory=list)
    ident: tuple[int, int] | None = None  # (device, inode) of the journal read; None: no journal
    end: int = 0  # offset just past the last complete line read


def read_after(path: Path, seq: int, ident: tuple[int, int] | None = None, offset: int = 0) -> Tail:
    """The entries numbered after `seq`, from `offset` when the journal is still the file
    `ident` (a fold replaces it), else from its start. JournalError when a number is missing.

    A line without its newline is not read yet (being written, or torn by a crash: the next
    append starts a new line); a line that is not JSON is one a crash tore, skipped."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return Tail()
    with f:
        st = os.fstat(f.fileno())
        here = (st.st_dev, st.st_ino)
        if here != ident:
            offset = 0
        f.seek(offset)
        data = f.read()
    tail = Tail(ident=here)
    pos, expected = 0, seq + 1
    while (nl := data.find(b"\n", pos)) >= 0:
        line, pos = data[pos:nl], nl + 1
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # torn by a crash, never acknowledged
        number, changes = _checked(path, entry)
        if number <= seq:
            continue  # already in the base (a fold or rewrite killed before the journal was cut)
        if number != expected:
            raise JournalError(f"{path}: entry {expected} is missing (found {number}): the journal does not "
                               f"follow the state file")
        tail.entries.append((number, changes))
        expected += 1
    tail.end = offset + pos
    return tail


def _checked(path: Path, entry: Any) -> tuple[int, list[Change]]:
    if isinstance(entry, dict):
        number, changes = entry.get("seq"), entry.get("changes")
        if type(number) is int and number > 0 and isinstance(changes, list) and all(
                isinstance(c, list) and len(c) == 3 and type(c[0]) is str and type(c[1]) is str
                and (c[2] is None or type(c[2]) is dict) for c in changes):
            return number, [tuple(c) for c in changes]
    raise JournalError(f"{path}: not a journal entry: {orjson.dumps(entry)[:80]!r}")


def append(path: Path, line: bytes, mode: int) -> int:
    """Append one entry and fsync it (the store's lock is held); returns the journal's new size.
    On failure nothing of it stays (cut back to the size before) and OSError is raised."""
    existed = path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
    size = None
    try:
        with os.fdopen(fd, "a+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line  # a crash's torn line stays apart
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            end = f.tell()
    except OSError:
        if size is not None:
            try:
                os.truncate(path, size)
            except OSError:
                pass
        raise
    if not existed:
        from notifier.state.fsync import fsync_dir
        fsync_dir(path.parent)
    return end


def overlaid(overlay: dict[str, dict[str, Any]], entries: list[tuple[int, list[Change]]]) -> dict:
    """`overlay` (see `overlay_of`) with `entries` on top, each document kept as its JSON bytes:
    what a process keeps of the journal for its next transactions (`document` reads one back).
    Only the net effect is kept, not every entry. A new dict, with only the tables the entries
    change copied: a transaction may still read the old one."""
    out = dict(overlay)
    copied = set()
    for _, changes in entries:
        for table, key, doc in changes:
            if table not in copied:
                out[table] = dict(out.get(table, ()))
                copied.add(table)
            out[table][key] = None if doc is None else compact_json(doc)
    return out


def compact_json(doc: Any) -> bytes:
    """`doc` as JSON bytes to keep: orjson's own result keeps the 4 KB it was written in
    (`sys.getsizeof` does not show it), so a copy of its exact size is kept instead. The console
    held 63 MB of a cycle's 15,000 ledger rows, 220 bytes of JSON each, before this copy."""
    return memoryview(orjson.dumps(doc)).tobytes()


def document(doc: Any) -> dict | None:
    """A document of an overlay: kept as JSON bytes (`overlaid`) or already a dict."""
    return orjson.loads(doc) if doc.__class__ is bytes else doc


def overlay_of(entries: list[tuple[int, list[Change]]], into: dict[str, dict[str, Any]] | None = None) -> dict:
    """table -> id -> document (None: deleted): the entries' net effect, the latest winning. A
    document kept as JSON bytes (`overlaid`) stays so here (read with `document`)."""
    out: dict[str, dict[str, Any]] = {} if into is None else into
    for _, changes in entries:
        for table, key, doc in changes:
            out.setdefault(table, {})[key] = doc
    return out
