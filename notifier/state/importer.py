"""Reading the company's billing data into accounts and invoices, all or nothing.

Two formats, the same fields (README, "Import"):
- JSON: one object `{"accounts": [...], "invoices": [...]}`; either list may be left out.
- CSV: `accounts.csv` and `invoices.csv` in one folder. `import FOLDER` or `import FOLDER/accounts.csv`
  (or `.../invoices.csv`) reads whichever of the two is there. Columns are the JSON fields; the
  lists `emails` and `opt_out` are separated by `;`, `social` is `network=handle;network=handle`,
  an empty cell means the field is absent.

`parse_file` returns a `Batch`, or raises `InvalidImport` with every problem it found, each as
`FILE:LINE: field: reason`: an operator fixes the file once instead of once per error. It never
touches the store; the caller writes the batch in one go.

Speed and memory matter: an import is ~300 MB for 50,000 accounts x 24 invoices. A JSON file is
read first by `_read_plain_json`, which reports nothing: msgspec decodes it in C (invoices into
typed structs, a chunk of records at a time) and the records are checked a field at a time; it
gives up at the first thing the full checks would report. Only then is the file read again, by
`_JsonReader`: records decoded one at a time (the decoder's `raw_decode` step), so the line of each
record is known without another pass, every problem reported with its line. Its invoices go first
through an optimistic pass that turns each one into an `Invoice` as the decoder reads it
(`_Builder.plain_invoice`, a fraction of the full checks); at the first record that is not plainly
valid, that pass is dropped and the records are read one by one. Fields are located in the text
only to report a problem. `read_source` also gives the files' SHA-256, so the same content
imported again is recognised without being parsed (the CLI's everyday re-import).
"""
from __future__ import annotations

import csv
import gc
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, lt
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import msgspec

from notifier.billing.calendar import due_date_for
from notifier.config import CHANNELS
from notifier.billing.documents import normalize_document, normalize_email, normalize_phone, pix_code_problem, pix_codes_sound
from notifier.billing.models import Account, Invoice
from notifier.staff.actor import INVISIBLE

ACCOUNT_FIELDS = (
    "id", "company", "contact_name", "document", "domain", "emails", "portal_email", "whatsapp",
    "social", "due_day", "past_delinquencies", "opt_out",
)
INVOICE_FIELDS = ("id", "account", "amount", "issued", "due", "paid", "payment_url", "pix_code")
REQUIRED = {"accounts": ("id", "company", "document", "emails"), "invoices": ("id", "account", "amount", "issued")}
MAX_EMAILS = 2
MAX_REPORTED = 200  # a file with a systematic mistake would otherwise print a million lines
# Longest accepted text per field. What is imported ends in e-mail subjects, WhatsApp and SMS
# bodies and staff tasks: a 200,000-character company name made one WhatsApp send 451 messages.
MAX_LENGTH = {
    "id": 100, "account": 100, "company": 200, "contact_name": 200, "document": 30, "domain": 253,
    "emails": 254, "portal_email": 254, "whatsapp": 30, "social": 512, "opt_out": 20,
    "amount": 20, "issued": 10, "due": 10, "paid": 10, "payment_url": 2048, "pix_code": 512,
}
MAX_NETWORK = 50
MAX_AMOUNT = Decimal("999999999.99")
MAX_PAST_DELINQUENCIES = 999
# email is the contractual channel (RULES.md, "Stop"); staff is the company's own channel, and
# opting out of it would silently drop finance's tasks for this account.
NOT_OPTIONAL = {"email": "e-mail is the contractual channel and cannot be opted out of",
                "staff": "staff is the company's internal channel, not a channel to the customer"}
CSV_NAMES = ("accounts.csv", "invoices.csv")


@dataclass(frozen=True)
class Batch:
    accounts: list[Account]
    invoices: list[Invoice]
    # `FILE:LINE: field: reason` of what was imported all the same (a payment date that differs
    # from the stored one, which is kept).
    warnings: list[str] = field(default_factory=list)
    files: tuple[Path, ...] = field(default=(), compare=False)  # the files read, in order


class InvalidImport(Exception):
    """The file cannot be imported; `errors` holds every problem, `FILE:LINE: field: reason`."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__(self.report())

    def report(self, limit: int = MAX_REPORTED) -> str:
        lines = self.errors[:limit]
        if len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more errors")
        return "\n".join(lines)


class Source:
    """What an import reads: its files in reading order, their SHA-256 together (`digest`: the
    same content imported again is recognised without parsing it), and the bytes of a JSON file
    (read once, for the digest and the parse).

    A JSON file's digest is computed in a thread while the caller goes on (a first import parses
    meanwhile): hashlib lets go of the interpreter lock while it hashes, so the 300 MB of a big
    import are hashed on the other core instead of before the parse (about a third of a
    `json.load` of the same file on one core)."""

    def __init__(self, files: tuple[Path, ...], digest: str | None = None, json: bytes | None = None):
        self.files = files
        self.json = json
        self._digest = digest
        self._hashing: threading.Thread | None = None
        if digest is None:
            self._hashing = threading.Thread(target=self._hash, name="import-sha256", daemon=True)
            self._hashing.start()

    def _hash(self) -> None:
        self._digest = hashlib.sha256(self.json).hexdigest()

    @property
    def digest(self) -> str:
        if self._hashing is not None:
            self._hashing.join()
            self._hashing = None
        return self._digest


def read_source(path: Path) -> Source:
    """The JSON file, or the files of the CSV pair that exist (a folder, or either CSV file of the
    pair); InvalidImport when there is nothing to read."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".csv":
        files = _csv_pair(path)
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.name.encode() + b"\0")
            try:
                with open(file, "rb") as fh:
                    while block := fh.read(1 << 20):
                        digest.update(block)
            except OSError as exc:
                raise InvalidImport([f"{file}: cannot read: {exc.strerror}"]) from None
        return Source(files, digest.hexdigest())
    if path.suffix.lower() == ".json":
        data = _read_bytes(path)
        return Source((path,), json=data)
    raise InvalidImport([f"{path}: unknown kind of file: give a .json file, "
                         "or accounts.csv/invoices.csv or their folder"])


def parse_file(path: Path, accounts_by_id: Mapping[str, Account], today: date | None = None,
               payments: Mapping[str, date] | None = None) -> Batch:
    """`parse_source` of `read_source(path)`."""
    return parse_source(read_source(path), accounts_by_id, today, payments)


def parse_source(source: Source, accounts_by_id: Mapping[str, Account], today: date | None = None,
                 payments: Mapping[str, date] | None = None) -> Batch:
    """Validate what `read_source` read into a Batch.

    `accounts_by_id` is what the store already holds: an invoice may belong to an account that is
    not in the file, and takes its default due date from that account's `due_day`. With `today`,
    a payment date after it is rejected. `payments` are the stored payment dates by invoice id:
    a different date in the file is reported as a warning (the store keeps its own).
    """
    # A big import creates millions of objects and no reference cycles: the cyclic garbage
    # collector would walk the growing heap again and again for nothing (~15% of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        builder = _Builder(accounts_by_id, today, payments)
        builder.files.extend(source.files)
        if source.json is None:
            _read_csv_pair(source.files, builder)
        else:
            [path] = source.files
            batch = _read_plain_json(path, source.json, builder)
            if batch is not None:
                return batch
            _JsonReader(path, _decode(path, source.json), builder).read()
        return builder.finish()
    finally:
        if collecting:
            gc.enable()


