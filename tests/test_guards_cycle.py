"""Guards for the daily cycle (issue 18, point 17): mistakes that the rest of the suite let
through, caught with the real command line, a real SMTP server and a payment recorded by staff
while the cycle runs.

- A merged notice (one e-mail for two open invoices of an account) still queued when one of its
  invoices is paid: the cycle must not send it as it was planned, listing the paid invoice as
  open (dropping a queued notice only when *all* its invoices were paid is that mistake). It is
  sent later, listing only what is still open.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time

from tests.cycle_helpers import CONFIG, account, invoice
from tests.fault_helpers import log_records, start, wait_for
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"  # the overdue date of invoices due 20/11/2026
FILLER = 100  # accounts planned before the merged one: more than the cycle claims ahead of its workers
PAID, OPEN = "2026-11-zz-hospedagem", "2026-11-zz-dominio"


class GatedHandler(RecordingHandler):
    """A server that holds every message at DATA until `gate` is set: the cycle is stuck mid-way,
    with its first messages in flight, for as long as the test needs."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.waiting = 0

    async def handle_DATA(self, server, session, envelope):
        self.waiting += 1
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


def learnt(state, most: float = 10.0) -> None:
    """Give the running cycle time to learn of a payment before its messages flow again: today it
    looks at the state every half second and then writes it (the claims it wrote move the log's
    head). Not a check: a cycle that learns at once passes without the wait."""
    stamp, deadline = state.stat().st_mtime_ns, time.monotonic() + most
    while state.stat().st_mtime_ns == stamp and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)


def body(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def test_a_payment_during_the_cycle_is_not_listed_as_open_in_a_queued_merged_notice(cli):
    accounts = [account(f"c{i:03}") for i in range(FILLER)] + [account("zz")]
    invoices = [invoice(a["id"]) for a in accounts[:-1]] + [
        {**invoice("zz"), "id": PAID, "amount": "99.90"}, {**invoice("zz"), "id": OPEN, "amount": "39.90"}]
    (cli.workdir / "billing.json").write_text(json.dumps({"accounts": accounts, "invoices": invoices}))
    (cli.workdir / "notifier.toml").write_text(CONFIG, encoding="utf-8")
    cli.env["NOTIFIER_CONFIG"] = "notifier.toml"
    cli("import", "billing.json", "--date", "2026-11-10")
    handler = GatedHandler()
    with SmtpServer(handler) as smtp:
        cli.env["EMAIL_URL"] = smtp.url()
        cycle = start(cli, "run-once", "--date", DAY, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: handler.waiting > 0, timeout=60)  # the cycle is sending
            cli("pay", PAID, "--date", DAY, "--by", "ana")
            paid_at = len(log_records(cli.workdir))  # every record after this one came after the payment
            learnt(cli.workdir / "state.json")
        finally:
            handler.gate.set()
            _, err = cycle.communicate(timeout=120)
        assert cycle.returncode == 0, err
        claims = [r for r in log_records(cli.workdir) if r["event"] == "sending" and r["account"] == "zz"]
        assert all(r["seq"] > paid_at for r in claims), "the merged notice was claimed before the payment"
        cli("run-once", "--date", DAY)  # the next pass sends what the first one dropped
        to_zz = [m for m in smtp.received if m.rcpt_tos == ["financeiro@zz.com.br"]]
        assert len(smtp.received) == FILLER + 1 and len(to_zz) == 1
        assert f"Fatura {OPEN}:" in body(to_zz[0])
        assert f"Fatura {PAID}:" not in body(to_zz[0]), "the e-mail lists an invoice paid before it was claimed"
