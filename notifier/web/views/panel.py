"""Painel: how the notifier is doing, from the same library calls as `notifier status`, `plan` and
`check`: the last cycle and the next, the channels, the daemon's heartbeat, open tasks, holds,
deletions due this week and this month's recovery."""
from __future__ import annotations

import threading
from calendar import monthrange
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

from fastapi import Depends, Request

from notifier.billing import rules
from notifier.run.daemon import next_daily
from notifier.run.kept import KeptPlan
from notifier.staff.actions import health

from .. import auth
from . import page

# The heartbeat's outcomes, grouped as the Painel shows them, in its order. What went to the local
# outbox never left the machine: it is never counted as sent.
OUTCOMES = {"sent": "enviadas", "outbox": "gravadas na saída local", "failed": "falharam",
            "unknown": "talvez entregues", "waiting": "aguardando horário", "blocked": "bloqueadas",
            "task": "tarefas criadas"}


def show(request: Request, login: auth.Login = Depends(auth.require("panel.view"))):
    web = request.app.state.web
    config = web.config
    now = web.now()
    report = health(web.store, config, web.log, now)
    snap = web.store.snapshot()
    last = snap.meta("last_cycle") or {}
    next_run = next_daily(config, now)
    today = now.date()
    planned = next_cycle_plan(web, snap, next_run.date())
    accounts = _kept("accounts", ("accounts",), snap, config, today, lambda: {a.id: a for a in snap.accounts()})
    return page(
        request, login, "panel.html", saude=report, ultimo=last, agora=now,
        ultimas=_outcomes(report["counts"] or {}), rotulos=OUTCOMES.values(), proximo=next_run,
        previstas=Counter(n.channel for n in planned.notices),
        canais=web.channel_statuses(),
        tarefas=Counter(t["kind"] for t in report["open_tasks"]),
        pausas=[(h, accounts.get(h["account"])) for h in report["holds"]],
        exclusoes=_kept("deletions", ("accounts", "invoices"), snap, config, today,
                        lambda: _deletions_due(snap, config, today, accounts)),
        mes=_kept("recovered", ("invoices",), snap, config, today, lambda: _recovered_this_month(snap, config, today)))


_planned = KeptPlan()  # the next cycle's plan, each account's part kept across versions of the state


def next_cycle_plan(web, snap=None, day: date | None = None) -> rules.Plan:
    """`rules.plan_day` of the next cycle's day (what `notifier plan --date DAY` prints), each
    account's part kept: after a write only the accounts it touched are planned again. The
    console's warm-up asks for it at start, so the first login's Painel finds it drawn."""
    snap = snap or web.store.snapshot()
    day = day or next_daily(web.config, web.now()).date()
    return _planned.plan(snap, web.config, day)
_kept_values: dict = {}  # name -> (the tables it was drawn from, config, day, value)
_kept_lock = threading.Lock()


def forget() -> None:
    """Let go of the plan and the sums kept, with the version of the state they hold."""
    global _planned
    _planned = KeptPlan()
    with _kept_lock:
        _kept_values.clear()


def _kept(name: str, reads: tuple[str, ...], snap, config, day: date, compute):
    """`compute()`, kept while the tables it `reads` are the same objects (the state file did not
    change them: `Snapshot.tables`), for the same configuration and day: every view of the Painel
    asks the same questions; after a change the first view draws them again while the others
    wait for it, rather than each drawing them at once. Only the tables it reads: a batch of the
    cycle's ledger (every few seconds during a cycle) leaves the invoices' sums alone."""
    tables = snap.tables(*reads)
    with _kept_lock:
        last = _kept_values.get(name)
        if last is not None and last[1] is config and last[2] == day and all(a is b for a, b in zip(last[0], tables)):
            return last[3]
        value = compute()
        _kept_values[name] = (tables, config, day, value)
    from ..app import give_back_free_memory
    give_back_free_memory()  # what drawing it freed, not kept by the allocator
    return value


def _outcomes(counts: dict) -> Counter:
    """The last pass's counts of every channel, summed by what the Painel shows."""
    out: Counter = Counter()
    for per_channel in counts.values():
        for status, n in per_channel.items():
            if status in OUTCOMES:
                out[OUTCOMES[status]] += n
    return out


def _deletions_due(snap, config, today: date, accounts: dict) -> list[tuple]:
    """Unpaid invoices whose deletion date (data deleted, debt subject to protest) is in the next 7 days."""
    week = today + timedelta(days=7)
    due = []
    for inv in snap.invoices():
        if inv.paid is None and rules.collectible(inv) and inv.issued <= today:
            deletion = rules.dates_of(inv, config.calendar, config).deletion
            if today <= deletion < week:
                due.append((deletion, inv, accounts.get(inv.account)))
    return sorted(due, key=lambda d: (d[0], d[1].account))


def _recovered_this_month(snap, config, today: date) -> dict:
    """Late invoices paid this month, per day: the money the reminders brought back."""
    first = today.replace(day=1)
    per_day: dict[int, Decimal] = {}
    count = 0
    for inv in snap.invoices():
        if inv.paid is not None and first <= inv.paid <= today and rules.is_late(inv, config.calendar, config):
            per_day[inv.paid.day] = per_day.get(inv.paid.day, Decimal(0)) + inv.amount
            count += 1
    days = range(1, monthrange(today.year, today.month)[1] + 1)
    top = max(per_day.values(), default=Decimal(0))
    return {"month": first, "total": sum(per_day.values(), Decimal(0)), "count": count,
            "bars": [(d, per_day.get(d, Decimal(0)), float(per_day.get(d, 0) / top) if top else 0.0) for d in days]}
