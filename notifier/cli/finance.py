"""Finance and support: prove what was sent (verify-log, attempts, audit) and what it achieved (report)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .base import Context, Day, cli, echo_json


since_option = click.option("--since", type=Day(), help="From this day on (YYYY-MM-DD, São Paulo time).")
until_option = click.option("--until", type=Day(), help="Up to and including this day (YYYY-MM-DD).")


@cli.command("verify-log")
@click.option("--json", "as_json", is_flag=True, help="The verdict as JSON.")
@click.pass_obj
def verify_log(obj: Context, as_json):
    """Check the attempt log's hash chain, every stored message against its SHA-256, and the
    log's head against the one the state recorded; exit 1 naming the first tampered record."""
    verdict = _verdict(obj)
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


def _verdict(obj: Context):
    """The log checked against the head the state recorded (none when there is no state yet)."""
    from ..verify import verify
    log = obj.log()
    expected = obj.store().snapshot().meta("log_head") if Path(obj.config.state).exists() else None
    return verify(log.path, log.messages, expected)
