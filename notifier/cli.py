"""The command line: a thin edge over the library.

This is the only place that reads the clock, the environment and `.env`; every command turns them
into plain values (today, a `Config`) and calls library functions. Errors a person can fix are
printed as one sentence with a non-zero exit, never a traceback.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import click
import orjson
from dotenv import dotenv_values

from . import rules
from .attempts import AttemptLog
from .calendar import invoice_dates
from .config import CHANNELS, STAGES, Config, ConfigError, load_config
from .delivery import DeliveryError, deliver, failure_alerts, notices_for_account, render_all

@dataclass
class Context:
    config: Config

    def store(self):
        from .store import Store
        return Store(self.config.state, retention_months=self.config.retention_months)

    def now(self) -> datetime:
        return datetime.now(self.config.tz)

    def today(self, given: date | None) -> date:
        return given or self.now().date()


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors a person can cause and fix: one sentence, no traceback. Anything else is a bug and
    keeps its traceback. Imported lazily so that a command pays only for the modules it uses."""
    from channels import ChannelError
    from .importer import InvalidImport
    from .render import TemplateError
    from .store import StoreError
    return (ConfigError, DeliveryError, StoreError, InvalidImport, TemplateError, ChannelError)


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _user_errors() as exc:
            raise click.ClickException(str(exc)) from None


DATE = click.DateTime(formats=["%Y-%m-%d"])


def date_option(help_text="The day to act as (YYYY-MM-DD); default: today in the configured time zone."):
    return click.option("--date", "day", type=DATE, envvar="NOTIFIER_DATE", help=help_text,
                        callback=lambda c, p, v: v.date() if v else None)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON instead of a table.")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="NOTIFIER_CONFIG",
              help="TOML configuration file (env NOTIFIER_CONFIG); default: built-in settings.")
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path), envvar="NOTIFIER_STATE",
              help="State file (env NOTIFIER_STATE); default: the config's `state`, state.json.")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), default=".env", show_default=True,
              help="Secrets file read into the environment (variables already set win).")
@click.pass_context
def cli(ctx, config_path, state, env_file):
    """Dunning notifier: plans and sends billing notices and keeps the contact-attempt log."""
    environ = {**{k: v for k, v in dotenv_values(env_file).items() if v is not None}, **os.environ} \
        if env_file.exists() else dict(os.environ)
    try:
        ctx.obj = Context(load_config(config_path, environ, state))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@date_option("The day of the import (for the archive's retention window); default: today.")
@click.pass_obj
def import_(obj: Context, path: Path, day):
    """Import billing data: a JSON file, or accounts.csv (+ invoices.csv beside it), or a folder
    holding both. Upserts by id; all or nothing."""
    from .importer import parse_file
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
@date_option()
@json_option
@click.pass_obj
def plan(obj: Context, day, as_json):
    """The notices the cycle of that day would send, given the ledger."""
    today = obj.today(day)
    snap = obj.store().snapshot()
    result = rules.plan_day(today, snap.accounts(), snap.invoices(), snap.histories(), snap.ledger(),
                            obj.config.calendar, obj.config)
    if as_json:
        _echo_json([n.to_json() for n in result.notices])
        return
    _table(["account", "stage", "channel", "recipient", "invoices", "first time", "tutorial"],
           [[n.account, n.stage, n.channel, n.recipient, ", ".join(n.invoices), _yes(n.first_time), _yes(n.tutorial)]
            for n in result.notices])
    click.echo(f"{len(result.notices)} notices for {today:%d/%m/%Y}"
               + (f"; {len(result.superseded)} superseded (recorded as skipped by the cycle)" if result.superseded else ""))


