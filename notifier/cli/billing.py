"""Billing data: import it, record payments, look at accounts (operations and finance)."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import click

from .base import cli, Context, by_option, date_option, leave_to_exit, json_option, echo_json, print_table, system_user

# How far after the real today (the clock's, not --date's) the day of an import may be:
# `import --date 9999-12-31` would archive every paid invoice; a year covers every honest use (a
# frozen day for a rehearsal). `pay` needs no window: a payment is never in the future.
DATE_WINDOW = timedelta(days=366)


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@date_option("The day of the import (for the archive's retention window), within a year of today; default: today.")
@click.pass_obj
def import_(obj: Context, path: Path, day):
    """Import billing data: a JSON file, or accounts.csv (+ invoices.csv beside it), or a folder
    holding both. Upserts by id; all or nothing. A payment date already stored is never undone:
    a file without it keeps it, a file with another date is warned about and the stored one kept."""
    from notifier.state.importer import parse_source, read_source
    from notifier.state.store import gc_paused
    today = obj.today(day)
    _refuse_far_from_today("--date", today, obj.now().date())
    source = read_source(path)
    batch, moved, known = None, 0, 0
    with gc_paused():
        with obj.store(create=True).transaction() as snap:
            last = snap.last_import()
            # The same content again on the same day or later (the everyday case: tomorrow's export
            # with nothing new) would validate and store exactly what it did then: skip to archiving.
            if last is None or last[0] != source.digest or today < last[1]:
                batch = parse_source(source, {a.id: a for a in snap.accounts()}, today, snap.payments())
                snap.upsert_accounts(batch.accounts)
                moved, known = snap.import_invoices(batch.invoices, today, obj.config)
                snap.record_import(source.digest, today)
            more, rows = snap.archive(today, obj.config)
        # Never freed when the process ends with the command (freeing them takes a tenth of a big
        # import), else freed while the collector is still off: a million records left to it
        # would be walked once more, for nothing, by its first collection.
        imported = None if batch is None else (len(batch.accounts), len(batch.invoices), batch.warnings)
        leave_to_exit(snap, batch)
        del snap, batch
    archived = [_count(n, noun) for n, noun in ((moved + more, "paid invoice"), (rows, "ledger row")) if n]
    done = f"; archived {' and '.join(archived)}" if archived else ""
    if imported is None:
        click.echo(f"nothing new: {', '.join(map(str, source.files))} holds what was imported on {last[1]:%d/%m/%Y}{done}")
        return
    accounts, invoices, warnings = imported
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for other in source.files:
        if path.is_file() and other != path:
            click.echo(f"also read {other} (the other file of the CSV pair, beside it)")
    click.echo(f"imported {_count(accounts, 'account')} and {_count(invoices, 'invoice')} "
               f"into {obj.config.state}{done}"
               + (f"; {_count(known, 'invoice')} already in the archive, left as archived" if known else ""))


@cli.command()
@click.argument("invoice")
@date_option("The payment date as the bank reports it (not in the future, not before the issue); default: today.")
@click.option("--correct", is_flag=True, help="Change the payment date of an invoice already paid (recorded as a correction).")
@click.option("--reason", default="", help="Why the payment date is corrected (required with --correct when the date "
                                           "changes; kept in the log's payment_corrected record).")
@by_option("Who records it, for the record (default: the system user name).", names=("--by", "actor"), default=system_user)
@click.pass_obj
def pay(obj: Context, invoice: str, day, correct: bool, reason: str, actor):
    """Record the payment of INVOICE: no notice goes out for it from that date on.

    An invoice already paid keeps its date unless --correct is given; the previous date is kept in
    the invoice. Either is written to the contact-attempt log, with who recorded it."""
    from notifier.staff.payments import ReasonRequired, record_payment
    from notifier.state.store import AlreadyPaid
    paid_on = obj.today(day)
    try:
        _, previous = record_payment(obj.store(), obj.log(), obj.now(), invoice, paid_on, actor, correct, reason)
    except ReasonRequired as exc:
        raise click.UsageError(f"{exc}: give it with --reason TEXT; nothing changed") from None
    except AlreadyPaid as exc:
        raise click.ClickException(f"{exc}: nothing changed (pass --correct to change the payment date)" if not correct
                                   else f"{exc}: nothing to correct") from None
    if previous is None:
        click.echo(f"{invoice}: paid on {paid_on:%d/%m/%Y} (recorded by {actor.name})")
    else:
        click.echo(f"{invoice}: payment date corrected from {previous:%d/%m/%Y} to {paid_on:%d/%m/%Y} (by {actor.name})")


@cli.command()
@json_option
@click.pass_obj
def accounts(obj: Context, as_json):
    """The stored accounts, with their open invoices."""
    from notifier.staff.customer import cents
    snap = obj.store().snapshot()
    open_by_account: dict[str, list] = {}
    for inv in snap.invoices():
        if inv.paid is None:
            open_by_account.setdefault(inv.account, []).append(inv)
    rows = []
    for acc in sorted(snap.accounts(), key=lambda a: a.id):
        opened = open_by_account.get(acc.id, [])
        rows.append({"id": acc.id, "company": acc.company, "due_day": acc.due_day, "emails": list(acc.emails),
                     "open_invoices": len(opened), "open_amount": cents(sum((i.amount for i in opened), Decimal(0)))})
    if as_json:
        echo_json(rows)
        return
    print_table(["id", "company", "due day", "e-mails", "open", "amount open"],
                [[r["id"], r["company"], r["due_day"], ", ".join(r["emails"]), r["open_invoices"],
                  _br_amount(r["open_amount"])] for r in rows])


def _refuse_far_from_today(option: str, day: date, real_today: date) -> None:
    """Stop on a day after DATE_WINDOW from the real today (every --date is already within
    2000–2099: `Day`). Earlier days are allowed: they archive less, never more, and rehearsals and
    tests replay past days."""
    if day > real_today + DATE_WINDOW:
        raise click.ClickException(
            f"{option} {day.isoformat()}: more than a year after today ({real_today:%d/%m/%Y}): "
            f"the day of an import is today, or a nearby day for a rehearsal")


def _count(n: int, noun: str) -> str:
    """`1 account`, `2 accounts`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _br_amount(cents: str) -> str:
    """"1234.50" as a Brazilian reads it in a table: 1.234,50."""
    whole, _, fraction = cents.partition(".")
    return f"{int(whole):,}".replace(",", ".") + "," + fraction


