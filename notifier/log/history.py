"""Reading the attempt log back as attempts: each `sending` with the records that answer it.

Finance asks per attempt ("what happened to the e-mail of 24/11?"), the log is per event. These
functions join them while streaming the file, holding only what the question selects, never the
whole log: memory grows with the attempts asked for, not with the log. Lines are first matched
as bytes (an account's id, a `ref`), and only candidates are parsed as JSON, so looking one account
up in a log of a million records costs one read of the file, not a million parses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterator
from zoneinfo import ZoneInfo

import orjson

from notifier.log.attempts import AttemptLog, is_sending, parse_line, raw_lines, ref_of


@dataclass(frozen=True)
class Filters:
    """What `notifier attempts` selects. Days are São Paulo days (config timezone), inclusive."""
    account: str | None = None
    invoice: str | None = None
    since: date | None = None
    until: date | None = None
    channel: str | None = None
    status: str | None = None
    actor: str | None = None
    tz: ZoneInfo = ZoneInfo("America/Sao_Paulo")

    def needle(self) -> bytes | None:
        """Bytes every selected `sending` line contains, to skip the others without parsing."""
        if self.account is not None:
            return b'"account":' + orjson.dumps(self.account)
        if self.invoice is not None:
            return orjson.dumps(self.invoice)
        return None

    def selects(self, sending: dict) -> bool:
        if self.account is not None and sending.get("account") != self.account:
            return False
        if self.invoice is not None and self.invoice not in (sending.get("invoices") or ()):
            return False
        if self.channel is not None and sending.get("channel") != self.channel:
            return False
        if self.actor is not None and sending.get("actor") != self.actor:
            return False
        if self.since or self.until:
            day = local_time(sending["time"], self.tz).date()
            if (self.since and day < self.since) or (self.until and day > self.until):
                return False
        return True


@dataclass
class Attempt:
    """A `sending` and, in log order, every record that refers to it (outcome, statuses)."""
    sending: dict
    updates: list[dict] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.sending["id"]

    @property
    def status(self) -> str:
        """The latest status: the last record about it, or `sending` while it has none."""
        return self.updates[-1]["event"] if self.updates else "sending"

    @property
    def outcome(self) -> dict | None:
        """The provider's first answer (sent, failed, task, blocked, unknown): it has the ids."""
        return self.updates[0] if self.updates else None

    def events(self) -> set[str]:
        return {u["event"] for u in self.updates}


def local_time(utc_text: str, tz: ZoneInfo) -> datetime:
    return datetime.fromisoformat(utc_text).astimezone(tz)


def attempts(log: AttemptLog, filters: Filters) -> Iterator[Attempt]:
    """The selected attempts in log order, each with every record about it.

    Two passes over the file: the first learns which attempts are selected and collects their
    updates, the second yields them in order as their `sending` lines come by again, so that only
    the updates (small) are held, not the sendings with their texts.
    """
    updates: dict[str, list[dict]] = {}
    needle = filters.needle()
    for _, raw, _ in raw_lines(log.path):
        if is_sending(raw):
            if needle is not None and needle not in raw:
                continue
            rec = parse_line(raw)
            if rec is not None and rec.get("event") == "sending" and filters.selects(rec):
                updates[rec["id"]] = []
        elif updates:
            ref = ref_of(raw)
            if ref in updates:
                rec = parse_line(raw)
                if rec is not None and rec.get("ref") == ref:
                    updates[ref].append(_lean(rec))
    if not updates:
        return
    for _, raw, _ in raw_lines(log.path):
        if not is_sending(raw) or (needle is not None and needle not in raw):
            continue
        rec = parse_line(raw)
        if rec is None or rec.get("id") not in updates:
            continue
        attempt = Attempt(rec, updates.pop(rec["id"]))
        if filters.status is None or attempt.status == filters.status:
            yield attempt


def _lean(record: dict) -> dict:
    """An update as held in memory: without the chain's link, which only verify-log needs."""
    return {k: v for k, v in record.items() if k != "prev"}
