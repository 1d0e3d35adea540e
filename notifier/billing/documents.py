"""Checks of the identifiers a Brazilian customer record carries: CPF/CNPJ, e-mail, phone number.

Each function takes what an operator typed and returns the one canonical form the notifier stores,
or raises `ValueError` with a reason an operator can act on. Canonical forms make the same customer
compare equal whichever way the billing system wrote them.
"""
from __future__ import annotations

import binascii
import re
from functools import lru_cache
from itertools import repeat
from operator import itemgetter, methodcaller, mul


# Bare or with the usual punctuation. Since July 2026 a new CNPJ may have letters in its first 12
# characters (the two check digits stay numeric); older CNPJs are the all-digit case of the same rule.
_CPF_SHAPE = re.compile(r"\d{3}\.\d{3}\.\d{3}-\d{2}|\d{11}", re.ASCII)  # ASCII: "１" is a \d too
_CNPJ_SHAPE = re.compile(r"[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-\d{2}|[0-9A-Z]{12}\d{2}", re.ASCII)
_CPF_WEIGHTS = (tuple(range(10, 1, -1)), tuple(range(11, 1, -1)))
_CNPJ_WEIGHTS = ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2))


def _check_digits_ok(chars: str, weights: tuple[tuple[int, ...], tuple[int, ...]]) -> bool:
    """Receita Federal's modulo-11 check digits. A character counts as its code minus 48, which is
    the digit itself for 0-9 and 17-42 for A-Z (the rule of the alphanumeric CNPJ). A number of one
    repeated character passes the arithmetic but is not issued. (`chars` is ASCII: the shapes
    above let nothing else through; its bytes are the character codes.)"""
    if chars == chars[0] * len(chars):
        return False
    codes = chars.encode("ascii")
    for position, row in zip((-2, -1), weights):
        rest = (sum(map(mul, codes, row)) - 48 * sum(row)) % 11
        if codes[position] != 48 + (0 if rest < 2 else 11 - rest):
            return False
    return True


def normalize_document(value: str) -> str:
    """A CPF or CNPJ, bare or formatted, as `000.000.000-00` or `00.000.000/0000-00`.

    The check digits are computed here rather than with validate_docbr (the tests use it as the
    reference): it is 5x slower, which is noticeable over 50,000 accounts.
    """
    doc = value.strip().upper()
    bare = doc.replace(".", "").replace("-", "").replace("/", "")
    if _CPF_SHAPE.fullmatch(doc):
        if not _check_digits_ok(bare, _CPF_WEIGHTS):
            raise ValueError(f"not a valid CPF (check digits do not match): {value!r}")
        return doc if len(doc) == 14 else f"{bare[:3]}.{bare[3:6]}.{bare[6:9]}-{bare[9:]}"
    if _CNPJ_SHAPE.fullmatch(doc):
        if not _check_digits_ok(bare, _CNPJ_WEIGHTS):
            raise ValueError(f"not a valid CNPJ (check digits do not match): {value!r}")
        return doc if len(doc) == 18 else f"{bare[:2]}.{bare[2:5]}.{bare[5:8]}/{bare[8:12]}-{bare[12:]}"
    raise ValueError(f"not a CPF (000.000.000-00) nor a CNPJ (00.000.000/0000-00): {value!r}")


# A plain ASCII address that email_validator is known to accept unchanged (a test checks this with
# generated addresses). Checking it with a regex instead of the library saves ~30 µs per address,
# a few seconds on a big import; anything else still goes through the library for the verdict.
_SIMPLE_EMAIL = re.compile(
    r"(?=[^@]{1,64}@)[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@(?=.{4,189}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?!(?:arpa|invalid|local|localhost|onion|test)$)[a-z]{2,24}"
)


@lru_cache(maxsize=None)
def _role_mailboxes() -> frozenset[str]:
    # email_validator is imported on first use: its regexes are a twentieth of a second of every
    # process's start, and most commands read addresses already checked at import.
    from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
    return frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def is_plain_email(address: str) -> bool:
    """An address the library would accept and return unchanged, told without calling it.

    The library lower-cases role mailboxes (RFC 2142: "WWW@", "Postmaster@"): those take its path.
    A local part already in lower case is unchanged either way, so most imports never load it.
    """
    local, _, domain = address.partition("@")
    return (bool(_SIMPLE_EMAIL.fullmatch(address)) and "--" not in domain
            and (local == local.lower() or local.lower() not in _role_mailboxes()))


