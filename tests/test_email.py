"""The e-mail channel against a real SMTP server (aiosmtpd) on 127.0.0.1."""
from __future__ import annotations

import socket
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from notifier.channels import ChannelError, Message, build
from notifier.channels.email import WEAK_EVIDENCE, EmailChannel, mask_url, parse_smtp_url
from notifier.config import Config
from smtp_server import RecordingHandler, SmtpServer, make_certificate

SENDER = "Lucanet Cobrança <cobranca+avisos@lucanet.com.br>"


def bill(recipient: str = "joao@cliente.com.br", **changes) -> Message:
    values = dict(
        channel="email",
        recipient=recipient,
        subject="Cobrança: fatura de novembro vence em 20/11/2026",
        text="Olá, João da Silva (São Paulo).\nFatura F-1: R$ 1.234,56, vencimento 20/11/2026.\n",
        html="<p>Olá, <b>João da Silva</b> (São Paulo).</p><p>Fatura F-1: R$ 1.234,56, vencimento 20/11/2026.</p>",
        reply_to="financeiro@lucanet.com.br",
        meta={"account": "ACME-1", "stage": "overdue", "invoices": ["F-1", "F-2"]},
    )
    values.update(changes)
    return Message(**values)


def channel(tmp_path: Path, url: str | None) -> EmailChannel:
    env = {"EMAIL_URL": url} if url else {}
    return build("email", Config(env=env, outbox=tmp_path / "outbox"))


@pytest.fixture
def server():
    with SmtpServer() as srv:
        yield srv


@pytest.fixture
def email(server, tmp_path):
    ch = channel(tmp_path, server.url(SENDER))
    yield ch
    ch.close()


def test_sends_both_parts_with_our_message_id_and_the_queue_id(server, email):
    result = email.send(bill())

    assert result.ok and result.provider == "smtp"
    [got] = server.received
    assert got.rcpt_tos == ["joao@cliente.com.br"]
    assert got.mail_from == "cobranca+avisos@lucanet.com.br"
    msg = got.message
    assert msg["From"].addresses[0].display_name == "Lucanet Cobrança"
    assert msg["From"].addresses[0].addr_spec == "cobranca+avisos@lucanet.com.br"
    assert str(msg["To"]) == "joao@cliente.com.br"
    assert str(msg["Reply-To"]) == "financeiro@lucanet.com.br"
    assert str(msg["Subject"]) == "Cobrança: fatura de novembro vence em 20/11/2026"
    assert msg["Message-ID"] == result.evidence["message_id"]
    assert msg["Message-ID"].endswith("@lucanet.com.br>")
    assert msg["Date"].datetime.utcoffset() is not None
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Notifier-Account"] == "ACME-1"
    assert msg["X-Notifier-Stage"] == "overdue"
    assert msg["X-Notifier-Invoices"] == "F-1, F-2"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "João da Silva (São Paulo)" in plain and "R$ 1.234,56" in plain
    assert "<b>João da Silva</b> (São Paulo)" in html and "20/11/2026" in html
    # 7-bit on the wire: no relay has to support 8BITMIME.
    assert max(got.data) < 128

    assert result.provider_id == "ABC1231"
    assert result.evidence["smtp_reply"] == "250 2.0.0 Ok: queued as ABC1231"
    assert result.evidence["server"] == f"127.0.0.1:{server.port}"


def test_one_connection_serves_several_messages(server, email):
    first = email.send(bill("a@cliente.com.br"))
    second = email.send(bill("b@cliente.com.br"))

    assert first.ok and second.ok
    assert server.connections == 1
    assert [r.rcpt_tos for r in server.received] == [["a@cliente.com.br"], ["b@cliente.com.br"]]
    assert first.evidence["message_id"] != second.evidence["message_id"]
    assert (first.provider_id, second.provider_id) == ("ABC1231", "ABC1232")


