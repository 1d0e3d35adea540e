"""Delivery statuses from Twilio: polled (`notifier poll-status`) and posted back to a real
`notifier serve-webhooks` process, signed or not, by the Twilio-compatible test server."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
from twilio.request_validator import RequestValidator

from notifier.log.attempts import AttemptLog
from notifier.log.statuses import Tracker
from tests.conftest import ROOT
from tests.fake_twilio import FakeTwilio, post_callback

BILLING = {
    "accounts": [{"id": "acme", "company": "ACME Comércio Ltda", "contact_name": "Maria Souza",
                  "document": "45.723.174/0001-10", "emails": ["financeiro@acme.com.br"],
                  "whatsapp": "+5511987654321"}],
    "invoices": [{"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05"}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def twilio(cli, tmp_path):
    port = free_port()
    callback = f"http://127.0.0.1:{port}/twilio/status"
    (tmp_path / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    (tmp_path / "notifier.toml").write_text(
        f'[channels.whatsapp]\nfreeform = true\nstatus_callback = "{callback}"\n'
        f'[channels.sms]\nstatus_callback = "{callback}"\n', encoding="utf-8")
    with FakeTwilio() as server:
        cli.env.update(server.env(), NOTIFIER_CONFIG="notifier.toml", TUTORIAL_URL="https://www.lucanet.com.br/c")
        cli("import", "billing.json", "--date", "2026-11-10")
        server.callback_port = port
        yield server


def log_records(tmp_path) -> list[dict]:
    return list(AttemptLog(tmp_path / "attempts.jsonl").records())


def send(cli, channel: str) -> None:
    cli("send", "acme", "--channel", channel, "--stage", "overdue", "--date", "2026-11-24")


def statuses(tmp_path) -> list[tuple[str, str, str | None, str]]:
    sendings = {r["id"]: r["channel"] for r in log_records(tmp_path) if r["event"] == "sending"}
    return [(sendings[r["ref"]], r["event"], r["code"], r["source"]) for r in log_records(tmp_path)
            if r["event"] in ("delivered", "read", "undelivered") or r.get("source")]


def sids(tmp_path, channel: str) -> list[str]:
    """The SIDs of the last message sent on `channel` (free-form WhatsApp may go in parts)."""
    [*_, sent] = [r for r in log_records(tmp_path) if r["event"] == "sent" and r["channel"] == channel]
    return sent["evidence"]["sids"]


def test_poll_records_each_change_once_until_final(cli, twilio, tmp_path):
    send(cli, "whatsapp")
    send(cli, "sms")
    whatsapp, [sms_sid] = sids(tmp_path, "whatsapp"), sids(tmp_path, "sms")
    assert len(whatsapp) > 1  # the text with the tutorial goes in several bodies
    assert cli("poll-status").stdout.endswith("2 message(s) not final asked about; 0 status change(s) recorded\n")
    for sid in whatsapp[:-1]:
        twilio.set_status(sid, "delivered")
    assert "0 status change(s)" in cli("poll-status").stdout  # one part is not delivered yet
    twilio.set_status(whatsapp[-1], "delivered")
    twilio.set_status(sms_sid, "undelivered", 30003, "Unreachable destination handset")
    out = cli("poll-status").stdout
    assert "whatsapp → +5511987654321: delivered" in out and "sms → +5511987654321: undelivered (30003)" in out
    assert statuses(tmp_path) == [("whatsapp", "delivered", None, "poll"), ("sms", "undelivered", "30003", "poll")]
    # The SMS is final; the WhatsApp message may still be read.
    assert "1 message(s) not final asked about; 0 status change(s)" in cli("poll-status").stdout
    for sid in whatsapp:
        twilio.set_status(sid, "read")
    cli("poll-status")
    assert statuses(tmp_path)[-1] == ("whatsapp", "read", None, "poll")
    assert "0 message(s) not final" in cli("poll-status").stdout
    assert "chain and messages: ok" in cli("verify-log").stdout


def test_messages_are_followed_for_72_hours_only(cli, twilio, tmp_path):
    send(cli, "sms")
    tracker = Tracker(AttemptLog(tmp_path / "attempts.jsonl"))
    now = datetime.now(timezone.utc)
    assert len(tracker.pending(now + timedelta(hours=71))) == 1
    assert tracker.pending(now + timedelta(hours=73)) == []


@pytest.fixture
def webhooks(cli, twilio, tmp_path):
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "serve-webhooks", "--listen",
                             f"127.0.0.1:{twilio.callback_port}"], cwd=tmp_path, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", twilio.callback_port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
    yield f"http://127.0.0.1:{twilio.callback_port}/twilio/status"
    proc.terminate()  # SIGTERM, as systemd and Docker stop it: a clean stop, not a kill
    assert proc.wait(timeout=10) == 0
    assert proc.stderr.read().rstrip().endswith("stopped")


def test_signed_callbacks_are_recorded_and_forged_ones_refused(cli, twilio, webhooks, tmp_path):
    send(cli, "whatsapp")
    sid, *others = sids(tmp_path, "whatsapp")
    assert all(f["StatusCallback"] == webhooks for f in twilio.forms)  # Twilio was told where to post
    for other in others:
        twilio.set_status(other, "read")  # the other parts are ahead: the least advanced counts
    before = len(log_records(tmp_path))
    form = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "63024"}
    assert post_callback(webhooks, form, None) == 401
    assert post_callback(webhooks, form, RequestValidator("not-the-token").compute_signature(webhooks, form)) == 401
    signed = RequestValidator(twilio.auth_token).compute_signature(webhooks, form)
    assert post_callback(webhooks, {**form, "ErrorCode": "0"}, signed) == 401  # the form was changed
    assert len(log_records(tmp_path)) == before  # nothing recorded for any of them

    assert twilio.set_status(sid, "delivered") == 204
    assert twilio.set_status(sid, "delivered") == 204  # Twilio may post twice: recorded once
    assert twilio.set_status(sid, "read") == 204
    assert statuses(tmp_path) == [("whatsapp", "delivered", None, "callback"), ("whatsapp", "read", None, "callback")]
    # A message sent after the server started is found too (the server reads what was appended).
    send(cli, "sms")
    [sms_sid] = sids(tmp_path, "sms")
    assert twilio.set_status(sms_sid, "undelivered", 30005) == 204
    assert statuses(tmp_path)[-1] == ("sms", "undelivered", "30005", "callback")
    unknown = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    assert post_callback(webhooks, unknown, RequestValidator(twilio.auth_token).compute_signature(webhooks, unknown)) == 204
    assert "chain and messages: ok" in cli("verify-log").stdout
