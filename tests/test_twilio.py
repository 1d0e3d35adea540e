"""The WhatsApp and SMS channels against a real local HTTP server speaking Twilio's API.

The twilio SDK sends real requests to `tests.fake_twilio` (through `TWILIO_API_BASE`); what the
server received is what Twilio would have received.
"""
from __future__ import annotations

import json
import socket

import pytest

from notifier import channels
from notifier.channels import BLOCKED, ChannelError, Message
from notifier.config import Config
from notifier.run.render import split_whatsapp
from tests.fake_twilio import fake_twilio  # noqa: F401 - fake_twilio is a fixture

NUMBER = "+5511987654321"
SMS_TEXT = "Lucanet: fatura de R$ 149,90 vencida em 23/11/2026. Pague em lucanet.com.br/painel"


def config(tmp_path, env, **options) -> Config:
    return Config(env=env, outbox=tmp_path / "outbox", channels=options)


def message(channel="whatsapp", to=NUMBER, text="Olá, Maria.", **kw) -> Message:
    meta = {"account": "acme", "stage": "overdue", "sms_text": SMS_TEXT}
    meta.update(kw.pop("meta", {}))
    return Message(channel=channel, recipient=to, text=text, meta=meta, **kw)


def send(cfg, msg):
    channel = channels.build(msg.channel, cfg)
    try:
        return channel.send(msg)
    finally:
        channel.close()


# --- WhatsApp: templates and free-form -------------------------------------------------------

def test_template_goes_as_content_sid_and_variables_with_whatsapp_addresses(tmp_path, fake_twilio):
    cfg = config(tmp_path, fake_twilio.env(TWILIO_WHATSAPP_FROM="+14155238886"))
    variables = {"1": "Maria", "2": "R$ 149,90", "3": "23/11/2026"}
    result = send(cfg, message(content_sid="HX" + "a" * 32, content_variables=variables))

    assert result.ok and result.provider == "twilio"
    [form] = fake_twilio.forms
    assert form["To"] == "whatsapp:" + NUMBER
    assert form["From"] == "whatsapp:+14155238886"
    assert form["ContentSid"] == "HX" + "a" * 32
    assert json.loads(form["ContentVariables"]) == variables
    assert "Body" not in form
    [sid] = fake_twilio.messages
    assert result.provider_id == sid and len(sid) == 34 and sid.startswith("SM")
    assert result.evidence["sids"] == [sid]
    assert result.evidence["status"] == ["queued"]
    assert result.evidence["content_sid"] == "HX" + "a" * 32


def test_a_recipient_already_prefixed_is_not_prefixed_twice(tmp_path, fake_twilio):
    cfg = config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True})
    assert send(cfg, message(to="whatsapp:" + NUMBER)).ok
    assert fake_twilio.forms[0]["To"] == "whatsapp:" + NUMBER


def test_long_free_form_text_goes_as_several_messages_in_order(tmp_path, fake_twilio):
    paragraphs = [f"Parágrafo {i}: " + "informação sobre a sua fatura em aberto." * 12 for i in range(12)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 3 * 1600
    cfg = config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True})
    result = send(cfg, message(text=text))

    assert result.ok
    bodies = [form["Body"] for form in fake_twilio.forms]
    assert bodies == split_whatsapp(text, 1600)
    assert len(bodies) >= 4 and all(len(b) <= 1600 for b in bodies)
    assert [p for b in bodies for p in b.split("\n\n")] == paragraphs
    assert result.provider_id.split(",") == list(fake_twilio.messages)
    assert result.evidence["sids"] == list(fake_twilio.messages)
    assert result.evidence["num_segments"] == len(bodies)


def test_without_template_or_free_form_nothing_is_sent(tmp_path, fake_twilio):
    cfg = config(tmp_path, fake_twilio.env())
    result = send(cfg, message())
    # Our configuration, not the customer's number: blocked, not a (permanent) failure.
    assert result.status == BLOCKED and not result.permanent
    assert result.code == "config:whatsapp.templates.overdue"
    assert "no approved Content template for stage overdue" in result.detail and "freeform" in result.detail
    assert fake_twilio.posts == []


