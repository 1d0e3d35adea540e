"""Finance and support: prove what was sent (verify-log, attempts, audit) and what it achieved (report)."""
from __future__ import annotations

import sys
from contextlib import contextmanager, suppress
from pathlib import Path

import click
import orjson

from ..config import CHANNELS, STAGES
from .base import Context, Day, FilePath, cli, date_option, echo_json, print_table


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


def _head(ctx, param, value):
    """`--head COUNT:HASH` as a Head. The staff summary's line ("Registro de tentativas: 1.234
    registros, último hash <hash>") is taken as it is too, pasted from the e-mail."""
    if value is None:
        return None
    from notifier.log.verify import parse_head
    head = parse_head(value)
    if head is None:
        raise click.BadParameter("write the head as COUNT:HASH, e.g. 1234:<the 64 hex digits of the last record's "
                                 "SHA-256>, as the audit report prints it (or paste the staff summary's line)")
    return head


@cli.command("verify-log")
@click.option("--json", "as_json", is_flag=True, help="The verdict as JSON.")
@click.option("--chain-only", is_flag=True, help="Check the records' chain and head only, not the stored messages (faster).")
@click.option("--accept-cut", is_flag=True,
              help="The log lost records the state had seen and there is no backup: go on with it as it is. "
                   "The cut stays on record; every later verdict shows it.")
@click.option("--by", help="Who accepts the cut (with --accept-cut).")
@click.option("--head", "outside", callback=_head,
              help="COUNT:HASH, a head kept off this machine (the staff summary's \"Registro de tentativas\" line, "
                   "an audit report): prove the log still holds exactly those COUNT records.")
@click.pass_obj
def verify_log(obj: Context, as_json, chain_only, accept_cut, by, outside):
    """Check the attempt log's hash chain, every stored message against its SHA-256, and the
    log's head against the one the state keeps (and --head); exit 1 naming the first tampered
    record."""
    if accept_cut:
        if not by or not by.strip():
            raise click.UsageError("--accept-cut needs --by NAME: who decided to go on without the cut records")
        cut = obj.store().accept_log_cut(by.strip(), obj.now().isoformat(timespec="seconds"))
        click.echo("the log and the state agree: nothing to accept" if cut is None else
                   f"accepted: the state had seen {cut['seen']['count']:,} records, the log has "
                   f"{cut['found']['count']:,}; kept on record as a cut", err=True)
    snap = obj.store().snapshot()
    verdict = _verdict(obj, check_messages=not chain_only, outside=outside)
    if outside and verdict.ok:
        verdict.notes.append(f"the head given, {outside.count}:{outside.hash}, is in the log: "
                             f"its first {outside.count} records are the ones of that head")
    from notifier.log.verify import cut_notes
    verdict.notes.extend(cut_notes(snap.meta("log_cuts")))
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


def _verdict(obj: Context, check_messages: bool = True, outside=None):
    """The log checked against the head the state keeps (none before the first write) and, if
    given, a head kept elsewhere; both read with the log's size at one moment (`settled`)."""
    from notifier.log.verify import verify
    log = obj.log()
    kept, size = log.settled()
    return verify(log.path, log.messages, kept, check_messages, size=size, outside=outside)


@cli.command()
@click.argument("account")
@since_option
@until_option
@click.option("--html", "html_path", type=FilePath(), required=True,
              help="Write the report here (one self-contained HTML file).")
@click.option("--pdf", "pdf_path", type=FilePath(),
              help="Also print it to this PDF (A4) with headless Chromium.")
@click.option("--appendix", "appendix_path", type=FilePath(),
              help="The ZIP of the exact messages, each named by its SHA-256; default: beside the HTML, "
                   "NAME.anexo.zip.")
@date_option("Issue the report as of the end of this day (YYYY-MM-DD; env NOTIFIER_DATE): nothing dated "
             "later is listed; default: now.")
