"""One customer as support staff see them: the Cliente page and `notifier show` both ask here.

`customer_view()` gathers, for one account: who they are and how to reach them; the open
invoices with every date of their life (notifier/billing/calendar.py) and their Pix code; what
comes next (the account's timeline from today, notifier/billing/rules.py); and the contact
history, newest first: every attempt with its status history and evidence, every record staff
made (contacts, holds and releases, escalations, opt-outs, closed tasks, payment corrections),
the notices not sent and why, and the payments the store holds.

The history comes from the attempt log through `LogIndex` (notifier/log/index.py): the account's
own records, not a scan of the whole log. What the customer read is in each sending's `content`
(the text of a WhatsApp or SMS, the e-mail's subject and text); the e-mail as it looked (its
HTML) is in the message store, read only when asked for (`email_html`), one at a time.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from email import message_from_bytes, policy

from notifier.billing.calendar import InvoiceDates, invoice_dates
from notifier.billing.models import Account, Hold, Invoice, TimelineEntry
from notifier.billing.rules import account_timeline
from notifier.config import Config
from notifier.log.attempts import AttemptLog, stored_message
from notifier.log.index import LogIndex

OUTBOX = "outbox"  # channels/outbox.py's provider name


@dataclass(frozen=True)
class OpenInvoice:
    invoice: Invoice
    dates: InvoiceDates


@dataclass
class Event:
    """One line of the contact history. `kind` is the log's event (`sending` for an attempt,
    `contact`, `hold`, `release`, `escalation`, `opt_out`, `skipped`, `task_done`,
    `payment_corrected`...) or `payment` (from the store). `updates` are an attempt's outcome and
    later statuses, in order."""
    kind: str
    when: datetime
    actor: str
    record: dict
    updates: list[dict] = field(default_factory=list)

    @property
    def status(self) -> str:
        """An attempt's latest status (`sending` while it has no answer); the kind otherwise.
        A message written to the local outbox (no provider configured) is `outbox`: it never
        left the machine, so it is never called sent."""
        if not self.updates:
            return self.kind
        last = self.updates[-1]
        return "outbox" if last["event"] == "sent" and last.get("provider") == OUTBOX else last["event"]

    def to_json(self) -> dict:
        return {"kind": self.kind, "time": self.when.isoformat(), "actor": self.actor, "status": self.status,
                "record": {k: v for k, v in self.record.items() if k not in ("prev", "seq")},
                "updates": [{k: v for k, v in u.items() if k not in ("prev", "seq")} for u in self.updates]}


@dataclass
class CustomerView:
    account: Account
    open_invoices: list[OpenInvoice]
    paid_invoices: list[Invoice]  # the paid invoices the store still keeps (the retention window)
    hold: Hold | None
    next: list[TimelineEntry]  # from today on
    history: list[Event]  # newest first
    archived_late: int  # late invoices already archived (what makes a first-time delinquent)


def customer_view(snapshot, config: Config, index: LogIndex, account_id: str, today: date) -> CustomerView | None:
    """Everything the Cliente page and `notifier show` show of `account_id` on `today`; None when
    the store has no such account."""
    account = snapshot.account(account_id)
    if account is None:
        return None
    invoices = snapshot.invoices(account_id)
    history = snapshot.histories().get(account_id)
    cal = config.calendar
    open_invoices = [OpenInvoice(i, invoice_dates(i.due, cal, config.settlement_days))
                     for i in sorted(invoices, key=lambda i: (i.due, i.id)) if i.paid is None]
    coming = [e for e in account_timeline(account, invoices, history, cal, config) if e.date >= today]
    return CustomerView(
        account=account, open_invoices=open_invoices,
        paid_invoices=sorted((i for i in invoices if i.paid is not None), key=lambda i: (i.paid, i.id), reverse=True),
        hold=snapshot.holds().get(account_id), next=coming,
        history=contact_history(index.account_records(account_id), invoices, config),
        archived_late=history.late_count if history else 0,
    )


def view_json(view: CustomerView) -> dict:
    """The view as JSON (`notifier show --json`, the JSON API): dates ISO, amounts as "1234.50"."""
    acc = view.account
    invoices = []
    for inv in [o.invoice for o in view.open_invoices] + sorted(view.paid_invoices, key=lambda i: i.due):
        row = {"id": inv.id, "amount": cents(inv.amount), "issued": inv.issued.isoformat(), "due": inv.due.isoformat(),
               "paid": inv.paid.isoformat() if inv.paid else None}
        invoices.append(row)
    for row, o in zip(invoices, view.open_invoices):
        d = o.dates
        row.update(effective_due=d.effective_due.isoformat(), overdue=d.overdue.isoformat(),
                   suspension=d.suspension.isoformat(), deletion=d.deletion.isoformat(), pix_code=o.invoice.pix_code)
    hold = view.hold
    return {
        "id": acc.id, "company": acc.company, "contact_name": acc.contact_name, "document": acc.document,
        "domain": acc.domain, "emails": list(acc.emails), "portal_email": acc.portal_email,
        "whatsapp": acc.whatsapp, "social": shown_handles(acc.social), "due_day": acc.due_day,
        "past_delinquencies": acc.past_delinquencies, "opt_out": sorted(acc.opt_out),
        "archived_late_invoices": view.archived_late,
        "hold": hold and {"reason": hold.reason, "since": hold.since.isoformat(), "until": hold.until.isoformat(),
                          "by": hold.by, "note": hold.note},
        "invoices": sorted(invoices, key=lambda r: r["due"]),
        "next": [e.to_json() for e in view.next],
        "history": [e.to_json() for e in view.history],
    }


def cents(amount: Decimal) -> str:
    """An amount as JSON shows it: always two decimals ("59.90", "0.00"), however it was typed."""
    return str(amount.quantize(Decimal("0.01")))


def shown_handles(social) -> dict:
    """Social handles for the screen: one that is an apprise URL holds a token, shown masked."""
    from notifier.channels import public_url
    return {network: public_url(handle) if "://" in handle else handle for network, handle in social}


def contact_history(records: list[dict], invoices: list[Invoice], config: Config) -> list[Event]:
    """The account's records as history lines, newest first: each attempt once, with the records
    that answer it; payments the store holds as lines of their own (on the payment day, after
    that day's notices: the bank reports a payment after the morning's sends)."""
    events: list[Event] = []
    attempts: dict[str, Event] = {}
    for r in records:
        event = r.get("event")
        when = datetime.fromisoformat(r["time"]).astimezone(config.tz)
        if event == "sending":
            attempts[r["id"]] = item = Event("sending", when, r.get("actor", ""), r)
            events.append(item)
        elif r.get("ref") in attempts:
            attempts[r["ref"]].updates.append(r)
        else:
            events.append(Event(event, when, r.get("actor", ""), r))
    for i in invoices:
        if i.paid is not None:
            end_of_day = datetime.combine(i.paid, time(23, 59, 59), config.tz)
            events.append(Event("payment", end_of_day, "", {"invoice": i.id, "amount": str(i.amount),
                                                            "paid": i.paid.isoformat()}))
    # Newest first; of records with the same time (a command run with --date), the later written first.
    order = {id(e): n for n, e in enumerate(events)}
    events.sort(key=lambda e: (e.when, order[id(e)]), reverse=True)
    return events


def email_html(log: AttemptLog, sending: dict) -> str | None:
    """The HTML of an e-mail attempt as the customer's mail program showed it, from the exact
    bytes stored before the send (checked against their SHA-256); None when the attempt has no
    stored e-mail or it has no HTML part. MessageStoreError when the stored bytes do not match."""
    where = stored_message(sending)
    if where is None or sending.get("channel") != "email":
        return None
    return html_of_email(log.messages.get(where))


def html_of_email(data: bytes) -> str | None:
    """The HTML part of an e-mail's bytes, its inline images (the Pix QR code, referred to as
    cid:) made data: URLs, since a page shows only those; None without an HTML part.

    Parsed with the compat32 policy: the modern one parses every header it is asked for into
    objects, six times slower, and an audit report shows a dozen e-mails or more."""
    mail = message_from_bytes(data, policy=policy.compat32)
    parts = list(mail.walk())
    body = next((p for p in parts if p.get_content_type() == "text/html"
                 and not str(p.get("Content-Disposition", "")).lower().startswith("attachment")), None)
    if body is None:
        return None
    html = body.get_payload(decode=True).decode(body.get_content_charset() or "us-ascii", "replace")
    for inline in parts:
        cid = (inline.get("Content-ID") or "").strip("<>")
        if cid and inline.get_content_maintype() == "image":
            data = base64.b64encode(inline.get_payload(decode=True)).decode("ascii")
            html = html.replace(f"cid:{cid}", f"data:{inline.get_content_type()};base64,{data}")
    return html

