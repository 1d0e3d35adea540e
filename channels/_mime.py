"""The bytes of a notice e-mail, written once, straight from its parts.

Why not `email.message.EmailMessage`: building one and flattening it parses every header we set
back into a tree and folds it again, which took about 5 ms a message, most of a 10,000-message
cycle's CPU. A notice always has the same shape, so it is written directly, with the standard
library's own encoders for every part that needs encoding (`email.header` for RFC 2047 words,
`binascii.b2a_qp` for quoted-printable, `base64` for images, `email.utils` for addresses and
dates):

    multipart/alternative
      text/plain; charset=utf-8 (quoted-printable)
      text/html; charset=utf-8 (quoted-printable)         or, with inline images:
      multipart/related { text/html, image/png (base64, Content-ID)... }

The result is 7-bit (any relay takes it, no 8BITMIME needed), with CRLF line ends, except a To
header whose mailbox name is not ASCII: it is written in raw UTF-8, for a server offering
SMTPUTF8. The bytes are what the message store keeps and what goes on the wire; readers
(`email.message_from_bytes`, any mail client) read back the same headers and texts.

Boundaries start with "=_", which quoted-printable and base64 can never produce, so no body can
contain one.
"""
from __future__ import annotations

import base64
import binascii
import random
import re
from email.header import Header
from email.utils import formataddr, parseaddr
from functools import lru_cache

CRLF = "\r\n"
MAX_LINE = 78  # RFC 5322's recommended line length; headers longer than this are folded


def header(name: str, value: str) -> str:
    """`Name: value` with its CRLF, folded to 78 characters, non-ASCII text as RFC 2047 words.
    A value holding a line break is refused: it would add headers of its own."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: a header value cannot hold a line break")
    if value.isascii():
        if len(name) + 2 + len(value) <= MAX_LINE:
            return f"{name}: {value}{CRLF}"
        return f"{name}: {Header(value, header_name=name).encode(linesep=CRLF)}{CRLF}"
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode(linesep=CRLF)}{CRLF}"


# A bare address, nothing to parse: `name@domain` without spaces, quotes or brackets.
BARE = re.compile(r'[^\s<>()\[\]\\,;:"@]+@[^\s<>()\[\]\\,;:"@]+')


@lru_cache(maxsize=256)  # From and Reply-To are the same for every message
def address(name: str, value: str) -> str:
    """An address header (`Name <address>` or a bare address): the display name encoded when it
    is not ASCII, the address as it is (raw UTF-8 only for a mailbox name that needs SMTPUTF8)."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: a header value cannot hold a line break")
    if BARE.fullmatch(value):
        return f"{name}: {value}{CRLF}"
    display, addr = parseaddr(value)
    if not addr:
        raise ValueError(f"{name}: not an address: {value!r}")
    return f"{name}: {formataddr((display, addr), 'utf-8') if display else addr}{CRLF}"


def boundary() -> str:
    # Not os.urandom: it gives up the GIL, which costs the cycle's log thread a wait to get it
    # back. A boundary needs no secrecy, and "=_" alone keeps it out of every body.
    return f"=_{random.getrandbits(96):024x}"


def _lines(text: str) -> str:
    # Any line break becomes CRLF, as SMTP wants (and as splitlines() would read the text).
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF)


def text_part(subtype: str, text: str) -> str:
    """A text/SUBTYPE part in UTF-8, quoted-printable: headers, blank line, body ending in CRLF."""
    body = binascii.b2a_qp(_lines(text).encode("utf-8"), istext=True).decode("ascii")
    if not body.endswith(CRLF):
        body += CRLF
    return (f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}{body}")


def image_part(cid: str, data: bytes, mime: str) -> str:
    """An inline image the HTML shows as `cid:CID`, base64 in lines of 76 characters."""
    subtype = mime.partition("/")[2]
    body = base64.encodebytes(data).decode("ascii").replace("\n", CRLF)
    return (f"Content-Type: {mime}{CRLF}"
            f"Content-Transfer-Encoding: base64{CRLF}"
            f"Content-ID: <{cid}>{CRLF}"
            f'Content-Disposition: inline; filename="{cid.partition("@")[0]}.{subtype}"{CRLF}{CRLF}{body}')


def multipart(subtype: str, parts: list[str]) -> str:
    """A multipart/SUBTYPE part holding `parts` (each with its headers)."""
    mark = boundary()
    inner = "".join(f"--{mark}{CRLF}{part}{CRLF}" for part in parts)
    return f'Content-Type: multipart/{subtype}; boundary="{mark}"{CRLF}{CRLF}{inner}--{mark}--{CRLF}'


def body(text: str, html: str | None, images) -> str:
    """The MIME body (its Content-* headers first): the text alone, or text and HTML as
    alternatives, the HTML beside its inline `images` ((cid, data, mime) each)."""
    plain = text_part("plain", text)
    if not html:
        return plain
    rich = text_part("html", html)
    if images:
        rich = multipart("related", [rich, *(image_part(cid, data, mime) for cid, data, mime in images)])
    return multipart("alternative", [plain, rich])


def message(headers: list[str], text: str, html: str | None, images=()) -> bytes:
    """The whole e-mail: `headers` (from `header`/`address`), MIME-Version, then the body."""
    data = "".join(headers) + f"MIME-Version: 1.0{CRLF}" + body(text, html, images)
    # Everything is ASCII but a mailbox name that needs SMTPUTF8 (already in `headers` raw).
    return data.encode("utf-8")
