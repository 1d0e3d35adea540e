"""Holds and the do-not-contact list applied to a day's plan: pure functions, no I/O.

`rules.plan_day` knows nothing of either: it says what the ladder wants. These decide what of it
must not go out today, and why, so that the cycle records each such notice with its reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Iterable, Mapping

from notifier.billing.calendar import BankCalendar
from notifier.config import Config
from notifier.billing.models import Hold, Invoice, Notice
from notifier.billing.rules import PRE_DUE_STAGES, Pending, collectible, dates_of, invoice_timeline

PHONE_CHANNELS = ("whatsapp", "sms")


@dataclass(frozen=True)
class Screened:
    """A plan after holds and the do-not-contact list."""
    send: tuple[Notice, ...]
    held: tuple[Notice, ...]  # on hold: not sent today, not handled (caught up when the hold ends)
    refused: tuple[tuple[Notice, str], ...]  # handled as skipped, with the reason
    superseded: tuple[tuple[Pending, str], ...]  # skipped: "superseded", or the hold that kept them


def screen(today: date, notices: Iterable[Notice], superseded: Iterable[Pending], holds: Mapping[str, Hold],
           do_not_contact: frozenset[str], account_of: Mapping[str, str]) -> Screened:
    """Split a plan: what goes, what waits for a hold to end, what is refused for good.

    A held notice is not written to the ledger, so when the hold ends it is caught up like any
    notice not sent on its date (RULES.md, "Catch-up"); one that is superseded meanwhile is recorded
    as skipped with the hold's reason. A number on the do-not-contact list is refused on
    WhatsApp and SMS for good (`skipped: do-not-contact`). `account_of` maps invoice ids to
    account ids (a superseded `Pending` names only its invoice).
    """
    send, held, refused = [], [], []
    for notice in notices:
        hold = holds.get(notice.account)
        if hold is not None and hold.active_on(today):
            held.append(notice)
        elif barred(notice, do_not_contact):
            refused.append((notice, "do-not-contact"))
        else:
            send.append(notice)
    skipped = []
    for pending in superseded:
        hold = holds.get(account_of.get(pending.invoice))
        if hold is not None and hold.since <= pending.notice.date < hold.until:
            skipped.append((pending, f"hold: {hold.reason}"))
        else:
            skipped.append((pending, "superseded"))
    return Screened(tuple(send), tuple(held), tuple(refused), tuple(skipped))


def unwarned_suspensions(hold: Hold, invoices: Iterable[Invoice], cal: BankCalendar,
                         config: Config) -> list[tuple[Invoice, date]]:
    """Each open invoice that reaches its suspension date while `hold` lasts (or on the day it
    ends) with no warning sent before the hold began, with that date.

    A warning superseded during a hold is not sent afterwards (RULES.md, "Catch-up"), so such a
    customer would be suspended without having been told the date: the staff who hold the account
    are told, to tell the customer themselves. The warning is the `suspension_warning`, or, where
    the ladder leaves none, the reminder and due-day notices that state the date instead.
    """
    found = []
    for invoice in invoices:
        if invoice.paid is not None or not collectible(invoice):
            continue
        timeline = invoice_timeline(invoice, False, cal, config)
        suspension = next((n.date for n in timeline if n.stage == "suspended"), None)
        if suspension is None or not hold.since < suspension <= hold.until:
            continue
        warning = [n.date for n in timeline if n.stage == "suspension_warning"] or \
                  [n.date for n in timeline if n.stage in PRE_DUE_STAGES]
        if not any(day < hold.since for day in warning):
            found.append((invoice, suspension))
    return found


def deletions_during(hold: Hold, invoices: Iterable[Invoice], cal: BankCalendar,
                     config: Config) -> list[tuple[Invoice, date]]:
    """Each open invoice whose deletion date (data deleted, debt subject to protest) falls while
    `hold` lasts, with that date: the hold keeps back the customer's deletion warning and
    finance's deletion task (both come after it), which staff placing one must know."""
    found = []
    for invoice in invoices:
        if invoice.paid is None and collectible(invoice):
            deletion = dates_of(invoice, cal, config).deletion
            if hold.since <= deletion < hold.until:
                found.append((invoice, deletion))
    return found


def barred(notice: Notice, do_not_contact: frozenset[str]) -> bool:
    """Whether `notice` would call a number on the do-not-contact list (WhatsApp and SMS only)."""
    return notice.channel in PHONE_CHANNELS and normalize(notice.recipient) in do_not_contact


def normalize(number: str) -> str:
    """A phone number as digits with the country code: '+55 (11) 98765-4321' -> '5511987654321'.
    Procon's exports write numbers without +55, so a bare 10–11 digit number gets it."""
    digits = "".join(c for c in number if c.isdigit())
    return "55" + digits if len(digits) in (10, 11) else digits


def parse_do_not_contact(lines: Iterable[str]) -> frozenset[str]:
    """The numbers of a do-not-contact file: one per line (CSV rows: the first cell), `#` comments."""
    numbers = set()
    for line in lines:
        cell = line.split("#", 1)[0].split(",", 1)[0].split(";", 1)[0].strip()
        if cell and any(c.isdigit() for c in cell):
            numbers.add(normalize(cell))
    return frozenset(numbers)
