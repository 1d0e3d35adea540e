"""Configuration: one TOML file plus the environment (`.env`), read once into plain objects.

Nothing else in the notifier reads files of configuration or environment variables: the CLI calls
`read_env_file()` and `load_config()` at its edge and passes the result down. Bad values are
rejected here, at start, with a message that names the key, instead of surfacing later as a
failed send.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from notifier.billing.calendar import BankCalendar

# Ladder order: a later stage is "more advanced". The anchor is the invoice date a stage's offset
# counts from (RULES.md, "Dates of one invoice").
STAGES = (
    "reminder",
    "due_today",
    "overdue",
    "suspension_warning",
    "suspended",
    "deletion_warning",
    "deletion_due",
)
ANCHORS = {
    "reminder": "due",
    "due_today": "effective_due",
    "overdue": "overdue",
    "suspension_warning": "suspension",
    "suspended": "suspension",
    "deletion_warning": "deletion",
    "deletion_due": "deletion",
}
# Offsets that keep each stage on its side of its anchor; anything else would reorder the ladder.
OFFSET_RANGES = {
    "reminder": (-31, -1),
    "due_today": (0, 0),
    "overdue": (0, 10),
    "suspension_warning": (-27, -1),
    "suspended": (0, 0),
    "deletion_warning": (-27, -1),
    "deletion_due": (0, 0),
}
CHANNELS = ("email", "whatsapp", "sms", "social", "staff")
# The configuration keys that name a file or folder (placed by `_place_files`).
PATH_KEYS = ("state", "attempt_log", "outbox", "templates", "do_not_contact")

# Variables read from the environment / `.env`. Secrets live only here, never in the TOML file.
ENV_VARS = (
    "EMAIL_URL",
    "STAFF_URLS",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_WHATSAPP_FROM",
    "TWILIO_SMS_FROM",
    "TWILIO_API_BASE",
    "TUTORIAL_URL",
    "BOUNCE_IMAP_URL",
)


class ConfigError(Exception):
    """A configuration value a person must fix; the message names the file and key."""


@dataclass(frozen=True)
class Stage:
    name: str
    offset_days: int
    channels: tuple[str, ...]
    first_time_channels: tuple[str, ...] = ()

    @property
    def anchor(self) -> str:
        return ANCHORS[self.name]

    @property
    def rank(self) -> int:
        return STAGES.index(self.name)


DEFAULT_LADDER = (
    Stage("reminder", -3, ("email",)),
    Stage("due_today", 0, ("email",)),
    Stage("overdue", 0, ("email",), ("whatsapp", "social")),
    Stage("suspension_warning", -3, ("email",), ("whatsapp",)),
    Stage("suspended", 0, ("email",)),
    Stage("deletion_warning", -7, ("email",)),
    Stage("deletion_due", 0, ("staff",)),
)


@dataclass(frozen=True)
class ContactHours:
    """When a customer's phone or profile may be contacted (São Paulo Lei 15.426/2014).

    Each value is an (start, end) pair or None for "never". Holidays are the national ones.
    """
    weekdays: tuple[time, time] | None = (time(8), time(20))
    saturday: tuple[time, time] | None = (time(8), time(14))
    sunday: tuple[time, time] | None = None
    holidays: tuple[time, time] | None = None


@dataclass(frozen=True)
class CycleSettings:
    """How the daily cycle runs (`[cycle]`): when, how many messages at once, how hard it retries."""
    at: time = time(9)  # the daily cycle's time in `timezone`
    workers: int = 8  # messages in flight at once (one connection per worker and channel)
    tries: int = 3  # attempts of a message in its first cycle when the provider fails temporarily (later: one)
    notice_tries: int = 6  # attempts of a notice in all, over its catch-up window; then it has failed
    backoff: float = 2.0  # seconds before the first retry; doubled for each next one, with jitter
    every_minutes: int = 15  # between cycles: how often the daemon sends what waited and retries
    # The CPU priority (Unix nice, 0-19) run-once and the daemon run at: the cycle is batch work,
    # and the console's staff on the same machine should not wait behind it.
    nice: int = 10


@dataclass(frozen=True)
class Company:
    """Who the messages come from; CDC art. 42-A wants legal name, CNPJ and address in each."""
    name: str = "Lucanet"
    legal_name: str = "Lucanet Hospedagem de Sites Ltda"
    cnpj: str = "11.222.333/0001-81"
    address: str = "Rua Exemplo, 100, Centro, São Paulo - SP, 01001-000"
    finance_email: str = "financeiro@lucanet.com.br"
    site: str = "https://www.lucanet.com.br"
    portal_url: str = "https://www.lucanet.com.br"
    # Where the portal is on the page, as a phrase that follows its address ("em URL (...)").
    portal_path: str = 'no canto superior direito, botão "Painéis / Webmail / Ajuda" e depois "Painel Financeiro"'
    payment_methods: tuple[str, ...] = ("boleto bancário", "Pix", "cartão de crédito")
    # Messages after the due date state the contract's late charges in this sentence; none when empty.
    late_fees: str = ""
    tickets_url: str = ""  # where a customer opens a ticket (cancellation is asked by ticket)

    @property
    def is_example(self) -> bool:
        return self == Company()


@dataclass(frozen=True)
class WebSettings:
    """The console (`[web]`): how long an idle session lives and when its cookie is `Secure`."""
    idle_minutes: float = 30  # a session unused this long ends (a test may set a few seconds)
    # Addresses of the TLS proxy in front (nginx, Caddy): only its X-Forwarded-Proto/-For are believed.
    trusted_proxies: tuple[str, ...] = ()
    secure_cookies: bool = False  # the cookie is always `Secure` (TLS ends before a proxy not listed)


# Default unit prices in BRL, for `notifier forecast` only: set your contract's in [prices].
# WhatsApp: one business-initiated utility template message (Meta's fee plus Twilio's); SMS: one
# segment to a Brazilian number; an SMS of ours takes at most two.
DEFAULT_PRICES = {"email": "0", "whatsapp": "0.07", "sms_segment": "0.30", "sms_segments": 2, "social": "0",
                  "staff": "0"}


@dataclass(frozen=True)
class Config:
    ladder: tuple[Stage, ...] = DEFAULT_LADDER
    settlement_days: int = 1
    extra_holidays: tuple[date, ...] = ()
    contact_hours: ContactHours = ContactHours()
    cycle: CycleSettings = CycleSettings()
    do_not_contact: Path | None = None  # a file of phone numbers that get no WhatsApp or SMS
    timezone: str = "America/Sao_Paulo"
    retention_months: int = 3
    # From which size (bytes) of the state file a small change goes to its journal instead of a
    # rewrite (notifier/state/journal.py); NOTIFIER_JOURNAL_FROM sets it (0: always, for tests).
    journal_from: int = 1 << 20
    company: Company = Company()
    state: Path = Path("state.json")
    attempt_log: Path = Path("attempts.jsonl")
    outbox: Path = Path("outbox")
    templates: Path | None = None  # an operator's folder whose templates override ours
    # Per-channel options, as plain tables from the TOML file; each channel validates its own.
    channels: Mapping[str, Mapping] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    source: str = "<built-in defaults>"
    unit_prices: Mapping[str, object] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    # RULES.md: the tutorial also goes with a first-time delinquent's first overdue e-mail.
    tutorial_in_first_overdue_email: bool = True
    # RULES.md: an account owing less gets no post-due notice (suspending cents is disproportionate).
    minimum_amount: Decimal = Decimal("5.00")
    web: WebSettings = WebSettings()
    # Every channel the ladder and staff alerts use must have its provider: a missing variable
    # stops the daemon and run-once at start instead of quietly filling the local outbox.
    live: bool = False

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def calendar(self) -> BankCalendar:
        """The bank calendar with the configured local holidays: the one every date is counted on."""
        return BankCalendar(frozenset(self.extra_holidays))

    @property
    def prices(self) -> dict[str, Decimal]:
        """What one message costs on each channel, in BRL (an SMS: its estimated segments)."""
        p = self.unit_prices
        out = {c: Decimal(str(p[c])) for c in CHANNELS if c != "sms"}
        out["sms"] = Decimal(str(p["sms_segment"])) * int(p["sms_segments"])
        return out

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.ladder if s.name == name), None)


def load_config(path: Path | None, environ: Mapping[str, str], state: Path | None = None) -> Config:
    """Read the TOML file (if any) and the relevant environment variables into a `Config`.

    `path` None means built-in defaults. `state` (from `--state`/`NOTIFIER_STATE`) wins over the
    file's `state` key. Raises `ConfigError` naming the file and key of the first bad value.
    The paths of the result are placed as `_place_files` says.
    """
    raw: dict = {}
    source = "<built-in defaults>"
    if path is not None:
        source = str(path)
        raw = _read_toml(Path(path))
    cfg = _parse(raw, _Where(source))
    env = {k: environ[k] for k in ENV_VARS if environ.get(k)}
    cfg = replace(cfg, env=env, source=source)
    if environ.get("NOTIFIER_JOURNAL_FROM"):
        cfg = replace(cfg, journal_from=_int_in(_whole_text(environ["NOTIFIER_JOURNAL_FROM"]), 0, 1 << 40,
                                                "NOTIFIER_JOURNAL_FROM", _Where("the environment")))
    return _place_files(cfg, set(raw) & set(PATH_KEYS), Path(path).parent if path is not None else None, state)


def _whole_text(text: str):
    """An environment variable's whole number (left as text when it is not one, for the error)."""
    return int(text) if text.strip().isdigit() else text


