"""The month's report: which notice works. Per stage and channel, how many attempts were made and
what became of them, and how many of the accounts contacted paid within a few days after.

"Paid within 3 days after the stage": an invoice the notice spoke for was paid on the notice's
date or up to `window` days after it. Only notices that reached the customer (sent, delivered or
read, not bounced) count: the rate is of accounts reached. That is correlation, not proof that the notice caused the
payment, but compared across stages and channels it shows where the effort pays.

Attempts are those whose notice date falls in the month; staff messages (alerts, the deletion
task) are not contacts with a customer and are left out. Payments come from the store and, for
invoices already archived, from the archive file, read once for the invoices needed.
"""
from __future__ import annotations

from array import array
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson

from notifier.billing.models import Invoice
from notifier.log.attempts import AttemptLog, is_sending, ref_of
from notifier.config import STAGES
from notifier.log.history import Attempt, local_time
from notifier.log.index import index_for
from notifier.log.query import Query, stream
from notifier.state.store import archive_path_for

WINDOW_DAYS = 3


# What the provider first said of an attempt. Every attempt has exactly one, so the month's
# attempts = sent + failed + blocked + task + other; delivered, read and bounced come later and
# count among the sent.
OUTCOMES = ("sent", "failed", "blocked", "task")


@dataclass
class Line:
    stage: str
    channel: str
    attempts: int = 0
    sent: int = 0  # a provider took it (a mail server accepted it, Twilio queued it)
    failed: int = 0
    blocked: int = 0  # not sent: our configuration (no approved WhatsApp template...)
    task: int = 0  # handed to staff to send by hand
    other: int = 0  # no answer yet, interrupted (unknown), written to the local outbox
    delivered: int = 0
    read: int = 0
    bounced: int = 0  # bounced, or undelivered after the provider took it
    accounts: int = 0  # accounts reached
    paid_accounts: int = 0  # of them, those that paid an invoice a notice spoke for within the window
    recovered: Decimal = Decimal("0")  # the amount of the invoices paid within the window

    @property
    def rate(self) -> float:
        return self.paid_accounts / self.accounts if self.accounts else 0.0

    def to_json(self) -> dict:
        return {"stage": self.stage, "channel": self.channel, "attempts": self.attempts, "sent": self.sent,
                "failed": self.failed, "blocked": self.blocked, "task": self.task, "other": self.other,
                "delivered": self.delivered, "read": self.read, "bounced": self.bounced,
                "accounts": self.accounts, "paid_within_window": self.paid_accounts,
                "recovery_rate": round(self.rate, 4), "recovered": str(self.recovered)}


class Report(list):
    """The report's lines, in stage and channel order, and the month's `recovered` amount: each
    invoice paid within the window once, however many notices (stages, channels) spoke for it."""

    def __init__(self, lines: Iterable[Line], recovered: Decimal):
        super().__init__(lines)
        self.recovered = recovered


@dataclass(frozen=True)
class Payment:
    amount: Decimal
    paid: date | None


def month_bounds(month: str) -> tuple[date, date]:
    first = date.fromisoformat(month + "-01")
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


def month_attempts(log: AttemptLog, month: str, tz) -> Iterator[Attempt]:
    """Customer attempts whose notice date is in `month`, in log order. The sending times are
    searched wider (a week before, 40 days after), since a notice may go out (catch-up) days after
    its date. They come from the log's index (`notifier attempts`' and the Registro's query): the
    rows of those days picked from its columns, only they read back from the log, not the whole
    log; one chunk at a time (a month at a million records is 160,000 attempts)."""
    first, last = month_bounds(month)
    query = Query(since=first - timedelta(days=7), until=last + timedelta(days=40))
    for a in stream(index_for(log.path, tz), query, newest_first=False):
        if a.sending.get("channel") != "staff" and first <= _notice_day(a, tz) <= last:
            yield a


