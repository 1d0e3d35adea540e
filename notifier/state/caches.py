"""Disposable caches beside the state: what a process would otherwise compute again at each start.

Each `notifier` command is a fresh process (cron's `run-once`, staff commands, the simulation's
thousands), and some of what it computes depends only on its inputs and a library's version:
a Pix code's QR image (notifier/billing/pixqr.py), a year's holiday table (notifier/billing/calendar.py). Those
results are kept in files under `state.json.cache/`, each named by everything that decides its
content, so a cached result is exactly what computing it again gives; deleting the folder, or
any file in it, only costs the time to compute them again.

Why beside the state: it is the one folder every deployment can write, and it is trusted like
the state itself (whoever can write there can already edit the billing data, Pix codes included),
unlike a shared temporary folder, where another user could slip a QR code into a customer's
e-mail. It is not in the message store, which is evidence kept for audits.

The command line chooses the folder (`keep_beside`) once it knows the state; library callers that
do not get no cache, and compute.
"""
from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

_root: Path | None = None


def folder_for(state: Path) -> Path:
    """`state.json` -> `state.json.cache/`."""
    state = Path(state)
    return state.with_name(state.name + ".cache")


def keep_beside(state: Path | None) -> None:
    """Keep caches beside `state` from now on in this process (None: keep none)."""
    global _root
    _root = folder_for(state) if state is not None else None


def folder(kind: str) -> Path | None:
    """The folder for one kind of cached result ("pix-qr"), or None when caches are off."""
    return _root / kind if _root is not None else None


def read(path: Path) -> bytes | None:
    """A cached file's bytes, or None when it is absent or unreadable (then compute)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def write(path: Path, data: bytes) -> None:
    """Store `data` at `path` through a temporary file and a rename, so a reader (another process
    computing the same thing) sees the whole file or none. A cache that cannot be written is no
    error: the result is used all the same."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
