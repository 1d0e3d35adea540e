"""The daemon mid-cycle and 20 staff commands started at the same moment, on the same state
(issue 10, Faults): every command succeeds, no write is lost (each payment, hold, release,
contact, escalation and imported account is there afterwards), the cycle is not disturbed
(nothing twice, every claim answered, verify-log passes), and a second daemon refuses to start.
"""
from __future__ import annotations

import json
import signal
import subprocess

from tests.cycle_helpers import CONFIG, account, invoice, records, setup
from tests.fault_helpers import check_log_against_servers, start, verify_log_ok, wait_for
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"
N = 40


def test_the_daemon_and_twenty_staff_commands_at_once_lose_no_write(cli):
    setup(cli, [account(f"c{i:02}") for i in range(N)], config=CONFIG.replace("workers = 4", "workers = 2"))
    cli("hold", "c36", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-20", "--date", DAY)
    cli("hold", "c37", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-20", "--date", DAY)
    for n in (1, 2):  # two import files, each a new account with its invoice
        new = account(f"novo{n}")
        (cli.workdir / f"new{n}.json").write_text(json.dumps({"accounts": [new], "invoices": [invoice(new["id"])]}))
    staff = (
        [["pay", f"2026-11-c{i:02}", "--date", DAY] for i in (28, 29, 30, 31)]
        + [["hold", f"c{i:02}", "--by", "bia", "--reason", "promised_payment", "--until", "2026-12-01", "--date", DAY]
           for i in (32, 33, 34, 35)]
        + [["release", f"c{i}", "--by", "caio", "--date", DAY] for i in (36, 37)]
        + [["contact", f"c{i:02}", "--by", f"staff{i}", "--channel", "phone", "--outcome", "reached", "--date", DAY]
           for i in (22, 23, 24, 25, 26, 27)]
        + [["escalate", f"c{i:02}", "--by", "dani", "--channel", "email", "--now", "--date", DAY] for i in (20, 21)]
        + [["import", f"new{n}.json", "--date", DAY] for n in (1, 2)]
    )
    assert len(staff) == 20
    with SmtpServer(RecordingHandler(delay=0.1)) as smtp:
        cli.env["EMAIL_URL"] = smtp.url()
        daemon = start(cli, "daemon", "--date", DAY, stderr=(cli.workdir / "daemon.stderr").open("w"))
        try:
            wait_for(lambda: len(smtp.received) >= 2, timeout=60)
            procs = [start(cli, *args, stderr=subprocess.PIPE) for args in staff]  # all at once
            second = cli("daemon", "--date", DAY, check=False)
            assert second.returncode == 1 and f"pid {daemon.pid}" in second.stderr
            answers = [(args, p.wait(timeout=120), p.stderr.read()) for args, p in zip(staff, procs)]
            for p in procs:
                p.stderr.close()
            assert [a for a in answers if a[1] != 0] == []
            wait_for(lambda: any(r.get("alert") == "daily_summary" for r in records(cli.workdir)), timeout=120)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0, (cli.workdir / "daemon.stderr").read_text()[-2000:]
        check_log_against_servers(cli.workdir, smtp)

    state = json.loads((cli.workdir / "state.json").read_text(encoding="utf-8"))
    assert {f"2026-11-c{i:02}" for i in (28, 29, 30, 31)} <= {k for k, v in state["invoices"].items() if v.get("paid")}
    holds = {h["account"] for h in cli.json("status", "--date", DAY)["holds"]}
    assert holds == {"c32", "c33", "c34", "c35"}  # placed; c36 and c37 released
    assert {"novo1", "novo2"} <= set(state["accounts"])
    recs = records(cli.workdir)
    assert sorted(r["actor"] for r in recs if r["event"] == "contact") == [f"staff{i}" for i in range(22, 28)]
    assert sorted(r["account"] for r in recs if r["event"] == "release") == ["c36", "c37"]
    assert sorted(r["account"] for r in recs if r["event"] == "sending" and r["actor"] == "dani") == ["c20", "c21"]
    verify_log_ok(cli)
