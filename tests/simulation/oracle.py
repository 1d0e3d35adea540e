"""The oracle: reads the attempt log day by day and checks it, and what the servers received,
against the world's model and RULES.md. It never calls the notifier's rules.

Each check names the day, the account and the record, so a failure is a reproducer together with
the seed (`SIM_SEED`).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from .model import DAY, POST_DUE, World, contact_allowed

TZ = ZoneInfo("America/Sao_Paulo")
OUTCOMES = ("sent", "outbox", "task", "failed", "blocked", "unknown")
DELIVERED = ("sent", "task")
RESTRICTED = ("whatsapp", "sms", "social")
BR_DATE = re.compile(r"\b\d{2}/\d{2}/\d{4}\b")


class LogReader:
    """The attempt log read incrementally: each call returns only the records appended since,
    after checking that they continue the chain (each record's `prev` is the SHA-256 of the line
    before, `seq` counts up by one): every day's records are checked the day they are written,
    and `notifier verify-log` (which also checks the stored messages) runs less often."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0
        self.seq, self.prev = 0, "0" * 64

    def new(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self.offset += end
        records = []
        for line in chunk[:end].splitlines():
            record = json.loads(line)
            if (record["seq"], record["prev"]) != (self.seq + 1, self.prev):
                raise AssertionError(f"{self.path}: record {record['seq']} does not continue the chain after "
                                     f"record {self.seq}")
            self.seq, self.prev = record["seq"], hashlib.sha256(line).hexdigest()
            records.append(record)
        return records


class Oracle:
    def __init__(self, world: World, log: Path, seed: int):
        self.world, self.seed = world, seed
        self.reader = LogReader(log)
        self.sendings: dict[str, dict] = {}  # id -> sending record, with "_outcome" and "_day"
        self.covered: set[tuple] = set()  # (channel, recipient, invoice, date, stage) delivered
        self.daily: set[tuple] = set()  # (account, channel, recipient, day) of automatic messages
        self.tutorials: dict[tuple, list[dict]] = defaultdict(list)  # (account, channel, recipient)
        self.told: dict[str, set[str]] = defaultdict(set)  # account -> dates written in its messages before today
        self.deletions: dict[str, list[date]] = defaultdict(list)  # invoice -> days of its deletion_due task
        self.events: dict[str, list[dict]] = defaultdict(list)  # other records by event
        self.smtp_seen = 0
        self.twilio_seen: set[str] = set()
        self.problems: list[str] = []

    def problem(self, day: date, text: str) -> None:
        self.problems.append(f"{day} (seed {self.seed}): {text}")

    # --- after each day -------------------------------------------------------------------------

    def check_day(self, day: date, smtp_received: list, twilio_sids: set[str]) -> list[str]:
        self.problems = []
        today: list[dict] = []
        for r in self.reader.new():
            if r["event"] == "sending":
                r["_day"] = day
                self.sendings[r["id"]] = r
                today.append(r)
            elif r["event"] in OUTCOMES and r.get("ref") in self.sendings:
                claim = self.sendings[r["ref"]]
                if "_outcome" in claim:
                    self.problem(day, f"sending {r['ref']} has two outcomes: {claim['_outcome']['event']}, {r['event']}")
                claim["_outcome"] = r
            else:
                self.events[r["event"]].append(r)
        for r in today:
            self._check_sending(day, r)
        for r in today:  # what today's messages told the customer counts from tomorrow on
            if r.get("_outcome", {}).get("event") in DELIVERED:
                self.told[r["account"]].update(BR_DATE.findall(json.dumps(r.get("content", {}), ensure_ascii=False)))
        self._check_servers(day, today, smtp_received, twilio_sids)
        return self.problems

    def _check_sending(self, day: date, r: dict) -> None:
        w = self.world
        acc_id, channel, recipient = r["account"], r["channel"], r.get("recipient")
        outcome = r.get("_outcome", {}).get("event")
        what = f"{acc_id} {channel} → {recipient} {r.get('stage')} (record {r['id']})"
        escalation = bool(r.get("escalation"))
        automatic = r.get("actor") == "run-once"
        # No STAFF_URLS in the simulation: staff messages go to the outbox, customers' to the servers.
        if outcome not in DELIVERED and (channel, outcome) != ("staff", "outbox"):
            self.problem(day, f"{what}: outcome {outcome!r} (no fault is injected: every message must go)")
        when = datetime.fromisoformat(r["time"].replace("Z", "+00:00")).astimezone(TZ)
        if when.date() != day:
            self.problem(day, f"{what}: logged at {when:%Y-%m-%d %H:%M}, not on the day of its cycle")
        if channel == "staff":
            for inv_id, _, stage in r.get("covers", []):
                if stage == "deletion_due":
                    self.deletions[inv_id].append(day)
            self._check_paid(day, r, what)
            return
        acc = w.accounts[acc_id]
        # contact hours, do-not-contact, opt-outs
        if channel in RESTRICTED and not r.get("override_hours") and not contact_allowed(when):
            self.problem(day, f"{what}: sent at {when:%a %d/%m/%Y %H:%M}, outside contact hours")
        if channel in ("whatsapp", "sms") and recipient in w.do_not_contact:
            self.problem(day, f"{what}: the number is on the do-not-contact list")
        if channel in acc.opt_out:
            self.problem(day, f"{what}: the account opted out of {channel}")
        if automatic and w.held(acc_id, day):
            self.problem(day, f"{what}: the account is on hold")
        self._check_paid(day, r, what)
        if escalation:
            if not r.get("tutorial"):
                self.problem(day, f"{what}: an escalation without the tutorial")
            return
        # at most once, one message per channel and recipient and day
        key = (acc_id, channel, recipient, day)
        if key in self.daily:
            self.problem(day, f"{what}: a second message on the same channel to the same recipient today")
        self.daily.add(key)
        for inv_id, on, stage in r.get("covers", []):
            cover = (channel, recipient, inv_id, on, stage)
            if cover in self.covered:
                self.problem(day, f"{what}: notice {inv_id} {stage} of {on} sent twice")
            self.covered.add(cover)
            inv = w.invoices[inv_id]
            if stage in POST_DUE and not inv.late:
                self.problem(day, f"{what}: {stage} for {inv_id}, paid on {inv.paid} by its effective due date "
                                  f"{inv.dates.effective}")
            if stage == "suspended":
                told = inv.dates.suspension.strftime("%d/%m/%Y")
                if told not in self.told[acc_id] and not self._staff_were_told(inv):
                    self.problem(day, f"{what}: suspended without having been told the date {told} before")
        if r.get("tutorial"):
            self.tutorials[(acc_id, channel, recipient)].append(r)
            firsts = [i for i, _, s in r.get("covers", []) if s in POST_DUE and w.first_time(w.invoices[i])]
            if not firsts:
                self.problem(day, f"{what}: the tutorial, but the account is no first-time delinquent for "
                                  f"{[c[0] for c in r.get('covers', [])]}")
            if len(self.tutorials[(acc_id, channel, recipient)]) > 1:
                self.problem(day, f"{what}: the tutorial a second time on this channel")

    def _staff_were_told(self, inv) -> bool:
        """A hold over the day before the suspension swallows the warning (docs/rules.md, "Holds"):
        that is the staff's to tell, and `hold` said so in its log record. An invoice issued after
        the hold began was not there to be named."""
        s = inv.dates.suspension
        hold = next((h for h in self.world.holds if h.account == inv.account and h.active(s - DAY)), None)
        if hold is None:
            return False
        return inv.issued > hold.since or any(
            r.get("unwarned_suspensions", {}).get(inv.id) == s.isoformat()
            for r in self.events["hold"] if r["account"] == inv.account)

    def _check_paid(self, day: date, r: dict, what: str) -> None:
        for inv_id in r.get("invoices", []):
            inv = self.world.invoices[inv_id]
            if inv.known_paid_on(day):
                self.problem(day, f"{what}: for {inv_id}, paid on {inv.paid} (known since the morning after)")

    def _check_servers(self, day: date, today: list[dict], smtp_received: list, twilio_sids: set[str]) -> None:
        got = smtp_received[self.smtp_seen:]
        self.smtp_seen += len(got)
        sent_mail = {r["id"]: r for r in today if r["channel"] == "email" and r.get("_outcome", {}).get("event") == "sent"}
        ids = [attempt for _, attempt in got]
        if len(ids) != len(set(ids)):
            self.problem(day, "the SMTP server received one attempt twice")
        if set(ids) != set(sent_mail):
            self.problem(day, f"SMTP received {len(ids)} messages, the log has {len(sent_mail)} e-mails sent; "
                              f"not in the log: {sorted(set(ids) - set(sent_mail))[:3]}, "
                              f"not received: {sorted(set(sent_mail) - set(ids))[:3]}")
        for rcpts, attempt in got:
            claim = sent_mail.get(attempt)
            if claim and list(rcpts) != [claim["recipient"]]:
                self.problem(day, f"attempt {attempt}: logged for {claim['recipient']}, received for {rcpts}")
        new = twilio_sids - self.twilio_seen
        self.twilio_seen |= new
        logged = {sid for r in today if r["channel"] in ("whatsapp", "sms") and r.get("_outcome", {}).get("event") == "sent"
                  for sid in (r["_outcome"].get("provider_id") or "").split(",") if sid}
        if new != logged:
            self.problem(day, f"Twilio accepted {len(new)} messages, the log has {len(logged)} SIDs sent; "
                              f"not in the log: {sorted(new - logged)[:3]}, not received: {sorted(logged - new)[:3]}")

    # --- at the end --------------------------------------------------------------------------------

    def check_end(self) -> list[str]:
        self.problems = []
        w, end = self.world, self.world.end
        for inv in w.invoices.values():
            d = inv.dates
            if d.deletion > end:
                continue
            days = self.deletions.get(inv.id, [])
            first_free = d.deletion  # the deletion day, or the first day after a hold that covered it
            while w.held(inv.account, first_free):
                first_free = first_free.fromordinal(first_free.toordinal() + 1)
            # Due unless the notifier knew of the payment by then (a payment made on the deletion
            # day itself, learned the morning after a hold ended, stops it too: found by seed 20261201/0).
            if inv.known_paid_on(first_free):
                if days:
                    self.problem(days[0], f"{inv.account}: deletion task for {inv.id}, paid on {inv.paid}")
                continue
            if days != [first_free] and first_free <= end:
                self.problem(d.deletion, f"{inv.account}: deletion task for {inv.id} on {days}, expected once on "
                                         f"{first_free}")
        for acc in w.accounts.values():
            late = [i for i in sorted(w.invoices.values(), key=lambda i: i.issued) if i.account == acc.id and i.late]
            if not late or not w.first_time(late[0]):
                continue
            inv = late[0]
            day = inv.dates.overdue
            if day > end or inv.known_paid_on(day) or w.held(acc.id, day):
                continue
            channels = [("email", e) for e in acc.emails]
            if acc.whatsapp and "whatsapp" not in acc.opt_out and acc.whatsapp not in w.do_not_contact:
                channels.append(("whatsapp", acc.whatsapp))
            if "social" not in acc.opt_out:
                channels += [("social", f"{net}:{handle}") for net, handle in acc.social.items()]
            for channel, recipient in channels:
                got = self.tutorials.get((acc.id, channel, recipient), [])
                if len(got) != 1:
                    self.problem(day, f"{acc.id}: first-time delinquent for {inv.id}: {len(got)} tutorials on "
                                      f"{channel} → {recipient}, expected 1")
                elif got[0]["_day"] != day:
                    self.problem(day, f"{acc.id}: first-time delinquent for {inv.id}: the tutorial on {channel} "
                                      f"came on {got[0]['_day']}, not with the overdue notice")
                first = min((r for r in self.sendings.values() if r["account"] == acc.id and r["channel"] == channel
                             and r.get("recipient") == recipient and not r.get("escalation")
                             and any(c[0] == inv.id and c[2] in POST_DUE for c in r.get("covers", []))),
                            key=lambda r: r["seq"], default=None)
                if first is not None and not first.get("tutorial"):
                    self.problem(first["_day"], f"{acc.id}: the first {first['stage']} message on {channel} → "
                                                f"{recipient} for {inv.id} had no tutorial")
        holds = self.events.get("hold", [])
        if len(holds) != len(w.holds):
            self.problem(end, f"{len(holds)} hold records in the log, {len(w.holds)} holds placed")
        contacts = self.events.get("contact", [])
        if len(contacts) != sum(len(v) for v in w.contacts.values()):
            self.problem(end, f"{len(contacts)} contact records in the log, expected {sum(len(v) for v in w.contacts.values())}")
        if self.events.get("unknown"):
            self.problem(end, f"{len(self.events['unknown'])} unknown attempts (nothing crashed)")
        return self.problems
