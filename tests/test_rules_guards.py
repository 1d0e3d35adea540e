"""Rules that one-line mutations got past (issue 6, point 24), and invoices of R$ 0,00 (point 4).

Each test names the mutation it is there to catch: break that line and it fails.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from notifier.billing.calendar import BankCalendar
from notifier.config import Config
from notifier.billing.models import Account, History, Invoice, LedgerEntry
from notifier.billing.rules import account_timeline, is_first_time, plan_account, plan_day, recipients

CAL = BankCalendar()
CFG = Config()
D = date.fromisoformat
ACME = Account(id="acme", company="ACME Comércio Ltda", document="11.222.333/0001-81",
               emails=("financeiro@acme.com.br",), whatsapp="+5511987654321", social=(("instagram", "@acme"),))


def invoice(id="2026-11", due="2026-11-20", amount="149.90", paid=None) -> Invoice:
    return Invoice(id=id, account="acme", amount=Decimal(amount), issued=D(due).replace(day=5), due=D(due),
                   paid=D(paid) if paid else None)


def plan(today, invoices, ledger=(), history=None, account=ACME):
    notices, _ = plan_account(D(today), account, invoices, history, ledger, CAL, CFG)
    return notices


def rows(invoice_id, day, stage, channel, status, tutorial=False):
    return [LedgerEntry(invoice_id, "acme", D(day), stage, channel, r, status, tutorial) for r in recipients(ACME, channel)]


def test_a_permanently_failed_notice_is_handled_and_not_planned_again():
    # Mutation caught: at-most-once counting only `sent` rows (a failed notice re-planned daily).
    ledger = [row for channel in ("email", "whatsapp", "social")
              for row in rows("2026-11", "2026-11-24", "overdue", channel, "failed")]
    assert plan("2026-11-25", [invoice()], ledger) == []


def test_a_tutorial_whose_send_failed_goes_with_the_next_message_on_that_channel():
    # Mutation caught: the tutorial counted as given although its send failed.
    # (the first overdue e-mail carried it too: tutorial_in_first_overdue_email, on by default)
    ledger = (rows("2026-11", "2026-11-24", "overdue", "email", "sent", tutorial=True)
              + rows("2026-11", "2026-11-24", "overdue", "whatsapp", "failed", tutorial=True)
              + rows("2026-11", "2026-11-24", "overdue", "social", "sent", tutorial=True))
    got = {n.channel: n.tutorial for n in plan("2026-11-27", [invoice()], ledger)}
    assert got == {"email": False, "whatsapp": True}  # suspension_warning: email and whatsapp


def test_two_invoices_due_the_same_day_leave_the_account_first_time():
    # Mutation caught: first-time decided with `<=` on due dates (hosting and domain, both open).
    hosting, domain = invoice(id="hosting"), invoice(id="domain", amount="39.90")
    assert is_first_time(ACME, hosting, [hosting, domain], None, CAL, CFG)
    got = plan("2026-11-24", [hosting, domain])
    assert {n.channel for n in got} == {"email", "whatsapp", "social"} and all(n.first_time for n in got)


def test_the_merge_takes_the_most_advanced_stage_even_when_it_comes_last():
    # Mutation caught: the merge taking the first invoice's stage (the most advanced is LAST here).
    november, october = invoice(id="2026-11"), invoice(id="2026-10", due="2026-10-20")
    got = plan("2026-11-17", [november, october], account=ACME._replace(past_delinquencies=1))
    assert [(n.stage, n.invoices) for n in got] == [("deletion_warning", ("2026-10", "2026-11"))]


def test_a_reminder_is_never_first_time():
    # Mutation caught: reminders marked first-time (the customer is not late yet).
    [reminder] = plan("2026-11-17", [invoice()])
    assert (reminder.stage, reminder.first_time, reminder.tutorial) == ("reminder", False, False)
    assert account_timeline(ACME, [invoice()], None, CAL, CFG)[0].first_time is False


def test_an_archived_late_invoice_due_the_same_day_is_not_an_earlier_one():
    # Mutation caught: the history's `first_late_due` compared with `<=`.
    history = History("acme", first_late_due=D("2026-11-20"), late_count=1)
    assert is_first_time(ACME, invoice(), [invoice()], history, CAL, CFG)
    assert not is_first_time(ACME, invoice(), [invoice()], history._replace(first_late_due=D("2026-11-19")), CAL, CFG)


# --- R$ 0,00 -----------------------------------------------------------------------------------

def test_an_invoice_of_zero_gets_no_notice_on_any_day():
    free = invoice(amount="0.00")
    assert account_timeline(ACME, [free], None, CAL, CFG) == []
    for day in ("2026-11-17", "2026-11-24", "2026-11-30", "2026-12-20"):
        assert plan(day, [free]) == []
    assert plan_day(D("2026-11-24"), [ACME], [free], {}, [], CAL, CFG).notices == ()


def test_an_invoice_of_zero_is_left_out_of_a_merged_notice_and_is_no_delinquency():
    free, owed = invoice(id="2026-10-free", due="2026-10-20", amount="0"), invoice(id="2026-11")
    # October's R$ 0,00 never paid is no earlier delinquency: November is still a first time.
    got = plan("2026-11-24", [free, owed])
    assert {n.invoices for n in got} == {("2026-11",)} and all(n.first_time for n in got)
    assert [e.invoices for e in account_timeline(ACME, [free, owed], None, CAL, CFG)] == [("2026-11",)] * 7