def test_check_names_each_stage_without_a_template_that_the_ladder_or_escalate_sends(tmp_path, fake_twilio):
    def said(**whatsapp):
        """(problems, warnings) of `check`, as the config keys they name."""
        channel = channels.build("whatsapp", config(tmp_path, fake_twilio.env(), whatsapp=whatsapp))
        return [[p.split(":")[0].rsplit(".", 1)[1] for p in found] for found in (channel.check(), channel.warnings())]

    # The default ladder sends WhatsApp at overdue and suspension_warning (first-time delinquents):
    # problems. `escalate` sends the account's current stage, any stage with a customer message:
    # warnings, as only an escalation needs them.
    assert said() == [["overdue", "suspension_warning"], ["reminder", "due_today", "suspended", "deletion_warning"]]
    some = {"templates": {s: {"content_sid": "HX" + "a" * 32} for s in ("overdue", "suspended")}}
    assert said(**some) == [["suspension_warning"], ["reminder", "due_today", "deletion_warning"]]
    assert said(freeform=True) == [[], []]


def test_a_template_wins_over_free_form(tmp_path, fake_twilio):
    cfg = config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True})
    assert send(cfg, message(content_sid="HX" + "b" * 32)).ok
    [form] = fake_twilio.forms
    assert form["ContentSid"] == "HX" + "b" * 32 and "Body" not in form and "ContentVariables" not in form


# --- Errors ----------------------------------------------------------------------------------

ERRORS = [
    # channel, HTTP status, Twilio code, permanent
    ("whatsapp", 400, 21211, True),
    ("whatsapp", 400, 63016, True),
    ("whatsapp", 400, 21610, True),
    ("whatsapp", 429, 20429, False),
    ("whatsapp", 500, 20500, False),
    ("whatsapp", 503, None, False),
    ("sms", 400, 21211, True),
    ("sms", 400, 21610, True),
    ("sms", 429, 20429, False),
    ("sms", 502, 20500, False),
]


@pytest.mark.parametrize("channel, status, code, permanent", ERRORS)
def test_twilio_errors_map_to_permanent_or_temporary(tmp_path, fake_twilio, channel, status, code, permanent):
    to = "+5511900000001"
    fake_twilio.fail(("whatsapp:" if channel == "whatsapp" else "") + to, status, code, f"Twilio says no ({code})")
    cfg = config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True, "sms_fallback": False})
    result = send(cfg, message(channel=channel, to=to))

    assert not result.ok
    assert result.provider == "twilio"
    assert result.permanent is permanent
    assert result.code == (str(code) if code else str(status))
    assert f"Twilio says no ({code})" in result.detail
    assert result.evidence["http_status"] == status
    assert fake_twilio.messages == {}


def test_outside_the_window_says_a_template_is_needed(tmp_path, fake_twilio):
    fake_twilio.fail("whatsapp:" + NUMBER, 400, 63016, "Failed to send freeform message because you are "
                     "outside the allowed window. If you are using WhatsApp, please use a Message Template.")
    cfg = config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True})
    result = send(cfg, message())
    assert result.permanent and result.code == "63016"
    assert "content_sid" in result.detail
    assert [p["form"]["To"] for p in fake_twilio.posts] == ["whatsapp:" + NUMBER]  # no SMS fallback


def test_wrong_token_is_a_permanent_authentication_failure(tmp_path, fake_twilio):
    cfg = config(tmp_path, fake_twilio.env(TWILIO_AUTH_TOKEN="not-the-token"), whatsapp={"freeform": True})
    result = send(cfg, message())
    assert not result.ok and result.permanent
    assert result.code == "20003"
    assert "authentication failed" in result.detail and "TWILIO_AUTH_TOKEN" in result.detail
    assert [p["authorized"] for p in fake_twilio.posts] == [False]
    assert fake_twilio.messages == {}


