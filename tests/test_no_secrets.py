"""No secret anywhere: every command, with known secrets configured, working and failing.

The SMTP password, the Twilio auth token and the tokens inside apprise URLs (staff, a customer's
social handle) are set to known values; every command runs against working providers, then
against failing ones (wrong password, wrong token, closed ports, a URL apprise cannot parse).
Then every output and every file the notifier left (log, stored messages decompressed, outbox,
state, lock files) is searched for each secret.
"""
from __future__ import annotations

import json
import socket

import pytest

from notifier.log.messagestore import MessageStore
from tests.fake_twilio import FakeTwilio
from tests.json_sink import JsonSink
from tests.smtp_server import SmtpServer

SMTP_PASSWORD = "SmtpPw7731qq"
TWILIO_TOKEN = "TwTok5512zzx9aa"
STAFF_TOKEN = "StaffTok8841kk"
SOCIAL_TOKEN = "SocialTok3390mm"
TG_TOKEN = "123456789:TgBotTok7720pp"
IMAP_PASSWORD = "ImapPw6605rr"
SECRETS = (SMTP_PASSWORD, TWILIO_TOKEN, STAFF_TOKEN, SOCIAL_TOKEN, TG_TOKEN, IMAP_PASSWORD)

CONFIG = """
[channels.whatsapp]
freeform = true
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def billing(sink: JsonSink) -> dict:
    return {
        "accounts": [{"id": "acme", "company": "ACME Comércio Ltda", "contact_name": "Maria Souza",
                      "document": "45.723.174/0001-10", "emails": ["financeiro@acme.com.br"],
                      "whatsapp": "+5511987654321",
                      "social": {"mastodon": f"json://bot:{SOCIAL_TOKEN}@127.0.0.1:{sink.port}/social",
                                 "instagram": "@acme"}}],
        "invoices": [{"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05"}],
    }


DAY = ("--date", "2026-11-24")
# What talks to providers runs in every setup; the rest once, with the working one.
PROVIDER_COMMANDS = [("check",), ("check", "--connect")] + [
    ("send", "acme", "--channel", c, "--stage", "overdue", *DAY) for c in ("email", "whatsapp", "sms", "social", "staff")
] + [("poll-status",), ("read-bounces",)]
OTHER_COMMANDS = [
    ("accounts",), ("show", "acme"), ("plan", *DAY), ("timeline", "acme"), ("preview", "acme", "--stage", "overdue", *DAY),
    ("verify-log",), ("attempts",), ("attempts", "--format", "csv"), ("attempts", "--format", "json"),
    ("audit", "acme", "--html", "audit.html"), ("report", "--month", "2026-11", "--html", "report.html"),
    ("pay", "2026-11-acme", "--date", "2026-11-25"),
]


def commands(setup: str) -> list[tuple[str, ...]]:
    return PROVIDER_COMMANDS + (OTHER_COMMANDS if setup == "working" else [])


@pytest.fixture
def servers():
    with SmtpServer(users={"cobranca": SMTP_PASSWORD}) as smtp, FakeTwilio(auth_token=TWILIO_TOKEN) as twilio, \
            JsonSink() as sink:
        yield smtp, twilio, sink


def setups(smtp, twilio, sink) -> dict[str, dict]:
    working = {
        **twilio.env(), "EMAIL_URL": smtp.url(user="cobranca", password=SMTP_PASSWORD),
        "STAFF_URLS": f"json://staff:{STAFF_TOKEN}@127.0.0.1:{sink.port}/staff",
        "TUTORIAL_URL": "https://www.lucanet.com.br/cobranca",
    }
    port = closed_port()
    failing = {
        **twilio.env(TWILIO_API_BASE=f"http://127.0.0.1:{port}"),
        "EMAIL_URL": f"smtp://cobranca:{SMTP_PASSWORD}@127.0.0.1:{port}/?from=Lucanet <cobranca@lucanet.com.br>",
        "STAFF_URLS": f"json://staff:{STAFF_TOKEN}@127.0.0.1:{port}/staff tgram://{TG_TOKEN}/",
        "TUTORIAL_URL": "https://www.lucanet.com.br/cobranca",
        "BOUNCE_IMAP_URL": f"imap://cobranca:{IMAP_PASSWORD}@127.0.0.1:{port}/INBOX",
    }
    refused = {
        # Wrong values that contain the right ones: a leak of either is found.
        **working, **twilio.env(TWILIO_AUTH_TOKEN=TWILIO_TOKEN + "x"),
        "EMAIL_URL": smtp.url(user="cobranca", password=SMTP_PASSWORD + "x"),
    }
    return {"working": working, "failing": failing, "refused": refused}


def leaks(text: str) -> list[str]:
    found = [s for s in SECRETS if s in text]
    # A token might also show URL-encoded (":" as %3A) or split at the bot id.
    found += [s for s in SECRETS if ":" in s and s.split(":", 1)[1] in text]
    return found


def test_no_command_and_no_file_holds_a_secret(cli, tmp_path, servers):
    smtp, twilio, sink = servers
    (tmp_path / "billing.json").write_text(json.dumps(billing(sink)), encoding="utf-8")
    (tmp_path / "notifier.toml").write_text(CONFIG, encoding="utf-8")
    cli.env["NOTIFIER_CONFIG"] = "notifier.toml"
    ran = 0
    for name, env in reversed(setups(smtp, twilio, sink).items()):
        cli("import", "billing.json", "--date", "2026-11-10", env=env)
        for args in commands(name):
            proc = cli(*args, env=env, check=False)
            assert "Traceback" not in proc.stderr, (name, args, proc.stderr)
            assert not leaks(proc.stdout + proc.stderr), (name, args, leaks(proc.stdout + proc.stderr), proc.stdout, proc.stderr)
            ran += 1
    assert ran == 3 * len(PROVIDER_COMMANDS) + len(OTHER_COMMANDS)
    assert sink.posts_to("/staff") and twilio.forms and smtp.received  # the working setup really sent

    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in ("billing.json", "notifier.toml")]
    assert any(p.name == "attempts.jsonl" for p in files) and any(p.suffix == ".pack" for p in files)
    for path in files:
        found = leaks(path.read_bytes().decode("utf-8", "replace"))
        if path.name.startswith("state.json"):
            # The state keeps the customer's handle as imported, since it is where the message
            # goes: that one token is billing data there, and nowhere else.
            found = [s for s in found if s != SOCIAL_TOKEN]
        assert not found, (path, found)
    store = MessageStore(tmp_path / "attempts.jsonl.messages")
    for pack in store.folder.glob("*.pack"):
        for _, where in store.entries(pack.name):
            assert not leaks(store.get(where).decode("utf-8", "replace")), pack
