"""Delivery statuses of WhatsApp and SMS messages, as Twilio reports them later, into the log.

Twilio accepting a message (our `sent`) is not the customer receiving it: WhatsApp or the carrier
may deliver it, the customer may read it, or it may fail hours later (63024: no WhatsApp on that
number; 30003: phone unreachable). Two ways in, one record format:
- polling (`poll()`; `notifier poll-status`, and the daemon every cycle): each attempt whose status
  is not final is fetched from Twilio again, for up to `MAX_AGE` after it was sent;
- Twilio's status callbacks (`webhooks.py`), which arrive as the status changes.

Each change to `delivered`, `read`, `undelivered` or `failed` is appended as a status record that
points at its `sending` (`ref`), with Twilio's error code. The intermediate statuses (queued,
sending, sent) are not recorded: they prove nothing new. A WhatsApp `delivered` may still become
`read`, so it is asked about again; for SMS `delivered` is the end.

`Tracker` knows the Twilio attempts of the last `MAX_AGE` by their SIDs. It reads the log once,
then only what was appended since (a long-running webhook server sees the daemon's new sends),
keeping just those attempts: memory follows three days of WhatsApp/SMS, not the log.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

from notifier.log.attempts import AttemptLog, is_sending, parse_line, ref_of

MAX_AGE = timedelta(hours=72)
RECORDED = ("delivered", "read", "undelivered", "failed")
# How far a message has come; a status never goes back (a late `delivered` after `read` is noise).
RANK = {"queued": 0, "accepted": 0, "scheduled": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4,
        "undelivered": 5, "failed": 5, "canceled": 5}
TWILIO = "twilio"
TWILIO_CHANNELS = ("whatsapp", "sms")

Status = tuple[str, "str | None", "str | None"]  # (Twilio status, error code, error text)


@dataclass
class Tracked:
    """A Twilio attempt: its id, what the status records repeat of its sending, its SIDs, when
    Twilio accepted it, and its last recorded status ("sent" until there is one)."""
    id: str
    sending: dict
    sids: tuple[str, ...]
    sent_at: datetime
    status: str = "sent"
    parts: dict[str, Status] = field(default_factory=dict)  # the last answer per SID, this process

    def answer(self, sid: str, status: Status) -> Status:
        """The whole message's status once part `sid` says `status` (parts not heard of: sent)."""
        self.parts[sid] = status
        return combined(self.parts.get(s, ("sent", None, None)) for s in self.sids)

    @property
    def final(self) -> bool:
        if self.status in ("read", "undelivered", "failed", "canceled"):
            return True
        return self.status == "delivered" and self.sending.get("channel") != "whatsapp"


def sids_of(outcome: dict) -> tuple[str, ...]:
    """Twilio's SIDs in an outcome's evidence (the SMS's, when WhatsApp fell back to SMS)."""
    evidence = outcome.get("evidence") or {}
    if evidence.get("fallback") == "sms":
        evidence = evidence.get("sms") or {}
    return tuple(evidence.get("sids") or ())


def combined(statuses: Iterable[Status]) -> Status:
    """One status for a message sent in several parts: the least advanced part, except that a
    failed part fails the whole."""
    items = list(statuses)
    failed = [s for s in items if s[0] in ("undelivered", "failed", "canceled")]
    if failed:
        return failed[0]
    return min(items, key=lambda s: RANK.get(s[0], 0))


