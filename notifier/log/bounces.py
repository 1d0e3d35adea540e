"""E-mail bounces: delivery status notifications (RFC 3464) read back into the attempt log.

A bounce is what turns "I never received anything" into "your registered address does not
exist". Each e-mail goes out with a VERP envelope sender, `bounces+ATTEMPT@domain`
(`bounce_address` in [channels.email]), so the mail server's DSN comes back addressed to the very
attempt. A DSN that lost the VERP address (a relay that rewrites it) is matched by the original
message's `X-Notifier-Attempt-Id` or `Message-ID`, which most DSNs quote back.

Each failed or delayed recipient becomes a `bounced` record pointing at its `sending`, with the
DSN's status code (5.1.1), action and diagnostic. A permanent failure (action `failed`, status
5.x.x) is `"hard": true`: a staff task to fix the customer's billing e-mail (`notifier tasks`
lists it). A delay (4.x.x) is recorded as soft, since the server is still trying.

Where DSNs are read: a Maildir folder (stdlib `mailbox`; `bounce_maildir` in [channels.email]) or
an IMAP mailbox (stdlib `imaplib`; `BOUNCE_IMAP_URL`, `imaps://user:password@host/INBOX`). Each DSN
is marked read once its records are on disk, so a run handles only new ones; other mail is left
unread for a person.
"""
from __future__ import annotations

import base64
import imaplib
import mailbox
import re
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from notifier.log.attempts import AttemptLog, is_sending, ref_of, scan


class BounceError(Exception):
    """A bounce source that cannot be read (missing folder, IMAP login refused); no secret in it."""