@pytest.mark.parametrize("pipelining", [False, True])
def test_where_the_server_offers_pipelining_mail_rcpt_and_data_go_in_one_write(tmp_path, pipelining):
    """Two round trips fewer per message (RFC 2920), only where the server says it can take them;
    the body, dot-stuffed, arrives exactly as composed either way."""
    dotted = bill("b@cliente.com.br", text="Linha um.\n.\n.ponto no início\n..dois\n")
    with SmtpServer(pipelining=pipelining) as server:
        email = channel(tmp_path, server.url(SENDER))
        results = [email.send(bill("a@cliente.com.br")), email.send(dotted), email.send(bill("c@cliente.com.br"))]
        email.close()

    assert [r.ok for r in results] == [True] * 3, [r.detail for r in results]
    assert [r.provider_id for r in results] == ["ABC1231", "ABC1232", "ABC1233"]
    assert server.connections == 1
    assert server.handler.data_with_rcpt == [pipelining] * 3
    assert [r.rcpt_tos for r in server.received] == [["a@cliente.com.br"], ["b@cliente.com.br"], ["c@cliente.com.br"]]
    assert server.received[1].message.get_body(("plain",)).get_content().replace("\r\n", "\n") == dotted.text


def test_reconnects_once_when_the_server_hung_up(server, email):
    assert email.send(bill("a@cliente.com.br")).ok
    server.drop_connections()

    result = email.send(bill("b@cliente.com.br"))

    assert result.ok, result.detail
    assert server.connections == 2
    assert [r.connection for r in server.received] == [1, 2]


@pytest.mark.parametrize("stage, reply, permanent", [
    ("rcpt", "550 5.1.1 <nobody@cliente.com.br>: Recipient address rejected: User unknown", True),
    ("rcpt", "451 4.7.1 <nobody@cliente.com.br>: Greylisted, try again later", False),
    ("data", "554 5.7.1 Message rejected as spam", True),
    ("data", "451 4.3.0 Temporary local problem", False),
])
@pytest.mark.parametrize("pipelining", [False, True])
def test_refusals_are_permanent_on_5xx_and_temporary_on_4xx(tmp_path, stage, reply, permanent, pipelining):
    refusals = {"nobody@cliente.com.br": reply}
    handler = RecordingHandler(**{f"{stage}_replies": refusals})
    with SmtpServer(handler, pipelining=pipelining) as server:
        email = channel(tmp_path, server.url(SENDER))
        refused = email.send(bill("nobody@cliente.com.br"))
        accepted = email.send(bill("joao@cliente.com.br"))
        email.close()

    assert not refused.ok
    assert refused.permanent is permanent
    assert refused.code == reply[:3]
    assert reply[4:] in refused.detail
    # The refusal left the connection usable for the next customer.
    assert accepted.ok and server.connections == 1
    assert [r.rcpt_tos for r in server.received] == [["joao@cliente.com.br"]]


def test_server_down_is_a_temporary_failure(tmp_path):
    # A bound socket that does not listen: connecting to it is refused, and nobody else gets the port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        email = channel(tmp_path, f"smtp://127.0.0.1:{port}/?from=cobranca@lucanet.com.br")
        result = email.send(bill())
        problems = email.check(connect=True)

    assert not result.ok and not result.permanent
    assert f"127.0.0.1:{port}" in result.detail
    assert len(problems) == 1 and f"127.0.0.1:{port}" in problems[0]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_logs_in_with_url_decoded_user_and_password(tmp_path):
    user, password = "cobranca@lucanet.com.br", "p@ss w/rd:%&?"
    with SmtpServer(users={user: password}) as server:
        good = channel(tmp_path, server.url(SENDER, user=user, password=password))
        sent = good.send(bill())
        good.close()
        bad = channel(tmp_path, server.url(SENDER, user=user, password="wrong"))
        refused = bad.send(bill())
        bad.close()

    assert sent.ok
    assert server.handler.logins[0] == (user, password)
    assert len(server.received) == 1
    # A wrong password is our configuration, not the customer's: tried again once it is fixed.
    assert not refused.ok and not refused.permanent and refused.code == "535"
    assert "refused the login" in refused.detail


@pytest.fixture
def trusted_cert(tmp_path, monkeypatch):
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    return cert, key


def test_starttls_comes_before_the_login(tmp_path, trusted_cert):
    with SmtpServer(users={"u": "secret"}, cert=trusted_cert, tls="starttls") as server:
        email = channel(tmp_path, server.url(SENDER, user="u", password="secret", starttls="1"))
        assert email.check(connect=True) == []
        result = email.send(bill())
        email.close()

    assert result.ok, result.detail
    assert server.handler.logins == [("u", "secret"), ("u", "secret")]  # check, then send
    assert [r.tls for r in server.received] == [True]


