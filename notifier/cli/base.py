"""The command line: a thin edge over the library.

This is the only place that reads the clock, the environment and `.env`; every command turns them
into plain values (today, a `Config`) and calls library functions. Errors a person can fix are
printed as one sentence with a non-zero exit, never a traceback; so is a bug (see `Bug`).

The commands live in modules by who uses them (`billing`, `planning`, `operations`, ...); this one
holds the group, the shared options and the output helpers they all use.
"""
from __future__ import annotations

import getpass
import os
import stat
import sys
import traceback
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import click
import orjson
from click.core import ParameterSource

from notifier.state import caches
from ..config import STAGES, Config, ConfigError, env_typos, load_config, read_env_file


DISTRIBUTION = "dunning-notifier"  # the name in pyproject.toml, where --version comes from
BUG_EXIT_CODE = 70  # EX_SOFTWARE: tells a wrapper script "a bug", apart from 1 ("fix your input")


# True in the program's own process (`main`), where the process ends with the command; False when
# a command runs inside another program (a test's CliRunner), which goes on living.
PROCESS_ENDS_WITH_COMMAND = False


def leave_to_exit(*objects) -> None:
    """Never free `objects` (data only: nothing in them to flush or close) when the process ends
    with the command: freeing the million objects of a big import one by one takes a tenth of
    it, for memory the operating system takes back at once at exit. Inside a longer-lived
    program, nothing happens (the caller drops them as usual, and they are freed).

    How: they hang from a reference cycle nothing else reaches, which `gc.freeze()` moves out of
    the collector's sight, so neither the collector nor the interpreter's shutdown (which clears
    the modules, not orphaned cycles) ever frees them."""
    if not PROCESS_ENDS_WITH_COMMAND:
        return
    import gc
    holder: list = [objects]
    holder.append(holder)
    gc.freeze()


@dataclass
class Context:
    config: Config
    _log: object = None

    def store(self, create: bool = False):
        """The store of the configured state file, which must exist unless `create` (only `import`
        creates one): on a mistyped --state every other command would show an empty store and
        look like "nothing to do"."""
        from notifier.state.store import Store
        _check_state_file(self.config.state, create)
        return Store(self.config.state, retention_months=self.config.retention_months, log=self.log(),
                     journal_from=self.config.journal_from)

    def log(self):
        """The attempt log, one per command: its writer's lock and head are per instance."""
        if self._log is None:
            from notifier.log.attempts import AttemptLog
            self._log = AttemptLog(self.config.attempt_log)
        return self._log

    def now(self) -> datetime:
        return datetime.now(self.config.tz)

    def today(self, given: date | None) -> date:
        return given or self.now().date()


def _check_state_file(path: Path, create: bool) -> None:
    """ClickException unless `path` is a state file, or (`create`) could become one: a file in a
    folder that exists. The store itself would create both the folder and the file on its first
    write, which is how a typo in --state used to start a second, empty store."""
    try:
        if path.is_dir():
            raise click.ClickException(f"{path}: is a folder, not a state file")
        if path.exists():
            return
        folder_exists = path.parent.is_dir()
    except OSError as exc:
        raise click.ClickException(f"{shorten(str(path))}: {exc.strerror or exc}") from None
    if not create:
        raise click.ClickException(
            f"{path}: no such state file (check --state, NOTIFIER_STATE or the config's `state`; "
            "`notifier import` creates it)")
    if not folder_exists:
        raise click.ClickException(f"{path}: the folder {path.parent} does not exist; create it first")


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors a person can cause and fix: one sentence, no traceback. Imported lazily so that a
    command pays only for the modules it uses."""
    from notifier.channels import ChannelError
    from notifier.log.attempts import LogError
    from notifier.run.delivery import DeliveryError
    from notifier.state.importer import InvalidImport
    from notifier.run.render import TemplateError
    from notifier.staff.actor import InvalidText
    from notifier.state.store import StoreError
    from notifier.web.users import UserError
    return (ConfigError, DeliveryError, StoreError, InvalidImport, TemplateError, ChannelError, LogError, InvalidText,
            UserError)


class Bug(click.ClickException):
    """An exception nobody expected: a bug. The operator gets one line naming its class and where
    it happened, not its message, which may quote a secret (a URL that failed to parse); the full
    traceback only with NOTIFIER_DEBUG=1."""
    exit_code = BUG_EXIT_CODE

    def __init__(self, exc: Exception):
        super().__init__(
            f"internal error: unexpected {type(exc).__name__} at {_our_frame(exc)} (a bug in the notifier: "
            "please report it with the command that caused it; NOTIFIER_DEBUG=1 shows the traceback)")


def _our_frame(exc: Exception) -> str:
    """The innermost frame of the notifier's own code (notifier/, channels/), as path:line."""
    root = Path(__file__).resolve().parents[2]
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(root) and path.relative_to(root).parts[0] in ("notifier", "channels"):
            where = f"{path.relative_to(root)}:{frame.lineno}"
    return where


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except _user_errors() as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:
            _stdout_closed()
        except Exception as exc:
            if os.environ.get("NOTIFIER_DEBUG"):
                raise
            raise Bug(exc) from None


def _stdout_closed() -> None:
    """The reader of our output went away (`notifier plan | head`): not a bug, nothing to say.
    Python's own advice: point stdout at /dev/null, so the final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


def shorten(text: str, limit: int = 80) -> str:
    """A value quoted back in an error, cut to a readable length (a 100k-character path is not)."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class FilePath(click.ParamType):
    """A file given on the command line: refused at once, as the option's error, when empty (an
    unset shell variable), a folder, or a name the system refuses (too long, a NUL), instead of
    failing later, deep inside a command. A missing file is left to the command to judge."""
    name = "file"

    def convert(self, value, param, ctx):
        if isinstance(value, Path):
            return value
        if not value.strip():
            self.fail("an empty path (an unset shell variable?)", param, ctx)
        try:
            mode = os.stat(value).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return Path(value)
        except (OSError, ValueError) as exc:
            self.fail(f"{shorten(value)!r}: {getattr(exc, 'strerror', None) or exc}", param, ctx)
        if stat.S_ISDIR(mode):
            self.fail(f"{shorten(value)!r} is a folder, not a file", param, ctx)
        return Path(value)


