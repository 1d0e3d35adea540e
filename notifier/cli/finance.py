"""Finance and support: prove what was sent (verify-log, attempts, audit) and what it achieved (report)."""
from __future__ import annotations

import sys
from contextlib import contextmanager, suppress
from pathlib import Path

import click
import orjson

from ..config import CHANNELS
from .base import Context, Day, FilePath, cli, echo_json, print_table


def _in_order(ctx, param, value):
    """--since after --until selects nothing: a swapped pair, said as such rather than listed as
    an empty result. Checked by whichever of the two click reads second."""
    other = ctx.params.get("until" if param.name == "since" else "since")
    since, until = (value, other) if param.name == "since" else (other, value)
    if since and until and since > until:
        raise click.UsageError(f"--since {since} is after --until {until}: no day is in between (swapped?)")
    return value


since_option = click.option("--since", type=Day(), callback=_in_order,
                            help="From this day on (YYYY-MM-DD, São Paulo time).")
until_option = click.option("--until", type=Day(), callback=_in_order, help="Up to and including this day (YYYY-MM-DD).")


@cli.command("verify-log")
@click.option("--json", "as_json", is_flag=True, help="The verdict as JSON.")
@click.option("--chain-only", is_flag=True, help="Check the records' chain and head only, not the stored messages (faster).")
@click.option("--accept-cut", is_flag=True,
              help="The log lost records the state had seen and there is no backup: go on with it as it is. "
                   "The cut stays on record; every later verdict shows it.")
@click.option("--by", help="Who accepts the cut (with --accept-cut).")
@click.pass_obj
def verify_log(obj: Context, as_json, chain_only, accept_cut, by):
    """Check the attempt log's hash chain, every stored message against its SHA-256, and the
    log's head against the one the state recorded; exit 1 naming the first tampered record."""
    if accept_cut:
        if not by or not by.strip():
            raise click.UsageError("--accept-cut needs --by NAME: who decided to go on without the cut records")
        cut = obj.store().accept_log_cut(by.strip(), obj.now().isoformat(timespec="seconds"))
        click.echo("the log and the state agree: nothing to accept" if cut is None else
                   f"accepted: the state had seen {cut['seen']['count']:,} records, the log has "
                   f"{cut['found']['count']:,}; kept on record as a cut", err=True)
    snap = obj.store().snapshot()
    verdict = _verdict(obj, snap, check_messages=not chain_only)
    for cut in (snap.meta("log_cuts") or {}).get("cuts", []):
        verdict.notes.append(f"on {cut['at']} {cut['by']} accepted a cut log: the state had seen "
                             f"{cut['seen']['count']:,} records (last {cut['seen']['hash']}), the log held "
                             f"{cut['found']['count']:,} (last {cut['found']['hash']})")
    if as_json:
        echo_json(verdict.to_json())
    else:
        log = obj.log()
        click.echo(f"{log.path}: {verdict.records} records, {verdict.messages} stored messages; "
                   f"head {verdict.head.count} {verdict.head.hash}")
        for note in verdict.notes:
            click.echo(f"  note: {note}")
        for problem in verdict.problems:
            click.echo(f"  PROBLEM: {problem}", err=True)
        click.echo("chain and messages: ok" if verdict.ok else f"{len(verdict.problems)} problem(s): the log was altered")
    if not verdict.ok:
        sys.exit(1)


def _verdict(obj: Context, snap=None, check_messages: bool = True):
    """The log checked against the head the state recorded (none when there is no state yet)."""
    from notifier.log.verify import verify
    log = obj.log()
    snap = snap or obj.store().snapshot()
    return verify(log.path, log.messages, snap.meta("log_head"), check_messages)


@cli.command()
@click.argument("account")
@since_option
@until_option
@click.option("--html", "html_path", type=FilePath(), required=True,
              help="Write the report here (one self-contained HTML file).")
@click.option("--pdf", "pdf_path", type=FilePath(),
              help="Also print it to this PDF (A4) with headless Chromium.")
@click.pass_obj
def audit(obj: Context, account, since, until, html_path, pdf_path):
    """The report finance sends ACCOUNT: every contact attempt, its status history and exact text,
    and the log's integrity check, in Portuguese."""
    from notifier.reports.audit import render_audit
    from notifier.reports.pdf import PdfError, html_to_pdf
    snap = obj.store().snapshot()
    # The whole chain; of the stored messages, the account's own (each checked as it is shown).
    verdict = _verdict(obj, snap, check_messages=False)
    args = (obj.config, snap, obj.log(), account, verdict, snap.meta("log_head"), obj.now(), since, until)
    html = render_audit(*args)
    if snap.account(account) is None and "data-attempt" not in html:
        raise click.ClickException(f"no account {account!r} in the store and no attempt for it in the log")
    _write_text(html_path, html)
    damaged = html.count("data-damaged")  # the account's stored messages that fail their hash
    click.echo(f"{html_path}: audit of {account}, {html.count('data-attempt')} attempt(s); log "
               + (f"NOT verified ({len(verdict.problems)} problem(s))" if not verdict.ok else
                  f"chain verified, but {damaged} stored message(s) do NOT match their hash" if damaged else "verified"))
    if pdf_path:
        printable = pdf_path.with_name(pdf_path.name + ".html")
        _write_text(printable, render_audit(*args, expanded=True))
        try:
            html_to_pdf(printable, pdf_path)
        except PdfError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            printable.unlink(missing_ok=True)
        click.echo(f"{pdf_path}: the same report as PDF (A4, every text expanded)")