@dataclass(frozen=True)
class Tally:
    """What the month's report takes from the log: each stage and channel's counts and accounts
    reached (`lines`, in the order of their codes), and of every attempt that reached the customer
    its line, account, notice day and invoices, to be settled against the payments (`settle`).
    Kept by the console for months, so held in columns of machine integers, a few bytes an
    attempt (3 MB for a month at a million records): an attempt's line is its code (its place in
    `lines`), its account a number (the report only counts distinct accounts), its day the date's
    ordinal, its invoices the codes `invoice[ends[i - 1]:ends[i]]`, and code n's invoice id
    `names[starts[n]:starts[n + 1]]` (UTF-8). As tuples and sets of strings they were 60 MB at
    that size, and, allocated among the records parsed, they kept more of the freed memory from
    going back to the system."""
    lines: dict  # (stage, channel) -> Line: its counts and accounts reached
    line: array  # per attempt reached: its line's code
    account: array
    day: array
    ends: array  # per attempt reached: the end of its invoices in `invoice`
    invoice: array
    names: bytes  # the invoices' ids, one after the other
    starts: array  # where each invoice code's id starts in `names`, and the end of the last

    def invoice_ids(self) -> list[str]:
        """The invoices' ids, by code."""
        s, names = self.starts, self.names
        return [names[s[n]:s[n + 1]].decode() for n in range(len(s) - 1)]

    def invoices(self) -> set[str]:
        return set(self.invoice_ids())


def tally(found: Iterable[Attempt], tz) -> Tally:
    lines: dict[tuple[str, str], Line] = {}
    codes: dict[tuple[str, str], int] = {}  # the lines' codes: their order in `lines`
    reached: list[bytearray] = []  # per line code: 1 at the numbers of the accounts it reached
    accounts, invoices = _Numbers(), _Numbers()  # a number is all the report keeps of an account
    line_of, account_of, day_of, ends, invoice = array("H"), array("I"), array("I"), array("I"), array("I")
    for a in found:
        s = a.sending
        key = (s.get("stage"), s.get("channel"))
        code = codes.get(key)
        if code is None:
            code = codes[key] = len(codes)
            lines[key] = Line(*key)
            reached.append(bytearray())
        line = lines[key]
        events = a.events()
        line.attempts += 1
        outcome = a.outcome["event"] if a.outcome else None
        if outcome in OUTCOMES:
            setattr(line, outcome, getattr(line, outcome) + 1)
        else:
            line.other += 1
        line.delivered += bool(events & {"delivered", "read"})
        line.read += "read" in events
        line.bounced += bool(events & {"bounced", "undelivered"})
        if not events & {"sent", "delivered", "read"} or events & {"bounced", "undelivered"}:
            continue  # never reached the customer: it cannot have moved them to pay
        account = accounts.number(s.get("account") or "")
        _mark(reached[code], account)
        line_of.append(code)
        account_of.append(account)
        day_of.append(_notice_day(a, tz).toordinal())
        for invoice_id in s.get("invoices") or ():
            invoice.append(invoices.number(invoice_id))
        ends.append(len(invoice))
    for line, marks in zip(lines.values(), reached):
        line.accounts = len(marks) - marks.count(0)
    return Tally(lines, line_of, account_of, day_of, ends, invoice, bytes(invoices.text), invoices.starts)


class _Numbers:
    """Strings numbered in the order first seen, without an object each: their UTF-8 bytes one
    after the other in `text` (number n's from `starts[n]` to `starts[n + 1]`), found again by
    their hash in an open-addressing table of numbers. A dict would keep each string of the
    records parsed alive among them: the month's 100,000 account and invoice ids, freed when the
    tally is done, then left 6 MB of the console's freed memory that could not go back to the
    system (a few records' objects still in each block)."""

    def __init__(self):
        self.text = bytearray()
        self.starts = array("I", [0])
        self.hashes = array("q")
        self.table = array("i", [-1]) * 1024  # numbers by hash; -1: free; never more than half full

    def number(self, name: str) -> int:
        h, table, hashes, starts = hash(name), self.table, self.hashes, self.starts
        mask = len(table) - 1
        i = h & mask
        while (n := table[i]) >= 0:
            if hashes[n] == h and self.text[starts[n]:starts[n + 1]] == name.encode():
                return n
            i = (i + 1) & mask
        n = table[i] = len(hashes)
        hashes.append(h)
        self.text += name.encode()
        starts.append(len(self.text))
        if 2 * len(hashes) > len(table):
            self._grow()
        return n

    def _grow(self) -> None:
        table = self.table = array("i", [-1]) * (2 * len(self.table))
        mask = len(table) - 1
        for n, h in enumerate(self.hashes):
            i = h & mask
            while table[i] >= 0:
                i = (i + 1) & mask
            table[i] = n


