"""The contact-attempt log: an append-only JSON Lines file that finance shows in an audit.

Each attempt is written twice: a `sending` record before the channel is called (write-ahead: if the
process dies mid-send, the log still shows that an attempt was started, to whom and with what) and
a `result` record after, with what the provider answered. Records are never rewritten; each is one
`write()` on a file opened for appending, flushed and fsynced before the send goes on.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Mapping


class AttemptLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def start(self, when: datetime, message, notice: Mapping[str, Any]) -> str:
        """Record that a send is about to happen; returns the attempt id to finish it with."""
        attempt_id = uuid.uuid4().hex
        self._append({
            "event": "sending",
            "attempt": attempt_id,
            "time": when.isoformat(timespec="seconds"),
            "channel": message.channel,
            "recipient": message.recipient,
            "subject": message.subject,
            **notice,
        })
        return attempt_id

    def finish(self, attempt_id: str, when: datetime, result) -> None:
        """Record the provider's answer to attempt `attempt_id`."""
        self._append({
            "event": "result",
            "attempt": attempt_id,
            "time": when.isoformat(timespec="seconds"),
            "status": result.status,
            "provider": result.provider,
            "provider_id": result.provider_id,
            "code": result.code,
            "detail": result.detail,
            "permanent": result.permanent,
            "evidence": dict(result.evidence),
        })

    def records(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def _append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def note(self, when: datetime, event: str, fields: Mapping[str, Any], actor: str) -> str:
        """Any record other than a send (an opt-out, a contact...), with who did it. (Minimal
        version of the method in CONTRACTS.md; h7's attempt log replaces it.)"""
        record_id = uuid.uuid4().hex
        self._append({"event": event, "id": record_id, "time": when.isoformat(timespec="seconds"),
                      "actor": actor, **fields})
        return record_id
