"""Finding an account the way support staff know it: by what the customer says on the phone.

A customer gives a piece of the company name ("padaria sao joao", without the accents), a domain,
a CNPJ or CPF as printed on a boleto (dots, slash, dash) or read out digit by digit, an e-mail, or
a phone number with or without +55. `find()` matches all of these against one index of the
accounts; the console calls it at every keystroke and `notifier find` at the command line.

The index is built once per version of the state: a `Store` keeps its parsed accounts until the
file changes (`Snapshot.accounts_table()` is then the same object), and the index is kept
beside that object, so a search is a scan of prepared strings (5,000 accounts: about a
millisecond), never a parse of the state or a walk over the models.
"""
from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Mapping

from notifier.billing.models import Account

LIMIT = 20  # results shown: more means the text is too vague to pick from a list
MIN_DIGITS = 3  # fewer digits in a query match too many numbers to mean one


def folded(text: str) -> str:
    """Lower case without accents: "Ateliê Flor de Lís" -> "atelie flor de lis"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


@dataclass(frozen=True)
class Found:
    """One account that matches, with the field that matched (for the list: "CNPJ", "e-mail"...)."""
    account: Account
    matched: str

    def to_json(self) -> dict:
        """`notifier find --json`, `GET /api/accounts`."""
        a = self.account
        return {"id": a.id, "company": a.company, "document": a.document, "matched": self.matched, "emails": list(a.emails)}


class _Entry:
    __slots__ = ("account", "words", "document", "phones")

    def __init__(self, account: Account):
        self.account = account
        # (field label, folded text): searched as substrings, so "padar" finds "Padaria".
        self.words = (("empresa", folded(account.company)), ("id", folded(account.id)),
                      ("contato", folded(account.contact_name)), ("domínio", folded(account.domain)),
                      *(("e-mail", folded(e)) for e in (*account.emails, account.portal_email or "")),
                      *(("rede social", folded(h)) for _, h in account.social))
        self.document = "".join(c for c in folded(account.document) if c.isalnum())
        phone = digits(account.whatsapp or "")
        # A Brazilian number is given with or without its country code: both forms are indexed.
        self.phones = tuple(p for p in ((phone, phone[2:]) if phone.startswith("55") else (phone,)) if p)


class Index:
    """The accounts of one state version, prepared for `find`."""

    def __init__(self, accounts: Iterable[Account]):
        self.entries = [_Entry(a) for a in accounts]
        self.by_id = {e.account.id: e for e in self.entries}

    def find(self, query: str, limit: int = LIMIT) -> list[Found]:
        """The accounts matching `query`, best first: the exact id, then accounts whose field
        starts with the text, then those that contain it; ties by company name.

        Every word of the query must appear (in any field): "padaria joao" finds "Padaria São
        João". A CNPJ/CPF is matched without its punctuation and a phone number on its digits, so
        "15.881.399/0001-34", "15881399000134" and "+55 (11) 98745-2310" all work."""
        text = folded(query).strip()
        if not text:
            return []
        words = text.split()
        # A CNPJ (also the new alphanumeric one) or CPF without its dots, slash and dash; a phone
        # number as digits without the country code.
        compact = "".join(c for c in text if c.isalnum())
        number = digits(text)
        if len(number) in (12, 13) and number.startswith("55"):
            number = number[2:]
        found: list[tuple[int, str, Found]] = []
        exact = self.by_id.get(query.strip())
        if exact is not None:
            found.append((0, "", Found(exact.account, "id")))
        for e in self.entries:
            if e is exact:
                continue
            hit = _number(e, compact, number) if len(number) >= MIN_DIGITS else None
            hit = hit or _matches(e.words, words)
            if hit is not None:
                label, starts = hit
                found.append((1 if starts else 2, folded(e.account.company), Found(e.account, label)))
        found.sort(key=lambda f: (f[0], f[1]))
        return [f for _, _, f in found[:limit]]


def _number(entry: _Entry, compact: str, number: str) -> tuple[str, bool] | None:
    """(label, whether it starts with the query) when the query is part of the account's CNPJ/CPF
    or, being only digits (and punctuation), of its phone number."""
    if compact in entry.document:
        return "CNPJ/CPF", entry.document.startswith(compact)
    if compact.isdigit():
        for phone in entry.phones:
            if number in phone:
                return "telefone", phone.startswith(number)
    return None


def _matches(fields: tuple[tuple[str, str], ...], words: list[str]) -> tuple[str, bool] | None:
    """(label of the field the first word is in, whether that field starts with it) when every
    word is in some field; else None."""
    first = None
    for word in words:
        hit = next(((label, value) for label, value in fields if word in value), None)
        if hit is None:
            return None
        if first is None:
            first = (hit[0], hit[1].startswith(word) or f" {word}" in hit[1])
    return first


# The index of the last state version searched, held with that version's accounts table: the
# console's requests all search the same version until a write replaces the file.
_last: tuple[Mapping[str, Account], Index] | None = None
_lock = threading.Lock()


def index_of(snapshot) -> Index:
    """The index of `snapshot`'s accounts, built only when the state changed since the last one."""
    global _last
    table = snapshot.accounts_table()
    with _lock:
        if _last is None or _last[0] is not table:
            _last = (table, Index(table.values()))
        return _last[1]


def find(snapshot, query: str, limit: int = LIMIT) -> list[Found]:
    """The accounts of `snapshot` that match `query` (see `Index.find`)."""
    return index_of(snapshot).find(query, limit)