def normalize_email(value: str) -> str:
    """A syntactically valid address (no DNS lookup: an import must not depend on the network),
    in email_validator's normalized form (domain in lower case)."""
    address = value.strip()
    if is_plain_email(address):
        return address
    from email_validator import EmailNotValidError, validate_email
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address: {value!r} ({exc})") from None


# Area codes (DDD) in use in Brazil, from Anatel's numbering plan.
BRAZILIAN_DDDS = frozenset(
    "11 12 13 14 15 16 17 18 19 21 22 24 27 28 31 32 33 34 35 37 38 41 42 43 44 45 46 47 48 49 "
    "51 53 54 55 61 62 63 64 65 66 67 68 69 71 73 74 75 77 79 81 82 83 84 85 86 87 88 89 "
    "91 92 93 94 95 96 97 98 99".split()
)
_E164 = re.compile(r"\+[1-9]\d{7,14}", re.ASCII)
_PHONE_PUNCTUATION = str.maketrans("", "", " -().")


def normalize_phone(value: str) -> str:
    """A phone number in E.164 (`+5511987654321`). Spaces, dots, dashes and parentheses are
    dropped, since billing systems often store `+55 (11) 98765-4321`.

    Brazilian numbers are checked further because Twilio charges for, and then fails, a number
    that cannot exist: a known DDD, then 9 digits starting with 9 (mobile) or 8 digits starting
    with 2–5 (landline; WhatsApp Business runs on landlines too).
    """
    number = value.strip().translate(_PHONE_PUNCTUATION)
    if not _E164.fullmatch(number):
        raise ValueError(f"not a phone number in E.164 format (+5511987654321): {value!r}")
    if number.startswith("+55"):
        ddd, local = number[3:5], number[5:]
        if ddd not in BRAZILIAN_DDDS:
            raise ValueError(f"not a Brazilian area code (DDD) in use: {ddd} in {value!r}")
        if not (len(local) == 9 and local[0] == "9") and not (len(local) == 8 and local[0] in "2345"):
            raise ValueError(
                f"after +55 and the DDD, a Brazilian number has 9 digits starting with 9 (mobile) "
                f"or 8 digits starting with 2-5 (landline): {value!r}"
            )
    return number


def pix_crc16(payload: str) -> str:
    """CRC16-CCITT (polynomial 0x1021, initial value 0xFFFF) of a BR Code as four upper-case hex
    digits: what the Central Bank's Pix manual puts in field 63, computed over everything before
    those four digits (including "6304"). `binascii.crc_hqx` is that CRC, in C: an import checks
    hundreds of thousands of codes."""
    return f"{binascii.crc_hqx(payload.encode('utf-8'), 0xFFFF):04X}"


def pix_code_problem(code: str) -> str | None:
    """Why a Pix copy-and-paste code would fail in the customer's bank app, or None when it is
    sound: it must start with 000201 and end with field 63 (`6304` and its CRC16)."""
    if not code.startswith("000201"):
        return f"not a Pix copy-and-paste code (those start with 000201): {code[:20]!r}"
    if len(code) < 14 or code[-8:-4] != "6304":
        return "not a complete Pix code: it must end with its CRC field, 6304 and four hex digits"
    expected = pix_crc16(code[:-4])
    if code[-4:].upper() != expected:
        return f"the Pix code's check digits (CRC16) do not match: it ends in {code[-4:]!r}, expected {expected!r}"
    return None


_BODY, _TAIL, _CRC_TAG = itemgetter(slice(None, -4)), itemgetter(slice(-4, None)), itemgetter(slice(-8, -4))


def pix_codes_sound(codes: list[str]) -> bool:
    """True when `pix_code_problem` finds nothing wrong with any of `codes`: the same checks, each
    over every code at once with `map`s of C functions (an import checks hundreds of thousands of
    codes; a Python call per code is a noticeable part of it). A test holds the two together."""
    if not all(map(methodcaller("startswith", "000201"), codes)):
        return False
    if min(map(len, codes), default=14) < 14 or not set(map(_CRC_TAG, codes)) <= {"6304"}:
        return False
    expected = map("{:04X}".format, map(binascii.crc_hqx, map(str.encode, map(_BODY, codes)), repeat(0xFFFF)))
    return all(map(str.__eq__, map(str.upper, map(_TAIL, codes)), expected))
