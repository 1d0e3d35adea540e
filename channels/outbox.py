"""The local outbox: where a channel with no provider configured writes what it would send.

A newcomer with no credentials still sees real output: an `.eml` file per e-mail (open it in any
mail client) and a JSON file per message on the other channels. Not a channel of its own: the
channels call it when their provider is not configured.

Writing can fail (a full disk, an outbox path that is a file, a folder we may not write): that is
a failed attempt like a provider's refusal, with the reason in one sentence, so the attempt log
gets its outcome and the next message is still tried. Temporary: nothing about the customer is
wrong, and the notice goes out once the folder is fixed.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from . import FAILED, OUTBOX, Result

PROVIDER = "outbox"
WRITE_ERROR = "outbox_write"


def _path(outbox: Path, channel: str, recipient: str, suffix: str) -> Path:
    folder = Path(outbox) / channel
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9@._+-]+", "_", recipient)[:80] or "recipient"
    return folder / f"{stamp}-{safe}-{os.urandom(4).hex()}{suffix}"


def _write(path: Path, data: bytes) -> None:
    # Written under a temporary name and renamed: a reader never sees half a message, and a
    # failed write leaves nothing behind.
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _store(outbox: Path, channel: str, recipient: str, suffix: str, data: bytes) -> Path | Result:
    """Write `data` as a new file of the channel's outbox folder: its path, or the failed Result."""
    try:
        path = _path(outbox, channel, recipient, suffix)
        _write(path, data)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = exc.filename or Path(outbox) / channel
        return Result(FAILED, PROVIDER, code=WRITE_ERROR, permanent=False,
                      detail=f"cannot write to the outbox: {where}: {reason}")
    return path


def write_eml(outbox: Path, recipient: str, data: bytes, message_id: str) -> Result:
    """Write one e-mail, exactly the bytes an SMTP server would get, as an `.eml` file."""
    path = _store(outbox, "email", recipient, ".eml", data)
    if isinstance(path, Result):
        return path
    return Result(status=OUTBOX, provider=PROVIDER, provider_id=message_id, detail=f"written to {path}",
                  evidence={"path": str(path), "message_id": message_id})


def write_json(outbox: Path, channel: str, recipient: str, payload: dict) -> Result:
    path = _store(outbox, channel, recipient, ".json",
                  json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8"))
    if isinstance(path, Result):
        return path
    return Result(status=OUTBOX, provider=PROVIDER, provider_id=path.name, detail=f"written to {path}",
                  evidence={"path": str(path)})