def _close_matches(word: str, known) -> list[str]:
    """The known name that `word` was probably meant to be, for a "did you mean" (difflib is
    imported only for a file with a mistake: a twentieth of a second of every import)."""
    import difflib
    return difflib.get_close_matches(word, known, n=1)


def payment_date_problems(issued: date, paid: date, today: date | None) -> list[tuple[str, str]]:
    """What is wrong with paying an invoice issued on `issued` on `paid`, as (field, reason):
    a payment before the invoice existed, or one that has not happened yet. The importer and
    `pay` refuse the same dates with the same words."""
    problems = []
    if paid < issued:
        problems.append(("paid", f"before the issue date {issued.isoformat()}: {paid.isoformat()}"))
    if today is not None and paid > today:
        problems.append(("paid", f"in the future (today is {today.isoformat()}): {paid.isoformat()}"))
    return problems


def _kind(value) -> str:
    if isinstance(value, bool):
        return f"true/false ({str(value).lower()})"
    if isinstance(value, str):
        return f"text {_quoted(value)}"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a number too large"  # its digits would not even print (Python's int-to-text limit)
    if isinstance(value, (int, Decimal, float)):
        return f"number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _quoted(text: str, limit: int = 60) -> str:
    """`text` for an error message: quoted, and cut when long (a 200,000-character name must
    not come back as a 200,000-character error)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


# Characters that have no place in one line of text: C0 and C1 controls (NUL, BEL, ESC, CR, LF,
# TAB...), the Unicode line and paragraph separators, lone surrogates (not text at all: they
# cannot even be written as UTF-8), and bidi controls and zero-width characters (staff.actor.
# INVISIBLE: they make a name read as another on a terminal or in a report).
_NOT_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff" + "".join(sorted(INVISIBLE)) + "]")


def _line_problem(text: str, limit: int) -> str | None:
    """Why `text` cannot be one field of one line, or None. `isprintable()` answers in C for the
    usual text; only text it rejects is searched for the culprit."""
    if len(text) > limit:
        return f"too long: {len(text)} characters (at most {limit})"
    if text.isprintable():
        return None
    bad = _NOT_IN_A_LINE.search(text)
    if bad is None:
        return None  # a no-break space or another format character: unusual, harmless
    char = bad.group()
    if "\ud800" <= char <= "\udfff":
        return f"not valid text: a lone surrogate U+{ord(char):04X} at position {bad.start() + 1}"
    if char in INVISIBLE:
        return (f"contains U+{ord(char):04X} at position {bad.start() + 1}, a bidi control or zero-width character "
                "(it would hide or reorder text)")
    return f"contains a control character (U+{ord(char):04X}) at position {bad.start() + 1}: one line of plain text expected"


def _absent(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _text(raw: dict, key: str, problems: list, required: bool = False) -> str | None:
    value = raw.get(key)
    if value.__class__ is str:
        value = value.strip()
        if value:
            problem = _line_problem(value, MAX_LENGTH[key])
            if problem is None:
                return value
            problems.append((key, problem))
            return None
    elif value is not None:
        problems.append((key, f"must be text, not {_kind(value)}"))
        return None
    if required:
        problems.append((key, "required"))
    return None


def _whole(raw: dict, key: str, low: int, high: int, problems: list) -> int | None:
    value = raw.get(key)
    if _absent(value):
        return None
    if value.__class__ is not int:
        problems.append((key, f"must be a whole number, not {_kind(value)}"))
        return None
    if value < low or value > high:
        shown = value if value.bit_length() <= 64 else "a number too large"
        problems.append((key, f"must be {low}..{high}, not {shown}"))
        return None
    return value


def _items(raw: dict, key: str, what: str, problems: list) -> list[tuple[int, str]]:
    """The non-empty text items of a list field, with their positions."""
    value = raw.get(key)
    if _absent(value):
        return []
    if not isinstance(value, list):
        problems.append((key, f"must be a list, not {_kind(value)}"))
        return []
    items = []
    for i, item in enumerate(value):
        if item.__class__ is not str or not item.strip():
            problems.append((f"{key}[{i}]", f"must be {what}, not {_kind(item)}"))
        elif (problem := _line_problem(item.strip(), MAX_LENGTH[key])) is not None:
            problems.append((f"{key}[{i}]", problem))
        else:
            items.append((i, item.strip()))
    return items


def _normalized(check, value: str, field: str, problems: list):
    try:
        return check(value)
    except ValueError as exc:
        problems.append((field, str(exc)))
        return None


def _unknown(raw: dict, known: tuple[str, ...], problems: list) -> None:
    for key in raw:
        if key not in known:
            close = _close_matches(key[:MAX_NETWORK], known)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            problems.append((_key_shown(key), f"unknown field ({hint})"))


def _key_shown(key: str) -> str:
    """A key of the file as an error names it: as written when it is a plain word, else quoted
    and cut (an escape sequence in a key must not reach the operator's terminal)."""
    return key if key.isprintable() and len(key) <= MAX_NETWORK else _quoted(key, MAX_NETWORK)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class _Dates(dict):
    """Parsed ISO dates by their text. A big import repeats a few hundred dates a million times:
    the cache saves the parsing, and the shared objects save memory."""

    def parse(self, raw: dict, key: str, problems: list, required: bool = False) -> date | None:
        value = raw.get(key)
        day = self.get(value) if value.__class__ is str else None
        if day is not None:
            return day
        if _absent(value):
            if required:
                problems.append((key, "required"))
            return None
        if value.__class__ is not str:
            problems.append((key, f"must be a date as text (YYYY-MM-DD), not {_kind(value)}"))
            return None
        text = value.strip()
        if not _DATE.fullmatch(text):
            problems.append((key, f"not a date in ISO format (YYYY-MM-DD): {_quoted(value)}"))
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError:
            problems.append((key, f"no such date: {value!r}"))
            return None
        if not 2000 <= day.year <= 2099:
            problems.append((key, f"implausible year: {value!r}"))
            return None
        self[value] = day
        return day


_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # ASCII digits: Decimal("１２３") is 123 too


class _Amounts(dict):
    """Amounts by their text, exact: a `Decimal` of the digits as written, never through float.

    `decimal` is also the JSON decoder's `parse_float`, so an amount written as a JSON number is
    exact too. Shared objects save memory: a big import repeats a few prices a million times."""

    def __init__(self):
        super().__init__()
        self.valid: dict[str, Decimal] = {}  # the texts already accepted as amounts, for the fast path

    def decimal(self, text: str) -> Decimal:
        value = self.get(text)
        if value is None:
            value = self[text] = Decimal(text)
        return value

    def parse(self, raw: dict, problems: list) -> Decimal | None:
        value = raw.get("amount")
        if value.__class__ is str:
            text = value.strip()
        elif (value.__class__ is int and value.bit_length() <= 64) or value.__class__ is Decimal:
            text = str(value)
        elif value is None:
            text = ""
        else:
            problems.append(("amount", f"must be a decimal number (1234.56), not {_kind(value)}"))
            return None
        if not text:
            problems.append(("amount", "required"))
            return None
        if len(text) > MAX_LENGTH["amount"] or not _AMOUNT.fullmatch(text):
            problems.append(("amount", f"not a decimal number (write 1234.56): {_quoted(text, 30)}"))
            return None
        if text[0] == "-":
            problems.append(("amount", f"must not be negative: {text}"))
            return None
        if "." in text and len(text) - text.index(".") > 3:
            problems.append(("amount", f"more than 2 decimal places: {text}"))
            return None
        amount = self.decimal(text)
        if amount > MAX_AMOUNT:
            problems.append(("amount", f"more than {MAX_AMOUNT}: {text}"))
            return None
        if value.__class__ is str:
            self.valid[value] = amount
        return amount


_URL = re.compile(r"https?://[^\s/]+\S*")
_NETWORK = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}")
_ACCOUNT_KEYS = frozenset(ACCOUNT_FIELDS)
_INVOICE_KEYS = frozenset(INVOICE_FIELDS)


