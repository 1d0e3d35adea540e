"""Providers failing in every way we know of, in one day's cycle (issue 10, Faults).

One cycle over accounts whose e-mail or WhatsApp number each meets one fault of a real SMTP server
(aiosmtpd) or of the Twilio-compatible server: SMTP 4xx and 5xx at RCPT and at DATA, the connection
dropped after the message was handed over, a server slower than the client waits; Twilio 429 with
Retry-After, 500, no answer in time, and each permanent error code the channels know (20003,
21211, 21610, 63003, 63016). The cycle finishes; every failure is logged with its code; a
temporary failure is tried at most `[cycle] tries` times per pass and a permanent one once; what
may have reached the customer is never tried again; once the faults are gone the next pass sends
what failed temporarily, so nothing is lost. SMTP refusing connections: tested on its own.
"""
from __future__ import annotations

import signal
import socket
import time
from collections import Counter, defaultdict

import pytest

from tests.cycle_helpers import CONFIG, account, ledger, setup
from tests.fake_twilio import FakeTwilio
from tests.fault_helpers import check_log_against_servers, log_records, start, verify_log_ok, wait_for
from tests.smtp_server import RecordingHandler, SmtpServer

DAY = "2026-11-24"
TRIES = 3  # [cycle] tries, the default
# Twilio's client waits 1 s for an answer (the SMTP client too: EMAIL_URL ?timeout=1).
FAULTY = CONFIG.replace("freeform = true", "freeform = true\ntimeout = 1")

# E-mail: recipient -> (what the server does, the code its failure is logged with, permanent)
# (a connection lost after DATA is not a failure: the server may have the message, `unknown`)
SMTP_FAULTS = {
    "rcpt450@c.com.br": ("rcpt", "450 4.2.0 Mailbox busy", "450", False),
    "rcpt550@c.com.br": ("rcpt", "550 5.1.1 <rcpt550@c.com.br>: Recipient address rejected", "550", True),
    "data451@c.com.br": ("data", "451 4.3.0 Try again later", "451", False),
    "data554@c.com.br": ("data", "554 5.7.1 Message refused", "554", True),
    "dropped@c.com.br": ("hang_up", None, "lost_during_data", True),
    "slow@c.com.br": ("slow", 2.5, "lost_during_data", True),
}
MAYBE_DELIVERED = {"dropped@c.com.br", "slow@c.com.br"}
# WhatsApp: number -> (HTTP status, Twilio code, Retry-After or slow, the code logged, permanent, falls back to SMS)
TWILIO_FAULTS = {
    "+5511900000001": (429, 20429, "1", "20429", False, False),
    "+5511900000002": (500, 20500, None, "20500", False, False),
    "+5511900000003": (None, None, 2.5, "no_answer", True, False),
    "+5511900000004": (401, 20003, None, "20003", True, False),
    "+5511900000005": (400, 21211, None, None, False, True),
    "+5511900000006": (400, 63003, None, None, False, True),
    "+5511900000007": (400, 63016, None, "63016", True, False),
    "+5511900000008": (400, 21610, None, "21610", True, False),
}
FINE_EMAIL, FINE_PHONE = "ok@c.com.br", "+5511900000000"


@pytest.fixture
def servers():
    handler = RecordingHandler(
        rcpt_replies={r: f[1] for r, f in SMTP_FAULTS.items() if f[0] == "rcpt"},
        data_replies={r: f[1] for r, f in SMTP_FAULTS.items() if f[0] == "data"},
        delays={r: f[1] for r, f in SMTP_FAULTS.items() if f[0] == "slow"},
        hang_ups={r for r, f in SMTP_FAULTS.items() if f[0] == "hang_up"})
    with SmtpServer(handler) as smtp, FakeTwilio() as twilio:
        for number, (status, code, extra, *_rest) in TWILIO_FAULTS.items():
            if status is None:
                twilio.slow["whatsapp:" + number] = extra
            else:
                twilio.fail("whatsapp:" + number, status, code, f"Twilio says {code}",
                            retry_after=extra if status == 429 else None)
        yield smtp, twilio


