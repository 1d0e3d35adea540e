"""Turn a notice into the message a customer (or staff) reads: Jinja2 templates in pt-BR.

Templates live in `message_templates/` (one per stage and channel, sharing per-channel bases);
an operator's folder (`config.templates`) is searched first, so any file can be overridden.
What templates see is documented in `message_templates/README.md`. Amounts and dates reach the
templates already formatted the Brazilian way (R$ 1.234,56, 20/11/2026), so an operator's
template or a WhatsApp variable cannot get the format wrong.

Rendering is strict (`StrictUndefined`): a misspelt variable is an error with file and line, and
`Renderer.check()` renders every stage x channel against built-in sample accounts at start-up,
so a broken template is found before any customer sees it.
"""
from __future__ import annotations

import re
import traceback
import unicodedata
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

import jinja2
from markupsafe import Markup, escape

from notifier.channels import FAILED, Message, Result

from notifier.state import caches
from notifier.billing.calendar import BankCalendar, InvoiceDates, invoice_dates, month_end
from notifier.config import CHANNELS, DEFAULT_LADDER, STAGES, Config
from notifier.billing.models import Account, Invoice, Notice
from notifier.billing.pixqr import pix_qr_png
from notifier.billing.rules import PRE_DUE_STAGES, invoice_timeline, owed_on, social_handle

TEMPLATES = Path(__file__).resolve().parents[2] / "message_templates"

WHATSAPP_BODY_LIMIT = 1600  # Twilio's limit for one WhatsApp body
WHATSAPP_TEMPLATE_LIMIT = 1024  # Meta: an approved template's body, variables included
WHATSAPP_TEXT_LIMIT = 1024  # our own free-form WhatsApp text: one screen, like a template
SOCIAL_LIMIT = 1000  # Instagram's direct messages take about 1,000 characters
# The channels whose bases lay out the stage's words (`words`) and the common sentences (`say`).
WORDED = frozenset({"email", "whatsapp", "sms"})
SMS_MAX_SEGMENTS = 2
# The stages a customer may receive on WhatsApp; each needs an approved template to go out.
WHATSAPP_STAGES = tuple(s for s in STAGES if s != "deletion_due")


class TemplateError(Exception):
    """A template that cannot render; the message starts with `path:line:` when a line is known."""


# --- formats ------------------------------------------------------------------------------------

# CLDR's standard currency format for pt_BR (what babel's `format_currency(amount, "BRL",
# locale="pt_BR")` gives): "R$", a no-break space, "." between thousands, "," before the two
# decimal places, half-even rounding, a leading "-" for a negative amount. Written here with the
# standard library's own grouping instead of asking babel each time: loading babel's locale data
# (the root, pt and pt_BR pickles, which import babel.dates) was 60-70 ms of every process that
# renders a message, for this one fixed format. tests/test_render.py holds it to babel's output.
_BR_SEPARATORS = str.maketrans(",.", ".,")


@lru_cache(maxsize=4096)
def brl(value) -> str:
    """R$ 1.234,56 (with a no-break space after R$, as CLDR writes it, which SMS replaces)."""
    text = format(Decimal(value), ",.2f")
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    return f"{sign}R$\u00a0{digits.translate(_BR_SEPARATORS)}"


@lru_cache(maxsize=4096)
def br_date(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def document_kind(document: str) -> str:
    size = len(re.sub(r"[^0-9A-Za-z]", "", document))
    return {11: "CPF", 14: "CNPJ"}.get(size, "documento")


def mask_document(document: str) -> str:
    """CPF/CNPJ with the leading and check digits hidden: `***.222.333-**`, `**.222.333/0001-**`.

    Outside e-mail a message may be read by someone other than the customer (a shared phone, a
    social inbox), so LGPD's necessity principle wants the document masked there.
    """
    d = re.sub(r"[^0-9A-Za-z]", "", document).upper()
    if len(d) == 11:
        return f"***.{d[3:6]}.{d[6:9]}-**"
    if len(d) == 14:
        return f"**.{d[2:5]}.{d[5:8]}/{d[8:12]}-**"
    return "***"


def join_or(items) -> str:
    """'a, b ou c', the Portuguese way of listing alternatives."""
    items = [str(i) for i in items]
    return " ou ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else "".join(items)


def bare_url(url: str) -> str:
    """A web address without its scheme (www.exemplo.com.br): phones still link it, and an SMS
    has no room to spare."""
    return re.sub(r"^https?://", "", str(url)).rstrip("/")


# `|b` marks words that stand out (amounts, dates) with two private-use characters, which no
# billing data contains: each channel then shows them its own way (`_finish`), so a sentence is
# written once for the e-mail, its HTML and WhatsApp.
BOLD_START, BOLD_END = "\ue000", "\ue001"


def bold(value) -> str:
    return f"{BOLD_START}{value}{BOLD_END}"


def plain(text) -> str:
    """Text with the `|b` marks removed (SMS, social, staff, the e-mail's text part)."""
    return str(text).replace(BOLD_START, "").replace(BOLD_END, "")


def rich_inline(text) -> Markup:
    """Text escaped for HTML, its `|b` marks as <strong>."""
    return Markup(str(escape(str(text))).replace(BOLD_START, "<strong>").replace(BOLD_END, "</strong>"))


def paragraphs(text) -> Markup:
    """Plain text as HTML paragraphs (blank line = new paragraph, line break = <br>), escaped,
    `|b` marks in bold."""
    blocks = [b for b in re.split(r"\n\s*\n", str(text).strip()) if b.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(rich_inline(line) for line in block.split("\n")))
        for block in blocks
    )


