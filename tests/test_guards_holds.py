"""Guards for holds (issue 18, point 17): one-line mistakes that the rest of the suite let through,
caught through the command line.

- A hold placed on the day of the suspension warning, before that day's cycle, keeps the warning
  from going (held, then superseded by the suspension): the customer is never told the date, so
  the person placing the hold must be (a warning counts as given only if its day is before the
  hold's first day, not on it).
"""
from __future__ import annotations

import pytest

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
