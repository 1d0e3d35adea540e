"""The day's plan and the forecast over the store, kept per account across versions of the state.

Planning is per account: `rules.plan_day` is the pure `plan_account` of each account over its own
invoices, history and ledger, and the forecast is `account_forecast` of each (plus its hold). A
write of the state (a staff action, a batch of the cycle's ledger) touches a few accounts, and the
store keeps every document it did not touch as the same object in the new version
(`Store.snapshot`). So the console keeps each account's result and, at a new version, plans again
only the accounts whose documents are not the same objects: at 50,000 accounts that is a few
milliseconds of planning instead of seconds (the Painel's next cycle) or a minute (the
Relatórios forecast) on every view after a change. The result is the same as planning everything
(`rules.plan_day`, `forecast.forecast`): what `notifier plan` and `notifier forecast` print.
"""
from __future__ import annotations

import threading
from collections import Counter
from datetime import date
from itertools import compress
from operator import attrgetter, is_not
from typing import Callable, Mapping

from notifier.billing.rules import Plan, owed_on, plan_account
from notifier.config import Config
from notifier.reports.forecast import ForecastRow, account_forecast, contact_days, forecast_rows, on_hold
from notifier.state.packed import PackedLedger

# The tables an account's plan is drawn from, and how a document of each names its account.
# Leaving one out would keep a plan its change should have redone.
INPUTS = (("accounts", attrgetter("id")), ("invoices", attrgetter("account")), ("ledger", attrgetter("account")),
          ("history", attrgetter("account")), ("holds", attrgetter("account")))


def touched(old: Mapping, new: Mapping, owner: Callable) -> set[str]:
    """The accounts of the documents that differ between two versions of one table, compared by
    identity. A write copies the table and replaces only the documents it changed, in their
    place (a new key goes at the end), so the two versions are compared position by position, in
    C: a document added, removed or replaced puts something else at some position, and the
    owners of both are taken. A table read again whole (every object new) touches every account.
    The console's packed ledger is compared by its accounts' packed rows (`PackedLedger.blobs`,
    keyed by account), never unpacked whole: its rows are new objects at every unpacking."""
    if old is new:
        return set()
    packed = isinstance(new, PackedLedger) and isinstance(old, PackedLedger)
    if packed:
        old, new = old.blobs(), new.blobs()
    before, after = list(old.values()), list(new.values())
    both = min(len(before), len(after))
    changed = list(compress(range(both), map(is_not, before, after)))
    if packed:  # keyed by account: the keys at the positions that differ, and past the shorter
        before, after = list(old), list(new)
        return {keys[i] for i in changed for keys in (before, after)} | set(before[both:]) | set(after[both:])
    accounts = {owner(doc) for i in changed for doc in (before[i], after[i])}
    accounts.update(owner(doc) for doc in before[both:])
    accounts.update(owner(doc) for doc in after[both:])
    return accounts


class PerAccount:
    """`compute(snapshot, account, tables)` for every account of the store (`tables`: the
    `INPUTS` by name), kept while the account's documents are the same objects and `key` (the
    day, the configuration...) is equal. `update` brings it to a snapshot and says which
    accounts' results changed."""

    def __init__(self, compute: Callable):
        self.compute = compute
        self.results: dict[str, object] = {}  # account id -> compute's result, in the accounts' order
        self._key: tuple | None = None
        self._tables: tuple | None = None

    def update(self, snapshot, key: tuple) -> list[tuple[object, object]] | None:
        """Bring the results to `snapshot`: None when nothing changed since the last call, else
        (result before or None, result now or None) for each account planned again. After a
        change of `key` (or at the first call) every account is planned."""
        tables = snapshot.tables(*(name for name, _ in INPUTS))
        named = dict(zip((name for name, _ in INPUTS), tables))
        accounts = named["accounts"]
        if self._tables is None or key != self._key:
            self.results = {account_id: self.compute(snapshot, account, named) for account_id, account in accounts.items()}
            changes = [(None, now) for now in self.results.values()]
        elif all(a is b for a, b in zip(self._tables, tables)):
            return None
        else:
            redo = set().union(*(touched(old, new, owner) for (_, owner), old, new in zip(INPUTS, self._tables, tables)))
            changes = []
            for account_id in redo:
                account = accounts.get(account_id)
                before = self.results.get(account_id)
                if account is None:
                    self.results.pop(account_id, None)
                    now = None
                else:  # replaced in its place (or, new, added at the end): the accounts' order
                    now = self.results[account_id] = self.compute(snapshot, account, named)
                changes.append((before, now))
        self._key, self._tables = key, tables
        return changes


