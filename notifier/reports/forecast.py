"""What the ladder will send in the coming days if nobody pays: counts and cost, for finance.

The forecast does not model the ladder a second time: it runs the real day plan (`rules.plan_day`)
for each coming day and pretends that every notice of that day went out, adding its ledger rows,
so the next day sees exactly what the daily cycle would see. Catch-up, supersession, the merge of
several invoices into one message and the first-time extra channels therefore come out as the
cycle does them. Two things the cycle decides outside the rules come in as plain functions:
whether a channel may be used on a day (contact hours: WhatsApp on a Sunday waits for Monday) and
whether an account is on hold that day.

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
from notifier.billing.rules import handled_rows, plan_day, superseded_rows

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
    accounts = list(accounts)
    # Nobody pays from `start` on: an invoice paid later in the data is open in the forecast.
    invoices = [inv._replace(paid=None) if inv.paid is not None and inv.paid >= start else inv for inv in invoices]
    ledger = list(ledger)
    prices = config.prices
    rows: list[ForecastRow] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        plan = plan_day(day, accounts, invoices, histories, ledger, config.calendar, config)
        counts: Counter[tuple[str, str]] = Counter()
        for notice in plan.notices:
            if held(notice.account, day) or not may_contact(day, notice.channel):
                continue
            counts[(notice.stage, notice.channel)] += 1
            ledger.extend(handled_rows(notice, "sent"))
        ledger.extend(superseded_rows(plan.superseded))
        for (stage, channel), n in sorted(counts.items(), key=lambda item: (_rank(config, item[0][0]), item[0][1])):
            rows.append(ForecastRow(day, stage, channel, n, prices.get(channel, Decimal(0)) * n))
    return rows


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


def store_forecast(snapshot, config: Config, start: date, days: int) -> list[ForecastRow]:
    """The forecast over what the store holds (open invoices, ledger, holds), with the configured
    contact hours: what `notifier forecast` prints and the console's Relatórios shows."""
    return forecast(start, days, snapshot.accounts(), snapshot.invoices(), snapshot.histories(), snapshot.ledger(),
                    config, may_contact=contact_days(config), held=on_hold(snapshot.holds()))
