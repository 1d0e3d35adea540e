"""E-mail: straight over SMTP with the standard library, or through apprise for provider APIs.

Why not apprise for SMTP: in an audit, what proves that a notice reached the mail server is our own
Message-ID and the server's final reply to DATA (`250 2.0.0 Ok: queued as 4F2A1`), whose queue id
finds the message in the server's log. apprise sets its own Message-ID, returns only success or
failure, and opens a new connection per message.

`EMAIL_URL` says where mail goes:
- `smtp://USER:PASSWORD@HOST:PORT/?from=Name <address>&starttls=1`, or `smtps://...` for implicit
  TLS. User and password are URL-encoded (`@` is `%40`). Port defaults: 25, 587 with starttls,
  465 for smtps. `timeout` (seconds, default 30) is optional.
- any other scheme (`sendgrid://`, `mailgun://`, `ses://`...) is an apprise URL naming no
  recipient: each billing address is added as `?to=`. The evidence is weaker and recorded as such.
- unset: each message is written to the outbox as an `.eml` file.

Nothing this module prints or logs shows the user name or the password of the URL, even when the
URL does not parse (`mask_url`). An address with a non-ASCII domain goes with the domain in IDNA
form; one with a non-ASCII mailbox name (`joão@...`) needs a server that offers SMTPUTF8, and is
a permanent failure of that message otherwise.

One instance keeps one SMTP connection open across sends; it is not thread-safe, so each worker
builds its own.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import re
import smtplib
import ssl
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache
from urllib.parse import quote, unquote, urlsplit

from . import (FAILED, SENT, UNKNOWN, Channel, ChannelError, Message, Result, _apprise, _mime, decode_payload,
               encode_payload, outbox, register)

PROVIDER = "smtp"
DEFAULT_TIMEOUT = 30.0
WEAK_EVIDENCE = "provider API via apprise: no Message-ID / queue id"
_QUERY_KEYS = ("from", "starttls", "timeout")
_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off", "")
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://")
NO_SMTPUTF8 = "smtputf8_unsupported"
# Failures that carry no SMTP reply code are logged with one of these instead.
LOST_DURING_DATA = "lost_during_data"
DISCONNECTED = "disconnected"
BAD_DOMAIN = "invalid_domain"
# Postfix answers "queued as 4F2A1", Exim "id=1rXyZ-000abc-De"; other servers get their whole reply.
_QUEUE_ID = re.compile(r"queued as\s+([^\s;,]+)|\bid=([^\s;,]+)", re.IGNORECASE)
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    user: str | None
    password: str | None
    sender: str  # the From header as written in the URL: "Name <address>"
    sender_address: str
    implicit_tls: bool
    starttls: bool
    timeout: float

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


@lru_cache(maxsize=16)  # read for every message prepared and sent
def parse_smtp_url(url: str) -> SmtpSettings:
    """The settings of an `smtp://` or `smtps://` EMAIL_URL; `ChannelError` names what is wrong."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - the port is checked only when read
    except ValueError as exc:
        # The parser's message may quote the URL: it is not passed on.
        if "port" in str(exc).lower():
            raise ChannelError("EMAIL_URL: the port is not a number from 1 to 65535") from None
        raise ChannelError("EMAIL_URL: not a valid URL (is a [IPv6] host closed? URL-encode / # ? @ "
                           "in the user name and password)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ChannelError(f"EMAIL_URL: {scheme or 'no'} scheme where smtp:// or smtps:// was expected")
    if not parts.hostname:
        raise ChannelError("EMAIL_URL: no host (write smtp://user:password@host:port/?from=...)")
    query = _query(parts.query)
    unknown = sorted(set(query) - set(_QUERY_KEYS))
    if unknown:
        raise ChannelError(f"EMAIL_URL: unknown parameter {unknown[0]!r} (known: {', '.join(_QUERY_KEYS)})")

    starttls = query.get("starttls", "").strip().lower()
    if starttls not in _YES + _NO:
        # The value is not echoed: with an unencoded `?` in the password, it may be the password.
        raise ChannelError("EMAIL_URL: starttls: write starttls=1 or starttls=0")
    starttls_on = starttls in _YES
    implicit_tls = scheme == "smtps"
    if implicit_tls and starttls_on:
        raise ChannelError("EMAIL_URL: smtps:// is already encrypted; drop starttls=1 (or use smtp://)")

    port = parts.port or (465 if implicit_tls else 587 if starttls_on else 25)

    try:
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
        if not timeout > 0:
            raise ValueError
    except ValueError:
        raise ChannelError("EMAIL_URL: timeout: write a number of seconds") from None

    sender = query.get("from", "").strip()
    address = parseaddr(sender)[1]
    if not sender or "@" not in address or not address.rpartition("@")[2]:
        raise ChannelError(
            "EMAIL_URL: `from` is missing or has no valid address: add "
            "?from=Name <address@domain> (the sender of every e-mail; URL-encode & and #)"
        )

    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpSettings(parts.hostname, port, user, password, sender, address, implicit_tls, starttls_on, timeout)


def _query(query: str) -> dict[str, str]:
    # Not parse_qs: it reads "+" as a space, which would break "cobranca+avisos@...".
    pairs = (item.partition("=") for item in query.split("&") if item)
    return {unquote(k).strip().lower(): unquote(v) for k, _, v in pairs}


def mask_url(url: str) -> str:
    """`url` fit for logs and `notifier check`: everything between `//` and the last `@` becomes
    `***`, since user name and password may hold any character (a token is often the user name).

    Meant for a URL that may not parse: a password with an unencoded `/`, `#` or `?` moves the
    parser's idea of where the host starts, so only the last `@` is a safe boundary. Without an
    `@` nothing after the scheme can be trusted to be harmless.
    """
    text = url.strip()
    start, at = text.find("//"), text.rfind("@")
    if start < 0:
        return "(not a URL: no scheme://)"
    return text[:start + 2] + "***" + (text[at:] if at > start else "")


def describe_smtp(settings: SmtpSettings) -> str:
    """The URL an operator wrote, rebuilt from what was understood of it, the login masked."""
    scheme = "smtps" if settings.implicit_tls else "smtp"
    login = "***:***@" if settings.password else "***@" if settings.user else ""
    query = f"from={settings.sender}" + ("&starttls=1" if settings.starttls else "")
    if settings.timeout != DEFAULT_TIMEOUT:
        query += f"&timeout={settings.timeout:g}"
    return f"{scheme}://{login}{settings.server}/?{query}"


def envelope_address(address: str) -> str:
    """`address` as it goes to the server: the domain in IDNA (ASCII) form, the mailbox name as
    it is. `ValueError` when the domain is not a valid internationalized name."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    import idna  # 10 ms (its tables' regexes): only for a domain that needs it
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError as exc:
        raise ValueError(f"the domain of {address!r} is not a valid internationalized name: {exc}") from None


class _Refused(Exception):
    """The server answered a command of the transaction with something other than success."""

    def __init__(self, command: str, code: int, text: bytes | str):
        self.command = command
        self.code = code
        self.text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        super().__init__(f"{command}: {code} {self.text}")


class _LostDuringData(Exception):
    """The connection broke after the message was handed over: the server may have queued it."""


@register
class EmailChannel(Channel):
    name = "email"

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.url = (config.env.get("EMAIL_URL") or "").strip()
        self._smtp: smtplib.SMTP | None = None

    def _mode(self) -> str:
        if not self.url:
            return "outbox"
        found = _SCHEME.match(self.url)
        return "smtp" if found and found[1].lower() in ("smtp", "smtps") else "apprise"

    # --- sending -------------------------------------------------------------------------------

    def prepare(self, message: Message) -> Message:
        """The whole .eml (its Message-ID and Date fixed now), or for an apprise URL the title,
        body and format it is given, as JSON (with the URL masked: the bytes are kept). A message
        to something that is not an address gets no payload: `send` refuses it."""
        address = _address(message)
        if address is None:
            return message
        mode = self._mode()
        if mode == "apprise":
            body, body_format = (message.html, "html") if message.html else (message.text, "text")
            return replace(message, payload=encode_payload({
                "service": _apprise.public_url(self.url), "to": message.recipient.strip(),
                "title": message.subject or "", "body": body, "format": body_format}))
        try:
            message = replace(message, recipient=envelope_address(address))
        except ValueError:
            return message  # `send` refuses it, saying why
        if mode == "outbox":
            company = self.config.company
            sender = f"{company.name} <{company.finance_email}>"
        else:
            sender = parse_smtp_url(self.url).sender
        return replace(message, payload=self.compose(message, sender))

    def send(self, message: Message) -> Result:
        mode = self._mode()
        address = _address(message)
        if address is None:
            return Result(FAILED, mode, code="invalid_address", permanent=True,
                          detail=f"not an e-mail address: {message.recipient!r}")
        if mode == "apprise":
            return self._send_apprise(message if message.payload is not None else self.prepare(message))
        try:
            envelope = envelope_address(address)
        except ValueError as exc:
            return Result(FAILED, mode, code=BAD_DOMAIN, permanent=True, detail=str(exc))
        if message.payload is None:
            message = self.prepare(message)
        found = message_id(message.payload)
        if mode == "outbox":
            return outbox.write_eml(self.config.outbox, address, message.payload, found)
        settings = parse_smtp_url(self.url)
        return self._send_smtp(settings, self.envelope_sender(message, settings.sender_address), envelope,
                               message.payload, found)

    def envelope_sender(self, message: Message, default: str) -> str:
        """MAIL FROM, where bounces return: with `bounce_address` set (`[channels.email]`), a VERP
        address carrying the attempt (`bounces+ATTEMPT@domain`), so a bounce names its attempt."""
        bounce = self.options.get("bounce_address")
        attempt = message.meta.get("attempt_id")
        if not bounce or not attempt:
            return default
        local, _, domain = str(bounce).rpartition("@")
        return f"{local}+{attempt}@{domain}"

    def compose(self, message: Message, sender: str) -> bytes:
        """The e-mail for `message` from `sender` as it goes to the server and the outbox, with a
        Message-ID of our own domain (`_mime`: written once, byte for byte what is stored)."""
        if not message.subject:
            raise ValueError("an e-mail message needs a subject")  # a renderer bug, not a send failure
        headers = [
            _mime.address("From", sender),
            _mime.address("To", message.recipient.strip()),
            _mime.address("Reply-To", message.reply_to or self.config.company.finance_email),
            _mime.header("Subject", message.subject),
            _mime.header("Date", format_datetime((message.date or datetime.now()).astimezone(self.config.tz))),
            _mime.header("Message-ID", make_msgid(domain=_domain(sender))),
            # Tells autoresponders (vacation replies) not to answer a machine.
            _mime.header("Auto-Submitted", "auto-generated"),
            *(_mime.header(name, value) for name, value in _audit_headers(message.meta)),
        ]
        # Quoted-printable keeps the message 7-bit: any relay takes it, no 8BITMIME needed. Inline
        # images (the Pix QR codes) go beside the HTML in a multipart/related part.
        return _mime.message(headers, message.text, message.html, message.images)

    def _send_smtp(self, settings: SmtpSettings, envelope_from: str, recipient: str, data: bytes,
                   message_id: str) -> Result:
        utf8 = not recipient.isascii()
        evidence = {"message_id": message_id, "server": settings.server}
        for attempt in (1, 2):
            try:
                if self._smtp is None:
                    self._smtp = self._connect(settings)
            except (smtplib.SMTPException, OSError) as exc:
                self._drop()
                return _setup_failure(settings, exc)
            if utf8 and not self._smtp.has_extn("smtputf8"):
                return Result(FAILED, PROVIDER, code=NO_SMTPUTF8, permanent=True, evidence=evidence, detail=(
                    f"{settings.server} does not offer SMTPUTF8, which the address {recipient!r} needs "
                    "(a mailbox name with accents): not sent; ask the customer for an ASCII address"))
            try:
                code, reply = self._transaction(self._smtp, envelope_from, recipient, data, utf8)
                break
            except (smtplib.SMTPServerDisconnected, _Refused) as exc:
                refused = isinstance(exc, _Refused)
                if not refused or exc.code == 421:
                    self._drop()
                    # A server closes idle connections (saying 421, or just hanging up): one more
                    # try on a new connection is safe, nothing was handed over yet.
                    if attempt == 1:
                        continue
                if refused:
                    return _refusal(settings, exc)
                return Result(FAILED, PROVIDER, code=DISCONNECTED, evidence=evidence,
                              detail=f"{settings.server} closed the connection: {exc}")
            except _LostDuringData as exc:
                self._drop()
                # Maybe delivered, not refused: a retry could give the customer the same notice twice.
                return Result(UNKNOWN, PROVIDER, code=LOST_DURING_DATA, permanent=True, evidence=evidence,
                              detail=f"connection to {settings.server} lost during DATA ({exc}): the server "
                                     f"may have queued the message; not retried so that it cannot go twice "
                                     f"(look for {message_id} in its log)")
            except OSError as exc:
                self._drop()
                return Result(FAILED, PROVIDER, code=_errno_name(exc), detail=f"{settings.server}: {exc}",
                              evidence=evidence)
        text = f"{code} {reply.decode('utf-8', 'replace')}"
        found = _QUEUE_ID.search(text)
        queue_id = next(g for g in found.groups() if g).rstrip(".") if found else None
        return Result(SENT, PROVIDER, provider_id=queue_id or text, code=str(code), detail=text,
                      evidence={**evidence, "smtp_reply": text})

    def _transaction(self, smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes,
                     utf8: bool = False) -> tuple[int, bytes]:
        """MAIL, RCPT and DATA by hand: smtplib's sendmail() drops the final reply to DATA.

        `utf8` asks for SMTPUTF8 (and 8BITMIME, as the headers are raw UTF-8) for this one
        transaction; smtplib then sends the commands in UTF-8 until we set it back."""
        options = ["SMTPUTF8"] + (["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else []) if utf8 else []
        if smtp.has_extn("pipelining"):
            return _pipelined(smtp, sender, recipient, data, options)
        try:
            _expect("MAIL FROM", smtp.mail(sender, options))
            _expect("RCPT TO", smtp.rcpt(recipient), 251)
        except _Refused as exc:
            if exc.code != 421:
                _reset(smtp)
            raise
        finally:
            smtp.command_encoding = "ascii"
        try:
            code, reply = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused: nothing handed over
            _reset(smtp)
            raise _Refused("DATA", exc.smtp_code, exc.smtp_error) from None
        except OSError as exc:  # hung up or timed out (SMTPServerDisconnected) once the data went
            raise _LostDuringData(str(exc) or "no reply") from None
        _expect("end of DATA", (code, reply))
        return code, reply

    def _connect(self, settings: SmtpSettings) -> smtplib.SMTP:
        if settings.implicit_tls:
            smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=_tls())
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if settings.starttls:
                smtp.starttls(context=_tls())
                smtp.ehlo()
            if settings.user:
                smtp.login(settings.user, settings.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self._drop()

    def _send_apprise(self, message: Message) -> Result:
        # The URL names the provider and sender; apprise's e-mail plugins take the recipient as ?to=.
        sent = decode_payload(message)
        parts = urlsplit(self.url)
        to = "to=" + quote(sent["to"], safe="@")
        target = parts._replace(query=f"{parts.query}&{to}" if parts.query else to).geturl()
        result = _apprise.send_apprise(target, sent["title"], sent["body"], sent["format"])
        return replace(result, evidence={**result.evidence, "note": WEAK_EVIDENCE})

    @property
    def live(self) -> bool:
        return self._mode() != "outbox"

    # --- checking --------------------------------------------------------------------------------

    def check(self, connect: bool = False) -> list[str]:
        mode = self._mode()
        if mode == "outbox":
            return []
        if mode == "apprise":
            if _apprise.parse(self.url) is None:
                return [f"EMAIL_URL: apprise cannot send to {_apprise.masked_invalid(self.url)}: "
                        "check the scheme and the parts that service requires"]
            return []
        try:
            settings = parse_smtp_url(self.url)
        except ChannelError as exc:
            return [str(exc)]
        problems = []
        if settings.user and not (settings.implicit_tls or settings.starttls) and not _is_loopback(settings.host):
            problems.append(f"EMAIL_URL sends the password to {settings.host} unencrypted: "
                            "use smtps:// or add starttls=1")
        if connect:
            try:
                smtp = self._connect(settings)
                try:
                    code, text = smtp.noop()
                    if code != 250:
                        problems.append(f"EMAIL_URL: {settings.server} answered NOOP with {code} "
                                        f"{text.decode('utf-8', 'replace')}")
                    smtp.quit()
                finally:
                    smtp.close()
            except (smtplib.SMTPException, OSError) as exc:
                problems.append(f"EMAIL_URL: {_setup_failure(settings, exc).detail}")
        return problems

    def describe(self) -> str:
        mode = self._mode()
        if mode == "outbox":
            return f"{self.config.outbox / 'email'} (EMAIL_URL is not set)"
        if mode == "apprise":
            # apprise knows which parts of its URLs are secrets (SendGrid's key is the user name).
            return _apprise.public_url(self.url)
        try:
            return describe_smtp(parse_smtp_url(self.url))
        except ChannelError:
            return mask_url(self.url)


def _address(message: Message) -> str | None:
    if _mime.BARE.fullmatch(message.recipient):
        return message.recipient  # the common case, without the cost of parsing it
    address = parseaddr(message.recipient)[1]
    return address if "@" in address and address == message.recipient.strip() else None


def _expect(command: str, reply: tuple[int, bytes], *also_ok: int) -> None:
    code, text = reply
    if code != 250 and code not in also_ok:
        raise _Refused(command, code, text)


def _pipelined(smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes, options: list[str]) -> tuple[int, bytes]:
    """The same transaction where the server offers PIPELINING (RFC 2920; Postfix, Exim and the
    big providers do): MAIL, RCPT and DATA go in one write and their three replies are read after,
    two round trips fewer per message, most of a message's time on a server across the country.
    The refusals mean what they mean one command at a time; the body goes only after all three
    were accepted."""
    params = "".join(" " + option for option in options)
    commands = f"MAIL FROM:{smtplib.quoteaddr(sender)}{params}\r\nRCPT TO:{smtplib.quoteaddr(recipient)}\r\nDATA\r\n"
    smtp.send(commands.encode("utf-8" if options else "ascii"))
    replies = [smtp.getreply() for _ in range(3)]  # a hang-up: SMTPServerDisconnected, nothing handed over
    for command, reply, also_ok in (("MAIL FROM", replies[0], ()), ("RCPT TO", replies[1], (251,))):
        if reply[0] != 250 and reply[0] not in also_ok:
            if replies[2][0] == 354:
                smtp.close()  # a server that awaits a body after a refusal: hang up, the next send reconnects
            elif reply[0] != 421:
                _reset(smtp)
            raise _Refused(command, *reply)
    if replies[2][0] != 354:
        _reset(smtp)
        raise _Refused("DATA", *replies[2])
    body = _DOT.sub(b"..", data)  # a line that starts with a dot gets another (RFC 5321 4.5.2)
    try:
        smtp.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        code, reply = smtp.getreply()
    except OSError as exc:  # hung up or timed out once the data went
        raise _LostDuringData(str(exc) or "no reply") from None
    _expect("end of DATA", (code, reply))
    return code, reply


_DOT = re.compile(rb"(?m)^\.")


def _reset(smtp: smtplib.SMTP) -> None:
    # After a refusal the server still holds the half-open transaction; RSET clears it so the
    # connection serves the next message. If even that fails, the next send reconnects.
    try:
        smtp.rset()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _refusal(settings: SmtpSettings, exc: _Refused) -> Result:
    # A 5xx to RCPT or DATA is about this recipient or message: trying again will not help. A
    # refusal of MAIL FROM is about our account on the server, fixed once for every message.
    permanent = 500 <= exc.code < 600 and exc.command != "MAIL FROM"
    return Result(FAILED, PROVIDER, code=str(exc.code), permanent=permanent,
                  detail=f"{settings.server} refused {exc.command}: {exc.code} {exc.text}",
                  evidence={"server": settings.server, "smtp_reply": f"{exc.code} {exc.text}"})


def _setup_failure(settings: SmtpSettings, exc: Exception) -> Result:
    """Connecting, STARTTLS or login failed. Always temporary: it concerns our configuration or
    the server, not the message, so the notice goes out once someone fixes it."""
    code = getattr(exc, "smtp_code", None)
    text = getattr(exc, "smtp_error", None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # Not the user name: with some providers it is the API token.
        detail = f"{settings.server} refused the login (user name and password of EMAIL_URL): {code} {text}"
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        detail = f"{settings.server} does not offer {exc} (check starttls and the port)"
    elif code is not None:
        detail = f"{settings.server} refused the connection: {code} {text}"
    else:
        detail = f"cannot connect to {settings.server}: {exc}"
    return Result(FAILED, PROVIDER, code=str(code) if code is not None else _errno_name(exc), detail=detail,
                  evidence={"server": settings.server})


@lru_cache(maxsize=64)
def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2]


def message_id(payload: bytes) -> str | None:
    """The Message-ID of an e-mail we composed, read from its header lines (a full parse of the
    headers cost a millisecond a message)."""
    found = _MESSAGE_ID.search(payload, 0, payload.find(b"\r\n\r\n"))
    return found[1].decode("ascii") if found else None


def _errno_name(exc: Exception) -> str:
    """A code for a failure without an SMTP reply: the errno's name (ECONNREFUSED), else its kind."""
    number = getattr(exc, "errno", None)
    if number in errno.errorcode:
        return errno.errorcode[number]
    return "timeout" if isinstance(exc, TimeoutError) else DISCONNECTED


def _audit_headers(meta) -> list[tuple[str, str]]:
    """`meta` as `X-Notifier-*` headers, so a copy of the e-mail alone says which notice it was.
    A false or empty value says nothing and is left out (no `X-Notifier-Tutorial: False`)."""
    headers = []
    for key, value in meta.items():
        words = [w for w in re.split(r"[^A-Za-z0-9]+", str(key)) if w]
        if not words or value is None or value is False:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            value = ", ".join(str(v) for v in value)
        text = " ".join(str(value).split())  # no line breaks: a value cannot add headers
        if text:
            headers.append(("X-Notifier-" + "-".join(w.capitalize() for w in words), text))
    return headers


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _tls() -> ssl.SSLContext:
    """The TLS context of the process's connections: loading the system's CA certificates costs
    a tenth of a second, and a cycle opens a connection per worker (and per reconnect). The
    variables that point OpenSSL at other certificates get a context of their own."""
    return _tls_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@lru_cache(maxsize=4)
def _tls_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return ssl.create_default_context()
