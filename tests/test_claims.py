"""What the cycle claims, and what it makes of an answer it never got (issue 18, points 14 and 15)."""
from __future__ import annotations

import json
import signal
import socket

import pytest

from tests.cycle_helpers import CONFIG, account, ledger, records, setup
from tests.fault_helpers import start, wait_for
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"


def _staff_alerts(workdir) -> list[dict]:
    return [json.loads(p.read_text()) for p in (workdir / "outbox" / "staff").glob("*.json")]


def test_a_server_that_hangs_up_after_data_means_maybe_delivered_never_refused_never_again(cli):
    setup(cli, [account("c1", emails=["dropped@c1.com.br"]), account("c2")])
    with SmtpServer(RecordingHandler(hang_ups={"dropped@c1.com.br"})) as smtp:
        cli.env["EMAIL_URL"] = smtp.url()
        cli("run-once", "--date", DAY)
        cli("run-once", "--date", DAY)  # a later pass: not sent again
        assert sorted(r for m in smtp.received for r in m.rcpt_tos) == ["dropped@c1.com.br", "financeiro@c2.com.br"]
    recs = records(cli.workdir)
    claim = next(r for r in recs if r["event"] == "sending" and r["recipient"] == "dropped@c1.com.br")
    [answer] = [r for r in recs if r.get("ref") == claim["id"]]
    assert (answer["event"], answer["code"]) == ("unknown", "lost_during_data")
    assert [r["status"] for r in ledger(cli.workdir).values()
            if r["recipient"] == "dropped@c1.com.br" and r["stage"] == "overdue"] == ["unknown"]
    tasks = cli.json("tasks")
    assert [t["recipient"] for t in tasks if t["kind"] == "unknown" and t["open"]] == ["dropped@c1.com.br"]
    [alert] = [a for a in _staff_alerts(cli.workdir) if a["meta"].get("alert", "").startswith("failure:")]
    assert alert["meta"]["alert"] == "failure:maybe"
    text = alert["text"]
    assert "pode ter chegado ao cliente" in text and "não vai reenviá-lo automaticamente" in text
    assert "recusou" not in text and "dropped@c1.com.br" in text


@pytest.mark.parametrize("notice_tries, expected", [(None, [3, 1, 1, 1]), (4, [3, 1, 0, 0])])
def test_tries_are_bounded_across_passes_and_days_then_the_notice_has_failed_with_one_alert(cli, notice_tries,
                                                                                           expected):
    """The SMTP server is down from 24/11 on: the overdue notice of 24/11 is tried `[cycle] tries`
    (3) times in its first pass, then once a later pass (15 min, 1 h, 4 h... apart) until it has
    used `notice_tries` (default 6) in all, then it has failed."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = f"notice_tries = {notice_tries}\n" if notice_tries else ""
    setup(cli, [account("c1")], config=CONFIG.replace("[cycle]\n", "[cycle]\n" + extra))
    cli.env["EMAIL_URL"] = f"smtp://127.0.0.1:{port}/?from=Cobranca <c@lucanet.com.br>"
    claims = []
    for day, at in (("2026-11-24", "09:00"), ("2026-11-24", "09:15"), ("2026-11-25", "09:00"), ("2026-11-26", "09:00")):
        before = len([r for r in records(cli.workdir) if r["event"] == "sending" and r["channel"] == "email"])
        cli("run-once", "--date", day, "--at", at)
        claims.append(len([r for r in records(cli.workdir) if r["event"] == "sending" and r["channel"] == "email"])
                      - before)
    assert claims == expected
    assert [r["status"] for r in ledger(cli.workdir).values() if r["stage"] == "overdue"] == ["failed"]
    alerts = [a for a in _staff_alerts(cli.workdir) if a["meta"].get("alert", "").startswith("failure:")]
    assert [a["meta"]["alert"] for a in alerts] == ["failure:exhausted"]
    assert "falhou em todas as tentativas permitidas" in alerts[0]["text"]
    assert "Connection refused" in alerts[0]["text"]


def test_a_kill_mid_cycle_leaves_at_most_one_claim_per_worker_without_its_outcome(cli):
    """Claims are written when a worker is free to send, not a window ahead (point 13): a SIGKILL
    leaves at most `workers` (4 here) claims that the next start must record `unknown`."""
    setup(cli, [account(f"c{i:03}") for i in range(120)])
    with SmtpServer(RecordingHandler(delay=0.05)) as smtp:
        cli.env["EMAIL_URL"] = smtp.url()
        proc = start(cli, "run-once", "--date", DAY)
        try:
            wait_for(lambda: len(smtp.received) >= 30 or proc.poll() is not None, timeout=60)
            assert proc.poll() is None, "run-once ended before the kill"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=10)
    lines = (cli.workdir / "attempts.jsonl").read_bytes().splitlines()
    recs = [json.loads(line) for line in lines if line.endswith(b"}")]  # not a line the kill tore
    answered = {r.get("ref") for r in recs}
    unanswered = [r for r in recs if r["event"] == "sending" and r["id"] not in answered]
    assert 1 <= len(unanswered) <= 4, len(unanswered)
