"""Payments recorded by hand (`notifier pay`): finance learnt of a payment before the billing file.

Each one is a `payment` record in the attempt log (`payment_corrected` for a changed date), with
who recorded it, written in the same store transaction that records it: the log alone says who
recorded which payment and when, and a state rebuilt from a re-import gets them back from it
(`run.cycle.reconcile`). Payments only move forward: nothing here ever clears a payment date.
"""
from __future__ import annotations

from datetime import date, datetime

from notifier.billing.models import Invoice
from notifier.log.attempts import AttemptLog
from notifier.staff.actor import Actor, check_note
from notifier.state.importer import payment_date_problems
from notifier.state.store import AlreadyPaid, Store, StoreError


class ReasonRequired(StoreError):
    """A correction of a payment date without a reason."""


def record_payment(store: Store, log: AttemptLog, now: datetime, invoice_id: str, paid: date, by: Actor,
                   correct: bool = False, reason: str = "") -> tuple[Invoice, date | None]:
    """Record that `invoice_id` was paid on `paid` (as the bank reports it; `now` is the real
    time, for "not in the future"); returns the invoice and the payment date it had before.

    An invoice already paid keeps its date (AlreadyPaid) unless `correct`, which keeps the
    previous date in the invoice and needs a `reason` (ReasonRequired), kept in the log's
    `payment_corrected` record: a changed payment date changes what the audit report says was
    owed when, and why it changed is the first thing an auditor asks. StoreError for an unknown
    invoice or an impossible date; InvalidText for a reason that is not plain text."""
    reason = check_note(reason.strip(), "reason")
    with store.transaction() as snap:
        stored = snap.invoice(invoice_id)
        if stored is not None:
            problems = payment_date_problems(stored.issued, paid, now.date())
            if problems:
                raise StoreError("; ".join(f"{invoice_id}: {field}: {reason}" for field, reason in problems))
        try:
            invoice, previous = snap.record_payment(invoice_id, paid), None
            event, fields = "payment", {}
        except AlreadyPaid as exc:
            if not correct or exc.paid == paid:
                raise
            if not reason:
                raise ReasonRequired(f"{invoice_id}: a correction of the payment date ({exc.paid:%d/%m/%Y} to "
                                     f"{paid:%d/%m/%Y}) needs a reason") from None
            invoice, previous = snap.correct_payment(invoice_id, paid, now.date(), by.name)
            event, fields = "payment_corrected", {"previous_paid": previous.isoformat(), "reason": reason}
        # Before the commit: a crash between the two leaves a payment the log knows and the state
        # not yet, which the next reconcile brings back; never the other way round.
        log.note(now, event, {"invoice": invoice_id, "account": invoice.account, "paid": paid.isoformat(), **fields,
                              **by.fields()}, by.name)
    return invoice, previous
