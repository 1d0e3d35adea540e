"""E-mail bounces: real DSN files (RFC 3464, as Postfix writes them) in a real Maildir, for
e-mails really sent through the local SMTP server from a VERP envelope sender."""
from __future__ import annotations

import json
import mailbox
from urllib.parse import quote
from email import message_from_bytes, policy

import pytest

from notifier.log.attempts import AttemptLog
from tests.imap_server import ImapServer, unused_port
from tests.smtp_server import SmtpServer, make_certificate

BILLING = {
    "accounts": [{"id": "acme", "company": "ACME Comércio Ltda", "document": "45.723.174/0001-10",
                  "emails": ["financeiro@acme.com.br", "maria@acme.com.br"]}],
    "invoices": [{"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05"}],
}


def dsn(to: str, recipient: str, action: str, status: str, diagnostic: str, original: str, original_kind: str) -> bytes:
    """A delivery status notification as Postfix sends it (CRLF line ends throughout)."""
    original = original.replace("\r\n", "\n")
    return f"""Return-Path: <>
Delivered-To: {to}
From: MAILER-DAEMON@mx.acme.com.br (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: Tue, 24 Nov 2026 11:05:00 -0300 (BRT)
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="4F2A1.1764000000/mx.acme.com.br"
Message-Id: <20261124140500.4F2A1@mx.acme.com.br>

This is a MIME-encapsulated message.

--4F2A1.1764000000/mx.acme.com.br
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.acme.com.br.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--4F2A1.1764000000/mx.acme.com.br
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.com.br
X-Postfix-Queue-ID: 4F2A1
X-Postfix-Sender: rfc822; {to}
Arrival-Date: Tue, 24 Nov 2026 11:04:58 -0300 (BRT)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mailstore.acme.com.br
Diagnostic-Code: smtp; {diagnostic}

--4F2A1.1764000000/mx.acme.com.br
Content-Description: Undelivered Message
Content-Type: {original_kind}

{original}
--4F2A1.1764000000/mx.acme.com.br--
""".replace("\n", "\r\n").encode()


def send_overdue(cli, tmp_path, maildir: bool) -> dict:
    """The overdue e-mail of acme sent to its two addresses through the local SMTP server, from a
    VERP envelope sender; DSNs read from the Maildir `bounces` or (maildir=False) from IMAP."""
    (tmp_path / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    (tmp_path / "notifier.toml").write_text('[channels.email]\nbounce_address = "bounces@lucanet.com.br"\n'
                                            + ('bounce_maildir = "bounces"\n' if maildir else ""), encoding="utf-8")
    with SmtpServer() as smtp:
        cli.env.update(EMAIL_URL=smtp.url(), NOTIFIER_CONFIG="notifier.toml")
        cli("import", "billing.json", "--date", "2026-11-10")
        cli("send", "acme", "--channel", "email", "--stage", "overdue", "--date", "2026-11-24")
    return {r.rcpt_tos[0]: r for r in smtp.received}


@pytest.fixture
def sent(cli, tmp_path):
    return send_overdue(cli, tmp_path, maildir=True)


def test_dsns_in_a_maildir_become_bounced_records(cli, tmp_path, sent):
    maria, financeiro = sent["maria@acme.com.br"], sent["financeiro@acme.com.br"]
    box = mailbox.Maildir(str(tmp_path / "bounces"), create=True)
    # 1. Hard bounce to the VERP address, quoting only the headers.
    headers = maria.data.split(b"\r\n\r\n", 1)[0].decode()
    box.add(dsn(maria.mail_from, "maria@acme.com.br", "failed", "5.1.1",
                "550 5.1.1 <maria@acme.com.br>: Recipient address rejected: User unknown in virtual mailbox table",
                headers, "text/rfc822-headers"))
    # 2. A delay whose VERP address a relay rewrote: matched by the quoted Message-ID alone.
    original = message_from_bytes(financeiro.data, policy=policy.SMTP)
    del original["X-Notifier-Attempt-Id"]
    box.add(dsn("bounces@lucanet.com.br", "financeiro@acme.com.br", "delayed", "4.2.2",
                "452 4.2.2 Mailbox full", original.as_string(), "message/rfc822"))
    # 3. Not a DSN at all: a vacation reply to the bounce address.
    box.add(b"From: maria@acme.com.br\r\nTo: bounces@lucanet.com.br\r\nSubject: Ferias\r\n\r\nVolto dia 30.\r\n")

    out = cli("read-bounces").stdout
    assert "2 bounce(s) read, 2 recorded, 0 unmatched" in out
    assert "bounced 5.1.1 (hard: staff task to fix the billing e-mail)" in out

    records = list(AttemptLog(tmp_path / "attempts.jsonl").records())
    ids = {r["recipient"]: r["id"] for r in records if r["event"] == "sending"}
    bounced = {r["recipient"]: r for r in records if r["event"] == "bounced"}
    hard, soft = bounced["maria@acme.com.br"], bounced["financeiro@acme.com.br"]
    assert maria.mail_from == f"bounces+{ids['maria@acme.com.br']}@lucanet.com.br"
    assert (hard["ref"], hard["status"], hard["hard"], hard["task"]) == (ids["maria@acme.com.br"], "5.1.1", True,
                                                                         "fix_billing_email")
    assert "User unknown" in hard["detail"] and hard["account"] == "acme"
    assert (soft["ref"], soft["status"], soft["hard"], soft["action"]) == (ids["financeiro@acme.com.br"], "4.2.2",
                                                                           False, "delayed")
    assert "task" not in soft

    # Read once: the messages are now seen, in cur/; a second run finds nothing new.
    assert "0 bounce(s) read" in cli("read-bounces").stdout
    assert sum(r["event"] == "bounced" for r in AttemptLog(tmp_path / "attempts.jsonl").records()) == 2
    listed = [json.loads(x) for x in cli("attempts", "--status", "bounced", "--format", "json").stdout.splitlines()]
    assert sorted(r["recipient"] for r in listed) == ["financeiro@acme.com.br", "maria@acme.com.br"]
    assert "chain and messages: ok" in cli("verify-log").stdout


def test_a_bounce_for_no_attempt_of_ours_is_reported_not_recorded(cli, tmp_path, sent):
    box = mailbox.Maildir(str(tmp_path / "bounces"), create=True)
    box.add(dsn("bounces+" + "f" * 32 + "@lucanet.com.br", "x@y.com.br", "failed", "5.1.1", "550 unknown",
                "Message-ID: <nothing@example.com>\r\n", "text/rfc822-headers"))
    proc = cli("read-bounces")
    assert "1 bounce(s) read, 0 recorded, 1 unmatched" in proc.stdout and "x@y.com.br" in proc.stderr


def test_a_missing_maildir_is_a_clear_error(cli, tmp_path):
    proc = cli("read-bounces", "--maildir", "nowhere", check=False)
    assert proc.returncode == 1 and "nowhere: not a Maildir folder" in proc.stderr and "Traceback" not in proc.stderr


# --- from an IMAP mailbox, through a real IMAP server on 127.0.0.1 -------------------------------

PASSWORD = "Bounce-S3cret/ç!"  # a / and a ç: it must be percent-encoded, and never shown anywhere
VACATION = b"From: maria@acme.com.br\r\nTo: bounces@lucanet.com.br\r\nSubject: Ferias\r\n\r\nVolto dia 30.\r\n"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("imap-cert"))


