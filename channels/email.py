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

One instance keeps one SMTP connection open across sends; it is not thread-safe, so each worker
builds its own.
"""
from __future__ import annotations

import ipaddress
import re
import smtplib
import ssl
from dataclasses import dataclass, replace
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import quote, unquote, urlsplit

from . import FAILED, SENT, Channel, ChannelError, Message, Result, _apprise, outbox, register

PROVIDER = "smtp"
DEFAULT_TIMEOUT = 30.0
WEAK_EVIDENCE = "provider API via apprise: no Message-ID / queue id"
_QUERY_KEYS = ("from", "starttls", "timeout")
_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off", "")
# Postfix answers "queued as 4F2A1", Exim "id=1rXyZ-000abc-De"; other servers get their whole reply.
_QUEUE_ID = re.compile(r"queued as\s+([^\s;,]+)|\bid=([^\s;,]+)", re.IGNORECASE)


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


def parse_smtp_url(url: str) -> SmtpSettings:
    """The settings of an `smtp://` or `smtps://` EMAIL_URL; `ChannelError` names what is wrong."""
    parts = urlsplit(url.strip())
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
        raise ChannelError(f"EMAIL_URL: starttls={starttls!r}: write starttls=1 or starttls=0")
    starttls_on = starttls in _YES
    implicit_tls = scheme == "smtps"
    if implicit_tls and starttls_on:
        raise ChannelError("EMAIL_URL: smtps:// is already encrypted; drop starttls=1 (or use smtp://)")

    try:
        port = parts.port or (465 if implicit_tls else 587 if starttls_on else 25)
    except ValueError:
        raise ChannelError("EMAIL_URL: the port is not a number from 1 to 65535") from None

    try:
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
        if not timeout > 0:
            raise ValueError
    except ValueError:
        raise ChannelError(f"EMAIL_URL: timeout={query['timeout']!r}: write a number of seconds") from None

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
    """The URL with its password replaced by `***`, for logs."""
    parts = urlsplit(url.strip())
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return parts.geturl()
    return parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hostport}").geturl()


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
        return "smtp" if urlsplit(self.url).scheme.lower() in ("smtp", "smtps") else "apprise"

    # --- sending -------------------------------------------------------------------------------

    def send(self, message: Message) -> Result:
        mode = self._mode()
        address = parseaddr(message.recipient)[1]
        if "@" not in address or address != message.recipient.strip():
            return Result(FAILED, mode, code="invalid_address", permanent=True,
                          detail=f"not an e-mail address: {message.recipient!r}")
        if mode == "apprise":
            return self._send_apprise(message)
        if mode == "outbox":
            company = self.config.company
            sender = f"{company.name} <{company.finance_email}>"
            return outbox.write_eml(self.config.outbox, address, self.compose(message, sender))
        settings = parse_smtp_url(self.url)
        return self._send_smtp(settings, address, self.compose(message, settings.sender))

    def compose(self, message: Message, sender: str) -> EmailMessage:
        """The e-mail for `message` from `sender`, with a Message-ID of our own domain."""
        if not message.subject:
            raise ValueError("an e-mail message needs a subject")  # a renderer bug, not a send failure
        email = EmailMessage(policy=policy.SMTP)
        email["From"] = sender
        email["To"] = message.recipient.strip()
        email["Reply-To"] = message.reply_to or self.config.company.finance_email
        email["Subject"] = message.subject
        email["Date"] = format_datetime(datetime.now(self.config.tz))
        email["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2])
        # Tells autoresponders (vacation replies) not to answer a machine.
        email["Auto-Submitted"] = "auto-generated"
        for name, value in _audit_headers(message.meta):
            email[name] = value
        # Quoted-printable keeps the message 7-bit: any relay takes it, no 8BITMIME needed.
        email.set_content(message.text, cte="quoted-printable")
        if message.html:
            email.add_alternative(message.html, subtype="html", cte="quoted-printable")
            # Inline images (the Pix QR codes) go beside the HTML in a multipart/related part.
            html = email.get_payload()[-1]
            for cid, data, mime in message.images:
                maintype, _, subtype = mime.partition("/")
                html.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>",
                                 disposition="inline", filename=f"{cid.partition('@')[0]}.{subtype}")
        return email

    def _send_smtp(self, settings: SmtpSettings, recipient: str, email: EmailMessage) -> Result:
        data = bytes(email)
        evidence = {"message_id": email["Message-ID"], "server": settings.server}
        for attempt in (1, 2):
            try:
                if self._smtp is None:
                    self._smtp = self._connect(settings)
            except (smtplib.SMTPException, OSError) as exc:
                self._drop()
                return _setup_failure(settings, exc)
            try:
                code, reply = self._transaction(self._smtp, settings.sender_address, recipient, data)
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
                return Result(FAILED, PROVIDER, detail=f"{settings.server} closed the connection: {exc}",
                              evidence=evidence)
            except _LostDuringData as exc:
                self._drop()
                return Result(FAILED, PROVIDER, evidence=evidence,
                              detail=f"connection to {settings.server} lost during DATA ({exc}): the server "
                                     f"may have queued the message; look for {email['Message-ID']} in its log")
            except OSError as exc:
                self._drop()
                return Result(FAILED, PROVIDER, detail=f"{settings.server}: {exc}", evidence=evidence)
        text = f"{code} {reply.decode('utf-8', 'replace')}"
        found = _QUEUE_ID.search(text)
        queue_id = next(g for g in found.groups() if g).rstrip(".") if found else None
        return Result(SENT, PROVIDER, provider_id=queue_id or text, code=str(code), detail=text,
                      evidence={**evidence, "smtp_reply": text})

    def _transaction(self, smtp: smtplib.SMTP, sender: str, recipient: str, data: bytes) -> tuple[int, bytes]:
        """MAIL, RCPT and DATA by hand: smtplib's sendmail() drops the final reply to DATA."""
        try:
            _expect("MAIL FROM", smtp.mail(sender))
            _expect("RCPT TO", smtp.rcpt(recipient), 251)
        except _Refused as exc:
            if exc.code != 421:
                _reset(smtp)
            raise
        try:
            code, reply = smtp.data(data)
        except smtplib.SMTPDataError as exc:  # DATA itself refused: nothing handed over
            _reset(smtp)
            raise _Refused("DATA", exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise _LostDuringData(str(exc) or "no reply") from None
        _expect("end of DATA", (code, reply))
        return code, reply

    def _connect(self, settings: SmtpSettings) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if settings.implicit_tls:
            smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if settings.starttls:
                smtp.starttls(context=context)
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
        parts = urlsplit(self.url)
        to = "to=" + quote(message.recipient, safe="@")
        target = parts._replace(query=f"{parts.query}&{to}" if parts.query else to).geturl()
        body, body_format = (message.html, "html") if message.html else (message.text, "text")
        result = _apprise.send_apprise(target, message.subject or "", body, body_format)
        return replace(result, evidence={**result.evidence, "note": WEAK_EVIDENCE})

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
            return f"outbox ({self.config.outbox / 'email'}): EMAIL_URL is not set"
        if mode == "apprise":
            # apprise knows which parts of its URLs are secrets (SendGrid's key is the user name).
            return _apprise.public_url(self.url)
        return mask_url(self.url)


def _expect(command: str, reply: tuple[int, bytes], *also_ok: int) -> None:
    code, text = reply
    if code != 250 and code not in also_ok:
        raise _Refused(command, code, text)


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
        detail = f"{settings.server} refused the login of {settings.user!r}: {code} {text}"
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        detail = f"{settings.server} does not offer {exc} (check starttls and the port)"
    elif code is not None:
        detail = f"{settings.server} refused the connection: {code} {text}"
    else:
        detail = f"cannot connect to {settings.server}: {exc}"
    return Result(FAILED, PROVIDER, code=str(code) if code is not None else None, detail=detail,
                  evidence={"server": settings.server})


def _audit_headers(meta) -> list[tuple[str, str]]:
    """`meta` as `X-Notifier-*` headers, so a copy of the e-mail alone says which notice it was."""
    headers = []
    for key, value in meta.items():
        words = [w for w in re.split(r"[^A-Za-z0-9]+", str(key)) if w]
        if not words or value is None:
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
