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
an IMAP mailbox (stdlib `imaplib`; `BOUNCE_IMAP_URL`, `imaps://user:password@host/INBOX`). Every
message read is marked seen, so a run handles only new ones.
"""
from __future__ import annotations

import imaplib
import mailbox
import re
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import unquote, urlsplit

from .attempts import AttemptLog, is_sending, ref_of, scan


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


def from_maildir(path: Path) -> Iterator[bytes]:
    """Each new message of the Maildir at `path`; once the caller has it, it is marked seen and
    moved to cur/, so the next run does not read it again."""
    if not (Path(path) / "new").is_dir():
        raise BounceError(f"{path}: not a Maildir folder (no new/ inside)")
    box = mailbox.Maildir(str(path), factory=None, create=False)
    for key in list(box.iterkeys()):
        msg = box.get_message(key)
        if msg.get_subdir() != "new":
            continue
        yield msg.as_bytes()
        msg.set_subdir("cur")
        msg.add_flag("S")
        box[key] = msg


def from_imap(url: str) -> Iterator[bytes]:
    """Each unseen message of the IMAP mailbox `url` (imaps://user:password@host[:port]/MAILBOX),
    marked seen once the caller has it."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.username or ''}@{parts.hostname or ''}{parts.path}"
    if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
        raise BounceError(f"BOUNCE_IMAP_URL: write imaps://user:password@host/MAILBOX, not {parts.scheme or 'no'}://...")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    try:
        imap = (imaplib.IMAP4_SSL if parts.scheme == "imaps" else imaplib.IMAP4)(parts.hostname, parts.port or
                                                                                 (993 if parts.scheme == "imaps" else 143))
    except OSError as exc:
        raise BounceError(f"BOUNCE_IMAP_URL: cannot connect to {shown}: {exc.strerror or exc}") from None
    try:
        try:
            imap.login(unquote(parts.username), unquote(parts.password or ""))
            imap.select(f'"{folder}"')
            _, found = imap.uid("SEARCH", None, "UNSEEN")
        except imaplib.IMAP4.error as exc:
            raise BounceError(f"BOUNCE_IMAP_URL: {shown}: the server refused: {_no_secret(exc, parts.password)}") from None
        for uid in (found[0] or b"").split():
            _, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in data if isinstance(item, tuple)), None)
            if raw is not None:
                yield raw
                imap.uid("STORE", uid, "+FLAGS", r"(\Seen)")
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _no_secret(exc: Exception, password: str | None) -> str:
    text = str(exc)
    return text.replace(password, "***") if password else text
