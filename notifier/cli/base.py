"""The command line: a thin edge over the library.

This is the only place that reads the clock, the environment and `.env`; every command turns them
into plain values (today, a `Config`) and calls library functions. Errors a person can fix are
printed as one sentence with a non-zero exit, never a traceback.

The commands live in modules by who uses them (`billing`, `planning`, `operations`, ...); this one
holds the group, the shared options and the output helpers they all use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import click
import orjson
from dotenv import dotenv_values

from ..config import STAGES, Config, ConfigError, load_config
from ..delivery import DeliveryError


@dataclass
class Context:
    config: Config
    _log: object = None

    def store(self):
        from ..store import Store
        return Store(self.config.state, retention_months=self.config.retention_months, log_head=self.log().head)

    def log(self):
        """The attempt log, one per command: its writer's lock and head are per instance."""
        if self._log is None:
            from ..attempts import AttemptLog
            self._log = AttemptLog(self.config.attempt_log)
        return self._log

    def now(self) -> datetime:
        return datetime.now(self.config.tz)

    def today(self, given: date | None) -> date:
        return given or self.now().date()


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors a person can cause and fix: one sentence, no traceback. Anything else is a bug and
    keeps its traceback. Imported lazily so that a command pays only for the modules it uses."""
    from channels import ChannelError
    from ..importer import InvalidImport
    from ..render import TemplateError
    from ..store import StoreError
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


def message_options(f):
    f = click.option("--to", help="Send to this recipient instead of the account's own.")(f)
    f = click.option("--stage", type=click.Choice(STAGES), help="Use this stage instead of today's plan.")(f)
    return date_option()(f)


def get_account(snap, account_id):
    acc = snap.account(account_id)
    if acc is None:
        raise click.ClickException(f"no account {account_id!r} in the store")
    return acc


def echo_json(data) -> None:
    # orjson: a plan of tens of thousands of notices prints in a fraction of json.dumps' time.
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def yes(flag: bool) -> str:
    return "yes" if flag else ""


def br_date(iso: str | None) -> str:
    return date.fromisoformat(iso).strftime("%d/%m/%Y") if iso else "-"
