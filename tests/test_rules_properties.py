"""Invariants of the dunning plan over generated accounts, invoices and days (hypothesis)."""
from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.billing.calendar import BankCalendar, due_date_for, invoice_dates
from notifier.config import Config
from notifier.billing.models import Account, Invoice, LedgerEntry
from notifier.billing.rules import PRE_DUE_STAGES, plan_day

CAL = BankCalendar()
CFG = Config()
START = date(2026, 1, 1)


@st.composite
def portfolios(draw):
    """A few accounts, each with a run of monthly invoices, some paid (on time or late), and a day."""
    accounts, invoices = [], []
    for n in range(draw(st.integers(1, 3))):
        acc = Account(
            id=f"acc{n}", company=f"Empresa {n} Ltda", document="11.222.333/0001-81",
            emails=tuple(f"f{i}@acc{n}.com.br" for i in range(draw(st.integers(1, 2)))),
            whatsapp=draw(st.sampled_from([None, f"+55119876543{n:02d}"])),
            social=draw(st.sampled_from([(), (("instagram", f"@acc{n}"),)])),
            due_day=draw(st.integers(1, 31)),
            past_delinquencies=draw(st.integers(0, 1)),
            opt_out=frozenset(draw(st.sets(st.sampled_from(["whatsapp", "social"])))),
        )
        accounts.append(acc)
        first_month = draw(st.integers(0, 14))
        for m in range(first_month, first_month + draw(st.integers(1, 4))):
            issued = date(2026 + m // 12, m % 12 + 1, 5)
            due = due_date_for(issued, acc.due_day)
            paid_after = draw(st.one_of(st.none(), st.integers(-10, 45)))
            paid = None if paid_after is None else due + timedelta(days=paid_after)
            invoices.append(Invoice(f"{acc.id}-{m}", acc.id, Decimal("99.90"), issued, due, paid))
    today = START + timedelta(days=draw(st.integers(0, 600)))
    return accounts, invoices, today


def plan(accounts, invoices, today, ledger=()):
    return plan_day(today, accounts, invoices, {}, list(ledger), CAL, CFG)


def handle_all(plan_result):
    """The ledger rows a cycle would write after sending every notice of the plan."""
    return [
        LedgerEntry(inv, n.account, when, stage, n.channel, n.recipient, "sent", n.tutorial)
        for n in plan_result.notices for inv, when, stage in n.covers
    ]


@settings(max_examples=300, deadline=None)
@given(portfolios())
def test_never_a_post_due_notice_before_the_overdue_date(case):
    accounts, invoices, today = case
    by_id = {inv.id: inv for inv in invoices}
    for n in plan(accounts, invoices, today).notices:
        for inv_id, when, stage in n.covers:
            if stage not in PRE_DUE_STAGES:
                assert when >= invoice_dates(by_id[inv_id].due, CAL, CFG.settlement_days).overdue


@settings(max_examples=300, deadline=None)
@given(portfolios())
def test_never_two_messages_to_one_recipient_on_one_channel_per_day(case):
    accounts, invoices, today = case
    counts = Counter((n.account, n.channel, n.recipient) for n in plan(accounts, invoices, today).notices)
    assert all(c == 1 for c in counts.values())


@settings(max_examples=300, deadline=None)
@given(portfolios())
def test_nothing_for_a_paid_invoice_from_its_payment_date(case):
    accounts, invoices, today = case
    paid = {inv.id for inv in invoices if inv.paid is not None and inv.paid <= today}
    for n in plan(accounts, invoices, today).notices:
        assert not paid & set(n.invoices)


@settings(max_examples=200, deadline=None)
@given(portfolios(), st.integers(0, 60))
def test_the_plan_never_repeats_a_notice_in_the_ledger(case, later):
    accounts, invoices, today = case
    first = plan(accounts, invoices, today)
    ledger = handle_all(first)
    assert plan(accounts, invoices, today, ledger).notices == ()
    handled = {e.key for e in ledger}
    for n in plan(accounts, invoices, today + timedelta(days=later), ledger).notices:
        for inv_id, when, _ in n.covers:
            assert (inv_id, when, n.channel, n.recipient) not in handled
