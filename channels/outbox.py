"""The local outbox: where a channel with no provider configured writes what it would send.

A newcomer with no credentials still sees real output: an `.eml` file per e-mail (open it in any
mail client) and a JSON file per message on the other channels. Not a channel of its own: the
channels call it when their provider is not configured.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

from . import SENT, Result

PROVIDER = "outbox"


def _path(outbox: Path, channel: str, recipient: str, suffix: str) -> Path:
    folder = Path(outbox) / channel
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9@._+-]+", "_", recipient)[:80] or "recipient"
    return folder / f"{stamp}-{safe}-{uuid.uuid4().hex[:8]}{suffix}"


def _write(path: Path, data: bytes) -> None:
    # Written under a temporary name and renamed: a reader never sees half a message.
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_eml(outbox: Path, recipient: str, data: bytes, message_id: str) -> Result:
    """The e-mail's bytes, exactly as they would go to the SMTP server."""
    path = _path(outbox, "email", recipient, ".eml")
    _write(path, data)
    return Result(
        status=SENT,
        provider=PROVIDER,
        provider_id=message_id,
        detail=f"written to {path}",
        evidence={"path": str(path), "message_id": message_id},
    )


def write_json(outbox: Path, channel: str, recipient: str, payload: dict) -> Result:
    path = _path(outbox, channel, recipient, ".json")
    _write(path, json.dumps(payload, ensure_ascii=False, indent=2).encode("utf-8"))
    return Result(status=SENT, provider=PROVIDER, provider_id=path.name, detail=f"written to {path}",
                  evidence={"path": str(path)})
