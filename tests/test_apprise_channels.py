"""The apprise-based channels (staff, social) against a real HTTP server on 127.0.0.1.

apprise's `json://127.0.0.1:PORT/PATH` target posts {"title", "message", ...} to the sink, which
stands in for a staff room or an automatic social network; nothing reaches the internet.
"""
from __future__ import annotations

import json
import logging

import apprise
import pytest

from notifier import channels
from notifier.channels import FAILED, OUTBOX, SENT, TASK, Message
from notifier.channels._apprise import send_apprise
from notifier.config import Config
from tests.json_sink import JsonSink

TEXT = "Olá, Acme Ltda. A fatura de R$ 1.234,56 vence em 20/11/2026.\n\nPague pelo PIX."


@pytest.fixture
def sink():
    with JsonSink() as s:
        yield s


def config(tmp_path, staff_urls: str | None = None, **social) -> Config:
    env = {"STAFF_URLS": staff_urls} if staff_urls is not None else {}
    return Config(env=env, outbox=tmp_path / "outbox", channels={"social": social} if social else {})


# The operator's explicit opt-in that lets URL handles out, and the local sink's scheme allowed.
LIVE_JSON = {"send": True, "schemes": ["json"]}


def staff_message(text: str = "Excluir os dados da conta A1 e encaminhar a dívida para protesto.") -> Message:
    return Message(channel="staff", recipient="staff", subject="Tarefa: exclusão da conta A1", text=text,
                   meta={"account": "A1", "stage": "deletion_due"})


def social_message(recipient: str, handle: str | None) -> Message:
    meta = {"account": "A1", "stage": "overdue"}
    if handle is not None:
        meta["social_handle"] = handle
    return Message(channel="social", recipient=recipient, subject="Lucanet: fatura em aberto", text=TEXT,
                   meta=meta)


def test_staff_message_goes_to_every_url(tmp_path, sink):
    urls = f"{sink.url('/ops')}, {sink.url('/finance')}"
    staff = channels.build("staff", config(tmp_path, urls))

    result = staff.send(staff_message())

    assert result.status == SENT and result.provider == "apprise"
    assert result.provider_id is None and result.evidence["note"] == "apprise: no provider message id"
    for path in ("/ops", "/finance"):
        [post] = sink.posts_to(path)
        assert post.json["title"] == "Tarefa: exclusão da conta A1"
        assert post.json["message"] == "Excluir os dados da conta A1 e encaminhar a dívida para protesto."
    assert [t["status"] for t in result.evidence["targets"]] == [SENT, SENT]
    assert result.detail.startswith("delivered to 2 of 2")


def test_staff_partial_delivery_is_sent_and_names_the_failed_url(tmp_path, sink):
    sink.statuses["/broken"] = 500
    staff = channels.build("staff", config(tmp_path, f"{sink.url('/ops')} {sink.url('/broken')}"))

    result = staff.send(staff_message())

    assert result.status == SENT
    assert "delivered to 1 of 2" in result.detail and "/broken" in result.detail
    assert [t["status"] for t in result.evidence["targets"]] == [SENT, FAILED]
    assert len(sink.posts_to("/ops")) == 1


def test_staff_failing_everywhere_is_a_temporary_failure(tmp_path, sink):
    sink.statuses["/ops"] = 500
    staff = channels.build("staff", config(tmp_path, sink.url("/ops")))

    result = staff.send(staff_message())

    assert result.status == FAILED and not result.permanent
    assert "error=500" in result.detail


def test_staff_without_urls_writes_the_outbox(tmp_path):
    staff = channels.build("staff", config(tmp_path))

    result = staff.send(staff_message())

    assert result.status == OUTBOX and result.provider == "outbox"
    [path] = (tmp_path / "outbox" / "staff").glob("*.json")
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["subject"] == "Tarefa: exclusão da conta A1"
    assert "protesto" in written["text"] and written["meta"]["account"] == "A1"
    assert "STAFF_URLS not set" in staff.describe()


def test_staff_check_names_bad_urls_without_their_secrets(tmp_path, sink):
    urls = f"{sink.url('/ops')}, tgram://plainsecretword/"
    staff = channels.build("staff", config(tmp_path, urls))

    problems = staff.check()

    assert problems == ["STAFF_URLS: item 2 (tgram://****) is not a URL apprise can send to"]
    assert channels.build("staff", config(tmp_path, sink.url("/ops"))).check(connect=True) == []


def test_staff_describe_masks_passwords(tmp_path, sink):
    url = f"json://ops:pass-w0rd-123@127.0.0.1:{sink.port}/ops"
    described = channels.build("staff", config(tmp_path, url)).describe()

    assert "pass-w0rd-123" not in described
    assert f"json://ops:****@127.0.0.1:{sink.port}/ops" in described


def test_social_url_handle_is_sent_through_apprise(tmp_path, sink):
    handle = f"json://bot:dm-secret-99@127.0.0.1:{sink.port}/dm"
    social = channels.build("social", config(tmp_path, **LIVE_JSON))

    result = social.send(social_message("telegram", handle))

    assert result.status == SENT and result.provider == "apprise"
    [post] = sink.posts_to("/dm")
    assert post.json["title"] == "Lucanet: fatura em aberto"
    assert post.json["message"] == TEXT
    assert result.evidence["network"] == "telegram"
    assert "dm-secret-99" not in json.dumps(result.evidence) + result.detail


