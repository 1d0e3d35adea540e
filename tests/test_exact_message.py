"""The exact message: what the provider received is, byte for byte, what the log stored before.

Real providers on 127.0.0.1 (aiosmtpd, the Twilio-compatible server), the real command line.
"""
from __future__ import annotations

import hashlib
import json

import pytest

from notifier.log.attempts import AttemptLog, stored_message
from tests.fake_twilio import FakeTwilio
from tests.smtp_server import SmtpServer

CONFIG = """
[channels.email]
bounce_address = "bounces@lucanet.com.br"
[channels.whatsapp.templates.overdue]
content_sid = "HX0123456789abcdef0123456789abcdef"
variables = { "1" = "{{ customer }}", "2" = "{{ total }}" }
"""
BILLING = {
    "accounts": [{"id": "acme", "company": "ACME Comércio Ltda", "contact_name": "Maria Souza",
                  "document": "45.723.174/0001-10", "emails": ["financeiro@acme.com.br"],
                  "whatsapp": "+5511987654321"}],
    "invoices": [{"id": "2026-11-acme", "account": "acme", "amount": "1234.56", "issued": "2026-11-05"}],
}


@pytest.fixture
def providers(cli, tmp_path):
    with SmtpServer() as smtp, FakeTwilio() as twilio:
        (tmp_path / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
        (tmp_path / "notifier.toml").write_text(CONFIG, encoding="utf-8")
        cli.env.update(twilio.env(), EMAIL_URL=smtp.url(), NOTIFIER_CONFIG="notifier.toml",
                       TUTORIAL_URL="https://www.lucanet.com.br/cobranca")
        cli("import", "billing.json", "--date", "2026-11-10")
        yield smtp, twilio


def sendings(tmp_path) -> tuple[AttemptLog, list[dict]]:
    log = AttemptLog(tmp_path / "attempts.jsonl")
    return log, [r for r in log.records() if r["event"] == "sending"]


def test_the_smtp_server_got_the_stored_eml_from_a_verp_return_path(cli, providers, tmp_path):
    smtp, _ = providers
    cli("send", "acme", "--channel", "email", "--stage", "overdue", "--date", "2026-11-24")
    [received] = smtp.received
    log, [sending] = sendings(tmp_path)
    stored = log.messages.get(stored_message(sending))
    # aiosmtpd hands over DATA with the dot-stuffing undone and CRLFs as sent.
    assert received.data == stored
    assert sending["message"]["sha256"] == hashlib.sha256(received.data).hexdigest()
    assert received.mail_from == f"bounces+{sending['id']}@lucanet.com.br"
    assert received.message["X-Notifier-Attempt-Id"] == sending["id"]
    assert sending["content"]["subject"] == received.message["Subject"]
    assert sending["content"]["text"] == received.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    [outcome] = [r for r in log.records() if r.get("ref") == sending["id"]]
    assert outcome["event"] == "sent" and outcome["provider_id"] == "ABC1231"
    assert outcome["evidence"]["message_id"] == received.message["Message-ID"]


def test_twilio_got_the_stored_request_fields(cli, providers, tmp_path):
    _, twilio = providers
    cli("send", "acme", "--channel", "whatsapp", "--stage", "overdue", "--date", "2026-11-24")
    [form] = twilio.forms
    log, [sending] = sendings(tmp_path)
    payload = json.loads(log.messages.get(stored_message(sending)))
    assert payload["requests"] == [form]
    assert sending["content"] == {"content_sid": "HX0123456789abcdef0123456789abcdef",
                                  "content_variables": {"1": "Maria Souza", "2": "R$ 1.234,56"}}
    assert sending["template"] == "HX0123456789abcdef0123456789abcdef"
