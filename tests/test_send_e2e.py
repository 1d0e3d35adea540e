"""`notifier send` end to end: the CLI in a subprocess against real local providers.

An aiosmtpd server receives the e-mails, a local HTTP server speaks Twilio's Messages API, and a
local JSON sink stands in for an automatic social network and for the staff channel (apprise's
`json://`). What arrived is checked against the contact-attempt log.
"""
from __future__ import annotations

import json

import pytest

from tests.fake_twilio import FakeTwilio
from tests.json_sink import JsonSink
from tests.smtp_server import SmtpServer

CONFIG = """
[channels.whatsapp]
freeform = false
[channels.whatsapp.templates.overdue]
content_sid = "HX0123456789abcdef0123456789abcdef"
variables = { "1" = "{{ customer }}", "2" = "{{ total }}", "3" = "{{ tutorial_url }}" }
"""


@pytest.fixture
def providers(cli, tmp_path):
    with SmtpServer() as smtp, FakeTwilio() as twilio, JsonSink() as sink:
        billing = {
            "accounts": [
                {"id": "acme", "company": "ACME Comércio <script>alert(1)</script> Ltda", "contact_name": "Maria Souza",
                 "document": "45.723.174/0001-10", "domain": "acme.com.br",
                 "emails": ["financeiro@acme.com.br", "maria@acme.com.br"], "whatsapp": "+5511987654321",
                 "social": {"telegram": sink.url("/social")}},
                {"id": "beta", "company": "Beta Serviços Ltda", "document": "12.ABC.345/01DE-35",
                 "emails": ["contas@beta.com.br"], "whatsapp": "+5521998765432"},
            ],
            "invoices": [
                {"id": "2026-11-acme", "account": "acme", "amount": "1234.56", "issued": "2026-11-05",
                 "pix_code": "00020101021226900014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913ACME6009SAO PAULO62070503***630408BF"},
                {"id": "2026-11-beta", "account": "beta", "amount": "99.90", "issued": "2026-11-05"},
            ],
        }
        (tmp_path / "billing.json").write_text(json.dumps(billing, ensure_ascii=False), encoding="utf-8")
        (tmp_path / "notifier.toml").write_text(CONFIG, encoding="utf-8")
        cli("import", "billing.json", "--date", "2026-11-10")
        cli.env.update(twilio.env(), EMAIL_URL=smtp.url(), STAFF_URLS=sink.url("/staff"),
                       TUTORIAL_URL="https://www.lucanet.com.br/cobranca", NOTIFIER_CONFIG="notifier.toml")
        yield smtp, twilio, sink


def attempts(tmp_path) -> list[dict]:
    lines = (tmp_path / "attempts.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    results = {r["attempt"]: r for r in records if r["event"] == "result"}
    return [{**r, "result": results[r["attempt"]]} for r in records if r["event"] == "sending"]


def test_email_reaches_the_smtp_server_and_the_log_proves_it(cli, providers, tmp_path):
    smtp, _, _ = providers
    out = cli("send", "acme", "--channel", "email", "--date", "2026-11-24").stdout
    assert out.count("sent via smtp") == 2
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["financeiro@acme.com.br", "maria@acme.com.br"]
    logged = {a["recipient"]: a for a in attempts(tmp_path)}
    for received in smtp.received:
        msg = received.message
        attempt = logged[received.rcpt_tos[0]]
        assert attempt["stage"] == "overdue" and attempt["notice_date"] == "2026-11-24"
        assert attempt["result"]["evidence"]["message_id"] == msg["Message-ID"]
        assert attempt["result"]["provider_id"] in attempt["result"]["evidence"]["smtp_reply"]
        assert msg["Reply-To"] == "financeiro@lucanet.com.br"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "1.234,56" in text and "20/11/2026" in text and "45.723.174/0001-10" in text
        assert "<script>alert(1)</script>" in text  # plain text keeps the name as it is
        assert "<script>" not in html and "&lt;script&gt;" in html  # HTML escapes it


def test_whatsapp_goes_as_the_approved_template_and_social_through_apprise(cli, providers, tmp_path):
    _, twilio, sink = providers
    cli("send", "acme", "--channel", "whatsapp", "--date", "2026-11-24")
    [form] = twilio.forms
    assert form["To"] == "whatsapp:+5511987654321" and form["From"] == "whatsapp:+14155238886"
    assert form["ContentSid"] == "HX0123456789abcdef0123456789abcdef"
    variables = json.loads(form["ContentVariables"])
    assert variables == {"1": "Maria Souza", "2": "R$ 1.234,56", "3": "https://www.lucanet.com.br/cobranca"}
    cli("send", "acme", "--channel", "social", "--date", "2026-11-24")
    [post] = sink.posts_to("/social")
    assert "acme.com.br" in post.json["message"]  # short and neutral: no amount, no document
    assert "1.234,56" not in post.json["message"] and "45.723.174/0001-10" not in post.json["message"]
    [whatsapp, social] = attempts(tmp_path)
    assert whatsapp["result"]["provider"] == "twilio" and whatsapp["result"]["provider_id"].startswith("SM")
    assert social["recipient"] == "telegram" and social["result"]["status"] == "sent"


def test_permanent_failure_is_logged_and_alerts_staff(cli, providers, tmp_path):
    _, twilio, sink = providers
    twilio.fail("whatsapp:+5521998765432", 400, 21610, "Attempt to send to unsubscribed recipient")
    proc = cli("send", "beta", "--channel", "whatsapp", "--stage", "overdue", "--date", "2026-11-24", check=False)
    assert proc.returncode == 1 and "failed" in proc.stdout and "21610" in proc.stdout
    [alert] = sink.posts_to("/staff")
    body = alert.json
    assert "Contato inválido" in body["title"] and "21610" in body["message"] and "Beta Serviços" in body["message"]
    # The customer said STOP: recorded as an opt-out (notifier/optout.py), shown by `show`.
    assert "beta: opted out of whatsapp (the customer replied STOP)" in proc.stdout
    assert "whatsapp" in cli.json("show", "beta")["opt_out"]
    failed, staff = attempts(tmp_path)
    assert (failed["result"]["status"], failed["result"]["code"], failed["result"]["permanent"]) == ("failed", "21610", True)
    assert staff["channel"] == "staff" and staff["result"]["status"] == "sent"


def test_check_connect_reaches_every_provider_without_sending(cli, providers):
    smtp, twilio, sink = providers
    out = cli("check", "--connect").stdout
    assert "templates: ok" in out
    assert smtp.received == [] and twilio.posts == [] and sink.posts == []
