"""Which notices are due, for whom, today: RULES.md as pure functions.

Everything here is a function of (today, accounts, invoices, history, ledger, config): no I/O, no
clock. The store feeds it, the CLI and the daemon act on what it returns.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, timedelta
from decimal import Decimal
from typing import Iterable, Mapping

from notifier.billing.calendar import BankCalendar, InvoiceDates, invoice_dates
from notifier.config import CHANNELS, STAGES, Config, Stage
from notifier.billing.models import Account, History, Invoice, LedgerEntry, Notice, TimelineEntry

STAGE_RANK = {name: i for i, name in enumerate(STAGES)}
# Stages that may happen before the invoice is late; every other stage needs the overdue date.
PRE_DUE_STAGES = ("reminder", "due_today")
UNSTOPPABLE_CHANNELS = ("email",)  # the contractual channel: no opt-out (RULES.md, "Stop")


@dataclass(frozen=True, slots=True)
class InvoiceNotice:
    """One date of an invoice's timeline: its most advanced stage and the union of channels.

    It depends only on the due date and the first-time flag, so invoices that share them share
    these objects (see `_timeline`)."""
    date: date
    stage: str
    channels: tuple[str, ...]
    extra_channels: tuple[str, ...]  # the channels there only because of a first-time delinquency
    first_time: bool


@dataclass(frozen=True, slots=True)
class Pending:
    """A (timeline date, channel, recipient) of one invoice that the ledger has not handled."""
    invoice: str
    account: str
    notice: InvoiceNotice
    channel: str
    recipient: str


@dataclass(frozen=True)
class Plan:
    """The result of planning one day: what to send, and what is superseded (record as skipped)."""
    notices: tuple[Notice, ...]
    superseded: tuple[Pending, ...]


def dates_of(invoice: Invoice, cal: BankCalendar, config: Config) -> InvoiceDates:
    return invoice_dates(invoice.due, cal, config.settlement_days)


def collectible(invoice: Invoice) -> bool:
    """Something to collect: an invoice of R$ 0,00 gets no notice and counts as no delinquency
    (RULES.md, "What every notice must tell")."""
    return invoice.amount > 0


def owed_on(invoice: Invoice, day: date) -> bool:
    """Owed and open on `day`: issued by then, unpaid, and something to collect (RULES.md "An
    invoice is": billing data imported ahead of time is in no notice, total or plan yet)."""
    return invoice.issued <= day and invoice.unpaid_on(day) and collectible(invoice)


def below_minimum(invoices: Iterable[Invoice], day: date, config: Config) -> bool:
    """The account's invoices owed on `day` sum to less than `minimum_amount`: such an account
    gets reminder and due-day notices only (suspending or protesting cents is disproportionate:
    RULES.md, CDC arts. 39 V and 42)."""
    return sum((i.amount for i in invoices if owed_on(i, day)), Decimal(0)) < config.minimum_amount


def is_late(invoice: Invoice, cal: BankCalendar, config: Config) -> bool:
    """Late: not paid on or before the effective due date. An open invoice counts as late, which is
    what it will be if never paid (the timeline's assumption)."""
    return invoice.paid is None or invoice.paid > dates_of(invoice, cal, config).effective_due


def is_first_time(
    account: Account,
    invoice: Invoice,
    account_invoices: Iterable[Invoice],
    history: History | None,
    cal: BankCalendar,
    config: Config,
) -> bool:
    """Would `invoice`, once late, be the account's first delinquency?

    True when the imported `past_delinquencies` is 0 and no invoice with an earlier due date, kept
    in the store or already archived (`history`), was late.
    """
    if account.past_delinquencies:
        return False
    if history is not None and history.first_late_due is not None and history.first_late_due < invoice.due:
        return False
    return not any(
        other.due < invoice.due and is_late(other, cal, config)
        for other in account_invoices
        if other.id != invoice.id and collectible(other)
    )


def invoice_timeline(invoice: Invoice, first_time: bool, cal: BankCalendar, config: Config) -> tuple[InvoiceNotice, ...]:
    """Steps 1 and 3 of RULES.md: each ladder stage's date, the impossible ones dropped, grouped by
    date (most advanced stage, union of channels, first-time extras added). A date before the
    invoice's issue date is dropped too: the invoice was not owed yet (a due day 5 puts the
    reminder three days before the issue)."""
    timeline = _timeline(invoice.due, first_time, cal, config.ladder, config.settlement_days)
    if timeline and timeline[0].date < invoice.issued:
        return tuple(n for n in timeline if n.date >= invoice.issued)
    return timeline


@lru_cache(maxsize=8192)
def _timeline(due: date, first_time: bool, cal: BankCalendar, ladder: tuple[Stage, ...],
              settlement_days: int) -> tuple[InvoiceNotice, ...]:
    # Cached: a day's plan walks every open invoice, and most share a handful of due dates.
    d = invoice_dates(due, cal, settlement_days)
    by_date: dict[date, list[Stage]] = defaultdict(list)
    for stage in ladder:
        when = d.anchor(stage.anchor) + timedelta(days=stage.offset_days)
        if stage.name in PRE_DUE_STAGES:
            if when > d.effective_due:
                continue
        elif when < d.overdue:
            continue
        by_date[when].append(stage)
    timeline = []
    for when in sorted(by_date):
        stages = by_date[when]
        channels, extra, delinquent = stage_channels(stages, first_time)
        timeline.append(InvoiceNotice(
            date=when,
            stage=max(stages, key=lambda s: s.rank).name,
            channels=channels,
            extra_channels=extra,
            first_time=delinquent,
        ))
    return tuple(timeline)


def stage_channels(stages: Iterable[Stage], first_time: bool) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """The channels of a notice made of `stages` (one date's): (all channels, the extra ones that
    are there only for a first-time delinquent, whether it counts as first-time).

    The customer is a delinquent only from the overdue date on: a reminder is never "first time",
    and the extra channels belong to the stages after it.
    """
    stages = list(stages)
    delinquent = first_time and not all(s.name in PRE_DUE_STAGES for s in stages)
    base = _union(s.channels for s in stages)
    extra = _union(s.first_time_channels for s in stages) if delinquent else ()
    return _union([base, extra]), tuple(c for c in extra if c not in base), delinquent


def account_timeline(
    account: Account,
    invoices: Iterable[Invoice],
    history: History | None,
    cal: BankCalendar,
    config: Config,
) -> list[TimelineEntry]:
    """Every notice date of the account's open invoices as if never paid, merged as the plan
    merges them, so that the timeline shows what will really go out each day.

    On each date, a channel that reaches someone (`recipients`) carries the most advanced stage
    among the invoices' notices that use it (RULES.md step 2): one entry per (date, stage) lists the
    channels carrying that stage and the invoices they speak for. Sorted by date, then ladder order.
    A date on which the account owes less than `minimum_amount` keeps its pre-due notices only,
    as the plan of that day does.
    """
    invoices = list(invoices)
    by_channel: dict[tuple[date, str], list[tuple[str, InvoiceNotice]]] = defaultdict(list)
    small: dict[date, bool] = {}
    for invoice in invoices:
        if invoice.paid is not None or not collectible(invoice):
            continue
        first = is_first_time(account, invoice, invoices, history, cal, config)
        for notice in invoice_timeline(invoice, first, cal, config):
            if notice.stage not in PRE_DUE_STAGES:
                if notice.date not in small:
                    small[notice.date] = below_minimum(invoices, notice.date, config)
                if small[notice.date]:
                    continue
            for channel in notice.channels:
                by_channel[(notice.date, channel)].append((invoice.id, notice))
    rows: dict[tuple[date, str], list[tuple[str, Carried]]] = defaultdict(list)
    for (when, channel), items in by_channel.items():
        if recipients(account, channel):
            carried = carried_by_channel(items)
            rows[(when, carried.stage)].append((channel, carried))
    return [
        TimelineEntry(
            date=when,
            stage=stage,
            channels=tuple(sorted((c for c, _ in row), key=CHANNELS.index)),
            invoices=tuple(sorted({inv for _, carried in row for inv in carried.invoices})),
            first_time=any(carried.first_time for _, carried in row),
        )
        for (when, stage), row in sorted(rows.items(), key=lambda item: (item[0][0], STAGE_RANK[item[0][1]]))
    ]


@dataclass(frozen=True, slots=True)
class Carried:
    """What one channel's message of one day says: the most advanced stage, the invoices it speaks
    for, whether it is a first-time delinquent's."""
    stage: str
    invoices: tuple[str, ...]
    first_time: bool


def carried_by_channel(items: Iterable[tuple[str, InvoiceNotice]]) -> Carried:
    """RULES.md step 2 for one channel: the (invoice id, notice) pairs that use it on one day merge
    into one message with the most advanced of their stages. The plan and the timeline both merge
    through here, so they cannot disagree."""
    items = list(items)
    return Carried(
        stage=_most_advanced(n.stage for _, n in items),
        invoices=tuple(sorted({inv for inv, _ in items})),
        first_time=any(n.first_time for _, n in items),
    )


def recipients(account: Account, channel: str) -> tuple[str, ...]:
    """Who a channel reaches for an account (RULES.md step 4); empty when it reaches nobody.

    A social handle that is a URL (an apprise target such as tgram://TOKEN/CHAT) carries a
    secret, so the recipient recorded for it is the network's name, never the URL.
    """
    if channel not in UNSTOPPABLE_CHANNELS and channel in account.opt_out:
        return ()
    if channel == "email":
        return account.emails
    if channel in ("whatsapp", "sms"):
        return (account.whatsapp,) if account.whatsapp else ()
    if channel == "social":
        return tuple(social_recipient(network, handle) for network, handle in account.social)
    if channel == "staff":
        return ("staff",)
    return ()


def social_recipient(network: str, handle: str) -> str:
    return network if "://" in handle else f"{network}:{handle}"


def social_handle(account: Account, recipient: str) -> str:
    """The handle behind a social recipient: the inverse of `social_recipient` for this account."""
    for network, handle in account.social:
        if social_recipient(network, handle) == recipient:
            return handle
    return recipient.split(":", 1)[-1]


def plan_account(
    today: date,
    account: Account,
    invoices: Iterable[Invoice],
    history: History | None,
    ledger: Iterable[LedgerEntry],
    cal: BankCalendar,
    config: Config,
) -> tuple[list[Notice], list[Pending]]:
    """The notices of one account for `today`, and its superseded pending notices.

    Steps 2 and 4–7 of RULES.md: an invoice counts while owed on `today` (`owed_on`);
    each of its timeline dates up to `today` is pending on every channel and recipient the ledger
    has not handled; a pending date older than the invoice's latest reached date is superseded;
    what remains is merged into one message per channel and recipient. (`deletion_due` never
    expires because the ladder's offset limits make it every timeline's last date.) While the
    account owes less than `minimum_amount`, its post-due notices are not pending: they go, or are
    superseded, only once it owes more.
    """
    invoices = list(invoices)
    handled = {entry.key for entry in ledger}
    tutorial_sent = {entry.channel for entry in ledger if entry.tutorial and entry.status in ("sent", "outbox")}
    small = below_minimum(invoices, today, config)
    due: list[Pending] = []
    superseded: list[Pending] = []
    for invoice in invoices:
        if not owed_on(invoice, today):
            continue
        first = is_first_time(account, invoice, invoices, history, cal, config)
        reached = [n for n in invoice_timeline(invoice, first, cal, config) if n.date <= today]
        for i, notice in enumerate(reached):
            expired = i < len(reached) - 1
            if small and notice.stage not in PRE_DUE_STAGES:
                continue
            for channel in notice.channels:
                for recipient in recipients(account, channel):
                    if (invoice.id, notice.date, channel, recipient) in handled:
                        continue
                    (superseded if expired else due).append(Pending(invoice.id, account.id, notice, channel, recipient))
    return _merge(today, account.id, due, tutorial_sent, config.tutorial_in_first_overdue_email), superseded


def plan_day(
    today: date,
    accounts: Iterable[Account],
    invoices: Iterable[Invoice],
    histories: Mapping[str, History],
    ledger: Iterable[LedgerEntry] | Mapping[str, Iterable[LedgerEntry]],
    cal: BankCalendar,
    config: Config,
) -> Plan:
    """The whole cycle of `today`: `plan_account` for every account that has an invoice owed on
    `today` (most have none: they are skipped without further work), sorted by account, channel,
    recipient. `ledger`: every row, or account id -> its rows (`Snapshot.ledger_by_account`: the
    console's packed ledger, read one account at a time)."""
    invoices = list(invoices)
    owing = {inv.account for inv in invoices if owed_on(inv, today)}
    invoices_by_account = _group((inv for inv in invoices if inv.account in owing), lambda inv: inv.account)
    if isinstance(ledger, Mapping):
        ledger_by_account = ledger
    else:
        ledger_by_account = _group((e for e in ledger if e.account in owing), lambda entry: entry.account)
    notices: list[Notice] = []
    superseded: list[Pending] = []
    for account in accounts:
        own = invoices_by_account.get(account.id)
        if not own:
            continue
        n, s = plan_account(
            today, account, own, histories.get(account.id), ledger_by_account.get(account.id, ()), cal, config
        )
        notices.extend(n)
        superseded.extend(s)
    notices.sort(key=lambda n: (n.account, n.channel, n.recipient))
    return Plan(tuple(notices), tuple(superseded))


def handled_rows(notice: Notice, status: str, attempt_id: str | None = None) -> list[LedgerEntry]:
    """The ledger rows that mark `notice` handled: one per invoice timeline entry it covers, so
    that at-most-once and catch-up stay per invoice after a merge (see `LedgerEntry`)."""
    return [
        LedgerEntry(invoice, notice.account, notice_date, stage, notice.channel, notice.recipient, status,
                    notice.tutorial and status == "sent", attempt_id)
        for invoice, notice_date, stage in notice.covers
    ]


def superseded_rows(pending: Iterable[Pending]) -> list[LedgerEntry]:
    """Ledger rows recording superseded notices as skipped: their catch-up window has passed."""
    return [
        LedgerEntry(p.invoice, p.account, p.notice.date, p.notice.stage, p.channel, p.recipient, "skipped")
        for p in pending
    ]

def wants_tutorial(channel: str, extra_channels: Iterable[str], first_time: bool, email_tutorial: bool) -> bool:
    """RULES.md "extra effort": the tutorial goes with the first message of a first-time
    delinquent on each extra channel, and (`tutorial_in_first_overdue_email`) in the first
    e-mail after the due date, so one with no WhatsApp or social handle gets it too. "First"
    is the caller's part: a channel whose tutorial the ledger records as sent gets it no more."""
    return channel in extra_channels or (email_tutorial and first_time and channel == "email")


def _merge(today: date, account_id: str, due: list[Pending], tutorial_sent: set[str],
           email_tutorial: bool) -> list[Notice]:
    groups: dict[tuple[str, str], list[Pending]] = defaultdict(list)
    for pending in due:
        groups[(pending.channel, pending.recipient)].append(pending)
    notices = []
    for (channel, recipient), items in sorted(groups.items()):
        carried = carried_by_channel((p.invoice, p.notice) for p in items)
        notices.append(Notice(
            account=account_id,
            date=today,
            stage=carried.stage,
            channel=channel,
            recipient=recipient,
            invoices=carried.invoices,
            first_time=carried.first_time,
            tutorial=channel not in tutorial_sent and any(
                wants_tutorial(channel, p.notice.extra_channels, p.notice.first_time, email_tutorial) for p in items),
            covers=tuple(sorted({(p.invoice, p.notice.date, p.notice.stage) for p in items})),
        ))
    return notices


def _most_advanced(stages: Iterable[str]) -> str:
    return max(stages, key=STAGE_RANK.__getitem__)


def _union(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group))
    return tuple(seen)


def _group(items, key) -> dict:
    groups: dict = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups
