"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests, running in a thread of the test process.

It records every message it accepts, counts connections, answers like Postfix
(`250 2.0.0 Ok: queued as ABC1231`), and can be told to refuse given recipients at RCPT or at the
end of DATA, to require a login, to speak TLS (STARTTLS or implicit), or to offer PIPELINING as
Postfix does (aiosmtpd reads pipelined commands one by one, but does not offer it by default).

    with SmtpServer() as server:
        ... EMAIL_URL = server.url(sender="Lucanet <cobranca@lucanet.com.br>") ...
        server.received[0].message["Subject"]
"""
from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    connection: int  # 1 for the first connection the server accepted, 2 for the next...
    tls: bool
    reply: str

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)


class RecordingHandler:
    """aiosmtpd handler. `rcpt_replies` / `data_replies` map a recipient to the reply that refuses
    it (e.g. "550 5.1.1 <x>: Recipient address rejected"); everyone else is accepted."""

    def __init__(self, queue_prefix: str = "ABC123", rcpt_replies=None, data_replies=None, delay: float = 0.0,
                 delays=None, hang_ups=()):
        self.queue_prefix = queue_prefix
        self.delay = delay  # seconds before answering DATA: a slow server
        self.delays = dict(delays or {})  # recipient -> seconds before answering its DATA
        # Recipients whose message the server queues and then hangs up on instead of answering DATA
        # (the connection dropped mid-message: the client cannot know that it went).
        self.hang_ups = set(hang_ups)
        self.rcpt_replies = dict(rcpt_replies or {})
        self.data_replies = dict(data_replies or {})
        self.received: list[Received] = []
        self.logins: list[tuple[str, str]] = []
        self.pipelining = False  # offer PIPELINING (RFC 2920) in the reply to EHLO
        # Per RCPT: whether the client's DATA had already arrived with it (commands pipelined).
        self.data_with_rcpt: list[bool] = []
        self._lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # what aiosmtpd does itself when a handler has no EHLO hook
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.data_with_rcpt.append(b"DATA\r\n" in bytes(server._reader._buffer))
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        delay = max([self.delay] + [self.delays.get(r, 0.0) for r in envelope.rcpt_tos])
        if delay:
            await asyncio.sleep(delay)
        refusal = next((self.data_replies[r] for r in envelope.rcpt_tos if r in self.data_replies), None)
        if refusal:
            return refusal
        if self.hang_ups & set(envelope.rcpt_tos):
            reply = self._record(server, session, envelope)
            server.transport.abort()
            return reply  # never reaches the client
        return self._record(server, session, envelope)

    def _record(self, server, session, envelope) -> str:
        with self._lock:
            reply = f"250 2.0.0 Ok: queued as {self.queue_prefix}{len(self.received) + 1}"
            self.received.append(Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=envelope.original_content,
                connection=server.connection_number,
                tls=session.ssl is not None,
                reply=reply,
            ))
        return reply


class _Controller(Controller):
    """Counts connections, keeps them so a test can drop them, and binds a free port."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.connections: list[SMTP] = []

    def factory(self):
        smtp = super().factory()
        self.connections.append(smtp)
        smtp.connection_number = len(self.connections)
        return smtp

    def _trigger_server(self):
        # Bound to port 0: learn the port the system chose before aiosmtpd's own first connection.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """Context manager around `_Controller`. `users` ({login: password}) makes AUTH required;
    `cert` = (certfile, keyfile) with `tls="starttls"` (STARTTLS required before MAIL and AUTH) or
    `tls="implicit"` (smtps). `smtputf8` offers the SMTPUTF8 extension (mailbox names in UTF-8),
    `pipelining` the PIPELINING one. `port` binds that port (default: a free one the system chooses)."""

    def __init__(self, handler: RecordingHandler | None = None, users=None, cert=None, tls=None,
                 smtputf8: bool = False, pipelining: bool = False, port: int = 0):
        self.handler = handler or RecordingHandler()
        self.handler.pipelining = pipelining
        self.users = dict(users or {})
        kwargs = {"enable_SMTPUTF8": smtputf8}
        if self.users:
            kwargs.update(auth_required=True, authenticator=self._authenticate,
                          auth_require_tls=tls is not None)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*cert)
            if tls == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs.update(ssl_context=context)
        self.controller = _Controller(self.handler, hostname="127.0.0.1", port=port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.handler.logins.append((login, password))
        return AuthResult(success=self.users.get(login) == password, handled=False)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        # The start-up probe is a connection too; tests count only their own.
        self.controller.connections.clear()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def connections(self) -> int:
        return len(self.controller.connections)

    def url(self, sender: str = "Lucanet Cobrança <cobranca@lucanet.com.br>", scheme: str = "smtp",
            user: str | None = None, password: str | None = None, **params: str) -> str:
        """An EMAIL_URL pointing at this server."""
        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        query = "&".join([f"from={quote(sender)}"] + [f"{k}={v}" for k, v in params.items()])
        return f"{scheme}://{auth}{self.host}:{self.port}/?{query}"

    def drop_connections(self) -> None:
        """Hang up on every client, as a server does with an idle connection; returns once closed."""
        async def hang_up():
            for smtp in self.controller.connections:
                if smtp.transport is not None:
                    smtp.transport.abort()
            for _ in range(3):  # let the loop run the close callbacks
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(hang_up(), self.controller.loop).result(timeout=5)


def make_certificate(folder: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 made by the `openssl` command; a client trusts it
    through SSL_CERT_FILE, as it would trust a company's own CA."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)