def _mark(marks: bytearray, number: int) -> None:
    """`marks[number]` set to 1, `marks` grown as needed: a set of small numbers without an object each."""
    if number >= len(marks):
        marks.extend(bytes(max(number + 1 - len(marks), len(marks))))
    marks[number] = 1


def settle(tallied: Tally, payments: Callable[[str], Payment | None], window: int = WINDOW_DAYS) -> Report:
    """The report's lines: the tally's counts, and per line the accounts reached that paid an
    invoice the notice spoke for within `window` days after its notice date, with `payments`."""
    found = [payments(invoice_id) for invoice_id in tallied.invoice_ids()]  # by invoice code
    paid_on = array("i", (p.paid.toordinal() if p is not None and p.paid is not None else -1 for p in found))
    lines = [replace(line) for line in tallied.lines.values()]
    # Per line, 1 at the numbers of the accounts that paid and at the codes of the invoices paid
    # within the window: marks, not sets of numbers (an object each, among the payments').
    payers = [bytearray() for _ in lines]
    paid = [bytearray(len(found)) for _ in lines]
    invoice, start = tallied.invoice, 0
    for code, account, day, end in zip(tallied.line, tallied.account, tallied.day, tallied.ends):
        for i in range(start, end):
            n = invoice[i]
            if day <= paid_on[n] <= day + window:
                _mark(payers[code], account)
                paid[code][n] = 1
        start = end
    month = bytearray(len(found))
    for line, accounts, invoices in zip(lines, payers, paid):
        line.paid_accounts = len(accounts) - accounts.count(0)
        line.recovered = sum((found[n].amount for n in _marked(invoices)), Decimal("0"))
        for n in _marked(invoices):
            month[n] = 1
    order = {name: i for i, name in enumerate(STAGES)}
    return Report(sorted(lines, key=lambda l: (order.get(l.stage, 99), l.channel or "")),
                  sum((found[n].amount for n in _marked(month)), Decimal("0")))


def _marked(marks: bytearray) -> Iterator[int]:
    """The numbers `_mark` set in `marks`."""
    n = marks.find(1)
    while n >= 0:
        yield n
        n = marks.find(1, n + 1)


def build(found: Iterable[Attempt], payments: Callable[[str], Payment | None], tz, window: int = WINDOW_DAYS) -> Report:
    return settle(tally(found, tz), payments, window)


def payments_from(snapshot, archive: Path, wanted: set[str]) -> dict[str, Payment | Invoice]:
    """Amount and payment date (`amount`, `paid`) of the `wanted` invoices: the store's (its
    invoices themselves: no copy of the month's tens of thousands), then the archive's."""
    found: dict = {i.id: i for i in snapshot.invoices() if i.id in wanted}
    missing = wanted - set(found)
    if missing and archive.exists():
        with open(archive, "rb") as f:
            for raw in f:
                if b'"kind":"invoice"' not in raw:
                    continue
                try:
                    rec = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue  # a torn last line of the archive
                if rec.get("id") in missing:
                    paid = rec.get("paid")
                    found[rec["id"]] = Payment(Decimal(rec["amount"]), date.fromisoformat(paid) if paid else None)
    return found


def month_report(log: AttemptLog, snapshot, config, month: str, window: int = WINDOW_DAYS) -> Report:
    """The report of `month` ("YYYY-MM") over the log and the store (its archive too): what
    `notifier report` prints and the console's Relatórios shows."""
    return report_of(tally(month_attempts(log, month, config.tz), config.tz), snapshot, config, window)


def report_of(tallied: Tally, snapshot, config, window: int = WINDOW_DAYS) -> Report:
    """The report of the month's `tally`, with the payments the store and its archive hold now."""
    paid = payments_from(snapshot, archive_path_for(config.state), tallied.invoices())
    return settle(tallied, paid.get, window)


def attempts_unchanged(appended: bytes) -> bool:
    """Whether the month's attempts stay what they were when the log gained only `appended` (whole
    lines): an attempt is a `sending` and the records whose `ref` names it, so lines that are
    neither (a payment, a hold, a login: what a staff action writes) change no attempt."""
    return not any(is_sending(line) or ref_of(line) is not None for line in appended.splitlines())


def _notice_day(a: Attempt, tz) -> date:
    notice = a.sending.get("notice_date")
    return date.fromisoformat(notice) if notice else local_time(a.sending["time"], tz).date()