def test_every_provider_fault_is_logged_with_its_code_bounded_and_nothing_is_lost(cli, servers):
    smtp, twilio = servers
    emails = [FINE_EMAIL, *SMTP_FAULTS]
    phones = [FINE_PHONE, *TWILIO_FAULTS]
    setup(cli, [account(f"c{i}", emails=[emails[i]] if i < len(emails) else None,
                        whatsapp=phones[i] if i < len(phones) else None) for i in range(max(len(emails), len(phones)))],
          config=FAULTY)
    cli.env.update(twilio.env(), EMAIL_URL=smtp.url(timeout="1"))
    first = cli.json("run-once", "--date", DAY)  # the cycle finishes, whatever the providers do
    assert first["stopped"] is False
    recs = log_records(cli.workdir)
    claims = {r["id"]: r for r in recs if r["event"] == "sending"}
    failures = [r for r in recs if r["event"] == "failed"]
    assert all(r.get("code") for r in failures), [r["detail"] for r in failures if not r.get("code")]
    tries = Counter((claims[r["ref"]]["channel"], claims[r["ref"]]["recipient"]) for r in failures)
    codes = defaultdict(set)
    for r in failures:
        codes[claims[r["ref"]]["recipient"]].add((r["code"], r["permanent"]))
    unknown = Counter(claims[r["ref"]]["recipient"] for r in recs if r["event"] == "unknown"
                      and r["code"] == "lost_during_data" and "may have queued" in r["detail"])
    assert unknown == {r: 1 for r in MAYBE_DELIVERED}  # once each, never a failure, never tried again
    for recipient, (_, _, code, permanent) in SMTP_FAULTS.items():
        if recipient in MAYBE_DELIVERED:
            assert ("email", recipient) not in tries, recipient
            continue
        assert codes[recipient] == {(code, permanent)}, recipient
        assert tries["email", recipient] == (1 if permanent else TRIES), recipient
    for number, (_, _, _, code, permanent, fallback) in TWILIO_FAULTS.items():
        if fallback:
            assert ("whatsapp", number) not in tries and ("sms", number) not in tries
            continue
        assert codes[number] == {(code, permanent)}, number
        assert tries["whatsapp", number] == (1 if permanent else TRIES), number
    check_log_against_servers(cli.workdir, smtp, twilio)
    # The fallbacks went as SMS; the two messages that may have gone (SMTP hang-up, Twilio timeout)
    # reached their server exactly once.
    assert {f["To"] for f in twilio.forms if not f["To"].startswith("whatsapp:")} == {"+5511900000005", "+5511900000006"}
    assert sum(r.rcpt_tos == ["dropped@c.com.br"] for r in smtp.received) == 1

    # The faults are gone: the next pass (a failed notice waits 15 min) sends what failed
    # temporarily, and nothing else again.
    smtp.handler.rcpt_replies.clear(), smtp.handler.data_replies.clear(), smtp.handler.delays.clear()
    smtp.handler.hang_ups.clear(), twilio.failures.clear(), twilio.slow.clear()
    cli("run-once", "--date", DAY, "--at", "09:15")
    check_log_against_servers(cli.workdir, smtp, twilio)
    got = Counter(r for m in smtp.received for r in m.rcpt_tos)
    temporary_emails = {r for r, f in SMTP_FAULTS.items() if not f[3]}
    everyone_else = {f"financeiro@c{i}.com.br" for i in range(len(emails), len(phones))}
    # (the slow server never queued its message: the client hung up first; it is not tried again either)
    assert set(got) - {"slow@c.com.br"} == {FINE_EMAIL, "dropped@c.com.br"} | temporary_emails | everyone_else
    # The slow Twilio records its message 2.5 s after the client gave up: on a loaded machine that
    # can be after this pass has ended, so wait for it (a few seconds at most).
    deadline = time.monotonic() + 10
    while "whatsapp:+5511900000003" not in {f["To"] for f in twilio.forms} and time.monotonic() < deadline:
        time.sleep(0.1)
    whatsapp = Counter(f["To"] for f in twilio.forms if f["To"].startswith("whatsapp:"))
    temporary_phones = {n for n, f in TWILIO_FAULTS.items() if not f[4] and not f[5]}
    assert {to.removeprefix("whatsapp:") for to in whatsapp} == {FINE_PHONE, "+5511900000003"} | temporary_phones
    rows = {(r["channel"], r["recipient"]): r["status"] for r in ledger(cli.workdir).values() if r["stage"] == "overdue"}
    given_up = {("email", r) for r, f in SMTP_FAULTS.items() if f[3]} | {
        ("whatsapp", n) for n, f in TWILIO_FAULTS.items() if f[4]}
    assert rows == {key: "unknown" if key[1] in MAYBE_DELIVERED else "failed" if key in given_up else "sent" for key in
                    [("email", e) for e in [*emails, *everyone_else]] + [("whatsapp", p) for p in phones]}
    verify_log_ok(cli)


def test_an_smtp_server_refusing_connections_is_retried_a_bounded_number_of_times_then_caught_up(cli):
    with socket.socket() as probe:  # a port nobody listens on, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    setup(cli, [account(f"c{i}") for i in range(3)])
    cli.env["EMAIL_URL"] = f"smtp://127.0.0.1:{port}/?from=Cobranca <c@lucanet.com.br>"
    result = cli.json("run-once", "--date", DAY)
    assert result["counts"]["email"]["retry"] == 3
    failures = [r for r in log_records(cli.workdir) if r["event"] == "failed"]
    assert len(failures) == 3 * TRIES and all(r["code"] and not r["permanent"] for r in failures)
    assert all("Connection refused" in r["detail"] for r in failures)
    with SmtpServer(port=port) as smtp:  # the server is back, for the pass 15 min later
        cli("run-once", "--date", DAY, "--at", "09:15")
        check_log_against_servers(cli.workdir, smtp)
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == [f"financeiro@c{i}.com.br" for i in range(3)]
    verify_log_ok(cli)


def test_a_template_setting_missing_stops_only_its_channel_under_the_daemon_too(cli):
    # The daemon used to refuse to start on any template problem: a WhatsApp setting stopped every e-mail.
    template = '[channels.whatsapp.templates.overdue]\ncontent_sid = "HX0123456789abcdef0123456789abcdef"\n'
    setup(cli, [account("acme", whatsapp="+5511987654321"), account("beta")],
          config=CONFIG.replace("freeform = true", "freeform = false") + template)
    with SmtpServer() as smtp, FakeTwilio() as twilio:
        cli.env.update(twilio.env(), EMAIL_URL=smtp.url())  # no TUTORIAL_URL: WhatsApp cannot link the tutorial
        daemon = start(cli, "daemon", "--date", DAY, stderr=(cli.workdir / "daemon.stderr").open("w"))
        try:
            wait_for(lambda: len(smtp.received) == 2 or daemon.poll() is not None)
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=20) == 0
        assert len(smtp.received) == 2  # the e-mails went
    assert "template problem (see `notifier check`): TUTORIAL_URL" in (cli.workdir / "daemon.stderr").read_text()