def test_smtps_speaks_tls_from_the_start(tmp_path, trusted_cert):
    with SmtpServer(cert=trusted_cert, tls="implicit") as server:
        email = channel(tmp_path, server.url(SENDER, scheme="smtps"))
        result = email.send(bill())
        email.close()

    assert result.ok, result.detail
    assert len(server.received) == 1


def test_check_connect_sends_nothing(server, email):
    assert email.check(connect=True) == []
    assert server.connections == 1
    assert server.received == []


def test_outbox_when_no_email_url(tmp_path):
    email = channel(tmp_path, None)
    result = email.send(bill())

    assert result.ok and result.provider == "outbox"
    [path] = (tmp_path / "outbox" / "email").glob("*.eml")
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert str(msg["To"]) == "joao@cliente.com.br"
    assert str(msg["Reply-To"]) == "financeiro@lucanet.com.br"
    assert str(msg["Subject"]).startswith("Cobrança")
    assert msg["Message-ID"] == result.evidence["message_id"]
    assert "São Paulo" in msg.get_body(("plain",)).get_content()
    assert "São Paulo" in msg.get_body(("html",)).get_content()
    assert "outbox" in email.describe() and email.check(connect=True) == []


def test_a_bad_address_fails_permanently_without_a_connection(server, email):
    result = email.send(bill("joao@cliente.com.br\r\nBcc: everyone@example.com"))

    assert not result.ok and result.permanent
    assert server.connections == 0


@pytest.mark.parametrize("url, host, port, starttls, implicit", [
    ("smtp://mail.lucanet.com.br/?from=a@lucanet.com.br", "mail.lucanet.com.br", 25, False, False),
    ("smtp://mail.lucanet.com.br/?from=a@lucanet.com.br&starttls=1", "mail.lucanet.com.br", 587, True, False),
    ("smtps://mail.lucanet.com.br?from=a@lucanet.com.br", "mail.lucanet.com.br", 465, False, True),
    ("smtp://mail.lucanet.com.br:2525/?from=a@lucanet.com.br&starttls=yes", "mail.lucanet.com.br", 2525, True, False),
])
def test_url_defaults(url, host, port, starttls, implicit):
    s = parse_smtp_url(url)
    assert (s.host, s.port, s.starttls, s.implicit_tls) == (host, port, starttls, implicit)


def test_url_decodes_credentials_and_keeps_plus_in_from():
    s = parse_smtp_url("smtp://user%40lucanet.com.br:p%40ss%2Fw@h:587/"
                       "?from=Lucanet Cobrança <cobranca+avisos@lucanet.com.br>&starttls=1&timeout=5")
    assert (s.user, s.password) == ("user@lucanet.com.br", "p@ss/w")
    assert s.sender_address == "cobranca+avisos@lucanet.com.br"
    assert s.sender == "Lucanet Cobrança <cobranca+avisos@lucanet.com.br>"
    assert s.timeout == 5


@pytest.mark.parametrize("url, says", [
    ("smtp://mail.lucanet.com.br:587/?starttls=1", "`from`"),
    ("smtp://mail.lucanet.com.br/?from=Lucanet", "`from`"),
    ("smtp://mail.lucanet.com.br/?from=a@b.com&startls=1", "startls"),
    ("smtps://mail.lucanet.com.br/?from=a@b.com&starttls=1", "starttls"),
    ("smtp://mail.lucanet.com.br/?from=a@b.com&starttls=maybe", "starttls"),
    ("smtp://mail.lucanet.com.br:port/?from=a@b.com", "port"),
    ("smtp:///?from=a@b.com", "host"),
])
def test_bad_urls_are_named(tmp_path, url, says):
    with pytest.raises(ChannelError, match="EMAIL_URL") as info:
        parse_smtp_url(url)
    assert says in str(info.value)
    email = channel(tmp_path, url)
    assert email.check() == [str(info.value)]
    with pytest.raises(ChannelError):
        email.send(bill())