def test_social_url_handle_answered_500_is_a_temporary_failure(tmp_path, sink):
    sink.statuses["/dm"] = 500
    social = channels.build("social", config(tmp_path, **LIVE_JSON))

    result = social.send(social_message("telegram", sink.url("/dm")))

    assert result.status == FAILED and not result.permanent
    assert "error=500" in result.detail


def test_social_malformed_url_is_a_permanent_failure_and_stays_secret(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="apprise")
    social = channels.build("social", config(tmp_path, send=True))

    result = social.send(social_message("telegram", "tgram://plainsecretword/"))

    assert result.status == FAILED and result.permanent and result.code == "invalid_url"
    assert "tgram://****" in result.detail and "not a URL apprise can send to" in result.detail
    # apprise logs an unparseable URL, masking only the parts its heuristics find secret-looking
    # (not an all-lowercase word): our filter must have masked the rest.
    assert any("tgram://****" in r.getMessage() for r in caplog.records)
    assert "plainsecretword" not in caplog.text + result.detail + json.dumps(result.evidence)


@pytest.mark.parametrize("meta_handle", ["@acme", None])
def test_instagram_handle_becomes_a_staff_task(tmp_path, sink, meta_handle):
    social = channels.build("social", config(tmp_path, sink.url("/staff")))

    result = social.send(social_message("instagram:@acme", meta_handle))

    [post] = sink.posts_to("/staff")
    task = post.json["message"]
    assert task.startswith("Enviar manualmente pela rede Instagram ao perfil @acme o texto abaixo:")
    assert task.endswith(TEXT)
    assert "@acme" in post.json["title"]
    assert result.status == TASK and result.provider == "staff-task"
    assert "support staff" in result.detail
    assert result.evidence["profile"] == "@acme" and result.evidence["network"] == "instagram"
    assert result.evidence["staff_provider"] == "apprise"


def test_instagram_task_without_staff_urls_lands_in_the_outbox(tmp_path):
    social = channels.build("social", config(tmp_path))

    result = social.send(social_message("instagram:@acme", "@acme"))

    assert result.status == TASK and result.provider == "staff-task"
    assert result.evidence["staff_provider"] == "outbox"
    [path] = (tmp_path / "outbox" / "staff").glob("*.json")
    written = json.loads(path.read_text(encoding="utf-8"))
    assert "ao perfil @acme" in written["text"] and TEXT in written["text"]
    assert written["meta"]["social_profile"] == "@acme"


def test_two_sends_in_a_row_do_not_wait_for_the_throttle(sink, caplog):
    # ntfy keeps apprise's default pacing (5.5 s between requests of one plugin object, announced
    # at DEBUG as "Throttling for ...s"); json:// has none, so it could not show the difference.
    url = sink.url("/alerts", scheme="ntfy")
    assert apprise.Apprise.instantiate(url).request_rate_per_sec > 0
    caplog.set_level(logging.DEBUG, logger="apprise")

    first = send_apprise(url, "Alerta", "primeira")
    second = send_apprise(url, "Alerta", "segunda")

    assert first.ok and second.ok
    assert [p.json["message"] for p in sink.posts] == ["primeira", "segunda"]
    assert [r for r in caplog.records if "Throttling" in r.getMessage()] == []


# --- social URL handles: only allowed schemes, and only when the operator lets them out ----------

@pytest.mark.parametrize("scheme", ["json", "xml", "form", "http", "https"])
def test_a_url_handle_of_a_scheme_not_allowed_is_refused_without_a_request(tmp_path, sink, scheme):
    # Billing data chose this URL: by default it must not make the notifier post to it.
    social = channels.build("social", config(tmp_path, send=True))

    result = social.send(social_message("telegram", f"{scheme}://127.0.0.1:{sink.port}/internal-admin"))

    assert result.status == FAILED and result.permanent and result.code == "scheme_not_allowed"
    assert f"{scheme}://" in result.detail and "channels.social.schemes" in result.detail
    assert sink.posts == [] and not (tmp_path / "outbox").exists()


def test_url_handles_go_to_the_outbox_unless_send_is_true(tmp_path, sink):
    handle = f"json://bot:dm-secret-99@127.0.0.1:{sink.port}/dm"
    sandboxed = channels.build("social", config(tmp_path, schemes=["json"]))

    result = sandboxed.send(social_message("telegram", handle))

    assert result.status == OUTBOX and result.provider == "outbox" and sink.posts == []
    [path] = (tmp_path / "outbox" / "social").glob("*.json")
    written = path.read_text(encoding="utf-8")
    assert "dm-secret-99" not in written and json.loads(written)["text"] == TEXT
    assert not sandboxed.live and "send = false" in sandboxed.describe()
    assert channels.build("social", config(tmp_path, **LIVE_JSON)).live


@pytest.mark.parametrize("options, key", [({"send": "yes"}, "send"), ({"schemes": "tgram"}, "schemes")])
def test_bad_social_options_are_named(tmp_path, options, key):
    with pytest.raises(channels.ChannelError, match=f"channels.social.{key}"):
        channels.build("social", config(tmp_path, **options))


def test_check_names_a_configured_scheme_apprise_does_not_know(tmp_path):
    assert channels.build("social", config(tmp_path)).check() == []  # the defaults are all known
    [problem] = channels.build("social", config(tmp_path, schemes=["tgram", "telegram"])).check()
    assert problem.startswith("channels.social.schemes: 'telegram' is not a scheme apprise knows")
