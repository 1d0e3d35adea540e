"""Chaos: SIGKILL at a random moment of a large cycle, a restart that finishes the day, and the
invariants checked after every trial (issue 10, Faults).

Each trial (seeded, so a failure can be replayed by its number) starts the daemon or `run-once`
on its own copy of one imported state, against a real SMTP server and the Twilio-compatible
server, kills it without warning once the servers have received a random number of its messages
(anywhere from none, during planning and the first claims, to all but one), then runs `run-once`
for the same day to finish it. After each trial: nothing received twice; every claim has exactly
one outcome; every `sent` was received; what a server received without its outcome in the log is
`unknown`, and every `unknown` is an open staff task, never sent again; the day is finished (every
notice was received or is `unknown`); `verify-log` passes.
"""
from __future__ import annotations

import random
import shutil
import signal
import time

import pytest

from tests.conftest import clean_cli
from tests.cycle_helpers import TEMPLATE_CONFIG, account, setup
from tests.fake_twilio import FakeTwilio
from tests.fault_helpers import check_log_against_servers, start, verify_log_ok, wait_for
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"  # the overdue date of invoices due 20/11: e-mail to all, WhatsApp to first-timers
ACCOUNTS = 40
TRIALS = 20
EMAILS = {f"financeiro@c{i:03}.com.br" for i in range(ACCOUNTS)}
PHONES = {f"+55119{i:08}" for i in range(0, ACCOUNTS, 4)}  # every fourth account has WhatsApp
TOTAL = len(EMAILS) + len(PHONES)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """One import for every trial: each trial copies this folder."""
    folder = tmp_path_factory.mktemp("chaos-template")
    setup(clean_cli(folder), [account(f"c{i:03}", whatsapp=f"+55119{i:08}" if i % 4 == 0 else None)
                              for i in range(ACCOUNTS)],
          config=TEMPLATE_CONFIG)
    return folder


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_at_a_random_moment_then_finish_the_day(imported, tmp_path, trial):
    rng = random.Random(f"chaos-{trial}")
    work = tmp_path / "work"
    shutil.copytree(imported, work)
    cli = clean_cli(work)
    cli.env["NOTIFIER_CONFIG"] = "notifier.toml"
    command = "daemon" if trial % 2 == 0 else "run-once"
    kill_after = rng.randrange(TOTAL)  # messages the servers have received when the kill comes
    # The last e-mails of the plan are slow, so that a kill meant for the middle of the cycle
    # cannot arrive after its end, however late a loaded machine lets this test send it.
    slow_end = {f"financeiro@c{i:03}.com.br": 1.0 for i in range(ACCOUNTS - 4, ACCOUNTS)}
    with SmtpServer(RecordingHandler(delay=0.01, delays=slow_end)) as smtp, FakeTwilio() as twilio:
        cli.env.update(twilio.env(), EMAIL_URL=smtp.url(), TUTORIAL_URL="https://www.lucanet.com.br/cobranca")
        errors = work / "killed.stderr"  # a file, not a pipe: twilio's INFO lines would fill a pipe
        proc = start(cli, command, "--date", DAY, stderr=errors.open("w"))
        try:
            wait_for(lambda: len(smtp.received) + len(twilio.messages) >= kill_after or proc.poll() is not None)
            time.sleep(rng.uniform(0, 0.02))
            assert proc.poll() is None, f"{command} ended before the kill: {errors.read_text()[-2000:]}"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        time.sleep(0.05)  # what the servers were in the middle of receiving, they finish
        at_kill = len(smtp.received) + len(twilio.messages)
        cli("run-once", "--date", DAY)  # the restart: recover, reconcile, finish the day
        by_event = check_log_against_servers(work, smtp, twilio)
        unknown = {(c["channel"], c["recipient"]) for c in by_event.get("unknown", [])}
        got = {("email", r) for m in smtp.received for r in m.rcpt_tos} | {
            ("whatsapp", m["to"].removeprefix("whatsapp:")) for m in twilio.messages.values()}
        everyone = {("email", e) for e in EMAILS} | {("whatsapp", p) for p in PHONES}
        assert got | unknown == everyone, "the day was not finished"
        assert not unknown & {(c["channel"], c["recipient"]) for c in by_event.get("sent", [])}
        # A kill meant for the last message or two may land once they are out and answered (a
        # faster cycle): the invariants above still hold; any earlier kill must cut the cycle.
        assert at_kill < TOTAL or unknown or kill_after >= TOTAL - 2, "the kill came after the cycle"
    verify_log_ok(cli)
