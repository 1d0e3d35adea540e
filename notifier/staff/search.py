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


class _Entry:
    __slots__ = ("account", "words", "numbers")

    def __init__(self, account: Account):
        self.account = account
        # (field label, folded text): searched as substrings, so "padar" finds "Padaria".
        self.words = (("id", folded(account.id)), ("empresa", folded(account.company)),
                      ("contato", folded(account.contact_name)), ("domínio", folded(account.domain)),
                      *(("e-mail", folded(e)) for e in (*account.emails, account.portal_email or "")),
                      *(("rede social", folded(h)) for _, h in account.social))
        phone = digits(account.whatsapp or "")
        # A Brazilian number is given with or without its country code: both forms are indexed.
        phones = (phone, phone[2:]) if phone.startswith("55") else (phone,)
        self.numbers = (("CNPJ/CPF", digits(account.document)), *(("telefone", p) for p in phones if p))


class Index:
    """The accounts of one state version, prepared for `find`."""

    def __init__(self, accounts: Iterable[Account]):
        self.entries = [_Entry(a) for a in accounts]
        self.by_id = {e.account.id: e for e in self.entries}

    def find(self, query: str, limit: int = LIMIT) -> list[Found]:
        """The accounts matching `query`, best first: the exact id, then accounts whose field
        starts with the text, then those that contain it; ties by company name.

        Every word of the query must appear (in any field): "padaria joao" finds "Padaria São
        João". A query of mostly digits (a CNPJ, a phone) is matched on the digits alone, so
        "15.881.399/0001-34", "15881399000134" and "+55 (11) 98745-2310" all work."""
        text = folded(query).strip()
        if not text:
            return []
        found: list[tuple[int, str, Found]] = []
        number = digits(text)
        exact = self.by_id.get(query.strip())
        if exact is not None:
            found.append((0, "", Found(exact.account, "id")))
        if len(number) >= MIN_DIGITS and len(number) * 2 >= len(text.replace(" ", "")):
            number = number[2:] if number.startswith("55") and len(number) in (12, 13) else number
            for e in self.entries:
                for label, value in e.numbers:
                    if number in value and e is not exact:
                        found.append((1 if value.startswith(number) else 2, folded(e.account.company),
                                      Found(e.account, label)))
                        break
        else:
            words = text.split()
            for e in self.entries:
                if e is exact:
                    continue
                matched = _matches(e.words, words)
                if matched is not None:
                    label, starts = matched
                    found.append((1 if starts else 2, folded(e.account.company), Found(e.account, label)))
        found.sort(key=lambda f: (f[0], f[1]))
        return [f for _, _, f in found[:limit]]


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