def _account(raw: dict, problems: list) -> Account | None:
    start = len(problems)
    if not raw.keys() <= _ACCOUNT_KEYS:
        _unknown(raw, ACCOUNT_FIELDS, problems)
    id_ = _text(raw, "id", problems, required=True)
    company = _text(raw, "company", problems, required=True)
    contact_name = _text(raw, "contact_name", problems) or ""
    document = _text(raw, "document", problems, required=True)
    if document is not None:
        document = _normalized(normalize_document, document, "document", problems)
    domain = (_text(raw, "domain", problems) or "").lower()
    if domain and not _DOMAIN.fullmatch(domain):
        problems.append(("domain", f"not a domain name (like empresa.com.br): {_quoted(raw['domain'])}"))

    emails: list[str] = []
    items = _items(raw, "emails", "an e-mail address", problems)
    if _absent(raw.get("emails")):
        problems.append(("emails", "required: one or two billing e-mails"))
    elif isinstance(raw["emails"], list) and len(raw["emails"]) > MAX_EMAILS:
        problems.append(("emails", f"at most {MAX_EMAILS} billing e-mails, not {len(raw['emails'])}"))
    for i, item in items:
        address = _normalized(normalize_email, item, f"emails[{i}]", problems)
        if address is None:
            continue
        if any(address.lower() == e.lower() for e in emails):
            problems.append((f"emails[{i}]", f"appears twice: {item!r}"))
        else:
            emails.append(address)

    portal_email = _text(raw, "portal_email", problems)
    if portal_email is not None:
        address = _normalized(normalize_email, portal_email, "portal_email", problems)
        same = [e for e in emails if address is not None and e.lower() == address.lower()]
        # A billing address that is itself wrong still counts as listed, as written: its own
        # error says what to fix, and this one would be noise.
        listed = same or [item for _, item in items if item.lower() == portal_email.lower()]
        if address is not None and not listed:
            problems.append(("portal_email", f"must be one of the billing e-mails (emails): {portal_email!r}"))
        portal_email = same[0] if same else None

    whatsapp = _text(raw, "whatsapp", problems)
    if whatsapp is not None:
        whatsapp = _normalized(normalize_phone, whatsapp, "whatsapp", problems)

    social = []
    value = raw.get("social")
    if not _absent(value):
        if not isinstance(value, dict):
            problems.append(("social", f"must be an object of network: handle, not {_kind(value)}"))
        else:
            for network, handle in value.items():
                if len(network) > MAX_NETWORK or not _NETWORK.fullmatch(network):
                    problems.append((f"social.{network[:MAX_NETWORK]}",
                                     "a network is named in lower-case letters, digits and _ (like instagram)"))
                elif handle.__class__ is not str or not handle.strip():
                    problems.append((f"social.{network}", f"must be a handle or an apprise URL, not {_kind(handle)}"))
                elif (problem := _line_problem(handle.strip(), MAX_LENGTH["social"])) is not None:
                    problems.append((f"social.{network}", problem))
                else:
                    social.append((network, handle.strip()))

    due_day = _whole(raw, "due_day", 1, 31, problems)
    past = _whole(raw, "past_delinquencies", 0, MAX_PAST_DELINQUENCIES, problems)

    opt_out = set()
    for i, name in _items(raw, "opt_out", "a channel name", problems):
        if name in NOT_OPTIONAL:
            problems.append((f"opt_out[{i}]", NOT_OPTIONAL[name]))
        elif name not in CHANNELS:
            allowed = ", ".join(c for c in CHANNELS if c not in NOT_OPTIONAL)
            problems.append((f"opt_out[{i}]", f"unknown channel {name!r} (allowed: {allowed})"))
        else:
            opt_out.add(name)

    if len(problems) > start:
        return None
    return Account(
        id=id_, company=company, document=document, emails=tuple(emails), contact_name=contact_name,
        domain=domain, portal_email=portal_email, whatsapp=whatsapp, social=tuple(social),
        due_day=20 if due_day is None else due_day, past_delinquencies=past or 0,
        opt_out=frozenset(opt_out),
    )


def _plain_line(value, limit: int) -> bool:
    """Text the full checks keep exactly as it is: one printable line, trimmed, not empty, not
    too long (a no-break space or another unusual character goes to the full checks)."""
    return value.__class__ is str and 0 < len(value) <= limit and value.isprintable() and value.strip() == value