def day_month(value: str) -> str:
    """20/11/2026 -> 20/11: a subject has no room for the year a phone would cut anyway."""
    return str(value)[:5]


def upper_first(text) -> str:
    """The first letter in upper case and the rest untouched (Jinja's `capitalize` lowers the
    rest: "joão Pereira")."""
    text = str(text)
    return text[:1].upper() + text[1:]


def _finish(text: str, channel: str) -> str:
    """The `|b` marks as the channel shows them: *bold* on WhatsApp, nothing elsewhere."""
    if channel == "whatsapp":
        return text.replace(BOLD_START, "*").replace(BOLD_END, "*")
    return plain(text)


# --- SMS: GSM-7 -----------------------------------------------------------------------------------

# GSM 03.38 basic set (ESC left out) and its extension table, whose characters cost two septets.
# Lowercase ç, ã, õ, â, ê, ô, á, í, ó, ú are not in it: one of them turns the whole SMS into UCS-2
# (70 characters a segment instead of 160), so they are transliterated.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
_SMS_REPLACEMENTS = {
    "\u00a0": " ", "\u202f": " ", "\u2009": " ",  # CLDR's spaces in "R$ 1.234,56" force UCS-2
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
    "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u2022": "-", "\u00b7": "-",
    "\u00ba": "o", "\u00aa": "a",
}


def to_gsm7(text: str) -> str:
    """`text` with every character outside GSM-7 replaced: typographic marks by their ASCII form,
    accented letters by the bare letter (não → nao), anything else by '?'."""
    out = []
    for char in text:
        char = _SMS_REPLACEMENTS.get(char, char)
        if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in char):
            out.append(char)
            continue
        bare = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        out.append(bare if bare and all(c in GSM7_BASIC for c in bare) else "?")
    return "".join(out)


