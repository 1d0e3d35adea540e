"""`notifier run-once`: the day's cycle over real subprocesses, a real SMTP server and a
Twilio-compatible HTTP server, with a frozen day (24/11/2026: the overdue date of invoices due
20/11, a Tuesday)."""
from __future__ import annotations

import json
import time

import pytest

from tests.cycle_helpers import account, ledger, outcomes, records, setup
from tests.fake_twilio import fake_twilio  # noqa: F401  (fixture)
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


def wire(cli, smtp=None, twilio=None):
    if smtp is not None:
        cli.env["EMAIL_URL"] = smtp.url()
    if twilio is not None:
        cli.env.update(twilio.env())


def test_the_cycle_sends_the_plan_once(cli, smtp, fake_twilio):
    setup(cli, [account("acme", emails=["a@acme.com.br", "b@acme.com.br"], whatsapp="+5511987654321"),
                account("beta", past_delinquencies=1), account("gama", whatsapp="+5511987650000")],
          paid=None)
    wire(cli, smtp, fake_twilio)
    plan = cli.json("plan", "--date", DAY)
    out = cli("run-once", "--date", DAY).stdout
    assert sorted(r for m in smtp.received for r in m.rcpt_tos) == sorted(
        n["recipient"] for n in plan if n["channel"] == "email")
    assert sorted({f["To"] for f in fake_twilio.forms}) == sorted(  # a long text goes in several parts
        "whatsapp:" + n["recipient"] for n in plan if n["channel"] == "whatsapp")
    assert "email" in out and "whatsapp" in out
    # every claim has its outcome; the ledger has one row per notice handled
    assert sorted(o[:3] for o in outcomes(cli.workdir)) == sorted(("sent", n["channel"], n["recipient"]) for n in plan)
    # the reminder (17/11) and due-day (23/11) notices were never sent: superseded, recorded as skipped
    assert {(row["stage"], row["status"]) for row in ledger(cli.workdir).values()} == {
        ("overdue", "sent"), ("reminder", "skipped"), ("due_today", "skipped")}
    # at most once: the same day again sends nothing
    assert "nothing to send" in cli("run-once", "--date", DAY).stdout
    assert len(smtp.received) == len([n for n in plan if n["channel"] == "email"])
    assert cli.json("plan", "--date", DAY) == []


def test_dry_run_renders_everything_and_writes_nothing(cli, smtp):
    setup(cli, [account("acme"), account("beta")])
    wire(cli, smtp)
    before = (cli.workdir / "state.json").read_bytes()
    out = cli("run-once", "--date", DAY, "--dry-run").stdout
    assert "would send" in out and out.splitlines()[2].split()[:2] == ["email", "2"]
    assert smtp.received == [] and not (cli.workdir / "attempts.jsonl").exists()
    assert (cli.workdir / "state.json").read_bytes() == before


def test_limit_sends_at_most_n(cli, smtp):
    setup(cli, [account(f"c{i}") for i in range(5)])
    wire(cli, smtp)
    cli("run-once", "--date", DAY, "--limit", "2")
    assert len(smtp.received) == 2
    cli("run-once", "--date", DAY)
    assert len(smtp.received) == 5 and len({m.rcpt_tos[0] for m in smtp.received}) == 5


