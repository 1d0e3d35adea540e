"""A real process killed with SIGKILL in the middle of many sends, then a restart.

The SMTP server answers each DATA slowly, so the kill lands while an attempt is in flight. After
the restart: the interrupted attempt is `unknown` (appended, never re-sent), every message the
server received has its `sending` in the log, nobody got a message twice, and verify-log passes.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from notifier.log.attempts import AttemptLog
from tests.conftest import ROOT
from tests.smtp_server import RecordingHandler, SmtpServer

BILLING = {
    "accounts": [
        {"id": "acme", "company": "ACME Comércio Ltda", "document": "45.723.174/0001-10",
         "emails": ["financeiro@acme.com.br"]},
        {"id": "beta", "company": "Beta Serviços Ltda", "document": "12.ABC.345/01DE-35",
         "emails": ["contas@beta.com.br"]},
    ],
    "invoices": [
        {"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05"},
        {"id": "2026-11-beta", "account": "beta", "amount": "99.90", "issued": "2026-11-05"},
    ],
}
MANY = 40
# A sender of many messages in one process, through the same path the cycle uses (deliver).
SENDER = f"""
import os, sys
from datetime import date, datetime
sys.path.insert(0, {str(ROOT)!r})
from notifier.log.attempts import AttemptLog
from notifier.config import load_config
from notifier.run.delivery import deliver, notices_for_account, render_all
from notifier.run.render import Renderer
from notifier.state.store import Store
config = load_config(None, os.environ)
snap = Store(config.state).snapshot()
today = date(2026, 11, 24)
notices = [n for i in range({MANY}) for n in notices_for_account(snap, config, "acme", today, "overdue", "email",
                                                                  f"r{{i}}@acme.com.br")]
deliver(render_all(snap, Renderer(config), notices, today), config, AttemptLog(config.attempt_log),
        lambda: datetime.now(config.tz))
"""


class SlowHandler(RecordingHandler):
    """Takes half a second to answer each DATA; `holding` says one is being held right now."""
    holding = 0

    async def handle_DATA(self, server, session, envelope):
        self.holding += 1
        await asyncio.sleep(0.5)
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.holding -= 1


def test_sigkill_mid_run_then_restart(cli, tmp_path):
    (tmp_path / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-10")
    handler = SlowHandler()
    with SmtpServer(handler) as smtp:
        env = {**cli.env, "EMAIL_URL": smtp.url()}
        proc = subprocess.Popen([sys.executable, "-c", SENDER], cwd=tmp_path, env=env)
        deadline = time.monotonic() + 60
        while not (len(smtp.received) >= 5 and handler.holding) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Now the server holds a DATA, the client waits for its answer: kill without warning.
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(smtp.received) < MANY, "the run finished before the kill: make the server slower"
        time.sleep(0.8)  # let the server finish what it already had
        received_before = len(smtp.received)

        log = AttemptLog(tmp_path / "attempts.jsonl")
        records = list(log.records())
        sendings = {r["id"]: r for r in records if r["event"] == "sending"}
        answered = {r["ref"] for r in records if "ref" in r}
        in_flight = set(sendings) - answered
        assert len(in_flight) == 1  # killed while the server held that one's DATA

        # The restart: any command that writes the log recovers it first, then does its own work.
        cli("send", "beta", "--channel", "email", "--stage", "overdue", "--date", "2026-11-24", env=env)

    records = list(AttemptLog(tmp_path / "attempts.jsonl").records())
    unknown = [r for r in records if r["event"] == "unknown"]
    assert {r["ref"] for r in unknown} == in_flight
    # Nothing was sent again: the server got acme's messages only from the killed run.
    to_acme = [r for r in smtp.received if r.rcpt_tos[0].endswith("@acme.com.br")]
    assert len(to_acme) == received_before
    assert max(Counter(r.rcpt_tos[0] for r in smtp.received).values()) == 1
    # Everything the provider received is in the log, as a `sending` written before it.
    logged = {r["id"] for r in records if r["event"] == "sending"}
    assert {r.message["X-Notifier-Attempt-Id"] for r in smtp.received} <= logged
    # Every sending has exactly one outcome now.
    outcomes = Counter(r["ref"] for r in records if r["event"] in ("sent", "failed", "unknown"))
    assert set(outcomes) == logged and set(outcomes.values()) == {1}
    assert "chain and messages: ok" in cli("verify-log").stdout
