"""What the ladder will send in the coming days if nobody pays: counts and cost, for finance.

The forecast does not model the ladder a second time: it runs the real plan of each coming day
and pretends that every notice of that day went out, adding its ledger rows, so the next day sees
exactly what the daily cycle would see. Catch-up, supersession, the merge of several invoices into
one message and the first-time extra channels therefore come out as the cycle does them. Two
things the cycle decides outside the rules come in as plain functions: whether a channel may be
used on a day (contact hours: WhatsApp on a Sunday waits for Monday) and whether an account is on
hold that day.

A day's plan is per account (`rules.plan_day` is `plan_account` for each account that owes), and
so is the forecast: `account_forecast` is one account's part, and `forecast` adds them up. The
console keeps each account's part across versions of the state (notifier/run/kept.py) and plans
again only the accounts a write touched.

Pure: no clock, no I/O. The CLI reads the store and the configuration and prints the rows.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Callable, Iterable, Mapping

from notifier.config import Config
from notifier.billing.hours import RESTRICTED_CHANNELS, window
from notifier.billing.models import Account, History, Hold, Invoice, LedgerEntry
from notifier.billing.rules import handled_rows, invoice_timeline, is_first_time, plan_account, superseded_rows

# (day, channel) -> may that channel reach customers on that day at all?
MayContact = Callable[[date, str], bool]
# (account id, day) -> is the account's ladder paused that day?
Held = Callable[[str, date], bool]


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """How many messages of one stage go out on one channel on one day, and what they cost."""
    date: date
    stage: str
    channel: str
    messages: int
    cost: Decimal

    def to_json(self) -> dict:
        return {"date": self.date.isoformat(), "stage": self.stage, "channel": self.channel,
                "messages": self.messages, "cost": str(self.cost)}


def forecast(
    start: date,
    days: int,
    accounts: Iterable[Account],
    invoices: Iterable[Invoice],
    histories: Mapping[str, History],
    ledger: Iterable[LedgerEntry],
    config: Config,
    may_contact: MayContact = lambda day, channel: True,
    held: Held = lambda account, day: False,
) -> list[ForecastRow]:
    """The messages of each day from `start` for `days` days, as if no open invoice were paid.

    Sorted by date, then ladder order, then channel. A notice that may not go out on its day (a
    channel outside contact hours, an account on hold) is left unhandled, so it is sent on a later
    day while its catch-up window lasts, as the cycle would.
    """
    invoices_by_account = _group(invoices)
    ledger_by_account = _group(ledger)
    counts: Counter[Message] = Counter()
    for account in accounts:
        own = invoices_by_account.get(account.id)
        if own:
            counts.update(account_forecast(start, days, account, own, histories.get(account.id),
                                           ledger_by_account.get(account.id, ()), config, may_contact, held))
    return forecast_rows(counts, config)


# One message of the forecast: (day, stage, channel).
Message = tuple[date, str, str]


def account_forecast(
    start: date,
    days: int,
    account: Account,
    invoices: Iterable[Invoice],
    history: History | None,
    ledger: Iterable[LedgerEntry],
    config: Config,
    may_contact: MayContact = lambda day, channel: True,
    held: Held = lambda account, day: False,
) -> tuple[Message, ...]:
    """One account's part of `forecast`: each message it would get, as (day, stage, channel).

    Each day is `plan_account` of that day over the ledger the days before left. A day is planned
    only when its plan can hold something: the first day, a day when one of the plan's inputs
    that depend on the day turns (`_turning_days`), and the day after one that left a notice
    waiting (hours, hold). On any other day the plan is empty: the day before, every notice
    planned went out (its rows are in the ledger) and every superseded one was recorded, and
    nothing new was reached. At 50,000 accounts that is a few plans per account instead of 30.
    """
    cal = config.calendar
    # Nobody pays from `start` on: an invoice paid later in the data is open in the forecast.
    invoices = [inv._replace(paid=None) if inv.paid is not None and inv.paid >= start else inv for inv in invoices]
    ledger = list(ledger)
    turns = _turning_days(account, invoices, history, config)
    messages: list[Message] = []
    waiting = True  # the first day is planned
    for offset in range(days):
        day = start + timedelta(days=offset)
        if not waiting and day not in turns:
            continue
        notices, superseded = plan_account(day, account, invoices, history, ledger, cal, config)
        waiting = False
        for notice in notices:
            if held(account.id, day) or not may_contact(day, notice.channel):
                waiting = True
                continue
            messages.append((day, notice.stage, notice.channel))
            ledger.extend(handled_rows(notice, "sent"))
        ledger.extend(superseded_rows(superseded))
    return tuple(messages)


def _turning_days(account: Account, invoices: list[Invoice], history: History | None, config: Config) -> set[date]:
    """The days on which `plan_account`'s view of these invoices can change with the day alone:
    an invoice becomes owed (issued) or stops being owed (paid), which is also when the owed total
    (`below_minimum`) moves; a timeline date is reached."""
    days: set[date] = set()
    for inv in invoices:
        days.add(inv.issued)
        if inv.paid is not None:
            days.add(inv.paid)
        first = is_first_time(account, inv, invoices, history, config.calendar, config)
        days.update(n.date for n in invoice_timeline(inv, first, config.calendar, config))
    return days


def forecast_rows(counts: Mapping[Message, int], config: Config) -> list[ForecastRow]:
    """The rows of the forecast from its messages counted: per day, stage and channel with its
    cost, sorted by date, then ladder order, then channel."""
    prices = config.prices
    return [ForecastRow(day, stage, channel, n, prices.get(channel, Decimal(0)) * n)
            for (day, stage, channel), n in sorted(counts.items(), key=lambda item: (
                item[0][0], _rank(config, item[0][1]), item[0][2])) if n > 0]


def contact_days(config: Config) -> MayContact:
    """The forecast's view of contact hours: a WhatsApp, SMS or social notice goes on a day that
    has allowed hours at all (the daemon sends it once they open) and waits on any other day."""
    return lambda day, channel: channel not in RESTRICTED_CHANNELS or window(day, config.contact_hours) is not None


def on_hold(holds: Mapping[str, Hold]) -> Held:
    """Whether an account's ladder is paused on a day, from the stored holds (`notifier hold`)."""
    return lambda account, day: account in holds and holds[account].active_on(day)


def totals(rows: Iterable[ForecastRow]) -> dict[str, tuple[int, Decimal]]:
    """Messages and cost per channel over the whole forecast."""
    out: dict[str, tuple[int, Decimal]] = {}
    for row in rows:
        n, cost = out.get(row.channel, (0, Decimal(0)))
        out[row.channel] = (n + row.messages, cost + row.cost)
    return dict(sorted(out.items()))


def _rank(config: Config, stage: str) -> int:
    return next(i for i, s in enumerate(config.ladder) if s.name == stage)


def _group(items) -> dict[str, list]:
    """Invoices or ledger rows by account, in their order."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(item.account, []).append(item)
    return groups


def store_forecast(snapshot, config: Config, start: date, days: int) -> list[ForecastRow]:
    """The forecast over what the store holds (open invoices, ledger, holds), with the configured
    contact hours: what `notifier forecast` prints and the console's Relatórios shows."""
    return forecast(start, days, snapshot.accounts(), snapshot.invoices(), snapshot.histories(), snapshot.ledger(),
                    config, may_contact=contact_days(config), held=on_hold(snapshot.holds()))