def _plain_account(raw: dict) -> Account | None:
    """`_account` of a record with nothing unusual, or None: then `_account` decides. The usual
    record (every text one trimmed line, one or two plain e-mails...) is taken in four fifths of
    the time, building no message; anything else (an empty text, a stray space, a number written
    as text) is left to the full checks. A property test holds the two together."""
    if not raw.keys() <= _ACCOUNT_KEYS:
        return None
    get = raw.get
    id_, company, document, emails = get("id"), get("company"), get("document"), get("emails")
    if not (_plain_line(id_, MAX_LENGTH["id"]) and _plain_line(company, MAX_LENGTH["company"])
            and _plain_line(document, MAX_LENGTH["document"])):
        return None
    if emails.__class__ is not list or not 0 < len(emails) <= MAX_EMAILS:
        return None
    contact_name, domain, portal_email, whatsapp = get("contact_name"), get("domain"), get("portal_email"), get("whatsapp")
    if contact_name is not None and not _plain_line(contact_name, MAX_LENGTH["contact_name"]):
        return None
    if domain is not None:
        if not _plain_line(domain, MAX_LENGTH["domain"]):
            return None
        domain = domain.lower()
        if not _DOMAIN.fullmatch(domain):
            return None
    try:
        document = normalize_document(document)
        addresses = []
        for item in emails:
            if not _plain_line(item, MAX_LENGTH["emails"]):
                return None
            addresses.append(normalize_email(item))
        folded = [a.lower() for a in addresses]
        if len(set(folded)) != len(folded):
            return None
        if portal_email is not None:
            if not _plain_line(portal_email, MAX_LENGTH["portal_email"]):
                return None
            portal = normalize_email(portal_email).lower()
            if portal not in folded:
                return None
            portal_email = addresses[folded.index(portal)]
        if whatsapp is not None:
            if not _plain_line(whatsapp, MAX_LENGTH["whatsapp"]):
                return None
            whatsapp = normalize_phone(whatsapp)
    except ValueError:
        return None
    social = get("social")
    if social is not None:
        if social.__class__ is not dict:
            return None
        for network, handle in social.items():
            if not (len(network) <= MAX_NETWORK and _NETWORK.fullmatch(network) and _plain_line(handle, MAX_LENGTH["social"])):
                return None
        social = tuple(social.items())
    due_day, past, opt_out = get("due_day", 20), get("past_delinquencies", 0), get("opt_out")
    if due_day.__class__ is not int or not 1 <= due_day <= 31:
        return None
    if past.__class__ is not int or not 0 <= past <= MAX_PAST_DELINQUENCIES:
        return None
    if opt_out is not None:
        if opt_out.__class__ is not list or not all(name.__class__ is str and name in _OPTIONAL for name in opt_out):
            return None
        opt_out = frozenset(opt_out)
    return Account(
        id=id_, company=company, document=document, emails=tuple(addresses), contact_name=contact_name or "",
        domain=domain or "", portal_email=portal_email, whatsapp=whatsapp, social=social or (),
        due_day=due_day, past_delinquencies=past, opt_out=opt_out or frozenset(),
    )


_OPTIONAL = frozenset(c for c in CHANNELS if c not in NOT_OPTIONAL)  # the channels opt_out may name


def _invoice(raw: dict, problems: list, dates: _Dates, amounts: _Amounts, today: date | None) -> Invoice | None:
    """Everything about one invoice that does not depend on its account. `due` stays None when
    absent: the builder fills it in once every account of the import is known."""
    start = len(problems)
    if not raw.keys() <= _INVOICE_KEYS:
        _unknown(raw, INVOICE_FIELDS, problems)
    id_ = _text(raw, "id", problems, required=True)
    account = _text(raw, "account", problems, required=True)
    amount = amounts.parse(raw, problems)
    issued = dates.parse(raw, "issued", problems, required=True)
    due = dates.parse(raw, "due", problems)
    paid = dates.parse(raw, "paid", problems)
    if issued is not None and due is not None and due < issued:
        problems.append(("due", f"before the issue date {issued.isoformat()}: {due.isoformat()}"))
    if paid is not None:
        problems += payment_date_problems(issued or date.min, paid, today)
    payment_url = _text(raw, "payment_url", problems)
    if payment_url is not None and not _URL.fullmatch(payment_url):
        problems.append(("payment_url", f"not an http(s) URL: {_quoted(payment_url)}"))
    pix_code = _text(raw, "pix_code", problems)
    if pix_code is not None and (problem := pix_code_problem(pix_code)):
        problems.append(("pix_code", problem))
    if len(problems) > start:
        return None
    return Invoice(id_, account, amount, issued, due, paid, payment_url, pix_code)


# ---------------------------------------------------------------------------------------------
# Collecting the records of either format. A reader hands each record to the builder with itself
# as `where`: `where.file` and `where.line` (the record's first line) and `where.locate(field)`,
# which gives (line, full field name) and is called only when there is something to report.

class _Builder:
    def __init__(self, accounts_by_id: Mapping[str, Account], today: date | None,
                 payments: Mapping[str, date] | None = None):
        self.stored = accounts_by_id
        self.today = today
        self.payments = payments or {}
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.files: list[Path] = []  # what was read, for the caller to say
        self.accounts: list[Account] = []
        self.file_accounts: dict[str, Account] = {}
        self.account_lines: dict[str, int] = {}  # every account id of the import, valid or not
        self.invoices: list[Invoice] = []
        self.invoice_lines: dict[str, int] = {}
        # Invoices read before their account (a file may list invoices first): checked at the end.
        self.unresolved: list[tuple[str, str]] = []
        self.dates = _Dates()
        self.amounts = _Amounts()
        self.due_dates: dict[tuple[date, int], date] = {}
        self.accounts_done = False  # no more accounts to come: stored ones cannot be replaced
        self.plain_invoice = self._plain_invoice()

    def error(self, file: str, line: int, field: str, reason: str) -> None:
        self.errors.append(f"{file}:{line}: {field}: {reason}" if field else f"{file}:{line}: {reason}")

    def report(self, where, problems: list, into: list | None = None) -> None:
        for key, reason in problems:
            line, name = where.locate(key)
            (self.errors if into is None else into).append(f"{where.file}:{line}: {name}: {reason}" if name
                                                           else f"{where.file}:{line}: {reason}")

    def _first(self, lines: dict[str, int], raw: dict, where, problems: list) -> bool:
        """Record the id's line; False (and a problem) when the import already had that id."""
        id_ = raw.get("id")
        if id_.__class__ is not str or not id_.strip():
            return True
        id_ = id_.strip()
        first = lines.get(id_)
        if first is None:
            lines[id_] = where.line
            return True
        problems.append(("id", f"duplicate id {id_!r} (first on line {first})"))
        return False

    def add_account(self, raw, where) -> None:
        if raw.__class__ is not dict:
            self.report(where, [("", f"must be an object, not {_kind(raw)}")])
            return
        problems: list = []
        account = _account(raw, problems)
        if self._first(self.account_lines, raw, where, problems) and account is not None:
            self.accounts.append(account)
            self.file_accounts[account.id] = account
        if problems:
            self.report(where, problems)

    def add_invoice(self, raw, where) -> None:
        invoice = self.plain_invoice(raw)
        if invoice is not None:
            self.invoice_lines[invoice.id] = where.line
            self.invoices.append(invoice)
            return
        if raw.__class__ is not dict:
            self.report(where, [("", f"must be an object, not {_kind(raw)}")])
            return
        problems: list = []
        invoice = _invoice(raw, problems, self.dates, self.amounts, self.today)
        first = self._first(self.invoice_lines, raw, where, problems)
        account_id = _text(raw, "account", [])
        account = self.file_accounts.get(account_id) or self.stored.get(account_id)
        if account is None and account_id is not None and account_id not in self.account_lines:
            # Perhaps in an account listed further on: decided at the end, with the record's other
            # problems already reported now (every problem of a record in one run).
            line, name = where.locate("account")
            self.unresolved.append((account_id, f"{where.file}:{line}: {name}"))
        if first and invoice is not None:
            if account is not None:
                # The account's own id string instead of one copy per invoice: ~60 MB less on a
                # big import.
                invoice = Invoice(invoice.id, account.id, invoice.amount, invoice.issued,
                                  invoice.due, invoice.paid, invoice.payment_url, invoice.pix_code)
            self.invoices.append(invoice)
            stored_paid = self.payments.get(invoice.id)
            if stored_paid is not None and invoice.paid is not None and invoice.paid != stored_paid:
                self.report(where, [("paid", f"already paid on {stored_paid:%d/%m/%Y} (kept)")], self.warnings)
        if problems:
            self.report(where, problems)

    def _plain_invoice(self):
        """The usual invoice, accepted in a fraction of what the full checks cost (an import
        holds a million of them): every value is text already seen valid (dates and amounts
        repeat), the account is known, the id is new (the caller records it). Returns the Invoice,
        or None for anything else, which `add_invoice` then checks in full to say what is wrong.
        A closure, because its variables are quicker to reach than attributes.

        Must accept nothing that `_invoice` rejects (a property test runs both on the same records).
        """
        keys, invoice_lines, file_accounts, stored = _INVOICE_KEYS, self.invoice_lines, self.file_accounts, self.stored
        amounts, dates, today, url_ok, due_for = self.amounts.valid, self.dates, self.today, _URL.fullmatch, self._due
        payments = self.payments
        max_id, max_url, max_pix = MAX_LENGTH["id"], MAX_LENGTH["payment_url"], MAX_LENGTH["pix_code"]

        def plain(raw) -> Invoice | None:
            if raw.__class__ is not dict or not raw.keys() <= keys:
                return None
            get = raw.get
            id_, account_id = get("id"), get("account")
            if (id_.__class__ is not str or not id_ or len(id_) > max_id or not id_.isprintable()
                    or id_.strip() != id_ or account_id.__class__ is not str):
                return None
            due, paid, url, pix = get("due"), get("paid"), get("payment_url"), get("pix_code")
            try:
                amount = amounts.get(get("amount"))
                issued = dates.get(get("issued"))
                if due is not None:
                    due = dates.get(due) or False
                if paid is not None:
                    paid = dates.get(paid) or False
            except TypeError:  # an unhashable value, a list where text belongs
                return None
            if amount is None or issued is None or due is False or paid is False or id_ in invoice_lines:
                return None
            account = file_accounts.get(account_id)
            if account is None:
                account = stored.get(account_id)
                # A stored account may still be replaced by one later in the file, with another
                # due day: the full path fills in such a due date at the end.
                if account is None or (due is None and not self.accounts_done):
                    return None
            if due is None:
                due = due_for(issued, account.due_day)
            elif due < issued:
                return None
            if paid is not None and (paid < issued or (today is not None and paid > today)
                                     or payments.get(id_, paid) != paid):
                return None
            if url is not None and (url.__class__ is not str or len(url) > max_url or not url.isprintable()
                                    or not url_ok(url)):
                return None
            if pix is not None and (pix.__class__ is not str or pix.strip() != pix or len(pix) > max_pix
                                    or not pix.isprintable() or pix_code_problem(pix)):
                return None
            return Invoice(id_, account.id, amount, issued, due, paid, url, pix)

        return plain

    def _due(self, issued: date, due_day: int) -> date:
        due = self.due_dates.get((issued, due_day))
        if due is None:
            due = self.due_dates[issued, due_day] = due_date_for(issued, due_day)
        return due

    def finish(self) -> Batch:
        for account, place in self.unresolved:
            if account not in self.account_lines:
                self.errors.append(f"{place}: unknown account {account!r} (not in this import nor in the store)")
        if self.errors:
            raise InvalidImport(self.errors)
        invoices = self.invoices
        for i, invoice in enumerate(invoices):
            if invoice.due is None:
                account = self.file_accounts.get(invoice.account) or self.stored[invoice.account]
                invoices[i] = invoice._replace(due=self._due(invoice.issued, account.due_day))
        return Batch(self.accounts, invoices, self.warnings, tuple(self.files))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidImport([f"{path}: cannot read: {exc.strerror}"]) from None