def sms_segments(text: str) -> int:
    """How many SMS segments `text` takes: GSM-7 160 septets alone, 153 each when concatenated;
    UCS-2 (any non-GSM-7 character) 70 alone, 67 each."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        units, single, joined = sum(2 if c in GSM7_EXTENDED else 1 for c in text), 160, 153
    else:
        units, single, joined = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // joined)


# --- WhatsApp: long bodies --------------------------------------------------------------------------

def _units(text: str) -> int:
    # Twilio counts UTF-16 code units: an emoji takes two.
    return len(text.encode("utf-16-le")) // 2


def split_whatsapp(text: str, limit: int = WHATSAPP_BODY_LIMIT) -> list[str]:
    """`text` in bodies of at most `limit` characters, in order, cut between paragraphs.

    Paragraphs (separated by a blank line) are packed greedily; a paragraph longer than `limit`
    alone is cut between lines, then between words, and only a single word longer than `limit`
    (say, a very long link) is cut inside.
    """
    paras = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text.strip())]
    return _pack([p for p in paras if p.strip()], "\n\n", limit, _split_paragraph)


def _split_paragraph(para: str, limit: int) -> list[str]:
    return _pack(para.split("\n"), "\n", limit, _split_line)


def _split_line(line: str, limit: int) -> list[str]:
    return _pack(line.split(" "), " ", limit, _cut_word)


def _cut_word(word: str, limit: int) -> list[str]:
    parts, current = [], ""
    for char in word:
        if _units(current + char) > limit:
            parts.append(current)
            current = ""
        current += char
    return parts + [current] if current else parts


def _pack(pieces: list[str], sep: str, limit: int, split_further) -> list[str]:
    out: list[str] = []
    current: str | None = None
    for piece in pieces:
        if _units(piece) > limit:
            if current is not None:
                out.append(current)
                current = None
            out.extend(split_further(piece, limit))
        elif current is None:
            current = piece
        elif _units(current + sep + piece) <= limit:
            current += sep + piece
        else:
            out.append(current)
            current = piece
    if current is not None:
        out.append(current)
    return out


def _screens(text: str) -> list[str]:
    """`text` as WhatsApp bodies of one screen each (`WHATSAPP_TEXT_LIMIT`), each ending in a line break."""
    return [part + "\n" for part in split_whatsapp(text, WHATSAPP_TEXT_LIMIT)] if text.strip() else []


# --- what templates see --------------------------------------------------------------------------

_DATE_FIELDS = tuple(f.name for f in fields(InvoiceDates))


@dataclass(frozen=True)
class InvoiceView:
    """One open invoice as templates see it: amounts and dates already formatted, and where it
    stands today, so that each invoice of a message can be told with its own dates."""
    id: str
    amount: str
    due: str
    effective_due: str
    overdue: str
    suspension: str
    deletion: str
    late: bool  # not paid by its effective due date, as of today
    shifted: bool  # the due date is not a bank business day: payable later without penalty
    suspended: bool  # its suspension date is today or past
    deletion_passed: bool  # its deletion date is past (today it is `is_deletion_day`)
    payment_url: str | None
    pix_code: str | None
    qr_cid: str | None  # Content-ID of its Pix QR code image in the HTML e-mail


@dataclass(frozen=True)
class KeyDates:
    """The dates a stage's headline talks about, each taken from the invoice that decides it.

    The due dates are those of the invoice that brought the notice (`invoice`); the suspension
    and deletion are the earliest among every open invoice (`suspension_by`, `deletion_by`),
    because the oldest unpaid invoice is the one that suspends the service or has its data
    deleted. Telling a customer "suspended from today" when an older invoice suspended the
    service a month ago would contradict the earlier notices.
    """
    invoice: InvoiceView
    suspension_by: InvoiceView
    deletion_by: InvoiceView
    due: str
    effective_due: str
    overdue: str
    suspension: str
    deletion: str
    shifted: bool
    is_suspension_day: bool
    suspended: bool  # the suspension date is today or past
    is_deletion_day: bool
    deletion_passed: bool
    # RULES.md "What every notice must tell": no suspension_warning comes before the suspension
    # date (late legacy due days), so the reminder and due-day notices state it themselves.
    tell_suspension: bool


def _web_url(url: str | None) -> str | None:
    # Only a web address becomes a link: anything else (javascript:, typos) is not shown at all.
    return url if url and re.match(r"https?://\S+$", url) else None


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Compiled templates kept between processes (Jinja's per-user folder in the system's temp
    dir, keyed by each template's source): compiling them was a fifth of a second of every
    `run-once` that renders anything. None where that folder cannot be made safely."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # Jinja refuses a cache folder that is not ours alone
        return None


class Renderer:
    """Renders notices into `channels.Message`s with the configured company and templates."""

    def __init__(self, config: Config):
        self.config = config
        self.calendar = config.calendar
        search = [TEMPLATES]
        if config.templates is not None:
            override = Path(config.templates).resolve()
            if not override.is_dir():
                raise TemplateError(f"{config.templates}: templates folder not found (config key: templates)")
            search.insert(0, override)
        self._roots = [str(p) for p in search]
        self._qr_cache = caches.folder("pix-qr")  # None unless the command line keeps caches
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(self._roots),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
            keep_trailing_newline=True,
            # Templates are read once per process: re-checking their files' mtimes costs nine
            # stat() calls per message, a third of a 10,000-message cycle (restart to reload).
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
            bytecode_cache=_bytecode_cache(),
        )
        self.env.filters.update(brl=brl, date=br_date, mask_document=mask_document, join_or=join_or, bare_url=bare_url,
                                paragraphs=paragraphs, rich=paragraphs, rich_inline=rich_inline, plain=plain,
                                b=bold, ddmm=day_month, upper_first=upper_first,
                                first_word=lambda text: str(text).split(" ", 1)[0])  # "cartão de crédito": "cartão"
        self._subject = self.env.from_string("{{ words.subject() }}")
        self._tutorial: str | None = None
        self._found: list[tuple[str | None, str | None, str]] | None = None
        self._warnings: list[str] = []  # found with the problems: what reads badly but still goes

    # --- public ---------------------------------------------------------------------------------

    def render(self, notice: Notice, account: Account, open_invoices: list[Invoice], today: date) -> Message:
        """The message for `notice`, listing every invoice of `open_invoices` (the account's
        invoices still open `today`) that is owed `today` (`rules.owed_on`: one issued later is
        in no list and no total yet). Raises `TemplateError` naming the template file and line."""
        ctx = self._context(notice, account, open_invoices, today)
        stage, channel = notice.stage, notice.channel
        meta: dict[str, Any] = {
            "account": account.id,
            "stage": stage,
            "invoices": list(notice.invoices),
            "notice_date": notice.date.isoformat(),
            "tutorial": notice.tutorial,
        }
        common = dict(channel=channel, recipient=notice.recipient, reply_to=self.config.company.finance_email)
        if channel in WORDED:
            ctx = self._with_words(ctx)
        if channel == "email":
            subject = plain(" ".join(self._render_subject(ctx).split()))
            if not account.domain:  # no domain to recognise the subject by: the company's name
                subject = f"{self.config.company.name}: {subject[:1].lower()}{subject[1:]}"
            text = plain(_tidy(self._render("email/base.txt", ctx)))
            html = plain(self._render("email/base.html", {**ctx, "subject": subject}))
            # Each Pix code also as a QR code, for paying from a phone while reading on a computer.
            images = tuple((inv.qr_cid, pix_qr_png(inv.pix_code, self._qr_cache), "image/png")
                           for inv in ctx["invoices"] if inv.qr_cid)
            return Message(text=text, subject=subject, html=html, images=images, meta=meta, **common)
        if channel == "sms":
            return Message(text=self._sms(stage, ctx), meta=meta, **common)
        name = f"staff/{stage}.txt" if channel == "staff" else f"{channel}/base.txt"
        text = _finish(_tidy(self._render(name, ctx)), channel)
        if channel == "staff":
            # The staff base puts a title on the first line: it becomes the task's title.
            subject, _, text = text.partition("\n")
            return Message(text=text.strip() + "\n", subject=subject.strip(), meta=meta, **common)
        if channel == "whatsapp":
            text, *listed = self._whatsapp_text(text, ctx, account)
            content_sid, variables = self._whatsapp_template(stage, ctx)
            if "sms" not in account.opt_out:
                # The WhatsApp channel sends this by SMS when the number has no WhatsApp.
                try:
                    meta["sms_text"] = self._sms(stage, {**ctx, "channel": "sms"})
                except TemplateError:
                    pass  # no fallback text rather than no WhatsApp message; `check()` reports it
            parts = self._whatsapp_parts(text, listed, ctx)
            return Message(text="\n\n".join(p.strip("\n") for p in parts) + "\n", parts=parts,
                           content_sid=content_sid, content_variables=variables, meta=meta, **common)
        if channel == "social":
            handle = social_handle(account, notice.recipient)
            if ctx["tutorial"] and not ctx["tutorial_url"] and "://" not in handle:
                # No link to give: the staff task carries the tutorial as a second text to paste
                # (channels/social.py); the DM says it follows.
                text = _finish(_tidy(self._render(name, {**ctx, "tutorial_apart": True})), channel)
                meta["tutorial_text"] = ctx["tutorial_text"]
            if len(text) > SOCIAL_LIMIT:
                raise TemplateError(f"{self._path_of(name)}: {len(text)} characters, more "
                                    f"than the {SOCIAL_LIMIT} a direct message takes")
            # The recipient of a URL handle is the network's name only (the URL holds a secret):
            # the channel gets the handle itself here (see channels/social.py).
            meta["social_handle"] = handle
        return Message(text=text, meta=meta, **common)

    def _whatsapp_text(self, text: str, ctx: Mapping, account: Account) -> list[str]:
        """WhatsApp's text (`text`, in full), or, past one screen (several invoices, a late-fee
        sentence), the terse wording, which keeps every date and amount and leaves out the
        secondary sentences; still too long with several invoices, the terse text and the invoice
        list as a second message."""
        if len(text) <= WHATSAPP_TEXT_LIMIT:
            return [text]
        short = {**ctx, "short": True}
        if not account.domain:  # the greeting names the customer: "da sua conta" will do
            short.update(service_of="da sua conta", services="os serviços da sua conta")
        text = _finish(_tidy(self._render("whatsapp/base.txt", self._with_words(short))), "whatsapp")
        if len(text) <= WHATSAPP_TEXT_LIMIT or len(ctx["invoices"]) < 2:
            return [text]
        module = self._module("whatsapp/base.txt", self._with_words({**short, "list_apart": True}))
        return [_finish(_tidy(str(module)), "whatsapp"), _finish(_tidy(module.invoice_list()), "whatsapp")]

    def _whatsapp_parts(self, text: str, listed: list[str], ctx: Mapping) -> tuple[str, ...]:
        """The free-form WhatsApp bodies, in order: the message itself (and its invoice list, when
        apart), then each Pix code alone (a long press copies a whole message, so the code must be
        all there is in it), then the tutorial when it goes in full. Every body stays within our
        one-screen limit: the tutorial, and a text too long even so, are cut between paragraphs."""
        pix = [inv.pix_code + "\n" for inv in ctx["invoices"] if inv.pix_code]
        tutorial = _finish(_tidy(self._render("whatsapp/tutorial.txt", ctx)), "whatsapp") if ctx["tutorial"] else ""
        return (*_screens(text), *listed, *pix, *_screens(tutorial))

    def render_failure_alert(self, failed: Notice, account: Account, open_invoices: list[Invoice], today: date,
                             result) -> Message:
        """A staff alert that a customer message did not go, telling staff what to do about its
        cause (`failure_cause`): configure something, fix the customer's record, or nothing (it
        will be retried)."""
        notice = replace(failed, channel="staff", recipient="staff", tutorial=False)
        failure = {"channel": failed.channel, "recipient": failed.recipient, "stage": failed.stage,
                   "provider": result.provider, "code": result.code or "", "detail": result.detail,
                   "cause": failure_cause(result)}
        ctx = {**self._context(notice, account, open_invoices, today), "failure": failure}
        subject, _, text = _tidy(self._render("staff/failure.txt", ctx)).partition("\n")
        meta = {"account": account.id, "stage": failed.stage, "invoices": list(failed.invoices),
                "notice_date": failed.date.isoformat(), "alert": f"failure:{failure['cause']}"}
        return Message(channel="staff", recipient="staff", text=text.strip() + "\n", subject=subject.strip(),
                       reply_to=self.config.company.finance_email, meta=meta)

    def tutorial(self) -> str:
        """The company's tutorial on how its billing works (`tutorial.txt`), same for everyone;
        what `TUTORIAL_URL` should show."""
        if self._tutorial is None:
            self._tutorial = _tidy(self._render("tutorial.txt", {"company": self.config.company}))
        return self._tutorial

    def check(self) -> list[str]:
        """Render every stage x channel (and the tutorial, and configured WhatsApp template
        variables) against built-in sample accounts; each problem as "path:line: message"."""
        return list(dict.fromkeys(text for _, _, text in self._problems()))

    def warnings(self) -> list[str]:
        """What `check` should say but nothing blocks: a WhatsApp text longer than one screen."""
        self._problems()
        return list(dict.fromkeys(self._warnings))

    def problems_for(self, channel: str, stage: str) -> list[str]:
        """The problems of `check()` that stop a message of `channel` at `stage`: a broken
        template or setting blocks only the messages that need it."""
        return list(dict.fromkeys(text for c, s, text in self._problems()
                                  if c in (None, channel) and s in (None, stage)))

    def _problems(self) -> list[tuple[str | None, str | None, str]]:
        """Every problem as (channel, stage, text), None meaning every channel or stage; found
        once per renderer, as the configuration and the templates do not change under it."""
        if self._found is not None:
            return self._found
        problems: list[tuple[str | None, str | None, str]] = []
        try:
            self.tutorial()
        except TemplateError as exc:
            problems.append((None, None, str(exc)))
        problems += [("whatsapp", None, p) for p in self._check_whatsapp_config()]
        for notice, account, invoices, today in sample_cases():
            try:  # SMS too: render() tolerates a WhatsApp message without its SMS fallback text
                message = self.render(notice, account, invoices, today)
                if notice.channel == "whatsapp":
                    self._warn_long_whatsapp(notice, account, invoices, today)
            except TemplateError as exc:
                problems.append((notice.channel, notice.stage, str(exc)))
            if notice.channel == "whatsapp":
                try:
                    self.render_failure_alert(notice, account, invoices, today, _SAMPLE_FAILURE)
                except TemplateError as exc:
                    problems.append(("staff", None, str(exc)))
        self._found = problems
        return problems

    def _warn_long_whatsapp(self, notice: Notice, account: Account, invoices: list[Invoice], today: date) -> None:
        """A WhatsApp text longer than one screen even in its terse wording is sent as several
        messages: not broken, so it blocks nothing, but worth a warning."""
        ctx = self._with_words(self._context(notice, account, invoices, today))
        text = self._whatsapp_text(_finish(_tidy(self._render("whatsapp/base.txt", ctx)), "whatsapp"), ctx, account)[0]
        if len(text) > WHATSAPP_TEXT_LIMIT:
            self._warnings.append(
                f"{self._path_of('whatsapp/base.txt')}: {len(text)} characters for sample {account.id}, stage "
                f"{notice.stage}: more than WhatsApp's {WHATSAPP_TEXT_LIMIT} (one screen), so it goes as several "
                "messages; shorten it")

    # --- internals ------------------------------------------------------------------------------

    def _context(self, notice: Notice, account: Account, open_invoices: list[Invoice], today: date) -> dict:
        company = self.config.company
        open_invoices = [i for i in open_invoices if owed_on(i, today)]
        if not open_invoices:
            raise ValueError(f"account {account.id!r}: a message needs at least one invoice owed on {today}")
        rows: dict[str, InvoiceView] = {}
        raw: dict[str, InvoiceDates] = {}
        for inv in sorted(open_invoices, key=lambda i: (i.due, i.id)):
            d = raw[inv.id] = invoice_dates(inv.due, self.calendar, self.config.settlement_days)
            rows[inv.id] = InvoiceView(
                id=inv.id, amount=brl(inv.amount), **{f: br_date(getattr(d, f)) for f in _DATE_FIELDS},
                late=today > d.effective_due, shifted=d.effective_due != d.due,
                suspended=today >= d.suspension, deletion_passed=today > d.deletion,
                payment_url=_web_url(inv.payment_url), pix_code=inv.pix_code or None,
                qr_cid=_content_id("pix", inv.id) if inv.pix_code else None,
            )
        dates = self._key_dates(notice, open_invoices, raw, rows, today)
        any_late = any(r.late for r in rows.values())
        # A CPF's account is a person, whose `company` is their own name: the message speaks to
        # them ("da sua conta"), never about them in the third person.
        person = document_kind(account.document) == "CPF"
        return {
            "company": company,
            "account": account,
            "person": person,
            "customer": account.contact_name or account.company,
            "service": account.domain or account.company,
            "service_of": f"da hospedagem de {account.domain}" if account.domain
                          else "da sua conta" if person else f"dos serviços contratados por {account.company}",
            "of_domain": f" da hospedagem de {account.domain}" if account.domain else "",
            # A person's name after "hospedagem de"/"dados de" reads as their personal data:
            # without a domain, the services are those the account contracted.
            "services": f"os serviços de hospedagem de {account.domain}" if account.domain
                        else "os serviços da sua conta" if person else f"os serviços contratados por {account.company}",
            "data_of": f"os dados da hospedagem de {account.domain}" if account.domain
                       else "os dados da sua conta" if person else f"os dados da conta de {account.company}",
            # Outside e-mail never the full CPF/CNPJ (RULES.md; LGPD necessity).
            "document": account.document if notice.channel == "email" else mask_document(account.document),
            "document_kind": document_kind(account.document),
            "has_portal": account.has_portal_access,
            "invoices": list(rows.values()),
            "total": brl(sum((i.amount for i in open_invoices), Decimal(0))),
            "any_late": any_late,
            "any_pix": any(r.pix_code for r in rows.values()),
            "any_link": any(r.payment_url for r in rows.values()),
            "invoice_summary": "; ".join(f"fatura {r.id}: {r.amount}, vencimento {r.due}" for r in rows.values()),
            "dates": dates,
            "late_fees": company.late_fees if any_late else "",
            "month_end": br_date(month_end(today)),
            "stage": notice.stage,
            "channel": notice.channel,
            "recipient": notice.recipient,
            "today": br_date(today),
            "first_time": notice.first_time,
            "tutorial": notice.tutorial,
            "tutorial_text": self.tutorial() if notice.tutorial else "",
            "tutorial_url": self.config.env.get("TUTORIAL_URL", ""),
            # The terse wording: SMS when two segments are tight, WhatsApp past one screen.
            "short": False,
            "list_apart": False,  # WhatsApp: the invoice list goes as a message of its own
            "tutorial_apart": False,  # social: the tutorial follows as a text staff paste
            "fit": 0,
        }

    def _key_dates(self, notice: Notice, open_invoices: list[Invoice], raw: Mapping[str, InvoiceDates],
                   rows: Mapping[str, InvoiceView], today: date) -> KeyDates:
        """The headline's dates (see `KeyDates`): the invoice that brought the notice at its own
        stage (the earliest due, when several did), the earliest suspension and deletion."""
        ids = {i for i, _, stage in notice.covers if stage == notice.stage} or set(notice.invoices)
        brought = [i for i in raw if i in ids] or list(raw)
        first = min(brought, key=lambda i: (raw[i].due, i))
        suspension_by = min(raw, key=lambda i: (raw[i].suspension, i))
        deletion_by = min(raw, key=lambda i: (raw[i].deletion, i))
        d, suspension, deletion = raw[first], raw[suspension_by].suspension, raw[deletion_by].deletion
        invoice = next(i for i in open_invoices if i.id == first)
        warned = any(n.stage == "suspension_warning" for n in invoice_timeline(invoice, False, self.calendar, self.config))
        return KeyDates(
            invoice=rows[first], suspension_by=rows[suspension_by], deletion_by=rows[deletion_by],
            due=br_date(d.due), effective_due=br_date(d.effective_due), overdue=br_date(d.overdue),
            suspension=br_date(suspension), deletion=br_date(deletion), shifted=d.effective_due != d.due,
            is_suspension_day=today == suspension, suspended=today >= suspension,
            is_deletion_day=today == deletion, deletion_passed=today > deletion,
            tell_suspension=notice.stage in PRE_DUE_STAGES and not warned and today < suspension,
        )

    def _with_words(self, ctx: Mapping) -> dict:
        """`ctx` with the modules the bases use: `say` (common/say.txt) and `words` (the stage's
        stages/STAGE.txt), made from it once for the whole message. Each part importing them
        `with context` made them again: eight times an e-mail, a quarter of its rendering."""
        say = self._module("common/say.txt", ctx)
        return {**ctx, "say": say, "words": self._module(f"stages/{ctx['stage']}.txt", {**ctx, "say": say})}

    def _module(self, name: str, ctx: Mapping):
        return self._use(name, lambda template: template.make_module(ctx))

    def _render(self, name: str, ctx: Mapping) -> str:
        return self._use(name, lambda template: template.render(ctx))

    def _use(self, name: str, use: Callable):
        """`use(template)` for the template `name`, a failure in it located ("path:line: ...")."""
        try:
            return use(self.env.get_template(name))
        except TemplateError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure inside a template is the template's
            raise self._located(exc, name) from exc

    def _sms(self, stage: str, ctx: Mapping) -> str:
        """One line of GSM-7 in at most two segments: rendered in full, or else again with less
        (`fit` 1 to 3, `short` true: the template leaves out what it can), or else an error."""
        name = "sms/base.txt"
        # `fit` 0: everything; 1 (`short`): terse, the site for the address; 2: no late charges
        # either; 3: the dates without their year, as a phone's calendar shows them.
        for fit in (0, 1, 2, 3):
            text = to_gsm7(" ".join(plain(self._render(name, self._with_words({**ctx, "fit": fit, "short": fit > 0}))).split()))
            if fit == 3:
                text = re.sub(r"\b(\d\d/\d\d)/\d{4}\b", r"\1", text)
            segments = sms_segments(text)
            if segments <= SMS_MAX_SEGMENTS:
                return text
        raise TemplateError(
            f"{self._path_of(name)} (stage {stage}): the SMS takes {segments} segments ({len(text)} characters), "
            f"at most {SMS_MAX_SEGMENTS} ({153 * SMS_MAX_SEGMENTS} GSM-7 characters) allowed"
        )

    def _render_subject(self, ctx: Mapping) -> str:
        try:
            return self._subject.render(ctx)
        except Exception as exc:  # noqa: BLE001 - any failure inside a template is the template's
            raise self._located(exc, f"stages/{ctx['stage']}.txt") from exc

    def _whatsapp_template(self, stage: str, ctx: Mapping) -> tuple[str | None, dict[str, str] | None]:
        """The approved template for `stage`, if configured: its Content SID and its variables,
        each a Jinja template string rendered with the message's data."""
        spec = self._whatsapp_templates().get(stage)
        if spec is None:
            return None, None
        key = f"channels.whatsapp.templates.{stage}"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("content_sid"), str) or not spec["content_sid"]:
            raise TemplateError(f"{self.config.source}: {key}: needs content_sid, a non-empty string")
        variables = spec.get("variables", {})
        if not isinstance(variables, Mapping):
            raise TemplateError(f"{self.config.source}: {key}.variables: must be a table of strings")
        values = {}
        for name, source in variables.items():
            label = f"{self.config.source}: {key}.variables.{name}"
            if not isinstance(source, str):
                raise TemplateError(f"{label}: must be a string")
            try:
                value = self.env.from_string(source).render(ctx)
            except Exception as exc:  # noqa: BLE001
                raise TemplateError(f"{label}: {getattr(exc, 'message', None) or exc}") from exc
            # Meta rejects a parameter with line breaks, tabs or more than 4 spaces in a row.
            value = " ".join(value.split())
            if not value:
                raise TemplateError(f"{label}: renders empty, which WhatsApp rejects ({source!r})")
            values[str(name)] = value
        size = sum(len(v) for v in values.values())
        if size > WHATSAPP_TEMPLATE_LIMIT:
            raise TemplateError(
                f"{self.config.source}: {key}.variables: {size} characters, more than an approved "
                f"template's {WHATSAPP_TEMPLATE_LIMIT}"
            )
        return spec["content_sid"], values

    def _whatsapp_templates(self) -> Mapping:
        options = self.config.channels.get("whatsapp", {})
        return options.get("templates", {}) if isinstance(options, Mapping) else {}

    def _check_whatsapp_config(self) -> list[str]:
        templates = self._whatsapp_templates()
        if not isinstance(templates, Mapping):
            return [f"{self.config.source}: channels.whatsapp.templates: must be a table of [channels.whatsapp.templates.STAGE]"]
        problems = [
            f"{self.config.source}: channels.whatsapp.templates.{name}: unknown stage (known: {', '.join(STAGES)})"
            for name in templates if name not in STAGES
        ]
        freeform = self.config.channels.get("whatsapp", {}).get("freeform", False)
        if templates and not freeform and not self.config.env.get("TUTORIAL_URL"):
            problems.append("TUTORIAL_URL: not set, so WhatsApp templates cannot link the tutorial "
                            "(set it, e.g. to a page of the company's site)")
        return problems

    def _path_of(self, name: str) -> str:
        for root in self._roots:
            path = Path(root) / name
            if path.is_file():
                return str(path)
        return name

    def _located(self, exc: Exception, name: str) -> TemplateError:
        """`exc` as "path:line: message", the line being the innermost template line involved."""
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        if isinstance(exc, jinja2.TemplateSyntaxError):
            return TemplateError(f"{exc.filename or self._path_of(exc.name or name)}:{exc.lineno}: {message}")
        if isinstance(exc, jinja2.TemplateNotFound) and exc.name == name:
            return TemplateError(f"{name}: template not found in {', '.join(self._roots)}")
        where = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename and any(frame.filename.startswith(root + "/") for root in self._roots):
                where = f"{frame.filename}:{frame.lineno}"
        if isinstance(exc, jinja2.TemplateNotFound):
            message = f"template not found: {exc.name}"
        elif not isinstance(exc, jinja2.TemplateError):
            message = f"{type(exc).__name__}: {message}"
        return TemplateError(f"{where or self._path_of(name)}: {message}")


