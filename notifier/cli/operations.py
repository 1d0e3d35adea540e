"""Running the notifier (operations): check the setup, send a message by hand."""
from __future__ import annotations

import getpass
import sys

import click

from ..config import CHANNELS, Config
from .base import cli, Context, date_option, message_options


@cli.command()
@click.option("--connect", is_flag=True, help="Also reach each provider (SMTP, Twilio...) without sending.")
@date_option("The day whose month the cost of blocked WhatsApp messages is counted for (YYYY-MM-DD); default: today.")
@click.pass_obj
def check(obj: Context, connect, day):
    """Validate the configuration, every template and every channel; exit 1 on any problem.

    Each channel's line says whether it is live (messages leave the machine) or writes to the
    outbox, and where."""
    from notifier.run.checkup import channel_statuses
    from notifier.run.render import Renderer
    renderer = Renderer(obj.config)
    problems = [f"templates: {p}" for p in renderer.check()]
    problems += company_problems(obj.config) + social_tutorial_problems(obj.config)
    warnings = [f"templates: {w}" for w in renderer.warnings()]
    for status in channel_statuses(obj.config, connect):
        problems += status.problems
        warnings += status.warnings
        if status.live is not None:
            mode = "live" if status.live else "outbox"
            click.echo(f"{status.name:>9}: {'ok' if not status.problems else 'PROBLEM'}, {mode}: {status.where}")
    for warning in warnings:
        click.echo(f"  warning: {warning}")
    if obj.config.company.is_example:
        click.echo("  warning: [company] is the built-in example: set your legal name, CNPJ and address before sending to customers")
    from notifier.staff.actions import whatsapp_cost_line, whatsapp_records, without_whatsapp
    today = obj.today(day)
    cost = whatsapp_cost_line(without_whatsapp(whatsapp_records(obj.log().path, today, obj.config.tz), today,
                                               obj.config.tz), today)
    if cost:
        click.echo(f"  warning: whatsapp: {cost}")
    for p in problems:
        click.echo(f"  problem: {p}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found")
    click.echo(f"configuration ({obj.config.source}) and templates: ok")


def company_problems(config: Config) -> list[str]:
    """Every message names the company by its CNPJ (CDC art. 42-A): a wrong one is a problem."""
    from notifier.billing.documents import normalize_document
    try:
        normalize_document(config.company.cnpj)
    except ValueError as exc:
        return [f"{config.source}: company.cnpj: {exc}"]
    return []


def social_tutorial_problems(config: Config) -> list[str]:
    """RULES.md: the tutorial goes with a first-time delinquent's first social DM. A staff task
    carries its text to paste; a DM a bot sends (`[channels.social] send = true`) has room only
    for its link, TUTORIAL_URL."""
    in_ladder = any("social" in s.channels + s.first_time_channels for s in config.ladder)
    options = config.channels.get("social", {})  # not a table: the channel's own check says so
    bots = isinstance(options, dict) and options.get("send") is True
    if in_ladder and bots and not config.env.get("TUTORIAL_URL"):
        return ["TUTORIAL_URL: not set, so social DMs sent by a bot cannot carry the tutorial "
                "(set it to the tutorial's page on the company's site)"]
    return []


@cli.command()
@click.argument("account")
@click.option("--channel", type=click.Choice(CHANNELS), required=True, help="The channel to send on.")
@message_options
@click.pass_obj
def send(obj: Context, account, channel, stage, to, day):
    """Send one message to ACCOUNT now and record the attempt in the contact-attempt log.

    For operators testing a setup: it does not mark the plan's notice as handled. With --to, one
    message goes to that recipient instead; a failure there raises no alert about the customer's
    record. A problem of our configuration blocks only the messages that need the broken part."""
    from notifier.channels import BLOCKED, FAILED
    from notifier.run.delivery import (config_alerts, deliver, failure_alerts, notice_fields, notices_for_account, render_or_block,
                            split_do_not_contact)
    from notifier.staff.optout import record_stop_replies
    from notifier.run.render import Renderer
    today = obj.today(day)
    snap = obj.store().snapshot()
    notices, refused = split_do_not_contact(obj.config, notices_for_account(snap, obj.config, account, today, stage,
                                                                             channel, to))
    renderer, log = Renderer(obj.config), obj.log()
    obj.store().refuse_a_cut_log()  # before recovery appends to a log that lost records
    log.recover(obj.now())  # an attempt a crash interrupted becomes `unknown`, never re-sent
    actor = getpass.getuser()
    for n in refused:
        log.skip(obj.now(), notice_fields(n), "do-not-contact", actor=actor)
        click.echo(f"{n.channel} → {n.recipient}: skipped, the number is on the do-not-contact list")
    rendered, deliveries = render_or_block(snap, renderer, notices, today)
    deliveries += deliver(rendered, obj.config, log, obj.now, actor)
    if to is None:
        deliveries += deliver(failure_alerts(snap, renderer, deliveries, today), obj.config, log, obj.now, actor)
    deliveries += deliver(config_alerts(deliveries, today), obj.config, log, obj.now, actor)
    for account_id, name in record_stop_replies(obj.store(), deliveries, today):  # notifier/staff/optout.py
        click.echo(f"{account_id}: opted out of {name} (the customer replied STOP)")
    for d in deliveries:
        click.echo(_outcome(d.notice.channel, d.notice.recipient, d.result))
    if any(d.result.status in (FAILED, BLOCKED) for d in deliveries):
        sys.exit(1)


def _outcome(channel: str, recipient: str, r) -> str:
    """One line per message: its status (sent, outbox, task, failed, blocked), who answered and why."""
    from notifier.channels import BLOCKED, FAILED, OUTBOX
    if r.status == OUTBOX:  # nothing left the machine: never worded as sent
        return f"{channel} → {recipient or '-'}: not sent, written to the local outbox ({r.provider_id})"
    line = f"{channel} → {recipient or '-'}: {r.status} via {r.provider}"
    if r.provider_id:
        line += f" ({r.provider_id})"
    if r.status == FAILED:
        line += f" [{'permanent' if r.permanent else 'temporary'}]"
    if r.status in (FAILED, BLOCKED):
        line += f"{' ' + r.code if r.code else ''}: {r.detail}"
    return line
