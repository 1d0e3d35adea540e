"""The Painel's plan and the Relatórios forecast are kept per account across versions of the state
(notifier/run/kept.py) and planned again only for the accounts a write touched: after each kind
of write, by the real commands in other processes, they are what planning everything gives, and
what `notifier plan` and `notifier forecast` print.

The commands write to the journal (NOTIFIER_JOURNAL_FROM=0, as a store of 50,000 accounts does),
so a new version keeps the documents it did not touch as the same objects: the parts of the
accounts nobody touched are kept, the others planned again.
"""
from __future__ import annotations

import json
import shutil

from datetime import date

from notifier.billing import rules
from notifier.config import load_config
from notifier.reports.forecast import store_forecast
from notifier.run.kept import KeptForecast, KeptPlan
from notifier.state.store import Store
from tests.conftest import ROOT

DAY = date(2026, 11, 24)  # the example state's cycle day


def test_the_kept_plan_and_forecast_are_planning_everything_after_every_kind_of_write(tmp_path, cli):
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")
    cli.env["NOTIFIER_JOURNAL_FROM"] = "0"
    config = load_config(None, {}, tmp_path / "state.json")
    store = Store(tmp_path / "state.json", packed_ledger=True)  # the console's store, the only user of these
    plans, forecasts = KeptPlan(), KeptForecast()

    def both():
        """The kept plan and forecast, checked against planning everything and the CLI's."""
        snap = store.snapshot()
        plan = plans.plan(snap, config, DAY)
        assert plan == rules.plan_day(DAY, snap.accounts(), snap.invoices(), snap.histories(), snap.ledger(),
                                      config.calendar, config)
        assert [n.to_json() for n in plan.notices] == cli.json("plan", "--date", DAY.isoformat())
        rows = forecasts.forecast(snap, config, DAY, 30)
        assert rows == store_forecast(snap, config, DAY, 30)
        assert [r.to_json() for r in rows] == json.loads(
            cli("forecast", "--date", DAY.isoformat(), "--format", "json").stdout)
        return plan, rows

    def kept_apart_from(account: str) -> dict:
        return {a: part for a, part in plans._parts.results.items() if a != account}

    plan, rows = both()
    assert plan.notices and plan.superseded and rows
    assert both() == (plan, rows) and plans.plan(store.snapshot(), config, DAY) is plan  # nothing changed

    # A payment: that account's notices go; every other account's part is the one kept.
    others = kept_apart_from("padaria-sao-joao")
    cli("pay", "2026-11-padaria-sao-joao", "--date", "2026-11-23", "--by", "ana")  # the day before: the forecast counts a payment from its first day as not made
    paid, paid_rows = both()
    assert not [n for n in paid.notices if n.account == "padaria-sao-joao"] and paid_rows != rows
    assert all(plans._parts.results[a] is part for a, part in others.items())

    # A hold: the plan is the ladder's (the cycle holds it back), the forecast leaves the account out.
    cli("hold", "oficina-dois-irmaos", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-31",
        "--date", "2026-11-24")
    held, held_rows = both()
    assert held == paid and held_rows != paid_rows

    # An opt-out of social networks: no DM for the account any more.
    assert [n for n in held.notices if n.account == "pet-shop-amigo-fiel" and n.channel == "social"]
    cli("opt-out", "pet-shop-amigo-fiel", "--channel", "social", "--by", "ana", "--date", "2026-11-24")
    opted, opted_rows = both()
    assert not [n for n in opted.notices if n.account == "pet-shop-amigo-fiel" and n.channel == "social"]
    assert opted_rows != held_rows

    # The cycle of the day: its ledger rows mark what it handled, so the day's plan is done but
    # for the account on hold; the accounts it sent nothing keep their parts.
    sent_to = {n.account for n in opted.notices} | {p.account for p in opted.superseded}
    quiet = {a: part for a, part in plans._parts.results.items() if a not in sent_to}
    cli("run-once", "--date", "2026-11-24")
    cycled, cycled_rows = both()
    assert {n.account for n in cycled.notices} == {"oficina-dois-irmaos"} and not cycled.superseded
    assert quiet and all(plans._parts.results[a] is part for a, part in quiet.items())
    assert cycled_rows != opted_rows

    # A new invoice of an account that owed nothing: imported, it is in the plan of its days.
    assert not [r for r in cycled_rows if r.stage == "reminder" and r.date == date(2026, 12, 17)]
    billing = {"accounts": [], "invoices": [
        {"id": "2026-12-escola-aprender-mais", "account": "escola-aprender-mais", "amount": "189.90",
         "issued": "2026-11-24", "due": "2026-12-20"}]}
    (tmp_path / "billing.json").write_text(json.dumps(billing), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-24")
    _, imported_rows = both()
    assert [r for r in imported_rows if r.stage == "reminder" and r.date == date(2026, 12, 17)]


def test_a_batch_of_ledger_rows_touches_its_accounts_alone_in_a_packed_ledger(tmp_path, cli):
    """The console's packed ledger is compared account by account (its packed rows), so a batch of
    the cycle re-plans the accounts it wrote rows for, not every account with a ledger (rows
    unpacked are new objects each time)."""
    from notifier.run.kept import touched
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")
    cli.env["NOTIFIER_JOURNAL_FROM"] = "0"
    store = Store(tmp_path / "state.json", packed_ledger=True)
    cli("run-once", "--date", "2026-11-17")  # reminders: rows for several accounts
    before = store.snapshot().tables("ledger")[0]
    journal = tmp_path / "state.json.journal"
    seen = len(journal.read_text().splitlines())
    cli("run-once", "--date", "2026-11-24")  # the example's day: rows for some of them
    after = store.snapshot().tables("ledger")[0]
    entries = [json.loads(line) for line in journal.read_text().splitlines()[seen:]]
    accounts = {key.split("|")[0].split("-", 2)[2] for e in entries for table, key, _ in e["changes"]
                if table == "ledger"}  # the invoice's id: 2026-11-ACCOUNT
    assert accounts and len({e.account for e in after.values()}) > len(accounts)  # others have rows too
    assert touched(before, after, None) == accounts
    assert touched(after, after, None) == set()
