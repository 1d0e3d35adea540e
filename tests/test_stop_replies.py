"""A customer's "SAIR" reply (issue 20, point 11): Twilio posts the inbound message, signed, to a
real `notifier serve-webhooks`, which opts the number out of the channel it came on."""
from __future__ import annotations

from twilio.request_validator import RequestValidator

from tests.fake_twilio import post_callback
from tests.test_statuses import log_records, twilio, webhooks  # noqa: F401 - the fixtures

NUMBER = "+5511987654321"  # acme's, in tests/test_statuses.py's billing data


def reply(twilio, url: str, sender: str, body: str, sign: bool = True) -> int:
    form = {"MessageSid": "SM" + "1" * 32, "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": "whatsapp:+14155238886", "Body": body, "SmsStatus": "received", "NumMedia": "0"}
    signature = RequestValidator(twilio.auth_token).compute_signature(url, form) if sign else None
    return post_callback(url, form, signature)


def opted_out(cli) -> list[str]:
    return cli.json("show", "acme")["opt_out"]


def test_a_whatsapp_sair_reply_opts_the_number_out_of_whatsapp(cli, twilio, webhooks, tmp_path):
    assert reply(twilio, webhooks, f"whatsapp:{NUMBER}", "Sair.", sign=False) == 401  # forged: nothing
    assert reply(twilio, webhooks, f"whatsapp:{NUMBER}", "quero sair do plano?") == 204  # a question, for staff
    assert opted_out(cli) == []
    assert reply(twilio, webhooks, f"whatsapp:{NUMBER}", " sair!\n") == 204
    assert opted_out(cli) == ["whatsapp"]
    assert "whatsapp" not in {n["channel"] for n in cli.json("plan", "--date", "2026-11-24")}
    [note] = [r for r in log_records(tmp_path) if r["event"] == "opt_out"]
    assert (note["account"], note["channel"], note["actor"], note["reply"]) == ("acme", "whatsapp", "customer:reply", "sair!")
    assert "chain and messages: ok" in cli("verify-log").stdout


def test_an_sms_sair_reply_opts_the_number_out_of_sms_only(cli, twilio, webhooks):
    assert reply(twilio, webhooks, NUMBER, "SAIR") == 204
    assert opted_out(cli) == ["sms"]