@dataclass(frozen=True)
class Bounce:
    """One recipient of one DSN, and what ties it to an attempt."""
    recipient: str
    action: str
    status: str
    diagnostic: str
    attempt_id: str | None  # from the VERP address or the quoted X-Notifier-Attempt-Id
    message_id: str | None  # of the original message, as quoted back

    @property
    def hard(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")


def parse_dsn(data: bytes) -> list[Bounce]:
    """The failed or delayed recipients of a DSN; [] for a message that is not one (a vacation
    reply, spam to the bounce address) or that reports only successful deliveries."""
    msg = message_from_bytes(data, policy=policy.default)
    if msg.get_content_type() != "multipart/report" or msg.get_param("report-type") != "delivery-status":
        return []
    status_part = next((p for p in msg.walk() if p.get_content_type() == "message/delivery-status"), None)
    if status_part is None:
        return []
    blocks = status_part.get_payload()
    original = _original_headers(msg)
    quoted = _clean(original.get("X-Notifier-Attempt-Id")) if original is not None else None
    attempt = _verp_attempt(msg) or quoted
    message_id = _clean(original.get("Message-ID")) if original is not None else None
    bounces = []
    for block in blocks[1:]:  # the first block is about the whole message, the rest one per recipient
        action = (_clean(block.get("Action")) or "").lower()
        if action not in ("failed", "delayed"):
            continue
        recipient = (_clean(block.get("Final-Recipient")) or _clean(block.get("Original-Recipient")) or "")
        bounces.append(Bounce(
            recipient=recipient.split(";", 1)[-1].strip(), action=action,
            status=(_clean(block.get("Status")) or "").split()[0] if block.get("Status") else "",
            diagnostic=" ".join((_clean(block.get("Diagnostic-Code")) or "").split()),
            attempt_id=attempt, message_id=message_id,
        ))
    return bounces


_VERP = re.compile(r"\+([0-9a-f]{32})@", re.IGNORECASE)


def _verp_attempt(msg: Message) -> str | None:
    for header in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        for value in msg.get_all(header) or ():
            found = _VERP.search(str(value))
            if found:
                return found[1].lower()
    return None


def _original_headers(msg: Message) -> Message | None:
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            return payload[0] if isinstance(payload, list) and payload else None
        if kind == "text/rfc822-headers":
            return BytesHeaderParser(policy=policy.default).parsebytes(part.get_content().encode("utf-8", "replace"))
    return None


def _clean(value) -> str | None:
    return " ".join(str(value).split()) if value is not None else None


# --- matching and recording ----------------------------------------------------------------------


def record(log: AttemptLog, bounces: Iterable[Bounce], now: datetime) -> tuple[list[dict], list[Bounce]]:
    """Append a `bounced` record per bounce that matches an e-mail attempt not already recorded as
    bounced for that recipient; one fsync. Returns (records appended, bounces matching nothing)."""
    bounces = list(bounces)
    if not bounces:
        return [], []
    wanted_mids = {b.message_id for b in bounces if b.message_id and not b.attempt_id}
    by_mid: dict[str, str] = {}
    if wanted_mids:
        needles = [m.encode() for m in wanted_mids]
        for line in scan(log.path):
            if not is_sending(line.raw) and any(n in line.raw for n in needles) and line.record:
                mid = (line.record.get("evidence") or {}).get("message_id")
                if mid in wanted_mids and line.record.get("ref"):
                    by_mid[mid] = line.record["ref"]
    refs = {b.attempt_id or by_mid.get(b.message_id) for b in bounces} - {None}
    sendings: dict[str, dict] = {}
    done: set[tuple[str, str]] = set()
    for line in scan(log.path):
        if is_sending(line.raw):
            if line.record and line.record.get("id") in refs and line.record.get("channel") == "email":
                sendings[line.record["id"]] = line.record
        elif ref_of(line.raw) in refs and line.record and line.record.get("event") == "bounced":
            done.add((line.record["ref"], line.record.get("status", "")))
    notes, unmatched = [], []
    for b in bounces:
        ref = b.attempt_id or by_mid.get(b.message_id)
        sending = sendings.get(ref)
        if sending is None:
            unmatched.append(b)
            continue
        if (ref, b.status) in done:
            continue
        done.add((ref, b.status))
        fields = {"ref": ref, "account": sending.get("account"), "channel": "email",
                  "recipient": sending.get("recipient"), "dsn_recipient": b.recipient, "action": b.action,
                  "status": b.status, "code": b.status, "detail": b.diagnostic, "hard": b.hard,
                  "invoices": sending.get("invoices")}
        if b.hard:
            fields["task"] = "fix_billing_email"
        notes.append((now, "bounced", fields, "daemon"))
    log.note_many(notes)
    return [{"event": e, **f} for _, e, f, _ in notes], unmatched


# --- sources -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one `read_bounces` run did: the bounces read, the records appended, the bounces that
    matched no attempt of ours."""
    bounces: list[Bounce]
    records: list[dict]
    unmatched: list[Bounce]


def read_bounces(source: "MaildirSource | ImapSource", log: AttemptLog, now: datetime) -> Outcome:
    """Read the source's new messages, record the bounces of the DSNs among them, and only then
    mark those DSNs read: a run that fails before its records are on disk leaves them new for the
    next run (which cannot record one twice: `record` skips what the log already has). Anything
    that is not a DSN (a vacation reply, a person writing to the bounce address) is left as it
    was, unread, for a person to see."""
    with source:
        handled, bounces = [], []
        for key, data in source.messages():
            if is_dsn(data):
                handled.append(key)
                bounces.extend(parse_dsn(data))
        records, unmatched = record(log, bounces, now)
        source.mark_read(handled)
    return Outcome(bounces, records, unmatched)


def is_dsn(data: bytes) -> bool:
    """Whether a message is a delivery status notification (RFC 3464), from its header alone."""
    header = BytesHeaderParser(policy=policy.default).parsebytes(data)
    return header.get_content_type() == "multipart/report" and header.get_param("report-type") == "delivery-status"


class MaildirSource:
    """The new messages of a Maildir folder (stdlib `mailbox`); a message marked read is moved to
    cur/ with the Seen flag, as a mail client does."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.box: mailbox.Maildir | None = None

    def __enter__(self) -> "MaildirSource":
        try:
            if not (self.path / "new").is_dir():
                raise BounceError(f"{self.path}: not a Maildir folder (no new/ inside)")
            self.box = mailbox.Maildir(str(self.path), factory=None, create=False)
        except OSError as exc:  # a name the system refuses (too long), a folder we may not read
            raise BounceError(f"{str(self.path)[:200]}: cannot open the Maildir folder: {exc.strerror or exc}") from None
        return self

    def __exit__(self, *exc) -> None:
        self.box = None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key in list(self.box.iterkeys()):
            msg = self.box.get_message(key)
            if msg.get_subdir() == "new":
                yield key, msg.as_bytes()

    def mark_read(self, keys: list[str]) -> None:
        for key in keys:
            msg = self.box.get_message(key)
            msg.set_subdir("cur")
            msg.add_flag("S")
            self.box[key] = msg


DEFAULT_IMAP_TIMEOUT = 30.0
UID_BATCH = 500  # UIDs per STORE command: keeps each command line short


class ImapSource:
    """The unseen messages of an IMAP mailbox (stdlib `imaplib`), from `BOUNCE_IMAP_URL`:
    `imaps://user:password@host[:port]/MAILBOX[?timeout=SECONDS]` (imap:// without TLS, for a
    server on the same machine). The server's certificate is checked against the system's CAs
    (imaplib alone would not check it, and the password would go to whoever answers). Headers are
    fetched first and only DSNs are fetched whole, with BODY.PEEK, so nothing is marked seen
    until `mark_read`. No error message carries the password."""

    def __init__(self, url: str):
        self.settings = parse_imap_url(url)
        self.imap: imaplib.IMAP4 | None = None

    def __enter__(self) -> "ImapSource":
        s = self.settings
        try:
            if s.tls:
                self.imap = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=ssl.create_default_context(),
                                              timeout=s.timeout)
            else:
                self.imap = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise BounceError(f"BOUNCE_IMAP_URL: cannot connect to {s.shown}: {_reason(exc, s.password)}") from None
        try:
            self._command("log in", self._log_in)
            self._command(f"open the mailbox {s.mailbox!r}", lambda: self.imap.select(_quote_mailbox(s.mailbox)))
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._close()

    def _log_in(self):
        """SASL PLAIN when the server offers it (RFC 4616: the password in UTF-8, so "ç" works),
        else LOGIN (ASCII only)."""
        s = self.settings
        if "AUTH=PLAIN" in self.imap.capabilities:
            secret = f"\0{s.user}\0{s.password}".encode("utf-8")
            return self.imap.authenticate("PLAIN", lambda _: secret)
        return self.imap.login(s.user, s.password)

    def messages(self) -> Iterator[tuple[bytes, bytes]]:
        _, found = self._command("search the mailbox", lambda: self.imap.uid("SEARCH", None, "UNSEEN"))
        uids = (found[0] or b"").split() if found else []
        for batch in _batches(uids, UID_BATCH):
            _, data = self._command("read the headers", lambda: self.imap.uid("FETCH", b",".join(batch),
                                                                              "(UID BODY.PEEK[HEADER])"))
            for uid, header in _fetched(data):
                if not is_dsn(header):
                    continue
                _, whole = self._command("read a message", lambda: self.imap.uid("FETCH", uid, "(UID BODY.PEEK[])"))
                for _, raw in _fetched(whole):
                    yield uid, raw

    def mark_read(self, uids: list[bytes]) -> None:
        for batch in _batches(uids, UID_BATCH):
            self._command("mark the bounces read", lambda: self.imap.uid("STORE", b",".join(batch), "+FLAGS.SILENT",
                                                                          r"(\Seen)"))

    def _command(self, what: str, call):
        """Run one IMAP exchange; a refusal, a lost connection or a timeout is a BounceError
        naming what was being done, never the password."""
        try:
            typ, data = call()
        except imaplib.IMAP4.error as exc:
            raise BounceError(f"BOUNCE_IMAP_URL: {self.settings.shown}: could not {what}: the server said: "
                              f"{_reason(exc, self.settings.password)}") from None
        except (OSError, UnicodeError) as exc:
            raise BounceError(f"BOUNCE_IMAP_URL: {self.settings.shown}: could not {what}: "
                              f"{_reason(exc, self.settings.password)}") from None
        if typ != "OK":  # imaplib raises on BAD only; NO is a refusal too
            raise BounceError(f"BOUNCE_IMAP_URL: {self.settings.shown}: could not {what}: the server said: "
                              f"{typ} {_text(data, self.settings.password)}")
        return typ, data

    def _close(self) -> None:
        if self.imap is None:
            return
        try:
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
        self.imap = None


