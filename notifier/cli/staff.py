"""Support staff stepping in: escalate, record a contact, staff tasks, holds. Every command
names its actor (`--by`), recorded in the attempt log."""
from __future__ import annotations

import sys

import click

from .base import Context, Day, by_option, cli, date_option, echo_json, json_option, note_option, print_table
from .daemon import clock_for

HOLD_REASONS = ("promised_payment", "disputed", "negotiating", "other")
CONTACT_CHANNELS = ("phone", "instagram", "facebook", "whatsapp", "other")
CONTACT_OUTCOMES = ("reached", "no_answer", "wrong_contact", "promised_payment", "other")
ESCALATION_CHANNELS = ("whatsapp", "sms", "social", "email")



@cli.command()
@click.argument("account")
@by_option()
@click.option("--channel", "channels_", multiple=True, type=click.Choice(ESCALATION_CHANNELS),
              help="A channel of the escalation (repeat); default: whatsapp, social and email.")
@note_option()
@click.option("--now", "override", is_flag=True, help="Send outside contact hours too (logged as such).")
@date_option("Act as of this day (YYYY-MM-DD), at the configured cycle time; default: now.")
@click.pass_obj
def escalate(obj: Context, account, by, channels_, note, override, day):
    """Send ACCOUNT the extra-effort sequence now (current stage, with the tutorial), respecting
    opt-outs and contact hours."""
    from notifier.run.render import Renderer
    from notifier.staff.actions import escalate as run
    outcomes, waiting, refused = run(obj.store(), obj.config, obj.log(), Renderer(obj.config), clock_for(obj, day, None), account, by,
                            channels_ or ("whatsapp", "social", "email"), note, override)
    from notifier.channels import BLOCKED, FAILED
    for o in outcomes:
        r = o.result
        click.echo(f"{o.job.notice.channel} → {o.job.notice.recipient}: {r.status}"
                   + ("" if r.ok else f" ({r.code or ''} {r.detail})"))
    for notice in refused:
        click.echo(f"{notice.channel} → {notice.recipient}: skipped, the number is on the do-not-contact list")
    for notice, at in waiting:
        click.echo(f"{notice.channel} → {notice.recipient}: " + (
            f"waits for contact hours: the daemon sends it from {at:%d/%m/%Y %H:%M} (--now to send it now)" if at else
            "not sent: no contact hours within two weeks (--now to send anyway)"), err=True)
    # A social DM handed to support staff (`task`) is how a plain handle is reached, not a failure.
    if any(o.result.status in (FAILED, BLOCKED) for o in outcomes):
        sys.exit(1)


@cli.command()
@click.argument("account")
@by_option()
@click.option("--channel", required=True, type=click.Choice(CONTACT_CHANNELS))
@click.option("--outcome", required=True,
              type=click.Choice(CONTACT_OUTCOMES))
@note_option()
@date_option("Act as of this day (YYYY-MM-DD), at the configured cycle time; default: now.")
@click.pass_obj
def contact(obj: Context, account, by, channel, outcome, note, day):
    """Record a contact with ACCOUNT made by hand, in the attempt log."""
    from notifier.staff.actions import record_contact
    record = record_contact(obj.store(), obj.log(), clock_for(obj, day, None)(), account, by, channel, outcome, note)
    click.echo(f"recorded contact {record} with {account} by {by.name}: {channel}, {outcome}")


@cli.group(invoke_without_command=True)
@click.option("--open", "only_open", is_flag=True, help="Only the tasks nobody has closed.")
@json_option
@click.pass_context
def tasks(ctx, only_open, as_json):
    """Staff tasks: social networks to contact by hand, deletions due, `unknown` attempts after a
    crash, bounces to fix, and escalations waiting for contact hours (the daemon sends them).
    `tasks done ID --by NAME` closes one (ID: the id or its first 6 characters or more)."""
    if ctx.invoked_subcommand is not None:
        return
    from notifier.reports.exports import br_datetime
    from notifier.staff.actions import task_list
    found = [t for t in task_list(ctx.obj.log(), ctx.obj.store().snapshot()) if not only_open or t.done is None]
    if as_json:
        echo_json([t.to_json() for t in found])
        return
    tz = ctx.obj.config.tz
    print_table(["id", "kind", "time (São Paulo)", "account", "channel", "recipient", "open", "detail"],
                [[t.id, t.kind, br_datetime(t.time, tz), t.account, t.channel, t.recipient, "" if t.done else "open",
                  f"{t.detail} until {br_datetime(t.until, tz)}" if t.until else t.detail[:60]] for t in found])


@tasks.command("done")
@click.argument("task_id")
@by_option()
@note_option(("--outcome",), "What was done (free text).")
@date_option("Act as of this day (YYYY-MM-DD), at the configured cycle time; default: now.")
@click.pass_obj
def tasks_done(obj: Context, task_id, by, outcome, day):
    """Close staff task TASK_ID."""
    from notifier.staff.actions import close_task
    task = close_task(obj.log(), clock_for(obj, day, None)(), task_id, by, outcome)
    click.echo(f"closed task {task.id} ({task.kind}, {task.account}) by {by.name}")


@cli.command()
@click.argument("account")
@by_option()
@click.option("--reason", required=True, type=click.Choice(HOLD_REASONS))
@click.option("--until", required=True, type=Day(),
              help="The day the hold ends by itself (YYYY-MM-DD).")
@note_option()
@click.option("--replace", is_flag=True, help="Replace another person's hold on the account (logged).")
@date_option("Act as of this day (YYYY-MM-DD), at the configured cycle time; default: now.")
@click.pass_obj
def hold(obj: Context, account, by, reason, until, note, replace, day):
    """Pause ACCOUNT's ladder: nothing automatic goes out until --until (notices caught up after).
    Another person's hold is replaced only with --replace."""
    from notifier.staff.actions import place_hold
    placed = place_hold(obj.store(), obj.log(), obj.config, clock_for(obj, day, None)(), account, by, reason,
                        until, note, replace)
    old = placed.replaced
    click.echo(f"{account}: on hold ({reason}) until {until:%d/%m/%Y}, by {by.name}"
               + (f"; replaces the hold of {old.by} ({old.reason}, until {old.until:%d/%m/%Y})" if old else ""))
    for invoice, suspension in placed.unwarned:
        click.echo(f"note: invoice {invoice.id} reaches its suspension date {suspension:%d/%m/%Y} during this hold, "
                   "and its warning will not be sent after it: tell the customer of the suspension yourself, "
                   "or end the hold earlier")
    for invoice, deletion in placed.deletions:
        click.echo(f"note: invoice {invoice.id} reaches its deletion date {deletion:%d/%m/%Y} during this hold: "
                   f"its deletion warning and finance's deletion task wait until the hold ends ({until:%d/%m/%Y})")


@cli.command()
@click.argument("account")
@by_option()
@date_option("Act as of this day (YYYY-MM-DD), at the configured cycle time; default: now.")
@click.pass_obj
def release(obj: Context, account, by, day):
    """End ACCOUNT's hold now."""
    from notifier.staff.actions import release_hold
    h = release_hold(obj.store(), obj.log(), clock_for(obj, day, None)(), account, by)
    click.echo(f"{account}: hold ({h.reason}, until {h.until:%d/%m/%Y}) released by {by.name}")