def dsns_for(sent: dict) -> list[bytes]:
    """A hard bounce to the VERP address and a delay matched by the quoted Message-ID alone."""
    maria, financeiro = sent["maria@acme.com.br"], sent["financeiro@acme.com.br"]
    original = message_from_bytes(financeiro.data, policy=policy.SMTP)
    del original["X-Notifier-Attempt-Id"]
    return [dsn(maria.mail_from, "maria@acme.com.br", "failed", "5.1.1", "550 5.1.1 <maria@acme.com.br>: User unknown",
                maria.data.split(b"\r\n\r\n", 1)[0].decode(), "text/rfc822-headers"),
            dsn("bounces@lucanet.com.br", "financeiro@acme.com.br", "delayed", "4.2.2", "452 4.2.2 Mailbox full",
                original.as_string(), "message/rfc822")]


def bounced(tmp_path) -> list[dict]:
    return [r for r in AttemptLog(tmp_path / "attempts.jsonl").records() if r["event"] == "bounced"]


def no_secret(proc, tmp_path) -> None:
    assert "Traceback" not in proc.stderr
    for text in (proc.stdout, proc.stderr, (tmp_path / "attempts.jsonl").read_text(encoding="utf-8")):
        assert PASSWORD not in text and "S3cret" not in text


def test_dsns_in_an_imap_mailbox_are_recorded_once_and_other_mail_is_left_alone(cli, tmp_path, certificate):
    sent = send_overdue(cli, tmp_path, maildir=False)
    with ImapServer(users={"bounces@lucanet.com.br": PASSWORD}, cert=certificate) as imap:
        # A folder with a non-ASCII name: selected by its modified UTF-7 name (RFC 3501 5.1.3).
        folder = "Devolu&AOcA9Q-es"
        hard, soft = (imap.add(folder, data) for data in dsns_for(sent))
        vacation = imap.add(folder, VACATION)
        old = imap.add(folder, dsn("bounces+" + "e" * 32 + "@lucanet.com.br", "x@y.com.br", "failed", "5.1.1",
                                   "550 unknown", "Message-ID: <old@example.com>\r\n", "text/rfc822-headers"),
                       flags={"\\Seen"})  # handled by an earlier run
        cli.env.update(BOUNCE_IMAP_URL=imap.url("bounces@lucanet.com.br", PASSWORD, "Devoluções"),
                       SSL_CERT_FILE=certificate[0])

        proc = cli("read-bounces")
        no_secret(proc, tmp_path)
        assert "2 bounce(s) read, 2 recorded, 0 unmatched" in proc.stdout
        assert "bounced 5.1.1 (hard: staff task to fix the billing e-mail)" in proc.stdout
        records = {r["recipient"]: r for r in bounced(tmp_path)}
        assert (records["maria@acme.com.br"]["status"], records["maria@acme.com.br"]["hard"]) == ("5.1.1", True)
        assert (records["financeiro@acme.com.br"]["status"], records["financeiro@acme.com.br"]["action"]) == \
            ("4.2.2", "delayed")
        # The DSNs are marked read, nothing is deleted; the vacation reply stays unread, untouched.
        assert [m.uid for m in imap.mailbox(folder)] == [hard.uid, soft.uid, vacation.uid, old.uid]
        assert "\\Seen" in hard.flags and "\\Seen" in soft.flags and vacation.flags == set()
        assert not [c for c in imap.commands if c.startswith("UID STORE") and str(vacation.uid) in c.split()[2]]
        assert not [c for c in imap.commands if "BODY[]" in c and "PEEK" not in c]

        # A second run finds nothing new; one after someone marked the DSNs unread records nothing twice.
        assert "0 bounce(s) read" in cli("read-bounces").stdout
        hard.flags.clear()
        soft.flags.clear()
        assert "2 bounce(s) read, 0 recorded, 0 unmatched" in cli("read-bounces").stdout
        assert len(bounced(tmp_path)) == 2
        assert imap.logins == [("bounces@lucanet.com.br", PASSWORD)] * 3
    assert "chain and messages: ok" in cli("verify-log").stdout


