"""What a customer asked for (support staff): stop WhatsApp or SMS after a SAIR/PARAR/STOP reply."""
from __future__ import annotations

import click

from .base import cli, Context, by_option, date_option

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