@dataclass(frozen=True)
class ImapSettings:
    tls: bool
    host: str
    port: int
    user: str
    password: str
    mailbox: str
    timeout: float

    @property
    def shown(self) -> str:
        """The URL as it may be shown: without the password."""
        return f"{'imaps' if self.tls else 'imap'}://{self.user}@{self.host}:{self.port}/{self.mailbox}"


def parse_imap_url(url: str) -> ImapSettings:
    """BOUNCE_IMAP_URL as settings; a URL that does not parse is a BounceError that quotes none
    of it (a password with an unescaped / or @ would otherwise show in the error)."""
    form = "write imaps://user:password@host[:port]/MAILBOX (percent-encode / ? # @ : in the password)"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise BounceError(f"BOUNCE_IMAP_URL: the port is not a number: {form}") from None
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise BounceError(f"BOUNCE_IMAP_URL: {form}")
    timeout = DEFAULT_IMAP_TIMEOUT
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "timeout":
            raise BounceError(f"BOUNCE_IMAP_URL: unknown parameter {key!r} (only timeout=SECONDS)")
        try:
            timeout = float(value)
        except ValueError:
            timeout = 0
        if not timeout > 0:
            raise BounceError("BOUNCE_IMAP_URL: timeout: write a number of seconds")
    tls = parts.scheme == "imaps"
    return ImapSettings(tls, parts.hostname, port or (993 if tls else 143), unquote(parts.username),
                        unquote(parts.password or ""), unquote(parts.path.lstrip("/")) or "INBOX", timeout)