def test_a_wrong_imap_password_is_a_clear_error_that_shows_no_password(cli, tmp_path, certificate):
    sent = send_overdue(cli, tmp_path, maildir=False)
    with ImapServer(users={"bounces": "the-right-one"}, cert=certificate) as imap:
        for data in dsns_for(sent):
            imap.add("INBOX", data)
        cli.env.update(BOUNCE_IMAP_URL=imap.url("bounces", PASSWORD), SSL_CERT_FILE=certificate[0])
        proc = cli("read-bounces", check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"imaps://bounces@127.0.0.1:{imap.port}/INBOX: could not log in" in proc.stderr
        assert "AUTHENTICATIONFAILED" in proc.stderr
        no_secret(proc, tmp_path)
        assert bounced(tmp_path) == [] and all(not m.flags for m in imap.mailbox())


def test_a_missing_imap_mailbox_is_a_clear_error(cli, tmp_path):
    with ImapServer(users={"bounces": PASSWORD}) as imap:
        cli.env.update(BOUNCE_IMAP_URL=imap.url("bounces", PASSWORD, "Bounces"))
        proc = cli("read-bounces", check=False)
    assert proc.returncode == 1 and "could not open the mailbox 'Bounces'" in proc.stderr and "NONEXISTENT" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_an_unreachable_or_silent_imap_server_is_a_clear_error(cli, tmp_path):
    port = unused_port()
    cli.env.update(BOUNCE_IMAP_URL=f"imap://bounces:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/INBOX")
    proc = cli("read-bounces", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"cannot connect to imap://bounces@127.0.0.1:{port}/INBOX: Connection refused" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    with ImapServer(greet=False) as silent:  # accepts the connection and never answers
        cli.env.update(BOUNCE_IMAP_URL=silent.url("bounces", PASSWORD, timeout="1"))
        proc = cli("read-bounces", check=False)
    assert proc.returncode == 1 and "no answer in time (timed out)" in proc.stderr, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_an_imap_server_whose_certificate_is_not_trusted_never_gets_the_password(cli, tmp_path, certificate):
    with ImapServer(users={"bounces": PASSWORD}, cert=certificate) as imap:
        cli.env.update(BOUNCE_IMAP_URL=imap.url("bounces", PASSWORD))
        cli.env.pop("SSL_CERT_FILE", None)
        proc = cli("read-bounces", check=False)
        assert proc.returncode == 1 and "certificate could not be verified (self-signed certificate)" in proc.stderr, \
            proc.stderr
        assert imap.logins == [] and PASSWORD not in proc.stdout + proc.stderr


def test_a_password_that_breaks_the_url_is_not_shown(cli, tmp_path):
    cli.env.update(BOUNCE_IMAP_URL="imaps://bounces:pa/ss:99x@mail.example.com.br/INBOX")
    proc = cli("read-bounces", check=False)
    assert proc.returncode == 1 and "BOUNCE_IMAP_URL:" in proc.stderr and "percent-encode" in proc.stderr
    assert "pa/ss" not in proc.stderr and "99x" not in proc.stderr and "Traceback" not in proc.stderr