class Day(click.ParamType):
    """A date written YYYY-MM-DD, as every date the notifier is given, within the years a billing
    date can have: 0001-01-01 or 9999-12-31 are typos, and date arithmetic on them overflows."""
    name = "YYYY-MM-DD"
    FIRST, LAST = date(2000, 1, 1), date(2099, 12, 31)

    def convert(self, value, param, ctx):
        if isinstance(value, date):
            day = value
        else:
            try:
                day = datetime.strptime(value, "%Y-%m-%d").date()
            except ValueError:
                self.fail(f"{shorten(value)!r} is not a date (YYYY-MM-DD)", param, ctx)
        if not self.FIRST <= day <= self.LAST:
            self.fail(f"{day.isoformat()} is outside {self.FIRST:%Y}–{self.LAST:%Y}: a typo?", param, ctx)
        return day


class EnvOption(click.Option):
    """An option that may come from an environment variable, and says so when its value is bad:
    someone who never typed --date cannot guess that "Invalid value for '--date'" means the
    NOTIFIER_DATE left in their shell."""

    def handle_parse_result(self, ctx, opts, args):
        try:
            return super().handle_parse_result(ctx, opts, args)
        except click.BadParameter as exc:
            if self.name not in opts and self.envvar and os.environ.get(self.envvar):
                exc.param_hint = f"the environment variable {self.envvar}"
            raise


def date_option(help_text="The day to act as (YYYY-MM-DD; env NOTIFIER_DATE); default: today in the configured time zone.",
                names: tuple[str, ...] = ("--date",)):
    return click.option(*names, "day", cls=EnvOption, type=Day(), envvar="NOTIFIER_DATE", help=help_text)


def _checked(check):
    """A click callback: `check(value)`'s error as the option's own (it names the option)."""
    def callback(ctx, param, value):
        from notifier.staff.actor import InvalidText
        if value is None:  # missing: click says so itself (a required option), or nothing to check
            return None
        try:
            return check(value)
        except InvalidText as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[1], ctx, param) from None
    return callback


def by_option(help_text: str = "Who is doing this (recorded in the attempt log).", names=("--by",), default=None):
    """`--by NAME`, checked and given to the command as a `staff.actor.Actor`: required unless a
    default (a callable: the system user name) is given."""
    from notifier.staff.actor import Actor
    # No `default=None` for a required option: click 8.4 takes an explicit None as a default given.
    given = {"required": True} if default is None else {"default": default}
    return click.option(*names, **given, help=help_text, callback=_checked(lambda v: Actor(v)))


def note_option(names=("--note",), help_text: str = "Free text kept with the record."):
    from notifier.staff.actor import check_note
    return click.option(*names, default="", help=help_text, callback=_checked(check_note))


def system_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor in the password database
        return "staff"


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON instead of a table.")


def _print_version(ctx, _param, value) -> None:
    """`--version`, from the installed package's metadata: the one place the version is written is
    pyproject.toml. A checkout run without installing has no metadata, and says so."""
    if not value or ctx.resilient_parsing:
        return
    from importlib import metadata  # 40–80 ms: only for --version
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = "(not installed: `pip install .` records the version)"
    click.echo(f"notifier {version}")
    ctx.exit()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the installed version and exit.")
@click.option("--config", "config_path", cls=EnvOption, type=FilePath(), envvar="NOTIFIER_CONFIG",
              help="TOML configuration file (env NOTIFIER_CONFIG); default: built-in settings.")
@click.option("--state", cls=EnvOption, type=FilePath(), envvar="NOTIFIER_STATE",
              help="State file (env NOTIFIER_STATE); default: the config's `state`, state.json.")
@click.option("--env-file", type=FilePath(), default=".env", show_default=True,
              help="Secrets file read into the environment (variables already set win); "
                   "the default may be absent, a file named here must exist.")
@click.pass_context
def cli(ctx, config_path, state, env_file):
    """Dunning notifier: plans and sends billing notices and keeps the contact-attempt log."""
    explicit = ctx.get_parameter_source("env_file") is not ParameterSource.DEFAULT
    try:
        from_file = read_env_file(env_file) if explicit or env_file.exists() else {}
        ctx.obj = Context(load_config(config_path, {**from_file, **os.environ}, state))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in env_typos(env_file, from_file):
        click.echo(f"warning: {warning}", err=True)
    # QR images and holiday tables kept between commands, beside a state that exists (a command
    # in a folder with none, `check` before the first import, leaves no cache folder behind).
    caches.keep_beside(ctx.obj.config.state if ctx.obj.config.state.is_file() else None)


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


def print_table(headers: list[str], rows: list[list], indent: str = "") -> None:
    """Columns as wide as their widest cell; stored text with bidi controls or zero-width
    characters shows them as <U+XXXX> (`staff.actor.neutralise`), so no cell reorders or hides."""
    from notifier.staff.actor import neutralise
    cells = [headers] + [[neutralise(str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo(indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            click.echo(indent + "  ".join("-" * w for w in widths))


def yes(flag: bool) -> str:
    return "yes" if flag else ""


def br_date(iso: str | None) -> str:
    return date.fromisoformat(iso).strftime("%d/%m/%Y") if iso else "-"
