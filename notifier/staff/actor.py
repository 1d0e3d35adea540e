"""Who does a staff action, and the checks on what staff type in.

The command line builds an `Actor` from `--by`; the web console from the person logged in, their
role and the client's address. Every staff library function takes one and writes it into its log
record (`actor`, and `role`/`client` when set), so the audit names who decided what.

What staff type is written into the attempt log for good, and shown on terminals and in audit
reports later: a name must be one short line, a note printable text. Bidi overrides and
zero-width characters are refused everywhere: they make text read differently from what it is
(a name that shows as "ana" but is not, a note whose end is shown first).
"""
from __future__ import annotations

from dataclasses import dataclass

# U+202A–U+202E (embeddings, overrides), U+2066–U+2069 (isolates), U+200B–U+200F (zero-width
# space, joiners, marks), U+FEFF (zero-width no-break space, the BOM).
INVISIBLE = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0x200B, 0x2010), 0xFEFF))
NAME_LIMIT = 80
NOTE_LIMIT = 2000


class InvalidText(ValueError):
    """Text typed by staff that cannot be stored; the message names the field."""


def invisible_in(text: str) -> str | None:
    """The first bidi control or zero-width character of `text`, as U+XXXX, or None."""
    found = next((c for c in text if c in INVISIBLE), None)
    return None if found is None else f"U+{ord(found):04X}"


def neutralise(text: str) -> str:
    """`text` as a terminal may print it: bidi controls and zero-width characters shown as
    `<U+202E>` (stored text from before they were refused, or from billing data)."""
    if not any(c in INVISIBLE for c in text):
        return text
    return "".join(f"<U+{ord(c):04X}>" if c in INVISIBLE else c for c in text)


def _problem(text: str, limit: int, lines: bool) -> str | None:
    code = invisible_in(text)
    if code:
        return f"contains {code}, a bidi control or zero-width character (it would hide or reorder text)"
    if len(text) > limit:
        return f"{len(text):,} characters; at most {limit:,}"
    for line in text.split("\n") if lines else (text,):
        bad = next((c for c in line if not c.isprintable()), None)
        if bad is not None:
            what = "a line break" if bad == "\n" else f"the control character U+{ord(bad):04X}"
            return f"contains {what}" + ("" if lines else " (one line of printable text)")
    return None


def check_name(text: str, field: str = "name") -> str:
    """`text` without surrounding spaces, if it is a name: not empty, one printable line, at most
    80 characters; else InvalidText naming `field`."""
    text = text.strip()
    problem = "is empty" if not text else _problem(text, NAME_LIMIT, lines=False)
    if problem:
        raise InvalidText(f"{field}: {problem}")
    return text


def check_note(text: str, field: str = "note") -> str:
    """`text` if it is a note: printable (line breaks allowed), at most 2,000 characters."""
    problem = _problem(text, NOTE_LIMIT, lines=True)
    if problem:
        raise InvalidText(f"{field}: {problem}")
    return text


@dataclass(frozen=True)
class Actor:
    """The person behind a staff action: `name` (as `--by`), and for the web console their
    `role` and `client` (the address the request came from). Checked when built."""
    name: str
    role: str = ""
    client: str = ""

    def __post_init__(self):
        object.__setattr__(self, "name", check_name(self.name, "by"))
        for field in ("role", "client"):
            if getattr(self, field):
                object.__setattr__(self, field, check_name(getattr(self, field), field))

    def fields(self) -> dict[str, str]:
        """What a log record carries besides `actor=name`: the role and client, when set."""
        return {k: v for k, v in (("role", self.role), ("client", self.client)) if v}