# Provider answers that say the contact itself is wrong: a person must fix the customer's record.
# Twilio: 21211 invalid number, 21614 not a mobile, 63003 no WhatsApp, 21610 the customer said
# STOP; ours: "invalid_address"; SMTP: 5xx to RCPT (no such mailbox, domain refuses mail).
CONTACT_CODES = frozenset({"21211", "21614", "63003", "21610", "invalid_address",
                           "550", "551", "553", "554"})


def failure_cause(result) -> str:
    """Why a message did not go, as staff act on it: "config" (our configuration: `blocked`,
    see CONTRACTS.md), "contact" (the customer's record), "retry" (a temporary failure, e.g. a
    provider outage: the notifier tries again), "maybe" (the connection was lost once the message
    was handed over: it may have arrived), "exhausted" (temporary failures used all the notice's
    tries, `[cycle] notice_tries`) or "provider" (refused for another reason)."""
    if result.status == "blocked":
        return "config"
    if result.status == "unknown":
        return "maybe"
    if result.code == "exhausted":
        return "exhausted"
    if result.code in CONTACT_CODES:
        return "contact"
    return "provider" if result.permanent else "retry"


def _content_id(kind: str, name: str) -> str:
    """A Content-ID for an inline image (RFC 2392: a message-id, so only safe characters)."""
    return f"{kind}-{re.sub(r'[^A-Za-z0-9.-]', '-', name)}@notifier"


