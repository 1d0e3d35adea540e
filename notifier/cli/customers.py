"""Support staff and a customer: find the account, see it whole (`show`, as the console's customer
page), and what the customer asked for (stop WhatsApp or SMS after a SAIR/PARAR/STOP reply)."""
from __future__ import annotations

import click

from .base import Context, br_date, by_option, cli, date_option, echo_json, json_option, print_table
from .billing import _br_amount

# Channels a customer can opt out of (e-mail is the contractual channel; staff is ours).
OPTIONAL_CHANNELS = ("whatsapp", "sms", "social")


@cli.command("opt-out")
@click.argument("account")
@click.option("--channel", "channels", type=click.Choice(OPTIONAL_CHANNELS), multiple=True, required=True,
              help="A channel the customer no longer wants (repeat for several: SAIR on WhatsApp usually means "
                   "--channel whatsapp --channel sms).")
@by_option("Who records it (your name), for the contact-attempt log.")
@date_option("The day the customer asked; default: today.")
@click.pass_obj
def opt_out(obj: Context, account: str, channels: tuple[str, ...], by, day):
    """Stop messages to ACCOUNT on a channel because the customer asked (e.g. replied SAIR).

    Kept apart from the imported record, so a later import does not undo it; `show` lists it and
    the contact-attempt log records who asked it and when."""
    from notifier.staff.optout import opt_out as record
    today = obj.today(day)
    acc = record(obj.store(), obj.log(), obj.now(), account, channels, today, by)
    click.echo(f"{account}: no more {' and '.join(channels)} (recorded by {by.name} on {today:%d/%m/%Y}); "
               f"opted out of: {', '.join(sorted(acc.opt_out))}")


@cli.command()
@click.argument("text")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="Show at most this many.")
@json_option
@click.pass_obj
def find(obj: Context, text: str, limit: int, as_json):
    """Find accounts by id, part of the company name (accents and case ignored), domain,
    CNPJ/CPF in any format, e-mail or phone (with or without +55); best matches first."""
    from notifier.staff.search import find as search
    found = search(obj.store().snapshot(), text, limit)
    rows = [f.to_json() for f in found]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        raise click.ClickException(f"no account matches {text!r}")
    from notifier.staff.actor import neutralise
    print_table(["id", "company", "CNPJ/CPF", "matched on", "e-mails"],
                [[r["id"], neutralise(r["company"]), r["document"], r["matched"], ", ".join(r["emails"])] for r in rows])


@cli.command()
@click.argument("account")
@date_option("Show what comes next from this day (YYYY-MM-DD); default: today.")
@click.option("--history", "history_limit", type=click.IntRange(0), default=20, show_default=True,
              help="Show this many of the newest history lines (0: none; --json has them all).")
@json_option
@click.pass_obj
def show(obj: Context, account: str, day, history_limit: int, as_json):
    """ACCOUNT as support staff see it (the console's customer page): identity and contacts, each
    open invoice's dates and Pix code, what comes next, and the contact history, newest first."""
    from notifier.log.index import LogIndex
    from notifier.staff.actor import neutralise
    from notifier.staff.customer import customer_view, view_json
    view = customer_view(obj.store().snapshot(), obj.config, LogIndex(obj.config.attempt_log), account, obj.today(day))
    if view is None:
        raise click.ClickException(f"no account {account!r} in the store")
    data = view_json(view)
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        if key not in ("invoices", "next", "history"):
            click.echo(f"{key:>24}: {neutralise(_shown(value))}")
    click.echo("")
    print_table(["invoice", "amount", "due", "effective due", "overdue", "suspension", "deletion", "paid", "pix"],
                [[r["id"], _br_amount(r["amount"]), br_date(r["due"]), br_date(r.get("effective_due")),
                  br_date(r.get("overdue")), br_date(r.get("suspension")), br_date(r.get("deletion")),
                  br_date(r["paid"]), "yes" if r.get("pix_code") else ""] for r in data["invoices"]])
    click.echo("\nwhat comes next:" + ("" if view.next else " nothing (no open invoice with notices ahead)"))
    for e in view.next:
        click.echo(f"  {e.date:%d/%m/%Y}  {e.stage:<18}  {', '.join(e.channels)}  ({', '.join(e.invoices)})")
    if history_limit:
        click.echo(f"\ncontact history ({len(view.history)} lines, newest first):")
        for event in view.history[:history_limit]:
            click.echo("  " + neutralise(_history_line(event)))


def _history_line(event) -> str:
    """One history line for a terminal: when (São Paulo time), what, who, and its status."""
    r = event.record
    what = {
        "sending": lambda: f"{r.get('stage') or r.get('alert') or ''} {r.get('channel')} → {r.get('recipient')}: {event.status}",
        "skipped": lambda: f"{r.get('stage')} {r.get('channel')} → {r.get('recipient')}: not sent ({r.get('reason')})",
        "payment": lambda: f"payment of {r['invoice']} on {br_date(r['paid'])}",
    }.get(event.kind, lambda: " ".join(f"{k}={v}" for k, v in r.items() if k not in _RECORD_KEYS and v not in ("", None)))()
    by = f" (by {event.actor})" if event.actor and event.actor != "daemon" else ""
    return f"{event.when:%d/%m/%Y %H:%M}  {event.kind:<17} {what}{by}".rstrip()


# A record's keys that every history line already shows, or that only the chain needs.
_RECORD_KEYS = frozenset({"seq", "id", "event", "time", "actor", "prev", "account"})




def _shown(value) -> str:
    """A field of `show` as plain text: lists joined, social handles as `network: handle`."""
    if value in (None, "", [], {}):
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{network}: {handle}" for network, handle in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)
