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

    # --- Minimal versions of the CONTRACTS.md methods the daily cycle needs (h8). h7 owns this
    # file and rewrites it (hash chain, message store): at merge, h7's versions replace these.
    # Record shape as in CONTRACTS.md: every record has `id`, `event`, `time`, `actor`; an
    # outcome's `ref` is the id of its `sending` record.

    def start_many(self, items) -> list[str]:
        """`start` for many messages with ONE write and fsync (group commit)."""
        records = [{"event": "sending", "time": when.isoformat(timespec="seconds"), "actor": actor,
                    "channel": message.channel, "recipient": message.recipient, "subject": message.subject,
                    **fields, "id": record_id}
                   for (when, message, fields, actor, _payload), record_id in zip(items, _ids(len(items)))]
        self._append_all(records)
        return [r["id"] for r in records]

    def finish_many(self, items) -> None:
        self._append_all([{"event": r.status, "id": record_id, "ref": attempt_id,
                           "time": when.isoformat(timespec="seconds"), "provider": r.provider,
                           "provider_id": r.provider_id, "code": r.code, "detail": r.detail,
                           "permanent": r.permanent, "evidence": dict(r.evidence)}
                          for (attempt_id, when, r), record_id in zip(items, _ids(len(items)))])

    def skip(self, when, fields, reason, actor="daemon") -> str:
        return self.note(when, "skipped", {**fields, "reason": reason}, actor)

    def note(self, when, event, fields, actor) -> str:
        record = {"time": when.isoformat(timespec="seconds"), "actor": actor, **fields,
                  "event": event, "id": uuid.uuid4().hex}
        self._append_all([record])
        return record["id"]

    def recover(self, when) -> list[dict]:
        """Every `sending` without an outcome gets an `unknown` record; returns those sendings."""
        open_: dict[str, dict] = {}
        for record in self.records():
            if record.get("event") == "sending":
                open_[record.get("id") or record["attempt"]] = record
            else:
                open_.pop(record.get("ref") or record.get("attempt"), None)
        self._append_all([{"event": "unknown", "id": uuid.uuid4().hex, "ref": attempt_id,
                           "time": when.isoformat(timespec="seconds"), "actor": "daemon", "permanent": True,
                           "detail": "the process stopped between the claim and the provider's answer: "
                                     "not sent again automatically (a staff task)"} for attempt_id in open_])
        return list(open_.values())

    def _append_all(self, records: list[dict]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def _ids(n: int) -> list[str]:
    # One urandom() call for a whole group: uuid4() makes one system call per id.
    raw = os.urandom(16 * n)
    return [uuid.UUID(bytes=raw[i:i + 16], version=4).hex for i in range(0, 16 * n, 16)]