def test_contact_hours_keep_whatsapp_waiting_email_goes_at_once(cli, smtp, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511987654321")])
    wire(cli, smtp, fake_twilio)
    out = cli("run-once", "--date", DAY, "--at", "21:30").stdout
    assert len(smtp.received) == 1 and fake_twilio.forms == []
    assert "waiting for contact hours: until 25/11/2026 08:00" in out
    assert cli.json("status", "--date", DAY)["waiting"] == {"whatsapp": 1}
    # the next morning, within the catch-up window (next notice: 27/11), it goes
    cli("run-once", "--date", "2026-11-25", "--at", "08:00")
    assert {f["To"] for f in fake_twilio.forms} == {"whatsapp:+5511987654321"}
    assert len(smtp.received) == 1
    assert [o[0] for o in outcomes(cli.workdir) if o[1] == "whatsapp"] == ["sent"]


def test_do_not_contact_list_stops_whatsapp_and_sms(cli, smtp, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511987654321"), account("beta", whatsapp="+5511987650000")],
          config=open_config("do_not_contact = \"nao-me-ligue.csv\"\n"))
    (cli.workdir / "nao-me-ligue.csv").write_text("telefone;data\n11987654321;2026-01-01\n", encoding="utf-8")
    wire(cli, smtp, fake_twilio)
    cli("run-once", "--date", DAY)
    assert {f["To"] for f in fake_twilio.forms} == {"whatsapp:+5511987650000"}
    skipped = [r for r in records(cli.workdir) if r["event"] == "skipped" and r.get("reason") == "do-not-contact"]
    assert [(r["channel"], r["recipient"]) for r in skipped] == [("whatsapp", "+5511987654321")]
    assert len(smtp.received) == 2  # e-mail is not affected
    sent = len(fake_twilio.forms)
    cli("run-once", "--date", "2026-11-25")
    assert len(fake_twilio.forms) == sent  # handled: not tried again


def open_config(extra: str) -> str:
    from tests.cycle_helpers import CONFIG
    return extra + CONFIG


def test_twilio_errors_retry_fall_back_or_stop(cli, smtp, fake_twilio):
    numbers = {"limited": "+5511900000001", "down": "+5511900000002", "invalid": "+5511900000003",
               "window": "+5511900000004", "stop": "+5511900000005"}
    setup(cli, [account(name, whatsapp=number) for name, number in numbers.items()])
    wire(cli, smtp, fake_twilio)
    w = {name: "whatsapp:" + number for name, number in numbers.items()}
    fake_twilio.fail(w["limited"], 429, 20429, "Too Many Requests", times=1, retry_after="1")
    fake_twilio.fail(w["down"], 500, None, "Internal Server Error")
    fake_twilio.fail(w["invalid"], 400, 21211, "Invalid 'To' Phone Number")
    fake_twilio.fail(w["window"], 400, 63016, "Outside the allowed window")
    fake_twilio.fail(w["stop"], 400, 21610, "Attempt to send to unsubscribed recipient")
    cli("run-once", "--date", DAY)
    to = [f["To"] for f in fake_twilio.forms]
    assert w["limited"] in to  # retried once, after Retry-After
    tries = [t for n, t in fake_twilio.refusals if n == w["limited"]]
    assert len(tries) == 1
    assert numbers["invalid"] in to  # WhatsApp refused the number: the channel fell back to SMS
    by_recipient: dict[str, list[str]] = {}
    for event, channel, recipient, _ in outcomes(cli.workdir):
        if channel == "whatsapp":
            by_recipient.setdefault(recipient, []).append(event)
    assert by_recipient[numbers["limited"]] == ["failed", "sent"]
    assert by_recipient[numbers["down"]] == ["failed"] * 3  # [cycle] tries = 3 (default)
    assert by_recipient[numbers["window"]] == ["failed"] and by_recipient[numbers["stop"]] == ["failed"]
    rows = {(r["recipient"], r["status"]) for r in ledger(cli.workdir).values() if r["channel"] == "whatsapp"}
    assert rows == {(numbers["limited"], "sent"), (numbers["invalid"], "sent"), (numbers["window"], "failed"),
                    (numbers["stop"], "failed")}  # the 500 is temporary: no row, tried again
    alerts = [json.loads(p.read_text()) for p in (cli.workdir / "outbox" / "staff").glob("*.json")]
    # One alert per permanent failure (63016: outside WhatsApp's window; 21610: the customer's STOP).
    assert sorted(a["meta"].get("alert") for a in alerts if a["meta"].get("alert", "").startswith("failure:")) \
        == ["failure:contact", "failure:provider"]
    fake_twilio.failures.pop(w["down"])
    cli("run-once", "--date", DAY, "--at", "09:15")  # a failed notice waits 15 min for its next try
    to = {f["To"] for f in fake_twilio.forms}
    assert w["down"] in to and w["window"] not in to
    assert [o[0] for o in outcomes(cli.workdir) if o[2] == numbers["down"]] == ["failed"] * 3 + ["sent"]


def test_retry_waits_at_least_retry_after(cli, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511900000001")])
    wire(cli, twilio=fake_twilio)
    fake_twilio.fail("whatsapp:+5511900000001", 429, 20429, "Too Many Requests", times=1, retry_after="2")
    cli("run-once", "--date", DAY)
    [(_, refused)] = fake_twilio.refusals
    assert fake_twilio.forms  # sent on the second try
    evidence = [r for r in records(cli.workdir) if r["event"] == "failed"][0]["evidence"]
    assert evidence["retry_after"] == "2"
    # the second try came at least Retry-After seconds after the refusal ([cycle] backoff is 0.2 s)
    assert fake_twilio.posts[1]["time"] - refused >= 2


def test_a_slow_smtp_server_is_overlapped_by_the_workers(cli):
    with SmtpServer(RecordingHandler(delay=1.5)) as server:
        setup(cli, [account(f"c{i}") for i in range(8)])  # [cycle] workers = 4
        wire(cli, server)
        began = time.monotonic()
        cli("run-once", "--date", DAY)
        assert len(server.received) == 8
        assert time.monotonic() - began < 9  # one after the other: 12 s and more; 4 at a time: 3 s + start-up
        assert len({m.connection for m in server.received}) == 4  # one connection per worker, reused


@pytest.mark.parametrize("reply, column, row", [
    ("451 4.7.1 Try again later", "retry", None),
    ("550 5.1.1 <b@beta.com.br>: Recipient address rejected", "failed", "failed"),
])
def test_smtp_refusals(cli, reply, column, row):
    handler = RecordingHandler(rcpt_replies={"b@beta.com.br": reply})
    with SmtpServer(handler) as server:
        setup(cli, [account("acme"), account("beta", emails=["b@beta.com.br"])])
        wire(cli, server)
        result = cli.json("run-once", "--date", DAY)
        assert result["counts"]["email"] == {"sent": 1, column: 1, "skipped": 4}  # reminders, due-day notices
        assert [m.rcpt_tos for m in server.received] == [["financeiro@acme.com.br"]]
        statuses = {r["recipient"]: r["status"] for r in ledger(cli.workdir).values() if r["stage"] == "overdue"}
        assert statuses.get("b@beta.com.br") == row
        handler.rcpt_replies.clear()
        cli("run-once", "--date", DAY, "--at", "09:15")  # a failed notice waits 15 min for its next try
        assert len(server.received) == (2 if row is None else 1)


def test_smtp_server_down_is_temporary_and_one_channel_does_not_stop_the_others(cli, fake_twilio):
    setup(cli, [account("acme", whatsapp="+5511987654321")])
    cli.env["EMAIL_URL"] = "smtp://127.0.0.1:9/?from=Cobranca <c@lucanet.com.br>"
    wire(cli, twilio=fake_twilio)
    result = cli.json("run-once", "--date", DAY)
    assert result["counts"]["email"] == {"retry": 1, "skipped": 2} and result["counts"]["whatsapp"] == {"sent": 1}
    assert all(r["status"] == "skipped" for r in ledger(cli.workdir).values() if r["channel"] == "email")


def test_a_broken_channel_is_blocked_not_the_customers_failure(cli, smtp):
    setup(cli, [account("acme", whatsapp="+5511987654321")])
    wire(cli, smtp)
    cli.env["TWILIO_ACCOUNT_SID"] = "AC" + "1" * 32  # the rest of TWILIO_ missing: our problem
    result = cli.json("run-once", "--date", DAY)
    assert result["counts"] == {"email": {"sent": 1, "skipped": 2}, "whatsapp": {"blocked": 1}}
    assert "TWILIO_AUTH_TOKEN" in result["problems"]["config:channel.whatsapp"]
    assert all(r["channel"] != "whatsapp" for r in ledger(cli.workdir).values())
    alerts = [json.loads(p.read_text()) for p in (cli.workdir / "outbox" / "staff").glob("*.json")]
    assert [a["meta"]["code"] for a in alerts] == ["config:channel.whatsapp"]
    cli("run-once", "--date", DAY)  # one alert per problem per day
    assert len(list((cli.workdir / "outbox" / "staff").glob("*.json"))) == 1


def test_a_broken_template_blocks_only_its_messages(cli, smtp):
    setup(cli, [account("acme", whatsapp="+5511987654321")])
    wire(cli, smtp)
    override = cli.workdir / "tpl" / "whatsapp"
    override.mkdir(parents=True)
    (override / "base.txt").write_text("{{ nao_existe }}\n", encoding="utf-8")
    (cli.workdir / "notifier.toml").write_text('templates = "tpl"\n' + (cli.workdir / "notifier.toml").read_text())
    result = cli.json("run-once", "--date", DAY)
    assert result["counts"] == {"email": {"sent": 1, "skipped": 2}, "whatsapp": {"blocked": 1}}
    assert "nao_existe" in result["problems"]["config:template.whatsapp/overdue"]


def test_hold_pauses_then_catches_up(cli, smtp):
    setup(cli, [account("acme"), account("beta")])
    wire(cli, smtp)
    cli("hold", "acme", "--by", "ana", "--reason", "promised_payment", "--until", "2026-11-26", "--date", DAY)
    assert cli.json("run-once", "--date", DAY)["counts"]["email"] == {"sent": 1, "held": 1, "skipped": 4}
    assert [m.rcpt_tos for m in smtp.received] == [["financeiro@beta.com.br"]]
    assert cli.json("status", "--date", DAY)["holds"][0]["account"] == "acme"
    assert cli.json("show", "acme")["hold"] == {"reason": "promised_payment", "since": DAY, "until": "2026-11-26",
                                                "by": "ana", "note": ""}
    assert "on hold (promised_payment, by ana) from 24/11/2026 until 26/11/2026" in cli("timeline", "acme").stdout
    cli("run-once", "--date", "2026-11-25")
    assert len(smtp.received) == 1
    cli("run-once", "--date", "2026-11-26")  # the hold ended: the overdue notice is caught up
    assert [m.rcpt_tos for m in smtp.received][-1] == ["financeiro@acme.com.br"]
    hold = [r for r in records(cli.workdir) if r["event"] == "hold"][0]
    assert hold["actor"] == "ana" and hold["reason"] == "promised_payment"


def test_a_hold_longer_than_a_notice_records_it_skipped_with_the_reason(cli, smtp):
    setup(cli, [account("acme")])
    wire(cli, smtp)
    cli("hold", "acme", "--by", "ana", "--reason", "disputed", "--until", "2026-12-20", "--date", DAY)
    cli("run-once", "--date", DAY)
    cli("run-once", "--date", "2026-11-30")  # suspension warning on 27/11 supersedes the overdue notice
    skipped = {(stage, r["reason"]) for r in records(cli.workdir) if r["event"] == "skipped" for _, _, stage in r["covers"]}
    assert skipped == {("reminder", "superseded"), ("due_today", "superseded"),  # before the hold
                       ("overdue", "hold: disputed"), ("suspension_warning", "hold: disputed")}
    assert smtp.received == []
    cli("release", "acme", "--by", "ana", "--date", "2026-11-30")
    cli("run-once", "--date", "2026-11-30")
    assert [m.message["X-Notifier-Stage"] for m in smtp.received] == ["suspended"]


def test_a_hold_over_the_suspension_date_tells_staff_that_the_customer_will_not_be_warned(cli, smtp):
    """Found by the simulation (seed 20261201/0, 200 days): a hold from before the warning to the
    suspension day swallowed the warning, and the first message after it was `suspended`."""
    setup(cli, [account("acme")])
    wire(cli, smtp)
    out = cli("hold", "acme", "--by", "ana", "--reason", "disputed", "--until", "2026-11-30", "--date", DAY).stdout
    assert ("note: invoice 2026-11-acme reaches its suspension date 30/11/2026 during this hold, and its "
            "warning will not be sent after it") in out
    [hold] = [r for r in records(cli.workdir) if r["event"] == "hold"]
    assert hold["unwarned_suspensions"] == {"2026-11-acme": "2026-11-30"}
    # Ending the day before: the warning of 27/11 is caught up that day, before the suspension.
    cli("release", "acme", "--by", "ana", "--date", DAY)
    out = cli("hold", "acme", "--by", "ana", "--reason", "disputed", "--until", "2026-11-29", "--date", DAY).stdout
    assert "note:" not in out and "unwarned_suspensions" not in [r for r in records(cli.workdir) if r["event"] == "hold"][-1]
    cli("run-once", "--date", "2026-11-29")
    assert [m.message["X-Notifier-Stage"] for m in smtp.received] == ["suspension_warning"]


def test_each_reconcile_records_where_the_next_one_starts_reading_the_log(cli):
    """The next run-once reads the log from where this one's reconcile stopped (and recovers only
    sendings after it), not from the top: the log grows every day for years."""
    import shutil
    from tests.conftest import ROOT
    shutil.copy(ROOT / "state.json.example", cli.workdir / "state.json")
    cli("run-once", "--date", "2026-11-24")
    log = cli.workdir / "attempts.jsonl"
    before = log.read_bytes()  # what the next reconcile finds
    cli("run-once", "--date", "2026-11-25")
    mark = {"records": before.count(b"\n"), "offset": len(before)}
    meta = json.loads((cli.workdir / "state.json").read_text(encoding="utf-8"))["meta"]
    assert meta["log_applied"] == {**mark, "answered": mark}


def test_a_ledger_that_lost_its_rows_is_rebuilt_from_every_record_after_the_last_applied(cli):
    # As after a crash between the log's outcomes and the store's write: the next cycle's
    # reconcile reads the records after `log_applied` (the first one included) and sends nothing again.
    import shutil
    from tests.conftest import ROOT
    shutil.copy(ROOT / "state.json.example", cli.workdir / "state.json")
    cli("run-once", "--date", "2026-11-24")
    sent = sorted(p.name for p in (cli.workdir / "outbox" / "email").glob("*.eml"))
    state = json.loads((cli.workdir / "state.json").read_text(encoding="utf-8"))
    assert state["meta"].get("log_applied", {"records": 0})["records"] == 0 and state["ledger"]
    logged = {k: v["attempt_id"] for k, v in state["ledger"].items() if v.get("notice_date") == "2026-11-24"}
    assert len(logged) == len(sent)
    state["ledger"] = {k: v for k, v in state["ledger"].items() if k not in logged}
    (cli.workdir / "state.json").write_text(json.dumps(state), encoding="utf-8")
    cli("run-once", "--date", "2026-11-24")
    assert sorted(p.name for p in (cli.workdir / "outbox" / "email").glob("*.eml")) == sent
    ledger = json.loads((cli.workdir / "state.json").read_text(encoding="utf-8"))["ledger"]
    assert {k: ledger[k].get("attempt_id") for k in logged if k in ledger} == logged
