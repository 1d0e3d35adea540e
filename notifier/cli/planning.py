"""What the notifier would do: the day's plan, an account's timeline, a message previewed."""
from __future__ import annotations

import json

import click

from ..config import CHANNELS
from .base import cli, Context, date_option, json_option, message_options, get_account, echo_json, print_table, yes

@cli.command()
@date_option()
@json_option
@click.pass_obj
def plan(obj: Context, day, as_json):
    """The notices the cycle of that day would send, given the ledger."""
    from notifier.billing import rules
    today = obj.today(day)
    snap = obj.store().snapshot()
    result = rules.plan_day(today, snap.accounts(), snap.invoices(), snap.histories(), snap.ledger(),
                            obj.config.calendar, obj.config)
    if as_json:
        echo_json([n.to_json() for n in result.notices])
        return
    print_table(["account", "stage", "channel", "recipient", "invoices", "first time", "tutorial"],
           [[n.account, n.stage, n.channel, n.recipient, ", ".join(n.invoices), yes(n.first_time), yes(n.tutorial)]
            for n in result.notices])
    click.echo(f"{len(result.notices)} notices for {today:%d/%m/%Y}"
               + (f"; {len(result.superseded)} superseded (recorded as skipped by the cycle)" if result.superseded else ""))


@cli.command()
@click.argument("account")
@json_option
@click.pass_obj
def timeline(obj: Context, account: str, as_json):
    """Every notice date of ACCOUNT's open invoices, as if they were never paid."""
    from notifier.billing import rules
    snap = obj.store().snapshot()
    acc = get_account(snap, account)
    entries = rules.account_timeline(acc, snap.invoices(account), snap.histories().get(account),
                                     obj.config.calendar, obj.config)
    hold = snap.holds().get(account)
    if as_json:
        echo_json([e.to_json() for e in entries])
        return
    if hold is not None:  # the notices dated inside it wait for it to end (notifier hold)
        click.echo(f"on hold ({hold.reason}, by {hold.by}) from {hold.since:%d/%m/%Y} until {hold.until:%d/%m/%Y}")
    if not entries:
        click.echo(f"{account} has no open invoice: no notice ahead.")
        return
    print_table(["date", "stage", "channels", "invoices", "first time"],
           [[f"{e.date:%d/%m/%Y}", e.stage, ", ".join(e.channels), ", ".join(e.invoices), yes(e.first_time)]
            for e in entries])


@cli.command()
@click.argument("account")
@click.option("--channel", type=click.Choice(CHANNELS), help="Only this channel.")
@message_options
@click.pass_obj
def preview(obj: Context, account, channel, stage, to, day):
    """Print exactly what would be sent to ACCOUNT (today's plan, or --stage)."""
    from notifier.run.delivery import notices_for_account, render_all
    from notifier.run.render import Renderer
    today = obj.today(day)
    snap = obj.store().snapshot()
    notices = notices_for_account(snap, obj.config, account, today, stage, channel, to)
    if not notices:
        raise click.ClickException(f"nothing planned for {account} on {today:%d/%m/%Y}; pass --stage to see a stage")
    for notice, message in render_all(snap, Renderer(obj.config), notices, today):
        click.echo(f"===== {notice.channel} → {notice.recipient} ({notice.stage}{', with tutorial' if notice.tutorial else ''})")
        if message.subject:
            click.echo(f"Assunto: {message.subject}")
        if message.content_sid:
            click.echo(f"Template: {message.content_sid} {json.dumps(dict(message.content_variables or {}), ensure_ascii=False)}")
        click.echo(message.text.rstrip() + "\n")
