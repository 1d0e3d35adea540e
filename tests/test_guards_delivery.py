"""Guards for the path every send takes (issue 18, point 17): one-line mistakes in it that the rest
of the suite let through, each caught here by what a customer or the log would see.

- The do-not-contact file cannot be read (missing, a folder): treating it as empty would call, on
  WhatsApp and SMS, numbers that asked not to be called. Nothing may go to a phone then.
- A claim (`sending` record) that cannot be written to the attempt log (its disk full): the message
  must not go out, since nothing would prove it was sent (and a restart would send it again).
- `escalate` sends the account's current stage: the latest one its open invoices reached, not the
  earliest (a reminder's text to a customer already warned of suspension).
"""
from __future__ import annotations

import pytest

from tests.cycle_helpers import CONFIG, account, records, setup
from tests.fake_twilio import fake_twilio  # noqa: F401  (fixture)
from tests.smtp_server import SmtpServer
from tests.test_faults_disk import LAYOUT, in_namespace

DAY = "2026-11-24"  # overdue date of the invoices due 20/11/2026 (a holiday: payable until 23/11)
PHONE = "+5511987654321"


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.mark.parametrize("unreadable", ["missing", "folder"])
def test_an_unreadable_do_not_contact_list_calls_no_phone(cli, smtp, fake_twilio, unreadable):
    """The list cannot be read: no WhatsApp or SMS goes to anyone (the numbers on it cannot be told
    apart), from the cycle or from staff, and the command names the file."""
    setup(cli, [account("acme", whatsapp=PHONE)], config='do_not_contact = "nao-me-ligue.csv"\n' + CONFIG)
    if unreadable == "folder":
        (cli.workdir / "nao-me-ligue.csv").mkdir()
    cli.env["EMAIL_URL"] = smtp.url()
    cli.env.update(fake_twilio.env())
    commands = (["run-once", "--date", DAY],
                ["send", "acme", "--channel", "whatsapp", "--date", DAY],
                ["send", "acme", "--channel", "sms", "--stage", "overdue", "--date", DAY],
                ["escalate", "acme", "--by", "ana", "--channel", "whatsapp", "--channel", "sms", "--now",
                 "--date", DAY])
    for args in commands:
        proc = cli(*args, check=False)
        assert fake_twilio.posts == [], (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "nao-me-ligue.csv" in proc.stdout + proc.stderr, (args, proc.stdout, proc.stderr)
        # Staff asked for a call that cannot be made: refused. (The cycle may stop, as today, or
        # block only its WhatsApp and SMS messages and send the e-mails.)
        assert args[0] == "run-once" or proc.returncode != 0, (args, proc.stdout)
    assert not [r for r in records(cli.workdir) if r["event"] == "sending" and r["channel"] in ("whatsapp", "sms")]


@pytest.mark.parametrize("folder, how, says", [
    ("log", "full", "No space left on device"),  # the log's own append fails
    ("log/attempts.jsonl.messages", "readonly", "Read-only file system"),  # the stored message's write fails
])
def test_a_claim_that_cannot_be_written_sends_nothing(cli, folder, how, says):
    """The claim cannot be written (a real full tmpfs or read-only mount, see test_faults_disk):
    `send` stops in one line, and the e-mail never reaches the outbox."""
    (cli.workdir / "state").mkdir()
    (cli.workdir / "log").mkdir()
    setup(cli, [account("acme")], config=LAYOUT + CONFIG)
    cli("send", "acme", "--channel", "email", "--stage", "reminder", "--date", DAY)  # the log and its store exist
    outbox = cli.workdir / "outbox" / "email"
    before = sorted(outbox.iterdir())
    log = (cli.workdir / "log" / "attempts.jsonl").read_bytes()
    proc = in_namespace(cli, cli.workdir / folder, how, "send", "acme", "--channel", "email", "--date", DAY)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert says in proc.stderr, proc.stderr
    assert sorted(outbox.iterdir()) == before, proc.stdout  # nothing went without its claim
    after = cli.workdir / ("log.after" if how == "full" else "log") / "attempts.jsonl"
    assert after.read_bytes().startswith(log)


def test_escalate_sends_the_latest_stage_the_account_reached(cli, smtp):
    """Due 20/11/2026: reminder 17/11, due_today 23/11, overdue 24/11, suspension_warning 27/11,
    suspended 30/11. On 28/11, after the warning went, an escalation repeats the warning."""
    setup(cli, [account("acme")])
    cli.env["EMAIL_URL"] = smtp.url()
    cli("run-once", "--date", "2026-11-27")
    assert [m.message["X-Notifier-Stage"] for m in smtp.received] == ["suspension_warning"]
    cli("escalate", "acme", "--by", "ana", "--channel", "email", "--date", "2026-11-28")
    assert [m.message["X-Notifier-Stage"] for m in smtp.received] == ["suspension_warning"] * 2
    assert "30/11/2026" in smtp.received[-1].message.get_body(("plain",)).get_content()  # the suspension date


def test_escalate_after_the_deletion_date_repeats_the_last_warning_the_customer_can_read(cli, smtp):
    """Past the deletion date the latest stage reached is `deletion_due`, a task for staff only
    (no customer template): an escalation then repeats the deletion warning, the last stage a
    customer was sent, instead of being blocked for want of a template."""
    setup(cli, [account("acme")])
    cli.env["EMAIL_URL"] = smtp.url()
    timeline = cli.json("timeline", "acme")
    rows = timeline if isinstance(timeline, list) else next(iter(timeline.values()))
    [deletion] = [r["date"] for r in rows if r["stage"] == "deletion_due"]
    proc = cli("escalate", "acme", "--by", "ana", "--channel", "email", "--date", deletion, "--now")
    assert [m.message["X-Notifier-Stage"] for m in smtp.received] == ["deletion_warning"], proc.stdout