def _write_text(path: Path, text: str) -> None:
    """Written under a temporary name and renamed: a report is whole or absent."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with suppress(OSError):  # a half-written report is not left behind
            tmp.unlink(missing_ok=True)
        raise click.ClickException(f"{path}: cannot write: {exc.strerror or exc}") from None


@cli.command()
@click.option("--account", help="Only this account.")
@click.option("--invoice", help="Only attempts about this invoice.")
@since_option
@until_option
@click.option("--channel", type=click.Choice(CHANNELS), help="Only this channel.")
@click.option("--status", help="Only attempts whose latest status is this (sent, delivered, failed, bounced...).")
@click.option("--actor", help='Only attempts made by this actor ("daemon", or a staff member).')
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="csv: for Excel in Portuguese (; UTF-8 with BOM, dd/mm/aaaa hh:mm); json: one object per line.")
@click.option("--output", "-o", type=FilePath(), help="Write to this file instead of the screen.")
@click.pass_obj
def attempts(obj: Context, account, invoice, since, until, channel, status, actor, fmt, output):
    """One line per contact attempt with its latest status, oldest first."""
    from notifier.reports.exports import row, table_lines, write_csv, write_json_lines
    from notifier.log.history import Filters, attempts as select
    tz = obj.config.tz
    filters = Filters(account, invoice, since, until, channel, status, actor, tz)
    rows = (row(a) for a in select(obj.log(), filters))
    with _output(output) as out:
        if fmt == "csv":
            write_csv(rows, out, tz)
        elif fmt == "json":
            write_json_lines(rows, out)
        else:
            for line in table_lines(rows, tz):
                out.write(line + "\n")


@contextmanager
def _output(path: Path | None):
    """The file to write (UTF-8, newlines as written), or standard output. A file that cannot be
    written to the end (a full disk) is an error naming it, and what was written of it is removed:
    a listing cut short would read as a complete one."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            yield f
    except OSError as exc:
        if path.is_file():
            with suppress(OSError):
                path.unlink()
        raise click.ClickException(f"{path}: cannot write: {exc.strerror or exc}") from None


def _month(ctx, param, value):
    import re
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise click.BadParameter("write the month as YYYY-MM, e.g. 2026-11")
    return value


@cli.command()
@click.option("--month", required=True, callback=_month, help="The month of the notices (YYYY-MM).")
@click.option("--html", "html_path", type=FilePath(), help="Also write the report as HTML, with a chart.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="csv: for Excel in Portuguese (; BOM, decimal comma); json: one object per line.")
@click.option("--window", type=click.IntRange(0, 30), default=3, show_default=True,
              help="Days after a notice within which a payment counts as recovered.")
@click.pass_obj
def report(obj: Context, month, html_path, fmt, window):
    """Per stage and channel: attempts, sent, delivered, read, bounced, failed, and the accounts
    that paid within --window days after the notice (recovery rate and amount)."""
    from notifier.reports.monthly import build, month_attempts, payments_from
    from notifier.state.store import archive_path_for
    tz = obj.config.tz
    found = month_attempts(obj.log(), month, tz)
    wanted = {i for a in found for i in a.sending.get("invoices") or ()}
    paid = payments_from(obj.store().snapshot(), archive_path_for(obj.config.state), wanted)
    lines = build(found, paid.get, tz, window)
    if html_path:
        _write_text(html_path, _report_html(obj, month, lines, window))
    if fmt == "json":
        for line in lines:
            click.echo(orjson.dumps(line.to_json()).decode())
    elif fmt == "csv":
        _report_csv(lines)
    else:
        print_table(["stage", "channel", "attempts", "sent", "delivered", "read", "bounced", "failed", "accounts",
                     f"paid ≤{window}d", "rate", "recovered"],
                    [[l.stage, l.channel, l.attempts, l.sent, l.delivered, l.read, l.bounced, l.failed,
                      len(l.accounts), len(l.paid_accounts), f"{l.rate:.1%}", l.recovered] for l in lines])
    if html_path:
        click.echo(f"{html_path}: the report as HTML", err=fmt != "table")


def _report_csv(lines) -> None:
    import csv
    from notifier.reports.exports import BOM, CHANNEL_LABELS, STAGE_LABELS, br_decimal
    out = sys.stdout
    out.write(BOM)
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["Etapa", "Canal", "Tentativas", "Enviadas", "Entregues", "Lidas", "Devolvidas", "Falhas",
                     "Contas", "Pagaram na janela", "Recuperação (%)", "Valor recuperado (R$)"])
    for l in lines:
        writer.writerow([STAGE_LABELS.get(l.stage, l.stage), CHANNEL_LABELS.get(l.channel, l.channel), l.attempts,
                         l.sent, l.delivered, l.read, l.bounced, l.failed, len(l.accounts), len(l.paid_accounts),
                         br_decimal(l.rate * 100), br_decimal(l.recovered)])


def _report_html(obj: Context, month: str, lines, window: int) -> str:
    from babel.dates import format_date
    from notifier.reports.audit import environment
    from notifier.reports.exports import CHANNEL_LABELS, STAGE_LABELS
    from notifier.reports.monthly import month_bounds
    first, _ = month_bounds(month)
    return environment().get_template("report.html").render(
        company=obj.config.company, lines=lines, window=window,
        month_label=format_date(first, "MMMM 'de' yyyy", locale="pt_BR"),
        generated=obj.now().strftime("%d/%m/%Y %H:%M"),
        stage_label=lambda s: STAGE_LABELS.get(s, s), channel_label=lambda c: CHANNEL_LABELS.get(c, c),
        percent=lambda r: f"{r * 100:.1f}%".replace(".", ","),
    )