def test_unreachable_twilio_is_temporary(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(tmp_path, {
        "TWILIO_ACCOUNT_SID": "AC" + "2" * 32, "TWILIO_AUTH_TOKEN": "t", "TWILIO_SMS_FROM": "+15005550006",
        "TWILIO_API_BASE": f"http://127.0.0.1:{port}",
    })
    result = send(cfg, message(channel="sms"))
    assert not result.ok and not result.permanent
    assert result.code == "unreachable"
    assert f"could not reach Twilio at http://127.0.0.1:{port}" in result.detail


def test_no_answer_in_time_is_not_retried_because_the_message_may_have_gone(tmp_path, fake_twilio):
    fake_twilio.delay = 1.5
    cfg = config(tmp_path, fake_twilio.env(), sms={"timeout": 0.2})
    result = send(cfg, message(channel="sms"))
    assert not result.ok and result.permanent
    assert "no answer from Twilio" in result.detail and "within 0.2 s" in result.detail


def test_an_answer_that_is_not_twilio_json_is_temporary(tmp_path, fake_twilio):
    fake_twilio.html_only = True
    result = send(config(tmp_path, fake_twilio.env()), message(channel="sms"))
    assert not result.ok and not result.permanent
    assert "is not Twilio's JSON (is TWILIO_API_BASE right?)" in result.detail


def test_a_failure_after_some_parts_were_sent_is_not_retried(tmp_path, fake_twilio):
    fake_twilio.fail("whatsapp:" + NUMBER, 500, 20500, "Internal error", after=1)
    text = "\n\n".join(["Linha de texto da fatura. " * 40] * 3)
    cfg = config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True})
    result = send(cfg, message(text=text))
    [sid] = fake_twilio.messages
    assert not result.ok and result.permanent
    assert result.provider_id == sid
    assert result.detail.startswith("part 2 of 3 failed after 1 were sent")


# --- Fallback to SMS -------------------------------------------------------------------------

@pytest.mark.parametrize("code", [21211, 63003])
def test_a_number_without_whatsapp_gets_the_sms_text(tmp_path, fake_twilio, code):
    fake_twilio.fail("whatsapp:" + NUMBER, 400, code, "Channel could not find To address")
    cfg = config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True})
    result = send(cfg, message())

    assert result.ok and result.provider == "twilio"
    assert [p["form"]["To"] for p in fake_twilio.posts] == ["whatsapp:" + NUMBER, NUMBER]
    [form] = fake_twilio.forms
    assert form == {"To": NUMBER, "From": "+15005550006", "Body": SMS_TEXT}
    [sid] = fake_twilio.messages
    assert result.provider_id == sid
    assert result.evidence["fallback"] == "sms"
    assert result.evidence["whatsapp"]["code"] == str(code)
    assert result.evidence["sms"]["sids"] == [sid]
    assert f"WhatsApp refused {NUMBER} ({code}" in result.detail and "sent by SMS instead" in result.detail


def test_the_fallback_fails_with_the_sms_error(tmp_path, fake_twilio):
    fake_twilio.fail("whatsapp:" + NUMBER, 400, 63003, "Channel could not find To address")
    fake_twilio.fail(NUMBER, 429, 20429, "Too Many Requests")
    cfg = config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True})
    result = send(cfg, message())
    assert not result.ok and not result.permanent and result.code == "20429"
    assert "the SMS fallback failed too" in result.detail
    assert result.evidence["whatsapp"]["code"] == "63003"


@pytest.mark.parametrize("options, meta, env_over, note", [
    ({"sms_fallback": False}, {}, {}, None),
    ({}, {"sms_text": None}, {}, "not tried: the message has no sms_text"),
    ({}, {}, {"TWILIO_SMS_FROM": None}, "not possible: sms: TWILIO_SMS_FROM is not set"),
])
def test_no_fallback_when_off_without_text_or_sms_unconfigured(tmp_path, fake_twilio, options, meta, env_over, note):
    fake_twilio.fail("whatsapp:" + NUMBER, 400, 21211, "The 'To' number is not a valid phone number.")
    cfg = config(tmp_path, fake_twilio.env(**env_over), whatsapp={"freeform": True, **options})
    result = send(cfg, message(meta=meta))
    assert not result.ok and result.permanent and result.code == "21211"
    assert len(fake_twilio.posts) == 1
    if note is None:
        assert "sms_fallback" not in result.evidence
    else:
        assert result.evidence["sms_fallback"].startswith(note)


# --- Configuration ---------------------------------------------------------------------------

def test_a_missing_variable_is_named_and_the_other_channel_still_works(tmp_path, fake_twilio):
    cfg = config(tmp_path, fake_twilio.env(TWILIO_WHATSAPP_FROM=None))
    with pytest.raises(ChannelError, match=r"^whatsapp: TWILIO_WHATSAPP_FROM is not set"):
        channels.build("whatsapp", cfg)
    assert send(cfg, message(channel="sms")).ok

    cfg = config(tmp_path, fake_twilio.env(TWILIO_SMS_FROM=None), whatsapp={"freeform": True})
    with pytest.raises(ChannelError, match=r"^sms: TWILIO_SMS_FROM is not set"):
        channels.build("sms", cfg)
    assert send(cfg, message()).ok


