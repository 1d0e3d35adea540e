"""Guards for holds (issue 18, point 17): one-line mistakes that the rest of the suite let through,
caught through the command line.

- A hold placed on the day of the suspension warning, before that day's cycle, keeps the warning
  from going (held, then superseded by the suspension): the customer is never told the date, so
  the person placing the hold must be (a warning counts as given only if its day is before the
  hold's first day, not on it).
- Found by a mutation hunt on notifier/staff/holds.py: a notice superseded after a hold ended
  blamed on the hold (the day the hold ends is not in it); a note about an invoice already paid;
  no note where the ladder leaves no suspension warning, or a false one after the reminder that
  states the date; do-not-contact lines with a 10-digit landline or a comment after the number.
"""
from __future__ import annotations

import pytest

from notifier.staff.holds import normalize, parse_do_not_contact
from tests.cycle_helpers import account, records, setup
from tests.smtp_server import SmtpServer

WARNING_DAY = "2026-11-27"  # invoice due 20/11/2026: suspension warning 27/11, suspension 30/11


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


def test_a_hold_placed_on_the_warning_day_before_the_cycle_tells_staff(cli, smtp):
    setup(cli, [account("acme")])
    cli.env["EMAIL_URL"] = smtp.url()
    out = cli("hold", "acme", "--by", "ana", "--reason", "disputed", "--until", "2026-12-01",
              "--date", WARNING_DAY).stdout
    assert "2026-11-acme" in out and "30/11/2026" in out, out  # the person placing it is told the date
    [hold] = [r for r in records(cli.workdir) if r["event"] == "hold"]
    assert hold["unwarned_suspensions"] == {"2026-11-acme": "2026-11-30"}
    # ...and it is true: the warning does not go that day, nor before the suspension.
    for day in ("2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"):
        cli("run-once", "--date", day)
    assert smtp.received == []


def hold(cli, account_id: str, day: str, until: str = "2026-12-01") -> tuple[str, dict]:
    """`hold` as ana; its output and its log record."""
    out = cli("hold", account_id, "--by", "ana", "--reason", "disputed", "--until", until, "--date", day).stdout
    return out, [r for r in records(cli.workdir) if r["event"] == "hold" and r["account"] == account_id][-1]


def test_a_notice_superseded_after_the_hold_ended_is_not_blamed_on_the_hold(cli):
    """Held from 24/11 until 27/11 (the day it ends is not in it), and no cycle from then until
    30/11: the overdue notice of 24/11 was kept by the hold, the warning of 27/11 by nothing."""
    setup(cli, [account("acme")])
    hold(cli, "acme", "2026-11-24", until="2026-11-27")
    cli("run-once", "--date", "2026-11-30")
    skipped = {(stage, r["reason"]) for r in records(cli.workdir) if r["event"] == "skipped"
               for _, _, stage in r["covers"]}
    assert skipped == {("reminder", "superseded"), ("due_today", "superseded"), ("overdue", "hold: disputed"),
                       ("suspension_warning", "superseded")}


def test_a_hold_tells_of_no_unwarned_suspension_for_an_invoice_already_paid(cli):
    setup(cli, [account("acme"), account("beta")])
    cli("pay", "2026-11-acme", "--date", "2026-11-23", "--by", "ana")
    out, record = hold(cli, "acme", "2026-11-24")
    assert "30/11/2026" not in out and "unwarned_suspensions" not in record, out
    out, record = hold(cli, "beta", "2026-11-24")  # the same hold over an open invoice: told
    assert "30/11/2026" in out and record["unwarned_suspensions"] == {"2026-11-beta": "2026-11-30"}, out


def test_where_the_ladder_leaves_no_warning_the_reminder_that_states_the_date_counts(cli, smtp):
    """Due day 27: due Friday 27/11/2026, overdue and suspended Monday 30/11, no suspension warning
    (it would fall on the due day); the reminder (24/11) and due-day notices state the date."""
    setup(cli, [account("acme", due_day=27), account("beta", due_day=27)])
    cli.env["EMAIL_URL"] = smtp.url()
    out, record = hold(cli, "beta", "2026-11-24")  # before the reminder went: nobody tells beta
    assert "30/11/2026" in out and record["unwarned_suspensions"] == {"2026-11-beta": "2026-11-30"}, out
    cli("run-once", "--date", "2026-11-24")
    [reminder] = smtp.received
    assert reminder.rcpt_tos == ["financeiro@acme.com.br"] and reminder.message["X-Notifier-Stage"] == "reminder"
    assert "30/11/2026" in reminder.message.get_body(("plain",)).get_content()
    out, record = hold(cli, "acme", "2026-11-25")  # after it: acme was told
    assert "30/11/2026" not in out and "unwarned_suspensions" not in record, out


def test_do_not_contact_lines_with_a_landline_or_a_comment_after_the_number():
    numbers = parse_do_not_contact([
        "(11) 3333-4444",  # a landline: 10 digits without the country code, as Procon exports them
        "11987654321 # pediu em 01/03/2025",  # a comment after the number, with digits in it
        "# 11 91234-5678 saiu da lista",  # a number commented out
    ])
    assert numbers == {normalize("+55 11 3333-4444"), normalize("+55 11 98765-4321")}