@click.pass_obj
def audit(obj: Context, account, since, until, html_path, pdf_path, appendix_path, day):
    """The report finance sends ACCOUNT, in Portuguese: everything that happened with the customer
    in time order with honest statuses, what they were sent as they saw it, and how to check it
    (the log's head); the exact messages go in the appendix ZIP."""
    from datetime import datetime, time
    from notifier.reports.audit import appendix_zip, build, render_audit
    from notifier.reports.pdf import PdfError, html_to_pdf
    snap = obj.store().snapshot()
    issued = obj.now() if day is None else min(obj.now(), datetime.combine(day, time(23, 59, 59), obj.config.tz))
    # The whole chain; of the stored messages, the account's own (each checked as it is read).
    verdict = _verdict(obj, check_messages=False)
    found = build(obj.config, obj.log(), snap, account, issued, since, until)
    if snap.account(account) is None and not any(l.attempt for l in found.lines):
        raise click.ClickException(f"no account {account!r} in the store and no attempt for it in the log")
    appendix_path = appendix_path or html_path.with_name(html_path.stem + ".anexo.zip")
    html = render_audit(obj.config, snap, found, account, verdict, issued, appendix_path.name, since, until)
    _write_bytes(appendix_path, appendix_zip(found, account))
    try:
        _write_bytes(html_path, html.encode("utf-8"))
    except click.ClickException:
        appendix_path.unlink()  # an appendix without its report is not left behind
        raise
    click.echo(f"{appendix_path}: {len(found.appendix)} exact message(s), each named by its SHA-256")
    if found.later:
        click.echo(f"{found.later} record(s) dated after the issue time {issued:%Y-%m-%d %H:%M} left out")
    damaged = sum(1 for l in found.lines if l.problem)
    click.echo(f"{html_path}: audit of {account}, {sum(1 for l in found.lines if l.attempt)} attempt(s) in "
               f"{len(found.lines)} line(s); log "
               + (f"NOT verified ({len(verdict.problems)} problem(s))" if not verdict.ok else
                  f"chain verified, but {damaged} stored message(s) do NOT match their hash" if damaged else "verified"))
    if pdf_path:
        try:
            html_to_pdf(html_path, pdf_path)
        except PdfError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{pdf_path}: the same report as PDF (A4)")


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def _write_bytes(path: Path, data: bytes) -> None:
    """Written under a temporary name and renamed: a report is whole or absent."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
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
@click.option("--stage", type=click.Choice(STAGES), help="Only this stage of the ladder.")
@click.option("--status", help="Only attempts whose latest status is this (sent, delivered, failed, bounced...).")
@click.option("--actor", help='Only attempts made by this actor ("daemon", or a staff member).')
@click.option("--provider", help="Only attempts this provider answered (smtp, twilio, outbox, staff-task...).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="csv: for Excel in Portuguese (; UTF-8 with BOM, dd/mm/aaaa hh:mm); json: one object per line.")
@click.option("--output", "-o", type=FilePath(), help="Write to this file instead of the screen.")
@click.pass_obj
def attempts(obj: Context, account, invoice, since, until, channel, stage, status, actor, provider, fmt, output):
    """One line per contact attempt with its latest status, oldest first (the console's Registro
    lists the same attempts, newest first: notifier/log/query.py)."""
    from notifier.log.index import index_for
    from notifier.log.query import Query, stream
    from notifier.reports.exports import row, table_lines, write_csv, write_json_lines
    tz = obj.config.tz
    query = Query(since, until, account, channel, stage, status, actor, provider, invoice)
    rows = (row(a) for a in stream(index_for(obj.config.attempt_log, tz), query, newest_first=False))
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
    """Per stage and channel: attempts (= sent + failed + blocked + task + other), of the sent how
    many were delivered, read, bounced, and the accounts that paid within --window days after the
    notice (recovery rate and amount); the month's recovered amount."""
    from notifier.reports.monthly import month_report
    lines = month_report(obj.log(), obj.store().snapshot(), obj.config, month, window)
    if html_path:
        _write_text(html_path, _report_html(obj, month, lines, window))
    if fmt == "json":
        for line in lines:
            click.echo(orjson.dumps(line.to_json()).decode())
    elif fmt == "csv":
        from notifier.reports.exports import write_report_csv
        write_report_csv(lines, sys.stdout)
    else:
        print_table(["stage", "channel", "attempts", "sent", "failed", "blocked", "task", "other", "delivered", "read",
                     "bounced", "accounts", f"paid ≤{window}d", "rate", "recovered"],
                    [[l.stage, l.channel, l.attempts, l.sent, l.failed, l.blocked, l.task, l.other, l.delivered,
                      l.read, l.bounced, l.accounts, l.paid_accounts, f"{l.rate:.1%}", l.recovered]
                     for l in lines])
        click.echo(f"recovered in {month}: {lines.recovered}")
    if html_path:
        click.echo(f"{html_path}: the report as HTML", err=fmt != "table")


def _report_html(obj: Context, month: str, lines, window: int) -> str:
    from babel.dates import format_date
    from notifier.reports.audit import environment
    from notifier.reports.exports import CHANNEL_LABELS, STAGE_LABELS
    from notifier.reports.monthly import month_bounds
    first, _ = month_bounds(month)
    return environment().get_template("report.html").render(
        company=obj.config.company, lines=lines, window=window, recovered=lines.recovered,
        total=lambda name: sum(getattr(l, name) for l in lines),
        month_label=format_date(first, "MMMM 'de' yyyy", locale="pt_BR"),
        generated=obj.now().strftime("%d/%m/%Y %H:%M"),
        stage_label=lambda s: STAGE_LABELS.get(s, s), channel_label=lambda c: CHANNEL_LABELS.get(c, c),
        percent=lambda r: f"{r * 100:.1f}%".replace(".", ","),
    )