def test_a_missing_token_is_named(tmp_path, fake_twilio):
    cfg = config(tmp_path, fake_twilio.env(TWILIO_AUTH_TOKEN=None))
    for name in ("whatsapp", "sms"):
        with pytest.raises(ChannelError, match=rf"^{name}: TWILIO_AUTH_TOKEN is not set"):
            channels.build(name, cfg)


def test_twilio_api_base_alone_asks_for_the_credentials(tmp_path, fake_twilio):
    with pytest.raises(ChannelError, match=r"^sms: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_SMS_FROM are not set"):
        channels.build("sms", config(tmp_path, {"TWILIO_API_BASE": fake_twilio.url}))


@pytest.mark.parametrize("options, key", [
    ({"freeform": "yes"}, "channels.whatsapp.freeform"),
    ({"sms_fallback": 1}, "channels.whatsapp.sms_fallback"),
    ({"timeout": 0}, "channels.whatsapp.timeout"),
])
def test_bad_options_are_named(tmp_path, fake_twilio, options, key):
    with pytest.raises(ChannelError, match=key):
        channels.build("whatsapp", config(tmp_path, fake_twilio.env(), whatsapp=options))


def test_without_any_twilio_variable_messages_go_to_the_outbox(tmp_path):
    cfg = config(tmp_path, {"EMAIL_URL": "smtp://127.0.0.1:2525"}, whatsapp={"freeform": True})
    variables = {"1": "Maria"}
    wa = send(cfg, message(text="Olá, Maria.\n\nSua fatura venceu."))
    tpl = send(cfg, message(content_sid="HX" + "c" * 32, content_variables=variables))
    sms = send(cfg, message(channel="sms", text=SMS_TEXT))

    assert all(r.ok and r.provider == "outbox" for r in (wa, tpl, sms))
    written = {r.provider_id: json.loads(open(r.evidence["path"], encoding="utf-8").read()) for r in (wa, tpl, sms)}
    assert written[wa.provider_id]["to"] == "whatsapp:" + NUMBER
    assert written[wa.provider_id]["messages"] == [{"body": "Olá, Maria.\n\nSua fatura venceu."}]
    assert written[tpl.provider_id]["messages"] == [{"content_sid": "HX" + "c" * 32, "content_variables": '{"1": "Maria"}'}]
    assert written[sms.provider_id] == {"channel": "sms", "to": NUMBER, "body": SMS_TEXT,
                                        "meta": {"account": "acme", "stage": "overdue", "sms_text": SMS_TEXT}}
    assert sorted(p.parent.name for p in (tmp_path / "outbox").rglob("*.json")) == ["sms", "whatsapp", "whatsapp"]


def test_check_connect_fetches_the_account_and_sends_nothing(tmp_path, fake_twilio):
    for name in ("whatsapp", "sms"):
        channel = channels.build(name, config(tmp_path, fake_twilio.env(), whatsapp={"freeform": True}))
        assert channel.check() == [] and channel.check(connect=True) == []
        channel.close()
    assert fake_twilio.posts == []

    channel = channels.build("sms", config(tmp_path, fake_twilio.env(TWILIO_AUTH_TOKEN="wrong")))
    [problem] = channel.check(connect=True)
    assert problem.startswith(f"sms: cannot fetch Twilio account {fake_twilio.account_sid}: authentication failed")
    assert channels.build("sms", config(tmp_path, {})).check(connect=True) == []


def test_describe_masks_the_token(tmp_path, fake_twilio):
    text = channels.build("whatsapp", config(tmp_path, fake_twilio.env())).describe()
    assert fake_twilio.auth_token not in text
    assert "****" in text and fake_twilio.account_sid in text and fake_twilio.url in text
    assert "outbox" in channels.build("sms", config(tmp_path, {})).describe()


def test_delivery_status_reads_back_what_twilio_accepted(tmp_path, fake_twilio):
    channel = channels.build("sms", config(tmp_path, fake_twilio.env()))
    sent = channel.send(message(channel="sms", text=SMS_TEXT))
    status = channel.delivery_status(sent.provider_id)
    channel.close()
    assert status.ok and status.provider_id == sent.provider_id
    assert status.evidence == {"sid": sent.provider_id, "status": "queued", "num_segments": 1}
