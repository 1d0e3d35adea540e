"""Guards for the dunning ladder's dates (issue 18, point 17), with tables of due dates around the
calendar's weekends and holidays (the property test in test_rules_properties.py draws random
days and seldom lands on these).

Mistakes they catch: a post-due stage (overdue, suspension warning, suspension, deletion) allowed
from the effective due date instead of the overdue date (due 28/01/2026 got a suspension warning
on its due day, until then caught only by the two-year simulation); a pre-due stage allowed after
the effective due date; the wrong anchor or offset of a stage; the wrong stage kept when several
fall on one date; a first-time delinquent's extra channels given to a customer who is not late
yet, or withheld from one who is late on the day the due-day notice falls (`settlement_days = 0`).
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from notifier.billing.calendar import BankCalendar, invoice_dates
from notifier.billing.models import Account, Invoice
from notifier.billing.rules import PRE_DUE_STAGES, invoice_timeline, plan_account
from notifier.config import DEFAULT_LADDER, Config, Stage

CAL = BankCalendar()
CFG = Config()
D = date.fromisoformat
ACME = Account(id="acme", company="ACME Comércio Ltda", document="11.222.333/0001-81",
               emails=("financeiro@acme.com.br",))
# A first-time delinquent (no past delinquency) reachable on every channel.
NEW = Account(id="acme", company="ACME Comércio Ltda", document="11.222.333/0001-81",
              emails=("financeiro@acme.com.br",), whatsapp="+5511987654321", social=(("instagram", "@acme"),))


def invoice(due: date) -> Invoice:
    # Issued 15 days before it is due (the company's day 5 for day 20): every notice of the timeline
    # falls after the issue date, so these tables test the post-due dates alone (a notice before an
    # invoice is issued is dropped: RULES.md, "An invoice is").
    return Invoice(id=f"inv-{due}", account="acme", amount=Decimal("149.90"), issued=due - timedelta(days=15), due=due)


# Due date -> its timeline as (date, stage), default ladder, settlement_days = 1.
TIMELINES = {
    # Wednesday; overdue Thursday 29/01. The warning (31/01 - 3 = 28/01) would fall on the due day:
    # dropped, so the reminder and due-day notices state the suspension date instead (RULES.md).
    "2026-01-28": [("2026-01-25", "reminder"), ("2026-01-28", "due_today"), ("2026-01-29", "overdue"),
                   ("2026-01-31", "suspended"), ("2026-02-21", "deletion_warning"), ("2026-02-28", "deletion_due")],
    # The same in February (28 days): warning 25/02 = the due day, dropped.
    "2026-02-25": [("2026-02-22", "reminder"), ("2026-02-25", "due_today"), ("2026-02-26", "overdue"),
                   ("2026-02-28", "suspended"), ("2026-03-18", "deletion_warning"), ("2026-03-25", "deletion_due")],
    # Friday before Carnival (16-17/02): overdue on Ash Wednesday 18/02.
    "2026-02-13": [("2026-02-10", "reminder"), ("2026-02-13", "due_today"), ("2026-02-18", "overdue"),
                   ("2026-02-25", "suspension_warning"), ("2026-02-28", "suspended"),
                   ("2026-03-06", "deletion_warning"), ("2026-03-13", "deletion_due")],
    # Good Friday: payable Monday 06/04, overdue Tuesday 07/04.
    "2026-04-03": [("2026-03-31", "reminder"), ("2026-04-06", "due_today"), ("2026-04-07", "overdue"),
                   ("2026-04-26", "deletion_warning"), ("2026-04-27", "suspension_warning"),
                   ("2026-04-30", "suspended"), ("2026-05-03", "deletion_due")],
    # Corpus Christi: payable Friday 05/06, overdue Monday 08/06; on 27/06 the suspension warning
    # and the deletion warning meet, and the more advanced stage is the notice's.
    "2026-06-04": [("2026-06-01", "reminder"), ("2026-06-05", "due_today"), ("2026-06-08", "overdue"),
                   ("2026-06-27", "deletion_warning"), ("2026-06-30", "suspended"), ("2026-07-04", "deletion_due")],
    # A Saturday before Finados (Monday 02/11): payable Tuesday 03/11, overdue 04/11, which is also
    # the suspension date (never before the overdue date), so the overdue notice is the suspension.
    "2026-10-31": [("2026-10-28", "reminder"), ("2026-11-03", "due_today"), ("2026-11-04", "suspended"),
                   ("2026-11-23", "deletion_warning"), ("2026-11-30", "deletion_due")],
    # Consciência Negra, a Friday: payable Monday 23/11, overdue 24/11 (RULES.md's example).
    "2026-11-20": [("2026-11-17", "reminder"), ("2026-11-23", "due_today"), ("2026-11-24", "overdue"),
                   ("2026-11-27", "suspension_warning"), ("2026-11-30", "suspended"),
                   ("2026-12-13", "deletion_warning"), ("2026-12-20", "deletion_due")],
    # A Friday: overdue Monday 30/11, the suspension date; the warning (27/11) is the due day.
    "2026-11-27": [("2026-11-24", "reminder"), ("2026-11-27", "due_today"), ("2026-11-30", "suspended"),
                   ("2026-12-20", "deletion_warning"), ("2026-12-27", "deletion_due")],
    # Monday of the year's last week: overdue 29/12; the warning (28/12) is the due day.
    "2026-12-28": [("2026-12-25", "reminder"), ("2026-12-28", "due_today"), ("2026-12-29", "overdue"),
                   ("2026-12-31", "suspended"), ("2027-01-21", "deletion_warning"), ("2027-01-28", "deletion_due")],
    # 31/12 has no bank service, 01/01 is a holiday, then a weekend: payable Monday 04/01/2027.
    "2026-12-31": [("2026-12-28", "reminder"), ("2027-01-04", "due_today"), ("2027-01-05", "suspended"),
                   ("2027-01-24", "deletion_warning"), ("2027-01-31", "deletion_due")],
}


@pytest.mark.parametrize("due", sorted(TIMELINES))
def test_the_timeline_of_a_due_date_around_weekends_and_holidays(due):
    got = [(n.date.isoformat(), n.stage) for n in invoice_timeline(invoice(D(due)), False, CAL, CFG)]
    assert got == [tuple(step) for step in TIMELINES[due]]


@pytest.mark.parametrize("due", sorted(TIMELINES))
def test_the_due_day_brings_the_due_day_notice_and_nothing_post_due_comes_before_the_overdue_date(due):
    """What the plan sends from the effective due date to the day before the overdue date: the
    due-day notice (on the days after it, as a catch-up of a notice not sent), nothing later."""
    inv = invoice(D(due))
    dates = invoice_dates(inv.due, CAL, CFG.settlement_days)
    day = dates.effective_due
    while day < dates.overdue:
        notices, _ = plan_account(day, ACME, [inv], None, [], CAL, CFG)
        assert [(n.channel, n.stage) for n in notices] == [("email", "due_today")], day
        day += timedelta(days=1)


def test_every_due_date_of_two_years_keeps_each_stage_on_its_side_of_the_due_date():
    """Post-due stages on or after the overdue date, pre-due stages on or before the effective due
    date, for every due date of 2026 and 2027, first-time delinquent or not."""
    due = date(2026, 1, 1)
    while due.year < 2028:
        dates = invoice_dates(due, CAL, CFG.settlement_days)
        for first_time in (False, True):
            for n in invoice_timeline(invoice(due), first_time, CAL, CFG):
                if n.stage in PRE_DUE_STAGES:
                    assert n.date <= dates.effective_due, (due, n)
                else:
                    assert n.date >= dates.overdue, (due, n)
        due += timedelta(days=1)


def test_with_no_settlement_days_the_due_day_is_the_overdue_date_and_brings_the_extra_effort():
    """`settlement_days = 0`: the due-day and overdue notices share the effective due date
    (23/11/2026); the customer is late from that day, so a first-time delinquent gets the overdue
    notice on its extra channels too, with the tutorial."""
    config = Config(settlement_days=0)
    notices, _ = plan_account(D("2026-11-23"), NEW, [invoice(D("2026-11-20"))], None, [], CAL, config)
    got = sorted((n.channel, n.stage, n.first_time, n.tutorial) for n in notices)
    assert got == [("email", "overdue", True, True), ("social", "overdue", True, True),
                   ("whatsapp", "overdue", True, True)]


def test_extra_channels_configured_on_a_reminder_wait_for_the_customer_to_be_late():
    """The extra effort is for a first-time delinquent, who is one only from the overdue date:
    a reminder goes on its own channels, not as a first-time message, even when the ladder gives
    it first-time channels."""
    config = Config(ladder=(Stage("reminder", -3, ("email",), ("whatsapp",)), *DEFAULT_LADDER[1:]))
    notices, _ = plan_account(D("2026-11-17"), NEW, [invoice(D("2026-11-20"))], None, [], CAL, config)
    assert [(n.channel, n.stage, n.first_time, n.tutorial) for n in notices] == [("email", "reminder", False, False)]