def _place_files(cfg: Config, written: set[str], config_dir: Path | None, state: Path | None) -> Config:
    """Anchor every relative path, so that where the files go never depends on the folder a
    command happens to be run from (a second audit log started in some `cd` is worse than none).

    A path written in the config file counts from the config file's folder; `--state` counts from
    the current folder, as any command-line path does; the state defaults to `state.json` in the
    config file's folder (the current one with no config). A file the config does not name (the
    attempt log, the outbox) goes beside the state, as the archive always does.
    """
    home = config_dir if config_dir is not None else Path(".")
    state_path = Path(state) if state is not None else home / cfg.state
    placed = {"state": state_path}
    for key in PATH_KEYS:
        value = getattr(cfg, key)
        if key != "state" and value is not None:
            placed[key] = (home if key in written else state_path.parent) / value
    return replace(cfg, **placed)


def _read_toml(path: Path) -> dict:
    import tomllib  # 5 ms: only where a configuration file is given
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None


# A .env file holds a few dozen lines; anything bigger is the wrong file (`--env-file /dev/urandom`
# once read 24 GB), so no more than this and one byte is ever read.
ENV_FILE_LIMIT = 1024 * 1024


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a `.env` file (NAME=value lines); ConfigError when it cannot be read as one.

    python-dotenv parses it; what it cannot (a binary file, a folder, no permission, more than
    1 MB) is named here instead of ending in a traceback.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(ENV_FILE_LIMIT + 1)
        if len(data) > ENV_FILE_LIMIT:
            raise ConfigError(f"{path}: larger than 1 MB, not an env file (a .env file holds NAME=value lines)")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: env file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file in UTF-8 (a .env file holds NAME=value lines)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the env file: {exc.strerror or exc}") from None
    from dotenv import dotenv_values  # only where there is a .env file to read
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def env_typos(path: Path, names) -> list[str]:
    """A warning for each name in the env file at `path` that the notifier does not read but that
    looks like one it does: with `EMAIL_ULR=...` every e-mail would quietly go to the outbox.
    The command's own options (`NOTIFIER_STATE`, `NOTIFIER_CONFIG`, `NOTIFIER_DATE`...) are read
    from the process's environment before any .env is found, so there they would silently do
    nothing (a frozen `NOTIFIER_DATE` kept in a file would be worse if they did)."""
    unknown = [name for name in names if name not in ENV_VARS]
    if not unknown:
        return []
    import difflib  # 3 ms: only for a file with names we do not read
    return [f"{path}: {name} is not read from an env file (it would change nothing); set it in the "
            "environment of the process (the systemd unit, docker -e, the shell) or use the option"
            if name.startswith("NOTIFIER_") else
            f"{path}: {name} is not a variable the notifier reads; did you mean {close[0]}?"
            for name in unknown
            if name.startswith("NOTIFIER_") or (close := difflib.get_close_matches(name, ENV_VARS, n=1, cutoff=0.75))]