def _tidy(text: str) -> str:
    """Trailing spaces off every line and at most one blank line in a row, so templates can use
    conditional blocks freely without leaving holes in the message."""
    lines = [line.rstrip() for line in text.strip("\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


# --- samples for `check()` and the snapshot tests -------------------------------------------------

SAMPLE_PIX = (
    "00020101021226900014br.gov.bcb.pix2568pix.exemplo.com.br/qr/v2/cobv/9d36b84fc70b478fb95c12729b90ca25"
    "5204000053039865406149.905802BR5925LUCANET HOSPEDAGEM DE SIT6009SAO PAULO62070503***63044525"
)
# Three accounts that between them take every branch of the templates: a company with portal
# access, a Pix code and a payment link, due on a holiday (20/11/2026: payable until 23/11); a
# person (CPF) without domain, portal or contact name, a repeat delinquent with a legacy due day 5
# (the deletion warning comes before the suspension), two open invoices and nothing but the
# portal to pay; a first-time company without portal access with a legacy due day 28, which no
# suspension_warning reaches before its suspension on 01/12 (RULES.md "What every notice must tell").
SAMPLE_ACCOUNTS = (
    Account(
        id="exemplo", company="Exemplo Comércio de Artigos Ltda", document="12.345.678/0001-95",
        emails=("financeiro@exemplo.com.br", "maria@exemplo.com.br"), contact_name="Maria Souza",
        domain="exemplo.com.br", portal_email="maria@exemplo.com.br", whatsapp="+5511987654321",
        social=(("instagram", "@exemplo"),),
    ),
    Account(
        id="joao", company="João Pereira", document="111.444.777-35", emails=("joao.pereira@gmail.com",),
        whatsapp="+5521998765432", due_day=5, past_delinquencies=2,
    ),
    Account(
        id="atelie", company="Ateliê Flor de Lis Ltda", document="11.444.777/0001-61",
        emails=("contato@ateliefloredelis.com.br",), contact_name="Ana Lima", domain="ateliefloredelis.com.br",
        whatsapp="+5531991234567", social=(("instagram", "@ateliefloredelis"),), due_day=28,
    ),
)
SAMPLE_INVOICES = {
    "exemplo": (
        Invoice(id="2026-11-exemplo", account="exemplo", amount=Decimal("1234.56"), issued=date(2026, 11, 5),
                due=date(2026, 11, 20), payment_url="https://pagar.lucanet.com.br/f/2026-11-exemplo",
                pix_code=SAMPLE_PIX),
    ),
    "joao": (
        # Issued on the 1st: an invoice issued on its due day 5 would have no reminder to render
        # (its date would come before the invoice is owed).
        Invoice(id="2026-10-joao", account="joao", amount=Decimal("149.90"), issued=date(2026, 10, 1),
                due=date(2026, 10, 5)),
        Invoice(id="2026-11-joao", account="joao", amount=Decimal("149.90"), issued=date(2026, 11, 1),
                due=date(2026, 11, 5)),
    ),
    "atelie": (
        Invoice(id="2026-11-atelie", account="atelie", amount=Decimal("149.90"), issued=date(2026, 11, 5),
                due=date(2026, 11, 28), payment_url="https://pagar.lucanet.com.br/f/2026-11-atelie"),
    ),
}


_SAMPLE_FAILURE = Result(FAILED, provider="twilio", code="21211", detail="The 'To' number is not a valid phone number.",
                         permanent=True)


def sample_cases():
    """(notice, account, open invoices, today) for every stage x channel of the sample accounts.

    Each stage falls where the default ladder puts it for the account's newest invoice: on the
    day for "exemplo", a day late for "joao" (as after a catch-up), so that wording about "today"
    is exercised both ways. The tutorial goes where a first-time delinquent gets it by default:
    overdue on e-mail, WhatsApp and social. The recipient is the channel's first for the account, or a
    stand-in.
    """
    from notifier.billing.rules import recipients
    calendar = BankCalendar()
    for account, lag in zip(SAMPLE_ACCOUNTS, (0, 1, 0)):
        invoices = list(SAMPLE_INVOICES[account.id])
        newest = invoice_dates(invoices[-1].due, calendar, 1)
        first_time = account.past_delinquencies == 0
        for ladder_stage in DEFAULT_LADDER:
            stage = ladder_stage.name
            today = newest.anchor(ladder_stage.anchor) + timedelta(days=ladder_stage.offset_days + lag)
            for channel in CHANNELS:
                found = recipients(account, channel)
                recipient = found[0] if found else {"social": "instagram:@perfil"}.get(channel, account.whatsapp or "staff")
                tutorial = first_time and stage == "overdue" and channel in ("email", "whatsapp", "social")
                notice = Notice(
                    account=account.id, date=today, stage=stage, channel=channel,
                    recipient=recipient, invoices=tuple(i.id for i in invoices),
                    first_time=first_time and stage not in ("reminder", "due_today"), tutorial=tutorial,
                    covers=((invoices[-1].id, today, stage),),
                )
                yield notice, account, invoices, today
