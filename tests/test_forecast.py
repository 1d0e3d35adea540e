"""`notifier forecast`: the coming days' messages as the daily cycle would send them if nobody paid."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

from notifier.config import Config, load_config
from notifier.reports.forecast import forecast
from notifier.state.store import Store
from tests.conftest import ROOT


def _example(tmp_path):
    state = tmp_path / "state.json"
    shutil.copy(ROOT / "state.json.example", state)
    return Store(state).snapshot()


def _run(snap, start, days, config=Config(), **kw):
    return forecast(start, days, snap.accounts(), snap.invoices(), snap.histories(), snap.ledger(), config, **kw)


def test_first_day_is_the_plan_of_that_day(tmp_path, cli):
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")
    plan = cli.json("plan", "--date", "2026-11-24")
    rows = json.loads(cli("forecast", "--from", "2026-11-24", "--days", "1", "--format", "json").stdout)
    assert {(r["stage"], r["channel"]): r["messages"] for r in rows} == Counter((n["stage"], n["channel"]) for n in plan)
    # --date, as every other command spells the day, is the same option.
    assert json.loads(cli("forecast", "--date", "2026-11-24", "--days", "1", "--format", "json").stdout) == rows


def test_each_notice_is_counted_once_over_the_days(tmp_path):
    # Counted on the day it goes out; the next days see it handled, as the cycle's ledger would.
    snap = _example(tmp_path)
    rows = _run(snap, date(2026, 11, 20), 40)
    per_day = Counter((r.date, r.stage) for r in rows for _ in range(r.messages))
    atelie_overdue = [r for r in rows if r.stage == "overdue" and r.channel == "email"]
    assert len({r.date for r in atelie_overdue}) == len(atelie_overdue)
    # Nobody pays: after the deletion dates nothing more goes out for these invoices.
    assert not [r for r in rows if r.date > date(2026, 12, 28)]
    assert sum(per_day.values()) == sum(r.messages for r in rows)
    again = _run(snap, date(2026, 11, 20), 40)
    assert again == rows
    firsts = [r for r in rows if r.date == date(2026, 11, 24) and r.stage == "overdue" and r.channel == "email"]
    assert firsts and not [r for r in rows if r.date == date(2026, 11, 25) and r.stage == "overdue"]


def test_nobody_pays_from_the_first_day(tmp_path):
    snap = _example(tmp_path)
    start = date(2026, 11, 1)
    paid_later = [i for i in snap.invoices() if i.paid and i.paid >= start]
    assert paid_later, "the example state has invoices paid in November"
    # The same forecast over data where those payments never happened: identical.
    unpaid = [i._replace(paid=None) if i in paid_later else i for i in snap.invoices()]
    expected = forecast(start, 30, snap.accounts(), unpaid, snap.histories(), snap.ledger(), Config())
    assert _run(snap, start, 30) == expected
    # ...and more than the cycle will really send, since some of them did pay.
    kept = [i for i in snap.invoices() if i not in paid_later]
    honoured = forecast(start, 30, snap.accounts(), kept, snap.histories(), snap.ledger(), Config())
    assert sum(r.messages for r in expected) > sum(r.messages for r in honoured)


def test_a_channel_that_may_not_be_used_waits_for_a_later_day(tmp_path):
    snap = _example(tmp_path)
    start = date(2026, 11, 24)
    closed = {start}
    rows = _run(snap, start, 3, may_contact=lambda day, channel: channel == "email" or day not in closed)
    whatsapp = [r for r in rows if r.channel == "whatsapp"]
    assert whatsapp and all(r.date == start + timedelta(days=1) for r in whatsapp)
    assert sum(r.messages for r in whatsapp) == sum(r.messages for r in _run(snap, start, 1) if r.channel == "whatsapp")


def test_an_account_on_hold_gets_nothing(tmp_path):
    snap = _example(tmp_path)
    rows = _run(snap, date(2026, 11, 24), 1, held=lambda account, day: account != "padaria-sao-joao")
    everything = _run(snap, date(2026, 11, 24), 1)
    assert 0 < sum(r.messages for r in rows) < sum(r.messages for r in everything)


def test_cost_comes_from_the_configured_prices(tmp_path):
    cfg_file = tmp_path / "n.toml"
    cfg_file.write_text('[prices]\nwhatsapp = "0.10"\nsms_segment = "0.25"\nsms_segments = 2\n', encoding="utf-8")
    config = load_config(cfg_file, {})
    assert config.prices["sms"] == Decimal("0.50")
    snap = _example(tmp_path)
    rows = _run(snap, date(2026, 11, 24), 1, config)
    whatsapp = [r for r in rows if r.channel == "whatsapp"]
    assert whatsapp and all(r.cost == Decimal("0.10") * r.messages for r in whatsapp)
    assert all(r.cost == 0 for r in rows if r.channel == "email")


def test_csv_opens_in_excel_set_to_portuguese(tmp_path, cli):
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")
    out = cli("forecast", "--date", "2026-11-24", "--days", "5", "--format", "csv").stdout
    assert out.startswith("\ufeffData;Etapa;Canal;Mensagens;Custo (R$)")
    # The stage and channel as the attempts CSV names them (issue 20, point 7).
    assert "24/11/2026;Em atraso;WhatsApp;1;0,07" in out


def test_bad_prices_are_refused_at_start(tmp_path, cli):
    (tmp_path / "n.toml").write_text('[prices]\nwhatsapp = "-1"\n', encoding="utf-8")
    proc = cli("--config", "n.toml", "forecast", check=False)
    assert proc.returncode == 1 and "prices.whatsapp" in proc.stderr and "Traceback" not in proc.stderr


def test_the_command_applies_contact_hours_and_holds(tmp_path, cli):
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")
    # Hours only on Saturdays: the WhatsApp and social notices of the week wait for 28/11 (the
    # overdue ones superseded meanwhile by the suspension warning); e-mail goes on its days.
    (tmp_path / "n.toml").write_text('[contact_hours]\nweekdays = ""\n', encoding="utf-8")
    week = json.loads(cli("--config", "n.toml", "forecast", "--date", "2026-11-23", "--days", "7",
                          "--format", "json").stdout)
    restricted = [r for r in week if r["channel"] in ("whatsapp", "sms", "social")]
    assert restricted and {r["date"] for r in restricted} == {"2026-11-28"}
    assert [r for r in week if r["channel"] == "email" and r["date"] == "2026-11-24"]
    before = json.loads(cli("forecast", "--date", "2026-11-24", "--days", "1", "--format", "json").stdout)
    cli("hold", "padaria-sao-joao", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-10",
        "--date", "2026-11-24")
    held = json.loads(cli("forecast", "--date", "2026-11-24", "--days", "1", "--format", "json").stdout)
    assert sum(r["messages"] for r in held) < sum(r["messages"] for r in before)


def _day_by_day(start, days, snap, config, may_contact, held):
    """The forecast as it was first written: the whole day plan (`plan_day`) of every day, each
    notice that may go out counted and its ledger rows added for the next day."""
    from notifier.billing.rules import handled_rows, plan_day, superseded_rows
    invoices = [i._replace(paid=None) if i.paid is not None and i.paid >= start else i for i in snap.invoices()]
    ledger, counts = list(snap.ledger()), Counter()
    for offset in range(days):
        day = start + timedelta(days=offset)
        plan = plan_day(day, snap.accounts(), invoices, snap.histories(), ledger, config.calendar, config)
        for notice in plan.notices:
            if not held(notice.account, day) and may_contact(day, notice.channel):
                counts[(day, notice.stage, notice.channel)] += 1
                ledger.extend(handled_rows(notice, "sent"))
        ledger.extend(superseded_rows(plan.superseded))
    return counts


def test_planning_each_account_only_on_the_days_its_plan_can_change_is_planning_every_day(tmp_path):
    """`forecast` plans an account on the first day, on a day one of its plan's inputs turns and
    after a day that left a notice waiting: the same messages as planning every account every day,
    with contact hours that hold DMs back for days and an account on hold for part of the time."""
    from notifier.reports.forecast import contact_days
    cfg_file = tmp_path / "n.toml"
    cfg_file.write_text('[contact_hours]\nweekdays = ""\n', encoding="utf-8")  # Saturdays only
    config = load_config(cfg_file, {})
    snap = _example(tmp_path)
    may_contact = contact_days(config)
    held = lambda account, day: account == "padaria-sao-joao" and date(2026, 11, 22) <= day < date(2026, 12, 2)
    for start in (date(2026, 11, 1), date(2026, 11, 17), date(2026, 11, 24)):
        rows = forecast(start, 45, snap.accounts(), snap.invoices(), snap.histories(), snap.ledger(), config,
                        may_contact=may_contact, held=held)
        assert {(r.date, r.stage, r.channel): r.messages for r in rows} == _day_by_day(start, 45, snap, config,
                                                                                         may_contact, held)
        assert rows