@cli.command()
@click.argument("account")
@json_option
@click.pass_obj
def timeline(obj: Context, account: str, as_json):
    """Every notice date of ACCOUNT's open invoices, as if they were never paid."""
    snap = obj.store().snapshot()
    acc = _account(snap, account)
    entries = rules.account_timeline(acc, snap.invoices(account), snap.histories().get(account),
                                     obj.config.calendar, obj.config)
    if as_json:
        _echo_json([e.to_json() for e in entries])
        return
    _table(["date", "stage", "channels", "invoices", "first time"],
           [[f"{e.date:%d/%m/%Y}", e.stage, ", ".join(e.channels), ", ".join(e.invoices), _yes(e.first_time)]
            for e in entries])


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
        _echo_json(rows)
        return
    _table(["id", "company", "due day", "e-mails", "open", "amount open"],
           [[r["id"], r["company"], r["due_day"], ", ".join(r["emails"]), r["open_invoices"], r["open_amount"]]
            for r in rows])


@cli.command()
@click.argument("account")
@json_option
@click.pass_obj
def show(obj: Context, account: str, as_json):
    """What is stored for ACCOUNT, with each open invoice's dates."""
    snap = obj.store().snapshot()
    acc = _account(snap, account)
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
        "whatsapp": acc.whatsapp, "social": dict(acc.social), "due_day": acc.due_day,
        "past_delinquencies": acc.past_delinquencies, "opt_out": sorted(acc.opt_out),
        "archived_late_invoices": history.late_count if history else 0, "invoices": invoices,
    }
    if as_json:
        _echo_json(data)
        return
    for key, value in data.items():
        if key != "invoices":
            click.echo(f"{key:>24}: {value if value not in (None, [], {}) else '-'}")
    click.echo("")
    _table(["invoice", "amount", "due", "effective due", "overdue", "suspension", "deletion", "paid"],
           [[r["id"], r["amount"], _br(r["due"]), _br(r.get("effective_due")), _br(r.get("overdue")),
             _br(r.get("suspension")), _br(r.get("deletion")), _br(r["paid"])] for r in invoices])


@cli.command()
@click.option("--connect", is_flag=True, help="Also reach each provider (SMTP, Twilio...) without sending.")
@click.pass_obj
def check(obj: Context, connect):
    """Validate the configuration, every template and every channel; exit 1 on any problem."""
    import channels
    from .render import Renderer
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


def _message_options(f):
    f = click.option("--to", help="Send to this recipient instead of the account's own.")(f)
    f = click.option("--stage", type=click.Choice(STAGES), help="Use this stage instead of today's plan.")(f)
    return date_option()(f)


@cli.command()
@click.argument("account")
@click.option("--channel", type=click.Choice(CHANNELS), help="Only this channel.")
@_message_options
@click.pass_obj
def preview(obj: Context, account, channel, stage, to, day):
    """Print exactly what would be sent to ACCOUNT (today's plan, or --stage)."""
    from .render import Renderer
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


@cli.command()
@click.argument("account")
@click.option("--channel", type=click.Choice(CHANNELS), required=True, help="The channel to send on.")
@_message_options
@click.pass_obj
def send(obj: Context, account, channel, stage, to, day):
    """Send one message to ACCOUNT now and record the attempt in the contact-attempt log.

    For operators testing a setup: it does not mark the plan's notice as handled."""
    from .render import Renderer
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
    failed = 0
    for d in deliveries:
        r = d.result
        failed += not r.ok
        reason = "" if r.ok else f" [{'permanent' if r.permanent else 'temporary'}]{' ' + r.code if r.code else ''}: {r.detail}"
        click.echo(f"{d.notice.channel} → {d.notice.recipient}: {r.status} via {r.provider}"
                   f"{' (' + r.provider_id + ')' if r.provider_id else ''}{reason}")
    if failed:
        sys.exit(1)


def _account(snap, account_id):
    acc = snap.account(account_id)
    if acc is None:
        raise click.ClickException(f"no account {account_id!r} in the store")
    return acc


def _echo_json(data) -> None:
    # orjson: a plan of tens of thousands of notices prints in a fraction of json.dumps' time.
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _table(headers: list[str], rows: list[list]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def _br(iso: str | None) -> str:
    return date.fromisoformat(iso).strftime("%d/%m/%Y") if iso else "-"


def main() -> None:
    cli(prog_name="notifier")
