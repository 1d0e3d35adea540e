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


def test_the_whatsapp_cost_reads_only_the_records_it_needs_and_counts_the_same(tmp_path):
    """`whatsapp_records` passes over most of the log on its bytes: `without_whatsapp` answers the
    same from it as from every record, at a month's edges in São Paulo time too."""
    from datetime import date
    from zoneinfo import ZoneInfo
    from notifier.log.attempts import parse_line
    from notifier.staff.actions import whatsapp_records, without_whatsapp
    tz = ZoneInfo("America/Sao_Paulo")
    lines = []

    def add(record: dict) -> None:
        lines.append(json.dumps({"seq": len(lines) + 1, **record, "prev": "0" * 64}, separators=(",", ":")))

    def attempt(n: int, account: str, sent: str, outcome: str, channel: str = "whatsapp", first: bool = True,
                outcome_channel: bool = True) -> None:
        add({"id": f"s{n}", "event": "sending", "time": sent, "actor": "daemon", "account": account,
             "first_time": first, "channel": channel, "recipient": "+5511987654321", "content": {"text": "Olá"}})
        add({"id": f"o{n}", "event": outcome, "time": sent, "actor": "daemon",
             **({"account": account, "channel": channel} if outcome_channel else {}), "ref": f"s{n}"})

    attempt(1, "blocked-in-nov", "2026-11-24T12:00:00.000Z", "blocked")
    attempt(2, "blocked-then-sent", "2026-11-24T12:00:00.000Z", "blocked")
    attempt(3, "blocked-then-sent", "2026-11-25T12:00:00.000Z", "sent", outcome_channel=False)
    attempt(4, "blocked-in-oct", "2026-10-24T12:00:00.000Z", "blocked")
    attempt(5, "last-evening-of-oct", "2026-11-01T02:30:00.000Z", "blocked")  # 31/10 23:30 in São Paulo
    attempt(6, "last-evening-of-nov", "2026-12-01T02:30:00.000Z", "blocked", outcome_channel=False)  # 30/11 23:30
    attempt(7, "not-first-time", "2026-11-24T12:00:00.000Z", "blocked", first=False)
    attempt(8, "email-only", "2026-11-24T12:00:00.000Z", "sent", channel="email")
    path = tmp_path / "attempts.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    every = [parse_line(line.encode()) for line in lines]
    for today in (date(2026, 10, 31), date(2026, 11, 24), date(2026, 11, 30), date(2026, 12, 1)):
        assert without_whatsapp(whatsapp_records(path, today, tz), today, tz) == without_whatsapp(every, today, tz)
    assert without_whatsapp(whatsapp_records(path, date(2026, 11, 30), tz), date(2026, 11, 30), tz) == [
        "blocked-in-nov", "last-evening-of-nov"]
    assert len(list(whatsapp_records(path, date(2026, 11, 30), tz))) < len(lines)