def test_describe_masks_the_password(tmp_path):
    url = "smtp://user:s3cr%40t@mail.lucanet.com.br:587/?from=a@lucanet.com.br&starttls=1"
    described = channel(tmp_path, url).describe()
    assert "s3cr" not in described
    assert described == "smtp://***:***@mail.lucanet.com.br:587/?from=a@lucanet.com.br&starttls=1"
    assert mask_url("sendgrid://apikey:abc@lucanet.com.br") == "sendgrid://***@lucanet.com.br"


def test_password_in_clear_to_a_remote_host_is_a_problem(tmp_path):
    problems = channel(tmp_path, "smtp://u:p@mail.lucanet.com.br/?from=a@lucanet.com.br").check()
    assert len(problems) == 1 and "unencrypted" in problems[0]
    assert channel(tmp_path, "smtp://u:p@mail.lucanet.com.br/?from=a@lucanet.com.br&starttls=1").check() == []


def test_other_schemes_go_through_apprise_with_weaker_evidence(server, tmp_path):
    # apprise's own SMTP plugin (mailto://) stands in for a provider API: same path, local server.
    email = channel(tmp_path, f"mailto://127.0.0.1:{server.port}/?from=cobranca@lucanet.com.br&mode=insecure")
    assert email.check() == []

    result = email.send(bill())

    assert result.ok and result.provider == "apprise"
    assert result.evidence["note"] == WEAK_EVIDENCE
    assert "message_id" not in result.evidence
    [got] = server.received
    assert got.rcpt_tos == ["joao@cliente.com.br"]  # the billing address, added as ?to=
    assert str(got.message["Subject"]) == "Cobrança: fatura de novembro vence em 20/11/2026"


def test_apprise_urls_are_described_with_their_keys_masked(tmp_path):
    email = channel(tmp_path, "sendgrid://SG1234secretkey:cobranca@lucanet.com.br")
    assert email.check() == []
    assert "SG1234secretkey" not in email.describe()
    assert channel(tmp_path, "nosuchservice://x/?from=a@b.com").check() != []


# --- non-ASCII addresses: SMTPUTF8 where offered, IDNA for the domain --------------------------

@pytest.mark.parametrize("pipelining", [False, True])
def test_a_mailbox_name_with_accents_goes_with_smtputf8_where_the_server_offers_it(tmp_path, pipelining):
    with SmtpServer(smtputf8=True, pipelining=pipelining) as server:
        email = channel(tmp_path, server.url(SENDER))
        accented = email.send(bill("joão@exemplo.com.br"))
        plain = email.send(bill("maria@exemplo.com.br"))
        email.close()

    assert accented.ok and plain.ok, (accented.detail, plain.detail)
    assert [r.rcpt_tos for r in server.received] == [["joão@exemplo.com.br"], ["maria@exemplo.com.br"]]
    assert str(server.received[0].message["To"]) == "joão@exemplo.com.br"
    assert server.connections == 1  # the UTF-8 transaction left the connection usable
    assert server.handler.data_with_rcpt == [pipelining] * 2
    assert max(server.received[1].data) < 128  # an ASCII address still gets a 7-bit message


def test_without_smtputf8_that_one_message_fails_permanently_and_the_next_goes(server, email):
    refused = email.send(bill("joão@exemplo.com.br"))
    accepted = email.send(bill("maria@exemplo.com.br"))

    assert refused.status == "failed" and refused.permanent and refused.code == "smtputf8_unsupported"
    assert "SMTPUTF8" in refused.detail and "joão@exemplo.com.br" in refused.detail
    assert accepted.ok
    assert [r.rcpt_tos for r in server.received] == [["maria@exemplo.com.br"]]


def test_an_accented_domain_goes_in_idna_form_to_any_server(server, email):
    result = email.send(bill("joao@açaí.com.br"))

    assert result.ok, result.detail
    [got] = server.received
    assert got.rcpt_tos == ["joao@xn--aa-4iaz.com.br"] and str(got.message["To"]) == "joao@xn--aa-4iaz.com.br"


def test_the_outbox_keeps_an_accented_address_readable(tmp_path):
    result = channel(tmp_path, None).send(bill("joão@exemplo.com.br"))

    assert result.ok
    [path] = (tmp_path / "outbox" / "email").glob("*.eml")
    assert str(message_from_bytes(path.read_bytes(), policy=policy.default)["To"]) == "joão@exemplo.com.br"


