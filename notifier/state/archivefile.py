"""The archive beside the state (`state.archive.jsonl`): paid invoices older than the retention
window and the ledger of closed invoices, append-only JSON Lines, so the state grows with the
number of accounts, not with the years (`Snapshot.archive()`, `Store._rewrite`).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Iterator

import orjson

from notifier.state.fsync import fsync_dir as _fsync_dir
from notifier.state.storefile import PRIVATE, StoreError

def archive_path_for(state: Path) -> Path:
    """`state.json` -> `state.archive.jsonl`, in the same directory."""
    stem = state.name[: -len(".json")] if state.name.endswith(".json") else state.name
    return state.with_name(stem + ".archive.jsonl")


def read_archive(path: Path) -> Iterator[dict]:
    """The archive's records, each (kind, id) once, in the order first written.

    A crash can leave two things in this append-only file, and neither loses data: a torn line
    (the process died mid-append, before the state was replaced, so the same records are appended
    again by the next run) and a block written twice (died after the append and before the
    replace). Torn lines are skipped and repeated records dropped.
    """
    seen: set[tuple[str, str]] = set()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # torn by a crash: its complete copy comes later
            key = (record.get("kind"), record.get("id")) if isinstance(record, dict) else None
            if key is None or key in seen:
                continue
            seen.add(key)
            yield record


def _append_lines(path: Path, blob: bytes | bytearray) -> None:
    """Append `blob` to the archive and fsync it; on failure, cut back what it wrote."""
    existed = path.exists()
    size = None
    try:
        with os.fdopen(os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, PRIVATE), "a+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    # A crash mid-append left a torn last line: keep it on its own line, so that
                    # readers skip just that one instead of losing the first new record with it.
                    f.write(b"\n")
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if size is not None:
            _unappend(path, size)  # not even a torn tail of what could not be written
        raise StoreError(f"{path}: cannot append to the archive: {exc.strerror or exc}") from None
    if not existed:
        _fsync_dir(path.parent)


def _in_thread(work: Callable[..., None], *args) -> Callable[[], BaseException | None]:
    """Start `work(*args)` in a thread; returns the function that waits for it and gives its
    exception, or None."""
    problems: list[BaseException] = []

    def run() -> None:
        try:
            work(*args)
        except BaseException as exc:
            problems.append(exc)
    thread = threading.Thread(target=run, name=getattr(work, "__name__", "work"))
    thread.start()

    def wait() -> BaseException | None:
        thread.join()
        return problems[0] if problems else None
    return wait


def _unappend(path: Path, size: int | None) -> None:
    """Cut the archive back to `size` bytes (None: it did not exist), so that a commit that failed
    leaves it as it was. (Only the store lock's holder appends: nobody else wrote after us.)"""
    try:
        if size is None:
            path.unlink(missing_ok=True)
        else:
            os.truncate(path, size)
    except OSError:
        pass  # what stays is what a crash would leave: records also in the state, deduped on reading