def _decode(path: Path, data: bytes, errors: Iterable[str] = ()) -> str:
    """The text of a file, or InvalidImport (after `errors`, what was found before) naming the
    line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")  # Excel and Notepad put a BOM in front of UTF-8
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidImport([*errors, f"{path}:{line}: not UTF-8 text: save the file as UTF-8"]) from None


# ---------------------------------------------------------------------------------------------
# JSON

_WS = re.compile(r"[ \t\n\r]*")
_KEY_CACHE: dict[str, re.Pattern] = {}
_FIELD_PARTS = re.compile(r"\[(\d+)\]|([^.\[]+)")  # emails[1] -> ("", "emails"), ("1", "")


class _JsonReader:
    """Walks `{"accounts": [...], "invoices": [...]}` one record at a time, counting newlines as
    it goes, so the text is scanned for them once and in order."""

    def __init__(self, path: Path, text: str, builder: _Builder):
        self.file = str(path)
        self.text = text
        self.builder = builder
        self.decoder = json.JSONDecoder(parse_float=builder.amounts.decimal)
        self.line = 1
        self.counted = 0
        self.section = ""
        self.index = 0
        self.start = self.end = 0

    def line_at(self, pos: int) -> int:
        if pos > self.counted:
            self.line += self.text.count("\n", self.counted, pos)
            self.counted = pos
        return self.line

    def locate(self, field: str) -> tuple[int, str]:
        """The line of `field` inside the current record (`emails[1]`: that address's line), and
        the field's full name. Only called to report a problem, so it may search the record."""
        name = f"{self.section}[{self.index}]"
        if not field:
            return self.line, name
        text, end = self.text, self.end
        at = value = self.start  # where the field is, and where its value (to descend into) starts
        for index, key in _FIELD_PARTS.findall(field):
            if key:
                pattern = _KEY_CACHE.get(key)
                if pattern is None:
                    quoted = re.escape(json.dumps(key)[1:-1])
                    pattern = _KEY_CACHE[key] = re.compile(r'(?<!\\)"' + quoted + r'"[ \t\n\r]*:[ \t\n\r]*')
                found = pattern.search(text, value, end)
                if found is None:
                    break
                at, value = found.start(), found.end()
            else:
                if text[value:value + 1] != "[":
                    break
                pos = self.skip(value + 1)
                try:
                    for _ in range(int(index)):
                        pos = self.skip(self.decoder.scan_once(text, pos)[1])
                        pos = self.skip(pos + 1)  # the ','
                except (StopIteration, ValueError):
                    break
                at = value = pos
        return self.line + text.count("\n", self.start, at), f"{name}.{field}"

    def fail(self, pos: int, reason: str) -> InvalidImport:
        self.builder.error(self.file, self.line_at(pos), "", f"not valid JSON: {reason}")
        return InvalidImport(self.builder.errors)

    def skip(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()

    def value(self, pos: int):
        """The JSON value at `pos` and where it ends, or InvalidImport naming the syntax error."""
        try:
            return self.decoder.scan_once(self.text, pos)  # raw_decode without its Python frame
        except StopIteration as exc:
            raise self.fail(exc.value, "Expecting value") from None
        except json.JSONDecodeError as exc:
            raise self.fail(exc.pos, exc.msg) from None
        except RecursionError:
            raise self.fail(pos, "values nested too deeply") from None
        except ValueError:  # Python refuses to read an integer of more than 4,300 digits
            raise self.fail(pos, "a number with too many digits") from None

    def read(self) -> None:
        text = self.text
        pos = self.skip(0)
        if text[pos:pos + 1] != "{":
            raise self.fail(pos, 'the file must hold one object: {"accounts": [...], "invoices": [...]}')
        pos = self.skip(pos + 1)
        seen = set()
        while text[pos:pos + 1] != "}":
            if text[pos:pos + 1] != '"':
                raise self.fail(pos, "expected a key in double quotes")
            key, pos = self.value(pos)
            pos = self.skip(pos)
            if text[pos:pos + 1] != ":":
                raise self.fail(pos, "expected ':' after a key")
            pos = self.skip(pos + 1)
            if key in seen:
                self.builder.error(self.file, self.line_at(pos), _key_shown(key), "appears twice in the file")
            seen.add(key)
            if key in ("accounts", "invoices"):
                pos = self.records(key, pos)
                self.builder.accounts_done |= key == "accounts"
            else:
                self.builder.error(self.file, self.line_at(pos), _key_shown(key), "unknown field (expected accounts and invoices)")
                pos = self.value(pos)[1]
            pos = self.skip(pos)
            if text[pos:pos + 1] == ",":
                pos = self.skip(pos + 1)
                if text[pos:pos + 1] == "}":
                    raise self.fail(pos, "a ',' before '}'")
            elif text[pos:pos + 1] != "}":
                raise self.fail(pos, "expected ',' or '}' after a value")
        pos = self.skip(pos + 1)
        if pos != len(text):
            raise self.fail(pos, "extra data after the end of the object")

    def records(self, section: str, pos: int) -> int:
        text = self.text
        if text[pos:pos + 1] != "[":
            self.builder.error(self.file, self.line_at(pos), section, "must be a list [...] of objects")
            return self.value(pos)[1]
        if section == "invoices" and not self.builder.invoices and not self.builder.invoice_lines:
            end = self.plain_invoices(pos)
            if end is not None:
                self.line_at(end)
                return end
        add = self.builder.add_account if section == "accounts" else self.builder.add_invoice
        self.section = section
        pos = self.skip(pos + 1)
        index = 0
        while text[pos:pos + 1] != "]":
            raw, end = self.value(pos)
            self.line_at(pos)
            self.start, self.end, self.index = pos, end, index
            add(raw, self)
            index += 1
            pos = self.skip(end)
            if text[pos:pos + 1] == ",":
                pos = self.skip(pos + 1)
                if text[pos:pos + 1] == "]":
                    raise self.fail(pos, "a ',' before ']'")
            elif text[pos:pos + 1] != "]":
                raise self.fail(pos, "expected ',' or ']' after a record")
        return pos + 1


    def plain_invoices(self, pos: int) -> int | None:
        """The usual file's invoices, all of them at once: the decoder turns each record into an
        Invoice as soon as it has read it (`object_hook`), with no Python loop and no dict kept.
        Only for the first list of invoices. Returns where it ends; or None, with its work undone,
        if any record is not plain:
        `records` then reads them one by one, which knows lines and reports every problem."""
        builder = self.builder
        plain = builder.plain_invoice
        dates, amounts, today = builder.dates, builder.amounts, builder.today
        failed, taken = False, 0

        def hook(raw):
            nonlocal failed, taken
            if failed:
                return None
            invoice = plain(raw)
            if invoice is None and _invoice(raw, [], dates, amounts, today) is not None:
                invoice = plain(raw)  # a date or an amount not seen before, now checked and known
            if invoice is None:
                failed = True
                return None
            taken += 1
            return invoice

        decoder = json.JSONDecoder(object_hook=hook, parse_float=builder.amounts.decimal)
        try:
            invoices, end = decoder.scan_once(self.text, pos)
        except (StopIteration, ValueError, RecursionError):  # `records` tells what is wrong
            return None
        # Not an object among the records, or the same id twice (checked at once, not per record).
        if failed or taken != len(invoices) or len(set(map(attrgetter("id"), invoices))) != taken:
            return None
        builder.invoices.extend(invoices)
        return end



# ---------------------------------------------------------------------------------------------
# JSON, the fast path: a file with nothing to report

class _InvoiceIn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """An invoice record as msgspec decodes it, in C: the fields' JSON types are checked, no value
    is. (Text and None only, so no reference cycles: not tracked by the garbage collector.) The
    fields are INVOICE_FIELDS in their order: `_PlainInvoices.take` transposes them by position."""
    id: str
    account: str
    amount: str
    issued: str
    due: str | None = None
    paid: str | None = None
    payment_url: str | None = None
    pix_code: str | None = None


_DECODE_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_DECODE_ACCOUNTS = msgspec.json.Decoder(list[dict]).decode
_DECODE_INVOICES = msgspec.json.Decoder(list[_InvoiceIn]).decode
_TOP_OPEN = re.compile(rb"[ \t\n\r]*\{")
_TOP_KEY = re.compile(rb'[ \t\n\r]*"(accounts|invoices)"[ \t\n\r]*:[ \t\n\r]*')
_TOP_NEXT = re.compile(rb"[ \t\n\r]*(?:,|\}[ \t\n\r]*\Z)")
_TOP_EMPTY = re.compile(rb"[ \t\n\r]*\}[ \t\n\r]*\Z")
_BOM = b"\xef\xbb\xbf"
_ASTUPLE = msgspec.structs.astuple


class _NotPlain(Exception):
    """The fast path met something the full checks must look at: it gives up."""


def _read_plain_json(path: Path, data: bytes, builder: _Builder) -> Batch | None:
    """The Batch of a JSON file with nothing to report, or None: then `_JsonReader` reads it again,
    slowly, with line numbers, and reports every problem (or, for what this path does not take,
    such as an amount written as a JSON number, accepts it).

    msgspec decodes the file at C speed into plain dicts (accounts) and `_InvoiceIn` structs
    (invoices, 96% of the records), and the invoices are checked a field at a time with C-level
    `map`s over values already seen valid: a few hundred distinct dates and amounts are checked
    once each, by the same functions as the full checks. It accepts only what the full checks
    accept, with the same result (a property test compares the two).
    """
    start = len(_BOM) if data.startswith(_BOM) else 0
    try:
        spans = _top_spans(data, start, _DECODE_TOP(memoryview(data)[start:]))
        if spans is None:
            return None
        # What is decoded is the span, not the member's value msgspec gave (the last one of its
        # key): a span that decodes on its own is exactly the first value, so a key given twice
        # cannot slip through.
        begin, end = spans.get("accounts", (0, 0))
        raw_accounts = _DECODE_ACCOUNTS(memoryview(data)[begin:end]) if end else []
        accounts = []
        for raw in raw_accounts:
            account = _plain_account(raw) or _account(raw, [])
            if account is None:
                return None
            accounts.append(account)
        del raw_accounts
        if len({a.id for a in accounts}) != len(accounts):
            return None
        invoices = _PlainInvoices(accounts, builder)
        if "invoices" in spans:
            begin, end = spans["invoices"]
            if data[begin:begin + 1] != b"[":
                return None
            for chunk in _invoice_chunks(data, begin, end):
                invoices.take(_DECODE_INVOICES(chunk))
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, _NotPlain):
        return None
    return Batch(accounts, invoices.invoices, [], (path,))


def _top_spans(data: bytes, start: int, members: dict) -> dict[str, tuple[int, int]] | None:
    """Where the values of `{"accounts": [...], "invoices": [...]}` are in `data` (begin, end), by
    key, walking the object's own punctuation between them (their lengths come from `members`);
    None for any other shape (a key twice, another key), which the full checks report."""
    spans: dict[str, tuple[int, int]] = {}
    found = _TOP_OPEN.match(data, start)
    if found is None:
        return None
    pos = found.end()
    if _TOP_EMPTY.match(data, pos):
        return spans
    while True:
        found = _TOP_KEY.match(data, pos)
        if found is None:
            return None
        key = found[1].decode()
        if key in spans or key not in members:
            return None
        begin = found.end()
        spans[key] = begin, begin + len(members[key])
        found = _TOP_NEXT.match(data, begin + len(members[key]))
        if found is None:
            return None
        pos = found.end()
        if data[pos - 1:pos] != b",":
            return spans


class _Known(dict):
    """Values of one field already accepted, and what they stand for. An unseen value is checked
    once by `check`, the full checks' own function: accepted, it is kept; rejected, `_NotPlain`."""

    def __init__(self, check, seed=()):
        super().__init__(seed)
        self.check = check

    def __missing__(self, value):
        problems: list = []
        result = self.check(value, problems)
        if problems:
            raise _NotPlain
        self[value] = result
        return result


def _plain_texts(values: list, limit: int) -> tuple[list, str]:
    """`values` (text or None) as the full checks keep them ("" as None), and their texts joined
    by spaces; `_NotPlain` unless every text is one line of at most `limit` characters with
    nothing to strip. Checked on the joined texts, in C; only a column with a space or an unusual
    character in a value is looked at value by value."""
    if "" in values:
        values = [value or None for value in values]
    texts = list(filter(None, values))
    if not texts:
        return values, ""
    if max(map(len, texts)) > limit:
        raise _NotPlain
    joined = " ".join(texts)
    # isprintable() is False for every control and separator character but the ASCII space:
    # printable text with no space but the separators has no whitespace at all, nothing to strip.
    printable = joined.isprintable()
    if not printable and _NOT_IN_A_LINE.search(joined):
        raise _NotPlain
    if (not printable or joined.count(" ") != len(texts) - 1) and list(map(str.strip, texts)) != texts:
        raise _NotPlain
    return values, joined


def _plain_urls(urls: list[str], joined: str) -> bool:
    """`_URL.fullmatch` of every one of `urls`, told from them `joined` by spaces when no URL has
    a space of its own (then `https?://[^\\s/]+\\S*` is: a scheme, and a host that is not "/")."""
    if joined.count(" ") != len(urls) - 1:
        return all(map(_URL.fullmatch, urls))
    joined = f" {joined} "
    return (joined.count(" http://") + joined.count(" https://") == len(urls)
            and not any(bad in joined for bad in (" http:// ", " https:// ", " http:///", " https:///")))


class _PlainInvoices:
    """Invoices checked a field at a time over a chunk of records (every id, then every amount...)
    with the same checks as `_invoice` and `_Builder.add_invoice`; `_NotPlain` at the first thing
    they would report. A chunk of a few thousand records at a time: each pass over a chunk finds
    its records still in the processor's cache, where passes over a million records would wait
    on memory for every one of them."""

    def __init__(self, accounts: list[Account], builder: _Builder):
        self.builder = builder
        self.owners = {**builder.stored, **{a.id: a for a in accounts}}
        # The account's own id string instead of one copy per invoice: ~60 MB less on a big import.
        self.owner_id = {key: a.id for key, a in self.owners.items()}.__getitem__
        dates, amounts = builder.dates, builder.amounts
        self.amount = _Known(lambda text, problems: amounts.parse({"amount": text}, problems)).__getitem__
        self.issued = _Known(lambda text, problems: dates.parse({"d": text}, "d", problems, required=True)).__getitem__
        self.optional = _Known(lambda text, problems: dates.parse({"d": text}, "d", problems), {None: None})
        self.never: dict = {}  # `optional`, open as the last day of all (for comparisons)
        self.ids: set[str] = set()
        self.invoices: list[Invoice] = []

    def take(self, records: list[_InvoiceIn]) -> None:
        if not records:
            return
        # The columns, by transposing the records' tuples in C (half the time of a getter per field).
        builder, column = self.builder, dict(zip(INVOICE_FIELDS, map(list, zip(*map(_ASTUPLE, records)))))
        del records
        ids, _ = _plain_texts(column.pop("id"), MAX_LENGTH["id"])
        before = len(self.ids)
        self.ids.update(ids)
        if None in ids or len(self.ids) != before + len(ids):
            raise _NotPlain
        try:
            account_ids = list(map(self.owner_id, column.pop("account")))
        except KeyError:  # not an account of this import nor of the store (or not written as its id)
            raise _NotPlain from None
        amounts = list(map(self.amount, column.pop("amount")))
        issued = list(map(self.issued, column.pop("issued")))
        optional = self.optional
        due = list(map(optional.__getitem__, column.pop("due")))
        if None in due:
            for i, day in enumerate(due):
                if day is None:
                    due[i] = builder._due(issued[i], self.owners[account_ids[i]].due_day)
        if any(map(lt, due, issued)):
            raise _NotPlain
        paid_texts = column.pop("paid")
        paid = list(map(optional.__getitem__, paid_texts))
        if paid.count(None) != len(paid):
            # Compared with the issue date as if an open invoice were paid on the last day of all.
            never = self.never
            if len(never) != len(optional):
                never.update((text, day or date.max) for text, day in optional.items())
            if any(map(lt, map(never.__getitem__, paid_texts), issued)) or (
                    builder.today is not None and max(filter(None, paid)) > builder.today):
                raise _NotPlain
            if builder.payments:  # a payment date that differs from the stored one is a warning, with its line
                stored = builder.payments
                if any(p is not None and stored.get(i, p) != p for i, p in zip(ids, paid)):
                    raise _NotPlain
        urls, joined = _plain_texts(column.pop("payment_url"), MAX_LENGTH["payment_url"])
        if joined and not _plain_urls(list(filter(None, urls)), joined):
            raise _NotPlain
        pix, joined = _plain_texts(column.pop("pix_code"), MAX_LENGTH["pix_code"])
        if joined and not pix_codes_sound(list(filter(None, pix))):
            raise _NotPlain
        self.invoices += map(tuple.__new__, repeat(Invoice), zip(ids, account_ids, amounts, issued, due, paid, urls, pix))


# Where one invoice record ends and the next begins, in a file that puts a newline between them:
# a newline is never inside a JSON string, so a `}` with only a newline and a comma before the
# next record (either side of the newline) closes an object. Invoices hold no objects: it closes
# a record (and if not, the chunk does not decode and the full checks take over).
_RECORD_BREAK = re.compile(rb"\}[ \t\r]*\n[ \t\r\n]*,|\},[ \t\r]*\n")
_CHUNK_BYTES = 1 << 17


def _invoice_chunks(data: bytes, begin: int, end: int) -> Iterator[bytes]:
    """The records of the invoice list `data[begin:end]` as JSON lists of about `_CHUNK_BYTES`
    each, cut between records; the whole list when it has no newlines."""
    begin, end = begin + 1, end - 1  # inside the brackets
    while begin < end:
        cut = _RECORD_BREAK.search(data, begin + _CHUNK_BYTES, end) if begin + _CHUNK_BYTES < end else None
        stop = cut.start() + 1 if cut else end
        yield b"".join((b"[", data[begin:stop], b"]"))
        begin = cut.end() if cut else end


# ---------------------------------------------------------------------------------------------
# CSV

# Cells holding a list or a table, and cells holding a number: CSV has only text, so these are
# turned into what the JSON format would hold before the shared checks run.
_CSV_LISTS = ("emails", "opt_out")
_CSV_WHOLE = ("due_day", "past_delinquencies")
_WHOLE = re.compile(r"-?[0-9]+")


class _CsvReader:
    def __init__(self, path: Path, builder: _Builder):
        self.file = str(path)
        self.path = path
        self.builder = builder
        self.line = 1

    def locate(self, field: str) -> tuple[int, str]:
        return self.line, field

    def read(self, fields: tuple[str, ...], add) -> None:
        # Read as a stream: a whole CSV in memory as one string (and again in csv's buffers) would
        # cost ~4 bytes per character. newline="" leaves line ends to csv, which counts lines at
        # \n, \r\n and \r, the line ends an editor shows.
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as fh:
                self._rows(csv.reader(fh), fields, add)
        except OSError as exc:
            raise InvalidImport([f"{self.path}: cannot read: {exc.strerror}"]) from None
        except UnicodeDecodeError:
            # Decoding goes by blocks, so the line the reader had reached is not the bad byte's.
            _decode(self.path, _read_bytes(self.path), self.builder.errors)

    def _rows(self, reader, fields: tuple[str, ...], add) -> None:
        try:
            header = next(reader, None)
        except csv.Error as exc:
            self.builder.error(self.file, 1, "", f"not valid CSV: {exc}")
            return
        if header is None:
            self.builder.error(self.file, 1, "", "empty file: the first line must name the columns")
            return
        header = [h.strip() for h in header]
        if not self._header_ok(header, fields):
            return
        previous = reader.line_num
        while True:
            try:
                row = next(reader, None)
            except csv.Error as exc:
                self.builder.error(self.file, previous + 1, "", f"not valid CSV: {exc}")
                return
            if row is None:
                return
            self.line = previous + 1  # where the record starts: a quoted cell may span lines
            previous = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                self.builder.error(self.file, self.line, "", f"{len(row)} cells but {len(header)} columns")
                continue
            raw, problems = self._record(dict(zip(header, row)))
            if problems:
                self.builder.report(self, problems)
            add(raw, self)

    def _header_ok(self, header: list[str], fields: tuple[str, ...]) -> bool:
        if len(header) == 1 and ";" in header[0]:
            self.builder.error(self.file, 1, "", "columns must be separated by commas, not ';' "
                               "(in Excel: save as 'CSV UTF-8 (delimitado por vírgulas)')")
            return False
        ok = True
        for i, name in enumerate(header):
            if name not in fields:
                close = _close_matches(name, fields)
                hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(fields)}"
                self.builder.error(self.file, 1, name or f"column {i + 1}", f"unknown column ({hint})")
                ok = False
            elif name in header[:i]:
                self.builder.error(self.file, 1, name, "column appears twice")
                ok = False
        section = "accounts" if fields is ACCOUNT_FIELDS else "invoices"
        for name in REQUIRED[section]:
            if name not in header:
                self.builder.error(self.file, 1, name, "required column missing")
                ok = False
        return ok

    def _record(self, cells: dict[str, str]) -> tuple[dict, list]:
        raw: dict = {}
        problems: list = []
        for name, cell in cells.items():
            cell = cell.strip()
            if not cell:
                continue
            if name in _CSV_LISTS:
                raw[name] = [item.strip() for item in cell.split(";") if item.strip()]
            elif name in _CSV_WHOLE:
                raw[name] = int(cell) if _WHOLE.fullmatch(cell) else cell
            elif name == "social":
                social = {}
                for item in filter(None, (part.strip() for part in cell.split(";"))):
                    network, sep, handle = item.partition("=")
                    if not sep:
                        problems.append(("social", f"write network=handle (like instagram=@empresa), not {item!r}"))
                    elif network.strip() in social:
                        problems.append(("social", f"network {network.strip()!r} appears twice"))
                    else:
                        social[network.strip()] = handle.strip()
                raw[name] = social
            else:
                raw[name] = cell
        return raw, problems


def _csv_pair(path: Path) -> tuple[Path, ...]:
    """The files of the CSV pair that exist, accounts first (each invoice finds its account and
    its default due date)."""
    if path.is_dir():
        folder = path
    elif path.name in CSV_NAMES:
        folder = path.parent
        if not path.exists():
            raise InvalidImport([f"{path}: cannot read: No such file or directory"])
    else:
        raise InvalidImport([f"{path}: CSV files must be named {' and '.join(CSV_NAMES)} "
                             "(the pair is read from one folder)"])
    files = tuple(folder / name for name in CSV_NAMES if (folder / name).exists())
    if not files:
        raise InvalidImport([f"{folder}: neither {CSV_NAMES[0]} nor {CSV_NAMES[1]} is there"])
    return files


def _read_csv_pair(files: tuple[Path, ...], builder: _Builder) -> None:
    for file in files:
        if file.name == CSV_NAMES[0]:
            _CsvReader(file, builder).read(ACCOUNT_FIELDS, builder.add_account)
        else:
            builder.accounts_done = True
            _CsvReader(file, builder).read(INVOICE_FIELDS, builder.add_invoice)
    builder.accounts_done = True