def test_what_arrives_reads_back_as_exactly_what_was_rendered(server, email):
    """The e-mail is written by hand (`channels/_mime.py`): a mail reader must get back every
    character of the subject, the text, the HTML and the images, whatever they hold."""
    subject = ("Suspensão em 30/11: fatura de R$ 1.234,56 da hospedagem de um-domínio-bem-comprido.com.br "
               "— pague até amanhã")
    text = ("Olá,\n.\nUma linha com um ponto sozinho acima, espaços no fim   \n\tuma tabulação, a=b, =?x?=,\n"
            "From the start of a line\n" + "uma linha muito comprida sem quebra " * 8 + "\n\n\n"
            "R$\u00a01.234,56 · 🙂 ação\n")
    html = '<p style="color:#1f2937">Olá, <strong>ação</strong> = 100%</p>\n<img src="cid:pix-a@notifier">\n'
    png = bytes(range(256)) * 3
    result = email.send(bill(subject=subject, text=text, html=html, images=(("pix-a@notifier", png, "image/png"),),
                             meta={"account": "Conta Ímpar", "stage": "suspension_warning"}))

    assert result.ok, result.detail
    [got] = server.received
    msg = got.message
    assert str(msg["Subject"]) == subject
    assert msg["X-Notifier-Account"] == "Conta Ímpar"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n") == html
    [image] = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert image.get_content() == png and image["Content-ID"] == "<pix-a@notifier>"
    assert max(got.data) < 128
    assert all(len(line) <= 78 for line in got.data.split(b"\r\n"))
    assert b"\n" not in got.data.replace(b"\r\n", b"")  # CRLF only, as SMTP wants
    assert result.evidence["message_id"] == msg["Message-ID"]


def test_a_header_value_cannot_add_headers(server, email):
    # A renderer bug, not a send failure (the pool logs it as the message's permanent error).
    with pytest.raises(ValueError, match="line break"):
        email.send(bill(reply_to="financeiro@lucanet.com.br\r\nBcc: todos@cliente.com.br"))
    with pytest.raises(ValueError, match="line break"):
        email.send(bill(subject="Fatura\nBcc: todos@cliente.com.br"))
    assert server.received == []


def test_false_and_empty_audit_values_make_no_header(server, email):
    meta = {"account": "ACME-1", "stage": "overdue", "tutorial": False, "invoices": [], "first_time": True}
    assert email.send(bill(meta=meta)).ok
    msg = server.received[0].message
    assert msg["X-Notifier-Tutorial"] is None and msg["X-Notifier-Invoices"] is None
    assert msg["X-Notifier-First-Time"] == "True"


# --- secrets: never echoed, even from a URL that does not parse --------------------------------

SECRET = "Sm7pS3cr3t"


@pytest.mark.parametrize("url", [
    f"smtp://cobranca@lucanet.com.br:{SECRET}/P@ss#w0rd!@127.0.0.1:34191/?from=cobranca@lucanet.com.br",
    f"smtp://cobranca:{SECRET}?x@127.0.0.1:25/?from=cobranca@lucanet.com.br",
    f"smtp://cobranca:{SECRET}@[::1/?from=cobranca@lucanet.com.br",
    f"smtp://{SECRET}:{SECRET}@mail.lucanet.com.br:port/?from=cobranca@lucanet.com.br",
    f"smtp://cobranca:p?starttls=1&{SECRET}@mail.lucanet.com.br/?from=a@b.com",
    f"smtp://u:{SECRET}@",
    f"smtp://u:{SECRET}",
])
def test_a_url_that_does_not_parse_never_shows_its_login(tmp_path, url):
    email = channel(tmp_path, url)
    shown = " ".join(email.check()) + " " + email.describe()
    assert SECRET not in shown and "cobranca:" not in shown, shown
    assert mask_url(url).startswith("smtp://***")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_the_user_name_is_masked_too_it_may_be_the_token(tmp_path):
    token = "8f4c2a1e-postmark-server-token"
    with SmtpServer(users={"someone": "else"}) as server:
        email = channel(tmp_path, server.url(SENDER, user=token, password=token))
        refused = email.send(bill())
        described = email.describe()
        email.close()

    assert not refused.ok and refused.code == "535" and "refused the login" in refused.detail
    assert token not in refused.detail + str(refused.evidence) + described
    assert described.startswith("smtp://***:***@127.0.0.1:")
