"""Running the notifier (operations): check the setup, send a message by hand."""
from __future__ import annotations

import sys

import click

from ..attempts import AttemptLog
from ..config import CHANNELS
from ..delivery import deliver, failure_alerts, notices_for_account, render_all
from ..optout import record_stop_replies
from .base import cli, Context, message_options

@cli.command()
@click.option("--connect", is_flag=True, help="Also reach each provider (SMTP, Twilio...) without sending.")
@click.pass_obj
def check(obj: Context, connect):
    """Validate the configuration, every template and every channel; exit 1 on any problem."""
    import channels
    from ..render import Renderer
    problems = [f"templates: {p}" for p in Renderer(obj.config).check()]
    for name in CHANNELS:
        try:
            channel = channels.build(name, obj.config)
        except channels.ChannelError as exc:
            problems.append(f"{name}: {exc}")
            continue
        try:
            found = channel.check(connect=connect)
            problems += [f"{name}: {p}" for p in found]
            click.echo(f"{name:>9}: {'ok' if not found else 'PROBLEM'} ({channel.describe()})")
        finally:
            channel.close()
    missing = Renderer(obj.config).whatsapp_missing_stages()
    if missing:  # h6b turns this into a problem per stage; the list comes from the renderer
        click.echo(f"  warning: whatsapp: no approved template (content_sid) for {', '.join(missing)}: "
                   "see docs/whatsapp-templates/")
    if obj.config.company.is_example:
        click.echo("  warning: [company] is the built-in example: set your legal name, CNPJ and address before sending to customers")
    for p in problems:
        click.echo(f"  problem: {p}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found")
    click.echo(f"configuration ({obj.config.source}) and templates: ok")


@cli.command()
@click.argument("account")
@click.option("--channel", type=click.Choice(CHANNELS), required=True, help="The channel to send on.")
@message_options
@click.pass_obj
def send(obj: Context, account, channel, stage, to, day):
    """Send one message to ACCOUNT now and record the attempt in the contact-attempt log.

    For operators testing a setup: it does not mark the plan's notice as handled."""
    from ..render import Renderer
    today = obj.today(day)
    snap = obj.store().snapshot()
    notices = notices_for_account(snap, obj.config, account, today, stage, channel, to)
    renderer, log = Renderer(obj.config), AttemptLog(obj.config.attempt_log)
    problems = renderer.check()  # a broken template is found before a customer sees it
    if problems:
        raise click.ClickException("nothing sent: the templates have problems (see `notifier check`):\n  "
                                   + "\n  ".join(problems))
    deliveries = deliver(render_all(snap, renderer, notices, today), obj.config, log, obj.now)
    deliveries += deliver(failure_alerts(snap, renderer, deliveries, today), obj.config, log, obj.now)
    for account_id, name in record_stop_replies(obj.store(), deliveries, today):  # notifier/optout.py
        click.echo(f"{account_id}: opted out of {name} (the customer replied STOP)")
    failed = 0
    for d in deliveries:
        r = d.result
        failed += not r.ok
        reason = "" if r.ok else f" [{'permanent' if r.permanent else 'temporary'}]{' ' + r.code if r.code else ''}: {r.detail}"
        click.echo(f"{d.notice.channel} → {d.notice.recipient}: {r.status} via {r.provider}"
                   f"{' (' + r.provider_id + ')' if r.provider_id else ''}{reason}")
    if failed:
        sys.exit(1)
