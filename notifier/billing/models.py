"""The plain objects the rest of the notifier passes around.

They hold already-validated data: the importer checks input, the store gives these back, and the
rules only read them. Amounts are `Decimal` (never float) and dates are `datetime.date`.

The four stored records are `NamedTuple`s: immutable like frozen dataclasses, but about five times
cheaper to build, and `plan` builds one per stored account, invoice and ledger row (hundreds of
thousands). Change one with `record._replace(field=value)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import NamedTuple


class Account(NamedTuple):
    id: str
    company: str
    document: str
    emails: tuple[str, ...]
    contact_name: str = ""
    domain: str = ""
    portal_email: str | None = None
    whatsapp: str | None = None
    social: tuple[tuple[str, str], ...] = ()
    due_day: int = 20
    past_delinquencies: int = 0
    opt_out: frozenset[str] = frozenset()

    @property
    def has_portal_access(self) -> bool:
        return self.portal_email is not None


class Invoice(NamedTuple):
    id: str
    account: str
    amount: Decimal
    issued: date
    due: date
    paid: date | None = None
    payment_url: str | None = None
    pix_code: str | None = None

    def unpaid_on(self, day: date) -> bool:
        """Still owed on `day`: not paid, or paid later (so a plan of a past day sees that day)."""
        return self.paid is None or self.paid > day


class LedgerEntry(NamedTuple):
    """One (invoice notice, channel, recipient) that the notifier has already handled.

    `notice_date` and `stage` are those of the invoice's own timeline entry, so that "at most once"
    and catch-up can be decided per invoice even when several invoices were merged into one message.
    `status` is `sent`, `failed` (permanently: not tried again) or `skipped` (superseded, opted
    out...). A temporary failure is not written to the ledger, so the notice is tried again.
    """
    invoice: str
    account: str
    notice_date: date
    stage: str
    channel: str
    recipient: str
    status: str
    tutorial: bool = False
    attempt_id: str | None = None

    @property
    def key(self) -> tuple:
        return (self.invoice, self.notice_date, self.channel, self.recipient)


class Hold(NamedTuple):
    """A pause that staff put on an account's ladder (`notifier hold`): nothing automatic goes out
    for it from `since` until the day before `until` (on `until` the hold has ended by itself)."""
    account: str
    reason: str
    until: date
    by: str
    since: date
    note: str = ""

    def active_on(self, day: date) -> bool:
        return self.since <= day < self.until


class History(NamedTuple):
    """What the store remembers of an account's archived invoices: enough to tell a first-time
    delinquent once the invoices themselves have left the store."""
    account: str
    first_late_due: date | None = None
    late_count: int = 0


@dataclass(frozen=True, slots=True)
class Notice:
    """A message the plan says should go out: one channel, one recipient, one account, one day."""
    account: str
    date: date
    stage: str
    channel: str
    recipient: str
    invoices: tuple[str, ...]
    first_time: bool
    tutorial: bool
    # The per-invoice timeline entries this message covers: (invoice id, notice date, stage).
    covers: tuple[tuple[str, date, str], ...] = field(default=(), compare=False)

    def to_json(self) -> dict:
        return {
            "account": self.account,
            "date": self.date.isoformat(),
            "stage": self.stage,
            "channel": self.channel,
            "recipient": self.recipient,
            "invoices": list(self.invoices),
            "first_time": self.first_time,
            "tutorial": self.tutorial,
        }


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """A date of an account's dunning timeline, as if its open invoices were never paid."""
    date: date
    stage: str
    channels: tuple[str, ...]
    invoices: tuple[str, ...]
    first_time: bool

    def to_json(self) -> dict:
        return {
            "date": self.date.isoformat(),
            "stage": self.stage,
            "channels": list(self.channels),
            "invoices": list(self.invoices),
            "first_time": self.first_time,
        }