NOTHING = ((), ())


class KeptPlan:
    """`rules.plan_day` of the store for one day (what `notifier plan` prints and the Painel
    counts), each account's part kept (`PerAccount`). Thread-safe: a view that finds the plan
    being brought up to date waits for it rather than planning too."""

    def __init__(self):
        self._lock = threading.Lock()
        self._parts = PerAccount(self._account)
        self._plan: Plan | None = None
        self._day: date | None = None
        self._config: Config | None = None

    def _account(self, snapshot, account, tables) -> tuple:
        """(notices, superseded) of `plan_account`, or NOTHING for an account that owes nothing
        on the day (which `plan_day` skips)."""
        day, config = self._day, self._config
        invoices = snapshot.invoices(account.id)
        if not any(owed_on(inv, day) for inv in invoices):
            return NOTHING
        notices, superseded = plan_account(day, account, invoices, tables["history"].get(account.id),
                                           snapshot.ledger(account.id), config.calendar, config)
        return (tuple(notices), tuple(superseded)) if notices or superseded else NOTHING

    def plan(self, snapshot, config: Config, day: date) -> Plan:
        """`rules.plan_day(day, ...)` over `snapshot`'s tables, the same Plan."""
        with self._lock:
            self._day, self._config = day, config
            if self._parts.update(snapshot, (day, config)) is None and self._plan is not None:
                return self._plan
            notices, superseded = [], []
            for own, skipped in self._parts.results.values():
                notices.extend(own)
                superseded.extend(skipped)
            notices.sort(key=lambda n: (n.account, n.channel, n.recipient))
            self._plan = Plan(tuple(notices), tuple(superseded))
            return self._plan


class KeptForecast:
    """`forecast.store_forecast` of the store (what `notifier forecast` prints and Relatórios
    shows), each account's messages kept (`PerAccount`) and their count brought up to date by
    the accounts planned again. Thread-safe as `KeptPlan`."""

    def __init__(self):
        self._lock = threading.Lock()
        self._parts = PerAccount(self._account)
        self._counts: Counter = Counter()
        self._rows: list[ForecastRow] | None = None
        self._shared: dict = {}  # equal messages (and accounts' equal parts) as one object: memory
        self._start: date | None = None
        self._days = 0
        self._config: Config | None = None

    def _account(self, snapshot, account, tables) -> tuple:
        start, config, hold = self._start, self._config, tables["holds"].get(account.id)
        invoices = snapshot.invoices(account.id)
        if not invoices:
            return ()
        messages = account_forecast(start, self._days, account, invoices, tables["history"].get(account.id),
                                    snapshot.ledger(account.id), config, contact_days(config),
                                    on_hold({account.id: hold} if hold is not None else {}))
        shared = self._shared
        part = tuple(shared.setdefault(m, m) for m in messages)
        return shared.setdefault(part, part)

    def forecast(self, snapshot, config: Config, start: date, days: int) -> list[ForecastRow]:
        """`store_forecast(snapshot, config, start, days)`, the same rows."""
        with self._lock:
            key = (start, days, config)
            if key != (self._start, self._days, self._config):
                self._counts, self._shared = Counter(), {}
            self._start, self._days, self._config = start, days, config
            changes = self._parts.update(snapshot, key)
            if changes is None and self._rows is not None:
                return self._rows
            for before, now in changes or ():
                self._counts.subtract(before or ())
                self._counts.update(now or ())
            self._rows = forecast_rows(self._counts, config)
            return self._rows