def _quote_mailbox(name: str) -> str:
    """A mailbox name as IMAP wants it: modified UTF-7 (RFC 3501 5.1.3, so "Devoluções" works),
    quoted."""
    out, run = [], []

    def flush():
        if run:
            packed = base64.b64encode("".join(run).encode("utf-16-be")).decode("ascii").rstrip("=")
            out.append("&" + packed.replace("/", ",") + "-")
            run.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    return '"' + "".join(out).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fetched(data) -> Iterator[tuple[bytes, bytes]]:
    """(UID, bytes) of each message in an imaplib FETCH answer."""
    for item in data or ():
        if isinstance(item, tuple) and len(item) == 2:
            uid = re.search(rb"\bUID (\d+)", item[0])
            if uid:
                yield uid[1], item[1]


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _text(data, password: str) -> str:
    """What the server said (imaplib's list of bytes) as plain text, the password masked."""
    parts = [d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d) for d in (data or ()) if d]
    return _mask(" ".join(parts) or "no reason given", password)


def _reason(exc: Exception, password: str) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLCertVerificationError):
        text = f"the server's certificate could not be verified ({exc.verify_message or exc.reason})"
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        text = "no answer in time (timed out)"
    elif isinstance(exc, UnicodeError):
        text = "the user name, password and mailbox must be ASCII for IMAP LOGIN"
    literal = re.fullmatch(r"b(['\"])(.*)\1", text, re.DOTALL)  # imaplib puts the server's bytes in as repr
    if literal:
        text = literal[2]
    return _mask(text, password)


def _mask(text: str, password: str) -> str:
    if not password:
        return text
    for form in {password, quote(password, safe=""), password.replace("\\", "\\\\").replace('"', '\\"')}:
        text = text.replace(form, "***")
    return text
