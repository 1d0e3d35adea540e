"""The billing calendar and the dunning rules of RULES.md, as tables of real dates."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from notifier.billing.calendar import BankCalendar, due_date_for, invoice_dates
from notifier.config import Config
from notifier.billing.models import Account, History, Invoice, LedgerEntry
from notifier.billing.rules import account_timeline, is_first_time, is_late, plan_account, plan_day

CAL = BankCalendar()
CFG = Config()
D = date.fromisoformat


def account(**kw) -> Account:
    base = dict(
        id="acme", company="ACME Comércio Ltda", document="11.222.333/0001-81",
        emails=("financeiro@acme.com.br", "maria@acme.com.br"), whatsapp="+5511987654321",
        social=(("instagram", "@acme"),),
    )
    base.update(kw)
    return Account(**base)


def invoice(id="2026-11", due="2026-11-20", paid=None, issued=None, amount="149.90", acc="acme") -> Invoice:
    due_d = D(due)
    return Invoice(id=id, account=acc, amount=Decimal(amount),
                   issued=D(issued) if issued else due_d.replace(day=min(5, due_d.day)),
                   due=due_d, paid=D(paid) if paid else None)


# (case, due date, effective due, overdue, suspension, deletion)
DATES = [
    ("holiday friday: Consciência Negra", "2026-11-20", "2026-11-23", "2026-11-24", "2026-11-30", "2026-12-20"),
    ("due on a sunday", "2026-12-20", "2026-12-21", "2026-12-22", "2026-12-31", "2027-01-20"),
    ("carnival 2027: saturday before", "2027-02-06", "2027-02-10", "2027-02-11", "2027-02-28", "2027-03-06"),
    ("carnival monday 2027", "2027-02-08", "2027-02-10", "2027-02-11", "2027-02-28", "2027-03-08"),
    ("corpus christi 2027", "2027-05-27", "2027-05-28", "2027-05-31", "2027-05-31", "2027-06-27"),
    ("good friday 2026", "2026-04-03", "2026-04-06", "2026-04-07", "2026-04-30", "2026-05-03"),
    ("24 december is a business day", "2026-12-24", "2026-12-24", "2026-12-28", "2026-12-31", "2027-01-24"),
    ("last business day 2026 (thu 31/12)", "2026-12-31", "2027-01-04", "2027-01-05", "2027-01-05", "2027-01-31"),
    ("last business day 2028 is friday 29/12", "2028-12-29", "2029-01-02", "2029-01-03", "2029-01-03", "2029-01-29"),
    ("overdue crosses the month end", "2026-11-30", "2026-11-30", "2026-12-01", "2026-12-01", "2026-12-30"),
    ("legacy day 28 on a saturday", "2026-11-28", "2026-11-30", "2026-12-01", "2026-12-01", "2026-12-28"),
    ("february 28, 2027 is a sunday", "2027-02-28", "2027-03-01", "2027-03-02", "2027-03-02", "2027-03-28"),
    ("deletion clamps to a shorter month", "2027-01-31", "2027-02-01", "2027-02-02", "2027-02-02", "2027-02-28"),
]


@pytest.mark.parametrize("case,due,effective,overdue,suspension,deletion", DATES, ids=[d[0] for d in DATES])
def test_invoice_dates(case, due, effective, overdue, suspension, deletion):
    d = invoice_dates(D(due), CAL, 1)
    assert (d.effective_due, d.overdue, d.suspension, d.deletion) == (D(effective), D(overdue), D(suspension), D(deletion))


@pytest.mark.parametrize("issued,due_day,expected", [
    ("2026-11-05", 20, "2026-11-20"),
    ("2026-11-05", 31, "2026-11-30"),  # 30-day month
    ("2027-02-05", 31, "2027-02-28"),  # february
    ("2028-02-05", 31, "2028-02-29"),  # leap year
    ("2026-11-05", 28, "2026-11-28"),
    ("2026-11-05", 5, "2026-11-05"),
    ("2026-11-05", 3, "2026-12-03"),  # legacy 1-4: the month after the issue
    ("2026-12-05", 1, "2027-01-01"),
])
def test_due_date_from_due_day(issued, due_day, expected):
    assert due_date_for(D(issued), due_day) == D(expected)


def test_settlement_days_and_local_holidays_are_configurable():
    cal = BankCalendar(frozenset({D("2026-11-24")}))
    assert invoice_dates(D("2026-11-20"), cal, 1).overdue == D("2026-11-25")
    assert invoice_dates(D("2026-11-20"), CAL, 2).overdue == D("2026-11-25")


def timeline(*invoices, acc=None, history=None):
    acc = acc or account()
    return [(e.date.isoformat(), e.stage, e.channels, e.invoices)
            for e in account_timeline(acc, invoices, history, CAL, CFG)]


def test_default_ladder_for_the_holiday_due_date():
    assert timeline(invoice()) == [
        ("2026-11-17", "reminder", ("email",), ("2026-11",)),
        ("2026-11-23", "due_today", ("email",), ("2026-11",)),
        ("2026-11-24", "overdue", ("email", "whatsapp", "social"), ("2026-11",)),
        ("2026-11-27", "suspension_warning", ("email", "whatsapp"), ("2026-11",)),
        ("2026-11-30", "suspended", ("email",), ("2026-11",)),
        ("2026-12-13", "deletion_warning", ("email",), ("2026-11",)),
        ("2026-12-20", "deletion_due", ("staff",), ("2026-11",)),
    ]


def test_legacy_day_28_on_saturday_suspension_moves_to_overdue_date():
    # Effective due is the month's last day, so suspension can only be the overdue date (01/12):
    # the warning (28/11) would fall before the overdue date and is dropped; the suspension notice
    # and the overdue notice share a date and the most advanced stage wins.
    assert timeline(invoice(due="2026-11-28"), acc=account(past_delinquencies=1)) == [
        ("2026-11-25", "reminder", ("email",), ("2026-11",)),
        ("2026-11-30", "due_today", ("email",), ("2026-11",)),
        ("2026-12-01", "suspended", ("email",), ("2026-11",)),
        ("2026-12-21", "deletion_warning", ("email",), ("2026-11",)),
        ("2026-12-28", "deletion_due", ("staff",), ("2026-11",)),
    ]


def test_due_day_31_in_february_first_time_gets_extra_channels_on_the_merged_date():
    got = timeline(invoice(due="2027-02-28", issued="2027-02-05"))
    assert got[2] == ("2027-03-02", "suspended", ("email", "whatsapp", "social"), ("2026-11",))
    assert [g[1] for g in got] == ["reminder", "due_today", "suspended", "deletion_warning", "deletion_due"]


def test_due_day_5_deletion_warning_comes_before_suspension():
    # Issued and due on 05/11: the reminder of 02/11 would come before the invoice is owed
    # (RULES.md "An invoice is"), so the due-day notice is the first.
    got = timeline(invoice(due="2026-11-05"), acc=account(past_delinquencies=1))
    assert [(g[0], g[1]) for g in got] == [
        ("2026-11-05", "due_today"),
        ("2026-11-06", "overdue"),
        ("2026-11-27", "suspension_warning"),
        ("2026-11-28", "deletion_warning"),
        ("2026-11-30", "suspended"),
        ("2026-12-05", "deletion_due"),
    ]


def notices(today, invoices, acc=None, ledger=(), history=None):
    acc = acc or account()
    got, _ = plan_account(D(today), acc, invoices, history, ledger, CAL, CFG)
    return [(n.stage, n.channel, n.recipient, n.invoices, n.tutorial) for n in got]


def test_two_open_invoices_due_the_same_day_merge_into_one_message_per_recipient():
    hosting = invoice(id="hosting-2026-11")
    domain = invoice(id="domain-2026-11", amount="69.90")
    got = notices("2026-11-17", [hosting, domain])
    assert got == [
        ("reminder", "email", "financeiro@acme.com.br", ("domain-2026-11", "hosting-2026-11"), False),
        ("reminder", "email", "maria@acme.com.br", ("domain-2026-11", "hosting-2026-11"), False),
    ]


def test_merge_of_different_stages_uses_the_most_advanced():
    # October's deletion warning (13/11) was missed and stays due until its next notice (20/11);
    # on 17/11 it meets November's reminder: one e-mail per address, listing both invoices.
    october = invoice(id="2026-10", due="2026-10-20")
    november = invoice(id="2026-11", due="2026-11-20")
    got = notices("2026-11-17", [october, november], acc=account(past_delinquencies=1))
    email = [g for g in got if g[1] == "email"]
    assert email == [
        ("deletion_warning", "email", "financeiro@acme.com.br", ("2026-10", "2026-11"), False),
        ("deletion_warning", "email", "maria@acme.com.br", ("2026-10", "2026-11"), False),
    ]


def test_merge_takes_the_most_advanced_stage_whatever_the_order_of_the_invoices():
    october = invoice(id="2026-10", due="2026-10-20")
    november = invoice(id="2026-11", due="2026-11-20")
    got = notices("2026-11-17", [november, october], acc=account(past_delinquencies=1))
    assert {g[0] for g in got if g[1] == "email"} == {"deletion_warning"}


def test_paid_on_the_effective_due_date_is_not_late_and_gets_no_overdue_notice():
    paid = invoice(paid="2026-11-23")
    assert not is_late(paid, CAL, CFG)
    assert notices("2026-11-24", [paid]) == []
    assert notices("2026-11-23", [paid]) == []  # paid that day: nothing from the payment date on
    assert notices("2026-11-22", [paid])[0][0] == "reminder"  # before it was paid: reminder catch-up


def test_paid_late_makes_the_next_late_invoice_a_repeat():
    october = invoice(id="2026-10", due="2026-10-20", paid="2026-10-26")
    november = invoice(id="2026-11")
    assert is_late(october, CAL, CFG)
    assert not is_first_time(account(), november, [october, november], None, CAL, CFG)
    got = notices("2026-11-24", [october, november])
    assert {g[1] for g in got} == {"email"}


def test_paid_on_time_keeps_the_next_late_invoice_first_time():
    october = invoice(id="2026-10", due="2026-10-20", paid="2026-10-20")
    november = invoice(id="2026-11")
    assert is_first_time(account(), november, [october, november], None, CAL, CFG)


def test_archived_late_invoice_in_history_makes_it_a_repeat():
    history = History("acme", first_late_due=D("2026-05-20"), late_count=1)
    assert not is_first_time(account(), invoice(), [invoice()], history, CAL, CFG)


def test_past_delinquencies_means_no_extra_effort():
    got = notices("2026-11-24", [invoice()], acc=account(past_delinquencies=2))
    assert {g[1] for g in got} == {"email"}


def test_first_time_delinquent_gets_whatsapp_and_social_with_the_tutorial():
    got = notices("2026-11-24", [invoice()])
    assert got == [  # and the first overdue e-mail too (tutorial_in_first_overdue_email)
        ("overdue", "email", "financeiro@acme.com.br", ("2026-11",), True),
        ("overdue", "email", "maria@acme.com.br", ("2026-11",), True),
        ("overdue", "social", "instagram:@acme", ("2026-11",), True),
        ("overdue", "whatsapp", "+5511987654321", ("2026-11",), True),
    ]


def test_opt_out_is_honoured_except_for_email():
    got = notices("2026-11-24", [invoice()], acc=account(opt_out=frozenset({"whatsapp", "email"})))
    assert [g[1] for g in got] == ["email", "email", "social"]


def test_social_url_handle_is_recorded_by_network_name_only():
    acc = account(social=(("telegram", "tgram://123456:SECRET/987"),))
    got = notices("2026-11-24", [invoice()], acc=acc)
    assert ("overdue", "social", "telegram", ("2026-11",), True) in got


def sent(inv_id, day, stage, channel, recipient, tutorial=False, status="sent"):
    return LedgerEntry(inv_id, "acme", D(day), stage, channel, recipient, status, tutorial)


def ledger_for(inv_id, day, stage, channels, acc=None, tutorial=()):
    acc = acc or account()
    from notifier.billing.rules import recipients
    return [sent(inv_id, day, stage, c, r, c in tutorial) for c in channels for r in recipients(acc, c)]


def test_at_most_once_a_handled_notice_is_not_planned_again():
    ledger = ledger_for("2026-11", "2026-11-24", "overdue", ("email", "whatsapp", "social"), tutorial=("whatsapp", "social"))
    assert notices("2026-11-24", [invoice()], ledger=ledger) == []
    assert notices("2026-11-25", [invoice()], ledger=ledger) == []


def test_catch_up_after_one_missed_day_still_sends_the_overdue_notice():
    ledger = ledger_for("2026-11", "2026-11-23", "due_today", ("email",))
    got = notices("2026-11-25", [invoice()], ledger=ledger)
    assert [(g[0], g[1]) for g in got] == [("overdue", "email")] * 2 + [("overdue", "social"), ("overdue", "whatsapp")]


def test_catch_up_after_five_missed_days_skips_superseded_and_sends_the_tutorial_once():
    ledger = (ledger_for("2026-11", "2026-11-17", "reminder", ("email",))
              + ledger_for("2026-11", "2026-11-23", "due_today", ("email",)))
    today = D("2026-11-29")  # missed 24..28: the overdue notice is superseded by the 27/11 warning
    got, superseded = plan_account(today, account(), [invoice()], None, ledger, CAL, CFG)
    assert [(n.stage, n.channel, n.tutorial) for n in got] == [  # the first e-mail after the due date
        ("suspension_warning", "email", True), ("suspension_warning", "email", True),
        ("suspension_warning", "whatsapp", True),
    ]
    assert sorted((p.notice.stage, p.channel) for p in superseded) == [
        ("overdue", "email"), ("overdue", "email"), ("overdue", "social"), ("overdue", "whatsapp")]
    # once the tutorial went by whatsapp, the next whatsapp message does not repeat it
    ledger += [sent("2026-11", "2026-11-24", "overdue", "whatsapp", "+5511987654321", tutorial=True)]
    got, _ = plan_account(today, account(), [invoice()], None, ledger, CAL, CFG)
    assert [(n.channel, n.tutorial) for n in got if n.channel == "whatsapp"] == [("whatsapp", False)]


def test_deletion_due_never_expires():
    # The daemon was down from 20/12 to 05/01: the staff task for deletion is still due.
    got = notices("2027-01-05", [invoice()], acc=account(past_delinquencies=1))
    assert ("deletion_due", "staff", "staff", ("2026-11",), False) in got


def test_plan_day_sorted_by_account_channel_recipient():
    other = account(id="beta", emails=("contas@beta.com.br",), whatsapp=None, social=())
    plan = plan_day(D("2026-11-24"), [account(), other],
                    [invoice(), invoice(id="beta-2026-11", acc="beta")], {}, [], CAL, CFG)
    keys = [(n.account, n.channel, n.recipient) for n in plan.notices]
    assert keys == sorted(keys) and {k[0] for k in keys} == {"acme", "beta"}


# The timeline shows what the plan sends (issue 6, points 16 and 17)

def test_timeline_lists_only_channels_that_reach_someone():
    nobody = account(whatsapp=None, social=())
    assert [(g[1], g[2]) for g in timeline(invoice(), acc=nobody)][2:4] == [
        ("overdue", ("email",)), ("suspension_warning", ("email",))]
    opted_out = account(opt_out=frozenset({"whatsapp"}))
    assert [(g[1], g[2]) for g in timeline(invoice(), acc=opted_out)][2:4] == [
        ("overdue", ("email", "social")), ("suspension_warning", ("email",))]


def test_timeline_each_channel_carries_its_most_advanced_stage_of_the_day():
    # due day 30: October's deletion date (30/11) is November's effective due date.
    october = invoice(id="2026-10", due="2026-10-30")
    november = invoice(id="2026-11", due="2026-11-30")
    on_30 = [g for g in timeline(november, october, acc=account(past_delinquencies=1)) if g[0] == "2026-11-30"]
    assert on_30 == [
        ("2026-11-30", "due_today", ("email",), ("2026-11",)),
        ("2026-11-30", "deletion_due", ("staff",), ("2026-10",)),
    ]


def test_timeline_merges_two_invoices_on_one_channel_into_the_most_advanced_stage():
    # October due 24/10 (a saturday): deletion warning 24/11 - 7 = 17/11, November's reminder day.
    november = invoice(id="2026-11", due="2026-11-20")  # listed first, the less advanced on 17/11
    october = invoice(id="2026-10", due="2026-10-24", issued="2026-10-05")
    on_17 = [g for g in timeline(november, october, acc=account(past_delinquencies=1)) if g[0] == "2026-11-17"]
    assert on_17 == [("2026-11-17", "deletion_warning", ("email",), ("2026-10", "2026-11"))]


def daily_cycle(accounts, invoices, first: date, last: date):
    """What a daemon running every day from `first` to `last` plans each day, every notice handled."""
    ledger: list[LedgerEntry] = []
    day = first
    while day <= last:
        result = plan_day(day, accounts, invoices, {}, ledger, CAL, CFG)
        yield day, result.notices
        ledger += [LedgerEntry(inv, n.account, when, stage, n.channel, n.recipient, "sent", n.tutorial)
                   for n in result.notices for inv, when, stage in n.covers]
        day += timedelta(days=1)


def test_plan_and_timeline_agree_day_by_day_for_accounts_with_several_invoices():
    from notifier.state.store import Store
    from tests.conftest import ROOT
    snap = Store(ROOT / "state.json.example").snapshot()
    due_30 = account(id="due-30", past_delinquencies=0)
    accounts = [*snap.accounts(), due_30]
    invoices = [*snap.invoices(), invoice(id="due-30-10", due="2026-10-30", acc="due-30"),
                invoice(id="due-30-11", due="2026-11-30", acc="due-30")]
    timelines = {acc.id: account_timeline(acc, [i for i in invoices if i.account == acc.id], None, CAL, CFG)
                 for acc in accounts}
    several = {acc for acc, entries in timelines.items() if len({i for e in entries for i in e.invoices}) > 1}
    assert {"atelie-flor-de-lis", "due-30"} <= several
    # Compared from the day after the last recorded payment: before it, the plan still sees invoices
    # that the timeline (open invoices only) no longer shows.
    last_payment = max(i.paid for i in invoices if i.paid)
    compared = 0
    for day, notices in daily_cycle(accounts, invoices, D("2026-10-01"), D("2027-01-31")):
        if day <= last_payment:
            continue
        rows: dict[tuple[str, str], tuple[set, set, set]] = defaultdict(lambda: (set(), set(), set()))
        for n in notices:  # the plan's messages as the timeline shows them: one row per stage
            channels, invs, first = rows[(n.account, n.stage)]
            channels.add(n.channel), invs.update(n.invoices), first.add(n.first_time)
        planned = {key: (channels, invs, any(first)) for key, (channels, invs, first) in rows.items()}
        shown = {(acc, e.stage): (set(e.channels), set(e.invoices), e.first_time)
                 for acc, entries in timelines.items() for e in entries if e.date == day}
        assert planned == shown, day
        compared += len(planned)
    assert compared > 20
    plan_30 = {(n.account, n.stage, n.channel) for day, ns in daily_cycle(accounts, invoices, D("2026-10-01"), D("2026-11-30"))
               if day == D("2026-11-30") for n in ns}
    assert {("atelie-flor-de-lis", "due_today", "email"), ("due-30", "due_today", "email"),
            ("due-30", "deletion_due", "staff")} <= plan_30
