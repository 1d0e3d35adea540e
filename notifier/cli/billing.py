"""Billing data: import it, record payments, look at accounts (operations and finance)."""
from __future__ import annotations

from pathlib import Path

import click

from ..calendar import invoice_dates
from .base import cli, Context, date_option, json_option, get_account, echo_json, print_table, br_date

@cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@date_option("The day of the import (for the archive's retention window); default: today.")
@click.pass_obj
def import_(obj: Context, path: Path, day):
    """Import billing data: a JSON file, or accounts.csv (+ invoices.csv beside it), or a folder
    holding both. Upserts by id; all or nothing."""
    from ..importer import parse_file
    today = obj.today(day)
    with obj.store().transaction() as snap:
        batch = parse_file(path, {a.id: a for a in snap.accounts()}, today)
        snap.upsert_accounts(batch.accounts)
        moved = snap.import_invoices(batch.invoices, today, obj.config)
        more, rows = snap.archive(today, obj.config)
    moved += more
    click.echo(f"imported {len(batch.accounts)} accounts and {len(batch.invoices)} invoices into {obj.config.state}"
               + (f"; archived {moved} paid invoices and {rows} ledger rows" if moved or rows else ""))


@cli.command()
@click.argument("invoice")
@date_option("The payment date as the bank reports it; default: today.")
@click.pass_obj
def pay(obj: Context, invoice: str, day):
    """Record the payment of INVOICE: no notice goes out for it from that date on."""
    paid_on = obj.today(day)
    with obj.store().transaction() as snap:
        inv = snap.record_payment(invoice, paid_on)
    click.echo(f"{inv.id}: paid on {paid_on:%d/%m/%Y}")


@cli.command()
@json_option
@click.pass_obj
def accounts(obj: Context, as_json):
    """The stored accounts, with their open invoices."""
    snap = obj.store().snapshot()
    open_by_account: dict[str, list] = {}
    for inv in snap.invoices():
        if inv.paid is None:
            open_by_account.setdefault(inv.account, []).append(inv)
    rows = []
    for acc in sorted(snap.accounts(), key=lambda a: a.id):
        opened = open_by_account.get(acc.id, [])
        rows.append({"id": acc.id, "company": acc.company, "due_day": acc.due_day, "emails": list(acc.emails),
                     "open_invoices": len(opened), "open_amount": str(sum((i.amount for i in opened), start=0))})
    if as_json:
        echo_json(rows)
        return
    print_table(["id", "company", "due day", "e-mails", "open", "amount open"],
           [[r["id"], r["company"], r["due_day"], ", ".join(r["emails"]), r["open_invoices"], r["open_amount"]]
            for r in rows])


@cli.command()
@click.argument("account")
@json_option
@click.pass_obj
def show(obj: Context, account: str, as_json):
    """What is stored for ACCOUNT, with each open invoice's dates."""
    snap = obj.store().snapshot()
    acc = get_account(snap, account)
    cal = obj.config.calendar
    invoices = []
    for inv in sorted(snap.invoices(account), key=lambda i: i.due):
        row = {"id": inv.id, "amount": str(inv.amount), "issued": inv.issued.isoformat(), "due": inv.due.isoformat(),
               "paid": inv.paid.isoformat() if inv.paid else None}
        if inv.paid is None:
            d = invoice_dates(inv.due, cal, obj.config.settlement_days)
            row.update(effective_due=d.effective_due.isoformat(), overdue=d.overdue.isoformat(),
                       suspension=d.suspension.isoformat(), deletion=d.deletion.isoformat())
        invoices.append(row)
    history = snap.histories().get(account)
    data = {
        "id": acc.id, "company": acc.company, "contact_name": acc.contact_name, "document": acc.document,
        "domain": acc.domain, "emails": list(acc.emails), "portal_email": acc.portal_email,
        "whatsapp": acc.whatsapp, "social": _shown_handles(acc.social), "due_day": acc.due_day,
        "past_delinquencies": acc.past_delinquencies, "opt_out": sorted(acc.opt_out),
        "archived_late_invoices": history.late_count if history else 0, "invoices": invoices,
    }
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        if key != "invoices":
            click.echo(f"{key:>24}: {value if value not in (None, [], {}) else '-'}")
    click.echo("")
    print_table(["invoice", "amount", "due", "effective due", "overdue", "suspension", "deletion", "paid"],
           [[r["id"], r["amount"], br_date(r["due"]), br_date(r.get("effective_due")), br_date(r.get("overdue")),
             br_date(r.get("suspension")), br_date(r.get("deletion")), br_date(r["paid"])] for r in invoices])


def _shown_handles(social) -> dict:
    """Social handles for the screen: one that is an apprise URL holds a token, shown masked."""
    from channels._apprise import public_url
    return {network: public_url(handle) if "://" in handle else handle for network, handle in social}
