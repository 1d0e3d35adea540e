"""Running the notifier (operations): check the setup, send a message by hand."""
from __future__ import annotations

import getpass
import sys

import click

from ..config import CHANNELS
from ..delivery import deliver, failure_alerts, notices_for_account, render_all
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
    renderer, log = Renderer(obj.config), obj.log()
    problems = renderer.check()  # a broken template is found before a customer sees it
    if problems:
        raise click.ClickException("nothing sent: the templates have problems (see `notifier check`):\n  "
                                   + "\n  ".join(problems))
    log.recover(obj.now())  # an attempt a crash interrupted becomes `unknown`, never re-sent
    actor = getpass.getuser()
    deliveries = deliver(render_all(snap, renderer, notices, today), obj.config, log, obj.now, actor)
    deliveries += deliver(failure_alerts(snap, renderer, deliveries, today), obj.config, log, obj.now, actor)
    failed = 0
    for d in deliveries:
        r = d.result
        failed += not r.ok
        reason = "" if r.ok else f" [{'permanent' if r.permanent else 'temporary'}]{' ' + r.code if r.code else ''}: {r.detail}"
        click.echo(f"{d.notice.channel} → {d.notice.recipient}: {r.status} via {r.provider}"
                   f"{' (' + r.provider_id + ')' if r.provider_id else ''}{reason}")
    if failed:
        sys.exit(1)
