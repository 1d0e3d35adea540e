"""Two things a pass of the cycle must not repeat (issue 20 point 16, issue 18 point 15): a notice
our configuration blocks is logged once, not once per pass; a notice that failed temporarily is
tried again after a growing wait, and the tries an outage used up make one staff alert. Real
`run-once` processes at frozen days and times (`--date`, `--at`), a real SMTP server."""
from __future__ import annotations

import json
import signal

from tests.cycle_helpers import CONFIG, TEMPLATE_CONFIG, account, ledger, records, setup
from tests.fake_twilio import fake_twilio  # noqa: F401  (fixture)
from tests.fault_helpers import start, wait_for
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"  # the overdue date: a first-time delinquent's WhatsApp is due
NO_TEMPLATES = CONFIG.replace("freeform = true", "freeform = false")


def _staff(workdir) -> list[dict]:
    return [json.loads(p.read_text()) for p in (workdir / "outbox" / "staff").glob("*.json")]


def _claims(workdir, channel: str) -> list[dict]:
    return [r for r in records(workdir) if r["event"] == "sending" and r["channel"] == channel]


def test_a_blocked_notice_is_logged_once_and_sent_when_the_configuration_is_fixed(cli, fake_twilio):
    setup(cli, [account("padaria", whatsapp="+5511987654321")], config=NO_TEMPLATES)
    cli.env.update(fake_twilio.env())
    for at in ("09:00", "09:15", "09:30"):  # the daemon's passes
        result = cli.json("run-once", "--date", DAY, "--at", at)
        assert result["counts"]["whatsapp"] == {"blocked": 1}
        assert "config:whatsapp.templates.overdue" in result["problems"]
    # `check` and `status` name the missing template and what it cost this month.
    check = cli("check", "--date", DAY, check=False)
    assert check.returncode == 1 and "channels.whatsapp.templates.overdue: no approved" in check.stderr
    cost = "1 first-time delinquent(s) this month (11/2026) got no WhatsApp, blocked by our configuration: padaria"
    assert f"warning: whatsapp: {cost}" in check.stdout
    status = cli("status", "--date", DAY, check=False).stdout
    assert f"whatsapp: {cost}" in status and "whatsapp: channels.whatsapp.templates.overdue: no approved" in status
    december = json.loads(cli("status", "--date", "2026-12-01", "--json", check=False).stdout)  # stale: exit 1
    assert december["whatsapp"]["first_time_without_whatsapp"] == []  # a new month
    # The daemon on a later day of the notice's catch-up window: still blocked, not logged again;
    # the staff summary of 24/11 counts the blocked notice and the first-time delinquent.
    daemon = start(cli, "daemon", "--date", "2026-11-25")
    try:
        wait_for(lambda: any(r.get("alert") == "daily_summary" for r in records(cli.workdir)), timeout=60)
    finally:
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=30) == 0
    blocked = [r for r in records(cli.workdir) if r["event"] == "blocked"]
    assert [r["code"] for r in blocked] == ["config:whatsapp.templates.overdue"]
    assert len(_claims(cli.workdir, "whatsapp")) == 1 and fake_twilio.forms == []
    [summary] = [a["text"] for a in _staff(cli.workdir) if a["meta"].get("alert") == "daily_summary"]
    assert "Avisos bloqueados pela nossa configuração (nada enviado ao cliente): 1\n" in summary
    assert "- Em atraso / WhatsApp: 1 bloqueado (configuração)\n" in summary  # staff's words, not the log's codes
    assert "Primeira inadimplência sem WhatsApp neste mês (modelo não aprovado): 1 (padaria)" in summary
    # Approved templates configured: the notice, still in its window, goes on the next pass.
    (cli.workdir / "notifier.toml").write_text(TEMPLATE_CONFIG, encoding="utf-8")
    assert cli.json("run-once", "--date", "2026-11-25", "--at", "09:15")["counts"]["whatsapp"] == {"sent": 1}
    assert [f["To"] for f in fake_twilio.forms] == ["whatsapp:+5511987654321"]
    assert [r["status"] for r in ledger(cli.workdir).values() if r["channel"] == "whatsapp"] == ["sent"]


def test_a_failed_notice_waits_longer_before_each_try_and_its_exhaustion_is_one_alert_for_all(cli):
    """A server that answers 451 to every recipient from 09:00 on: each notice gets the pass's
    3 tries at 09:00, then one try a pass no sooner than 15 min, 1 h and 4 h after, the sixth
    ([cycle] notice_tries) ends it, and staff get one alert naming the three notices."""
    emails = [f"financeiro@c{i}.com.br" for i in range(3)]
    handler = RecordingHandler(rcpt_replies={e: "451 4.7.1 Try again later" for e in emails})
    setup(cli, [account(f"c{i}") for i in range(3)])
    with SmtpServer(handler) as smtp:
        cli.env["EMAIL_URL"] = smtp.url()
        tried = []
        for at in ("09:00", "09:10", "09:15", "09:30", "10:14", "10:15", "14:14", "14:15", "16:00"):
            before = len(_claims(cli.workdir, "email"))
            counts = cli.json("run-once", "--date", DAY, "--at", at)["counts"]
            tried.append(len(_claims(cli.workdir, "email")) - before)
            if at in ("09:10", "10:14"):  # waiting for their next try: counted, not tried
                assert counts["email"] == {"retry": 3}
        assert smtp.received == []
    assert tried == [9, 0, 3, 0, 0, 3, 0, 3, 0]
    assert sorted(r["recipient"] for r in ledger(cli.workdir).values() if r["stage"] == "overdue") == emails
    assert {r["status"] for r in ledger(cli.workdir).values() if r["stage"] == "overdue"} == {"failed"}
    [alert] = [a for a in _staff(cli.workdir) if a["meta"].get("alert") == "failure:exhausted"]
    assert alert["subject"] == "Tentativas esgotadas: 3 avisos não enviados em 24/11/2026"
    assert all(f"para {e}" in alert["text"] for e in emails)
    assert alert["text"].count("4.7.1 Try again later") == 3 and "falharam em todas as tentativas permitidas" in alert["text"]