class Tracker:
    def __init__(self, log: AttemptLog, max_age: timedelta = MAX_AGE):
        self.log = log
        self.max_age = max_age
        self._offset = 0
        self._sendings: dict[str, dict] = {}  # Twilio-channel sendings waiting for their outcome
        self._by_id: dict[str, Tracked] = {}
        self._by_sid: dict[str, Tracked] = {}

    def refresh(self, now: datetime) -> None:
        """Read what was appended to the log since the last call; forget attempts too old."""
        try:
            f = open(self.log.path, "rb")
        except FileNotFoundError:
            return
        with f:
            f.seek(self._offset)
            for data in f:
                if not data.endswith(b"\n"):
                    break  # being written right now: read it next time
                self._offset += len(data)
                raw = data[:-1]
                if not self._wants(raw):
                    continue
                record = parse_line(raw)
                if record is not None:
                    self._learn(record)
        cutoff = now - self.max_age
        for t in [t for t in self._by_id.values() if t.sent_at < cutoff]:
            self._forget(t)

    def pending(self, now: datetime) -> list[Tracked]:
        """Attempts whose status may still change, oldest first."""
        self.refresh(now)
        return [t for t in self._by_id.values() if not t.final]

    def find(self, sid: str, now: datetime) -> Tracked | None:
        if sid not in self._by_sid:
            self.refresh(now)
        return self._by_sid.get(sid)

    def record(self, sid: str, answer: Status, source: str, now: datetime) -> dict | None:
        """What Twilio says of message `sid` (a callback): appended as its attempt's status record
        unless that is no news; returns the record, or None."""
        t = self.find(sid, now)
        if t is None:
            return None
        [fields] = self.record_many([(t, t.answer(sid, answer))], source, now) or [None]
        return fields

    def record_many(self, answers: list[tuple[Tracked, Status]], source: str, now: datetime) -> list[dict]:
        """Append the status record of each attempt reaching its (whole-message) status, with one
        fsync; the records that were news."""
        notes = []
        for t, (status, code, detail) in answers:
            if status not in RECORDED or RANK.get(status, 0) <= RANK.get(t.status, 0):
                continue
            s = t.sending
            fields = {"ref": t.id, "account": s.get("account"), "channel": s.get("channel"),
                      "recipient": s.get("recipient"), "provider": TWILIO, "provider_id": ",".join(t.sids),
                      "code": code, "detail": detail or status, "source": source}
            notes.append((now, status, fields, "daemon"))
            t.status = status
        self.log.note_many(notes)
        return [{"event": event, **fields} for _, event, fields, _ in notes]

    def _wants(self, raw: bytes) -> bool:
        """From the bytes alone: a WhatsApp/SMS sending, or a record about one we follow."""
        if is_sending(raw):
            return b'"channel":"whatsapp"' in raw or b'"channel":"sms"' in raw
        ref = ref_of(raw)
        return ref is not None and (ref in self._sendings or ref in self._by_id)

    def _learn(self, record: dict) -> None:
        event = record.get("event")
        if event == "sending":
            if record.get("channel") in TWILIO_CHANNELS:
                self._sendings[record["id"]] = {k: record.get(k) for k in ("account", "channel", "recipient")}
            return
        ref = record.get("ref")
        if ref in self._sendings:
            sending = self._sendings.pop(ref)
            sids = sids_of(record)
            if event == "sent" and record.get("provider") == TWILIO and sids:
                t = Tracked(ref, sending, sids, datetime.fromisoformat(record["time"]))
                self._by_id[ref] = t
                for sid in sids:
                    self._by_sid[sid] = t
        elif ref in self._by_id and event in RECORDED:
            t = self._by_id[ref]
            if RANK[event] > RANK.get(t.status, 0):
                t.status = event

    def _forget(self, t: Tracked) -> None:
        self._by_id.pop(t.id, None)
        for sid in t.sids:
            self._by_sid.pop(sid, None)


def poll(tracker: Tracker, fetch: Callable[[str, str], Status | None], now: datetime) -> list[dict]:
    """Ask Twilio about every attempt not final yet; append what changed, with one fsync.

    `fetch(channel, sid)` answers (status, error code, error text), or None when Twilio cannot be
    asked now (the next poll asks again). Returns the records appended.
    """
    answers = []
    for t in tracker.pending(now):
        parts = {sid: fetch(t.sending.get("channel"), sid) for sid in t.sids}
        if all(p is not None for p in parts.values()):
            for sid, part in parts.items():
                status = t.answer(sid, part)
            answers.append((t, status))
    return tracker.record_many(answers, "poll", now)


def poll_with_channels(tracker: Tracker, config, now: datetime) -> list[dict]:
    """`poll` asking Twilio through the configured channels (what the daemon calls each cycle).
    A channel that cannot be built or has no Twilio account answers nothing: asked again later."""
    from notifier import channels
    built: dict[str, object] = {}

    def fetch(channel: str, sid: str) -> Status | None:
        if channel not in built:
            try:
                built[channel] = channels.build(channel, config)
            except channels.ChannelError:
                built[channel] = None
        source = built[channel]
        if source is None:
            return None
        try:
            return source.message_status(sid)
        except channels.ChannelError:
            return None

    try:
        return poll(tracker, fetch, now)
    finally:
        for source in built.values():
            if source is not None:
                source.close()
