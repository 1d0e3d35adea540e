"""The daemon and stopping: real processes, real signals, a slow real SMTP server; and the staff
commands run from other processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import ROOT
from tests.cycle_helpers import CONFIG, account, outcomes, records, setup
from tests.fake_twilio import fake_twilio  # noqa: F401  (fixture)
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"
SLOW = CONFIG.replace("workers = 4", "workers = 2")


def start(cli, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=cli.workdir, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def slow_smtp():
    with SmtpServer(RecordingHandler(delay=0.1)) as server:
        yield server


def many(cli, server, n=40):
    setup(cli, [account(f"c{i:02}") for i in range(n)], config=SLOW)
    cli.env["EMAIL_URL"] = server.url()
    return {f"financeiro@c{i:02}.com.br" for i in range(n)}


def test_sigterm_mid_cycle_stops_cleanly_and_a_restart_sends_the_rest_once(cli, slow_smtp):
    everyone = many(cli, slow_smtp)
    daemon = start(cli, "daemon", "--date", DAY)
    wait_for(lambda: len(slow_smtp.received) >= 6)
    # Batch work: the cycle yields the CPU to the console's staff ([cycle] nice, 10 by default).
    assert os.getpriority(os.PRIO_PROCESS, daemon.pid) == max(10, os.getpriority(os.PRIO_PROCESS, 0))
    daemon.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    assert daemon.wait(timeout=10) == 0, daemon.stderr.read()
    assert time.monotonic() - stopped_at < 3
    assert "stop requested (signal SIGTERM)" in daemon.stderr.read()
    first = len(slow_smtp.received)
    assert first < len(everyone)
    claims = {r["id"] for r in records(cli.workdir) if r["event"] == "sending"}
    answered = {r["ref"] for r in records(cli.workdir) if r.get("ref")}
    assert claims == answered  # every claim has its outcome: nothing left unknown
    cli("run-once", "--date", DAY)
    got = Counter(r for m in slow_smtp.received for r in m.rcpt_tos)
    assert set(got) == everyone and max(got.values()) == 1
    assert not [r for r in records(cli.workdir) if r["event"] == "unknown"]


def test_sigkill_leaves_unknown_attempts_that_are_never_sent_again(cli, slow_smtp):
    everyone = many(cli, slow_smtp)
    run = start(cli, "run-once", "--date", DAY)
    wait_for(lambda: len(slow_smtp.received) >= 4)
    run.kill()
    run.wait(timeout=10)
    cli("run-once", "--date", DAY)
    got = Counter(r for m in slow_smtp.received for r in m.rcpt_tos)
    assert max(got.values()) == 1  # nothing twice
    unknown = {o[2] for o in outcomes(cli.workdir) if o[0] == "unknown"}
    assert unknown and set(got) | unknown == everyone
    assert all(o[2] not in unknown or o[0] == "unknown" for o in outcomes(cli.workdir))  # never re-tried
    tasks = cli.json("tasks", "--open")
    assert {t["recipient"] for t in tasks if t["kind"] == "unknown"} == unknown
    cli("run-once", "--date", "2026-11-25")
    assert Counter(r for m in slow_smtp.received for r in m.rcpt_tos) == got


def test_the_daemon_runs_a_catch_up_cycle_refuses_a_second_one_and_reports_its_health(cli, slow_smtp):
    everyone = many(cli, slow_smtp, n=4)
    assert cli("status", "--date", DAY, check=False).returncode == 1  # no cycle yet: stale
    daemon = start(cli, "daemon", "--date", DAY)
    try:
        wait_for(lambda: (cli.workdir / "state.json.pid").exists() and len(slow_smtp.received) == 4)
        second = cli("daemon", "--date", DAY, check=False)
        assert second.returncode == 1 and f"pid {daemon.pid}" in second.stderr
        refused = cli("run-once", "--date", DAY, check=False)
        assert refused.returncode == 1 and f"pid {daemon.pid}" in refused.stderr
        wait_for(lambda: cli.json("status", "--date", DAY)["last_cycle"] is not None)
        health = cli.json("status", "--date", DAY)
        assert health["stale"] is None and health["last_cycle"].startswith(DAY)
        # the daily staff summary went out after the cycle
        wait_for(lambda: any(r.get("alert") == "daily_summary" for r in records(cli.workdir)))
    finally:
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=10) == 0
    assert {r for m in slow_smtp.received for r in m.rcpt_tos} == everyone
    assert cli("status", "--date", "2026-11-26", check=False).returncode == 1  # two days later: stale


def test_staff_commands_during_a_cycle_are_not_blocked_and_not_lost(cli, slow_smtp):
    everyone = many(cli, slow_smtp, n=100)  # 2 workers, 0.1 s each: 5 s; claims run at most 64 ahead
    run = start(cli, "run-once", "--date", DAY)
    wait_for(lambda: len(slow_smtp.received) >= 2)
    began = time.monotonic()
    cli("pay", "2026-11-c98", "--date", DAY)
    cli("hold", "c99", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-01", "--date", DAY)
    cli("contact", "c37", "--by", "bia", "--channel", "phone", "--outcome", "promised_payment", "--date", DAY)
    assert time.monotonic() - began < 15  # never waited for the SMTP server
    assert run.wait(timeout=60) == 0, run.stderr.read()
    assert cli.json("status", "--date", DAY)["holds"][0]["account"] == "c99"
    assert cli.json("show", "c98")["invoices"][0]["paid"] == DAY
    assert [r["actor"] for r in records(cli.workdir) if r["event"] == "contact"] == ["bia"]
    # the cycle learnt of the payment and the hold before reaching them (plan order: c00...c99)
    got = {r for m in slow_smtp.received for r in m.rcpt_tos}
    assert got == everyone - {"financeiro@c98.com.br", "financeiro@c99.com.br"}


def test_escalate_respects_contact_hours_unless_now_and_logs_the_actor(cli, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511987654321", social={"instagram": "@acme"})])
    cli.env.update(fake_twilio.env())
    sunday = "2026-11-29"
    out = cli("escalate", "acme", "--by", "ana", "--channel", "whatsapp", "--date", sunday)
    assert "waits for contact hours" in out.stderr and fake_twilio.forms == []
    cli("escalate", "acme", "--by", "ana", "--channel", "whatsapp", "--now", "--note", "cliente pediu", "--date", sunday)
    assert {f["To"] for f in fake_twilio.forms} == {"whatsapp:+5511987654321"}
    notes = [r for r in records(cli.workdir) if r["event"] == "escalation"]
    assert [(n["actor"], n["override_hours"]) for n in notes] == [("ana", False), ("ana", True)]
    sent = [r for r in records(cli.workdir) if r["event"] == "sending"]
    assert sent[-1]["actor"] == "ana" and sent[-1]["tutorial"] is True


def test_tasks_list_and_close(cli):
    setup(cli, [account("acme", social={"instagram": "@acme"})])
    cli("run-once", "--date", DAY)
    [task] = cli.json("tasks", "--open")
    assert task["kind"] == "social_manual" and task["recipient"] == "instagram:@acme"
    cli("tasks", "done", task["id"], "--by", "bia", "--outcome", "sent by hand")
    assert cli.json("tasks", "--open") == []
    assert cli.json("tasks")[0]["done_by"] == "bia"
    again = cli("tasks", "done", task["id"], "--by", "bia", check=False)
    assert again.returncode == 1 and "already closed by bia" in again.stderr
    cli("run-once", "--date", "2026-11-25")
    assert cli.json("tasks", "--open") == []  # a closed task does not come back


def test_staff_do_not_call_a_number_on_the_do_not_contact_list(cli, fake_twilio):
    """Neither an escalation nor a `send` by hand reaches a number that asked not to be called:
    each is logged `skipped: do-not-contact` with its actor, and the other channels still go."""
    setup(cli, [account("acme", whatsapp="+5511987654321")], config='do_not_contact = "nao-me-ligue.csv"\n' + CONFIG)
    (cli.workdir / "nao-me-ligue.csv").write_text("telefone\n11987654321\n", encoding="utf-8")
    cli.env.update(fake_twilio.env())
    out = cli("escalate", "acme", "--by", "ana", "--channel", "whatsapp", "--channel", "sms", "--channel", "email",
              "--now", "--date", DAY)
    assert out.stdout.count("skipped, the number is on the do-not-contact list") == 2, out.stdout
    out = cli("send", "acme", "--channel", "whatsapp", "--date", DAY)
    assert "whatsapp → +5511987654321: skipped, the number is on the do-not-contact list" in out.stdout
    assert fake_twilio.forms == []
    skipped = [r for r in records(cli.workdir) if r["event"] == "skipped" and r.get("reason") == "do-not-contact"]
    assert [(r["channel"], r["actor"]) for r in skipped][:2] == [("whatsapp", "ana"), ("sms", "ana")]
    assert len(skipped) == 3
    assert [r["channel"] for r in records(cli.workdir) if r["event"] == "sending"] == ["email"]