@dataclass(frozen=True)
class _Where:
    source: str

    def error(self, key: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {reason}")


_TOP_KEYS = {
    "ladder", "settlement_days", "extra_holidays", "contact_hours", "timezone",
    "retention_months", "company", "state", "attempt_log", "outbox", "templates", "channels", "prices",
    "cycle", "do_not_contact", "tutorial_in_first_overdue_email", "minimum_amount", "web", "live",
}


def _parse(raw: dict, where: _Where) -> Config:
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise where.error(unknown[0], f"unknown key (known: {', '.join(sorted(_TOP_KEYS))})")
    cfg = Config()
    values: dict = {}
    if "ladder" in raw:
        values["ladder"] = _parse_ladder(raw["ladder"], where)
    if "settlement_days" in raw:
        values["settlement_days"] = _int_in(raw["settlement_days"], 0, 10, "settlement_days", where)
    if "retention_months" in raw:
        values["retention_months"] = _int_in(raw["retention_months"], 1, 120, "retention_months", where)
    if "extra_holidays" in raw:
        values["extra_holidays"] = tuple(
            _date(v, f"extra_holidays[{i}]", where) for i, v in enumerate(_list(raw["extra_holidays"], "extra_holidays", where))
        )
    if "timezone" in raw:
        tz = raw["timezone"]
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise where.error("timezone", f"unknown time zone {tz!r}") from None
        values["timezone"] = str(tz)
    for key in ("tutorial_in_first_overdue_email", "live"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise where.error(key, "must be true or false")
            values[key] = raw[key]
    if "minimum_amount" in raw:
        values["minimum_amount"] = _amount(raw["minimum_amount"], "minimum_amount", where, "5.00")
    if "contact_hours" in raw:
        values["contact_hours"] = _parse_hours(raw["contact_hours"], where)
    if "company" in raw:
        values["company"] = _parse_company(raw["company"], where)
    if "cycle" in raw:
        values["cycle"] = _parse_cycle(raw["cycle"], where)
    for key in PATH_KEYS:
        if key in raw:
            values[key] = Path(_text(raw[key], key, where, "a non-empty path string"))
    if "channels" in raw:
        chans = raw["channels"]
        if not isinstance(chans, dict):
            raise where.error("channels", "must be a table of [channels.NAME] sections")
        for name in chans:
            if name not in CHANNELS:
                raise where.error(f"channels.{name}", f"unknown channel (known: {', '.join(CHANNELS)})")
        values["channels"] = chans
    if "prices" in raw:
        values["unit_prices"] = _parse_prices(raw["prices"], where)
    if "web" in raw:
        values["web"] = _parse_web(raw["web"], where)
    return replace(cfg, **values)


def _parse_web(raw, where: _Where) -> WebSettings:
    if not isinstance(raw, dict):
        raise where.error("web", "must be a table")
    values = {}
    for key, value in raw.items():
        if key == "idle_minutes":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1440:
                raise where.error("web.idle_minutes", f"must be a number of minutes above 0, at most 1440, not {value!r}")
            values[key] = float(value)
        elif key == "trusted_proxies":
            values[key] = tuple(_text(v, f"web.trusted_proxies[{i}]", where, "an IP address")
                                for i, v in enumerate(_list(value, "web.trusted_proxies", where)))
        elif key == "secure_cookies":
            if not isinstance(value, bool):
                raise where.error("web.secure_cookies", "must be true or false")
            values[key] = value
        else:
            raise where.error(f"web.{key}", "unknown key (known: idle_minutes, trusted_proxies, secure_cookies)")
    return WebSettings(**values)


def _parse_prices(raw, where: _Where) -> dict:
    if not isinstance(raw, dict):
        raise where.error("prices", "must be a table")
    prices = dict(DEFAULT_PRICES)
    for key, value in raw.items():
        if key not in DEFAULT_PRICES:
            raise where.error(f"prices.{key}", f"unknown key (known: {', '.join(DEFAULT_PRICES)})")
        if key == "sms_segments":
            prices[key] = _int_in(value, 1, 10, "prices.sms_segments", where)
            continue
        prices[key] = str(_amount(value, f"prices.{key}", where, "0.07"))
    return prices


def _amount(value, key: str, where: _Where, example: str) -> Decimal:
    """An amount in BRL, zero or more, from a TOML number or string (a string keeps its cents exact)."""
    try:
        amount = Decimal(str(value)) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    except ArithmeticError:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        raise where.error(key, f'must be an amount in BRL such as "{example}", not {value!r}')
    return amount


def _parse_ladder(items, where: _Where) -> tuple[Stage, ...]:
    if not isinstance(items, list) or not items:
        raise where.error("ladder", "must be a non-empty array of [[ladder]] tables")
    stages = []
    seen = set()
    for i, item in enumerate(items):
        key = f"ladder[{i}]"
        if not isinstance(item, dict):
            raise where.error(key, "must be a table")
        unknown = sorted(set(item) - {"stage", "offset_days", "channels", "first_time_channels"})
        if unknown:
            raise where.error(f"{key}.{unknown[0]}", "unknown key")
        name = item.get("stage")
        if name not in STAGES:
            raise where.error(f"{key}.stage", f"unknown stage {name!r} (known: {', '.join(STAGES)})")
        if name in seen:
            raise where.error(f"{key}.stage", f"stage {name!r} appears twice")
        seen.add(name)
        low, high = OFFSET_RANGES[name]
        offset = item.get("offset_days", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or not low <= offset <= high:
            raise where.error(
                f"{key}.offset_days",
                f"{offset!r} makes no sense for {name} (counted from the {ANCHORS[name].replace('_', ' ')} date; allowed {low}..{high})",
            )
        channels = _channels(item.get("channels"), f"{key}.channels", where, required=True)
        extra = _channels(item.get("first_time_channels", []), f"{key}.first_time_channels", where)
        if extra and ANCHORS[name] in ("due", "effective_due"):
            # Only a late customer is a first-time delinquent: before the due date these channels
            # would never be used, and the operator who wrote them expects messages that never go.
            raise where.error(f"{key}.first_time_channels",
                              f"never used on {name}: nobody is late before the due date; put them on overdue")
        stages.append(Stage(name, offset, channels, extra))
    ranks = [STAGES.index(s.name) for s in stages]
    if ranks != sorted(ranks):
        raise where.error("ladder", f"stages must be listed in ladder order: {', '.join(STAGES)}")
    return tuple(stages)


def _channels(value, key: str, where: _Where, required: bool = False) -> tuple[str, ...]:
    items = _list(value, key, where)
    if required and not items:
        raise where.error(key, "must name at least one channel")
    for c in items:
        if c not in CHANNELS:
            raise where.error(key, f"unknown channel {c!r} (known: {', '.join(CHANNELS)})")
    return tuple(dict.fromkeys(items))


_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _parse_hours(raw, where: _Where) -> ContactHours:
    if not isinstance(raw, dict):
        raise where.error("contact_hours", "must be a table")
    values = {}
    for key, value in raw.items():
        if key not in ("weekdays", "saturday", "sunday", "holidays"):
            raise where.error(f"contact_hours.{key}", "unknown key (known: weekdays, saturday, sunday, holidays)")
        if value in ("", None):
            values[key] = None
            continue
        m = _HOURS.match(str(value))
        try:
            if not m:
                raise ValueError
            start = time(int(m[1]), int(m[2]))
            end = time.max if (m[3], m[4]) == ("24", "00") else time(int(m[3]), int(m[4]))
        except ValueError:
            raise where.error(f"contact_hours.{key}", f'bad time range {value!r}: write "HH:MM-HH:MM", or "" for never') from None
        if start >= end:
            raise where.error(f"contact_hours.{key}", f"{value!r}: the start must come before the end")
        values[key] = (start, end)
    return ContactHours(**values)


def _parse_cycle(raw, where: _Where) -> CycleSettings:
    if not isinstance(raw, dict):
        raise where.error("cycle", "must be a table")
    limits = {"workers": (1, 64), "tries": (1, 10), "notice_tries": (1, 100), "every_minutes": (1, 1440), "nice": (0, 19)}
    values = {}
    for key, value in raw.items():
        if key == "at":
            try:
                values[key] = time.fromisoformat(str(value))
            except ValueError:
                raise where.error("cycle.at", f'not a time of day: {value!r} (write "09:00")') from None
        elif key == "backoff":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 600:
                raise where.error("cycle.backoff", f"must be a number of seconds from 0 to 600, not {value!r}")
            values[key] = float(value)
        elif key in limits:
            values[key] = _int_in(value, *limits[key], f"cycle.{key}", where)
        else:
            raise where.error(f"cycle.{key}", "unknown key (known: at, workers, tries, notice_tries, backoff, every_minutes, nice)")
    return CycleSettings(**values)


def _parse_company(raw, where: _Where) -> Company:
    if not isinstance(raw, dict):
        raise where.error("company", "must be a table")
    known = Company.__dataclass_fields__
    values = {}
    for key, value in raw.items():
        if key not in known:
            raise where.error(f"company.{key}", f"unknown key (known: {', '.join(known)})")
        if key == "payment_methods":
            values[key] = tuple(_text(v, f"company.payment_methods[{i}]", where).strip()
                                for i, v in enumerate(_list(value, "company.payment_methods", where)))
        else:
            values[key] = _text(value, f"company.{key}", where).strip()
    return Company(**values)


# C0 and C1 control characters, CR and LF included.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _text(value, key: str, where: _Where, what: str = "a non-empty string") -> str:
    """A one-line string. A CR/LF in a company field would forge header lines in every e-mail
    ("Bcc: ..."), and any control character reaches the operator's terminal: both refused."""
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, f"must be {what}")
    bad = _CONTROL.search(value)
    if bad:
        raise where.error(key, f"control character {bad.group()!r} not allowed (one line of plain text)")
    return value


def _list(value, key: str, where: _Where) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.error(key, "must be an array")
    return value


def _int_in(value, low: int, high: int, key: str, where: _Where) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise where.error(key, f"must be a whole number from {low} to {high}, not {value!r}")
    return value


def _date(value, key: str, where: _Where) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise where.error(key, f"not a date (YYYY-MM-DD): {value!r}") from None
