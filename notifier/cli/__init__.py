"""The `notifier` command: the group and its commands, one module per kind of user."""
from __future__ import annotations

import sys

import click

from . import billing, customers, daemon, finance, forecast, operations, planning, staff, tracking, web  # noqa: F401  (each registers its commands)
from . import base
from .base import cli
from ..logformat import ErrorsForJournal, stderr_is_journal

__all__ = ["cli", "main"]


def main() -> None:
    """Click's own handling of a refused command, but with its message at the journal's `err`
    priority under systemd (journald files an unmarked stderr line as `info`, so `journalctl -p
    err` would miss why the daemon stopped)."""
    base.PROCESS_ENDS_WITH_COMMAND = True
    errors = ErrorsForJournal(sys.stderr) if stderr_is_journal() else None
    try:
        code = cli.main(prog_name="notifier", standalone_mode=False)
    except click.ClickException as exc:
        exc.show(file=errors)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", file=errors or sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
