"""Finding an account the way support staff know it: by what the customer says on the phone.

A customer gives a piece of the company name ("padaria sao joao", without the accents), a domain,
a CNPJ or CPF as printed on a boleto (dots, slash, dash) or read out digit by digit, an e-mail, or
a phone number with or without +55. `find()` matches all of these against one index of the
accounts; the console calls it at every keystroke and `notifier find` at the command line.

The index holds the searched fields of every account, folded, as one string (and one for the
CNPJs/CPFs, one for the phones), in the order results are listed: a word is found by `str.find` in
C over all accounts at once, and a vague word stops after the first 20 accounts that start with
it. At 50,000 accounts a search takes milliseconds and the index about 20 MB (an object per field
took 60 MB and a Python loop over every account, 100 ms and more).

It is built once per version of the state's accounts: a `Store` keeps its parsed accounts until
the file changes (`Snapshot.accounts_table()` is then the same object), and when another process
(the cycle) or an action wrote without changing what a search sees of any account, the index is
kept (the accounts the write replaced compared, milliseconds, instead of seconds to build it
again).
"""
from __future__ import annotations

import heapq
import operator
import threading
import unicodedata
from array import array
from bisect import bisect_right
from itertools import compress
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

from notifier.billing.models import Account

LIMIT = 20  # results shown: more means the text is too vague to pick from a list
MIN_DIGITS = 3  # fewer digits in a query match too many numbers to mean one
SAMPLES = 16  # slices of the index's text that estimate how common a word is


def folded(text: str) -> str:
    """Lower case without accents: "Ateliê Flor de Lís" -> "atelie flor de lis"."""
    if text.isascii():
        return text.lower()  # what casefold and NFKD make of ASCII, without their cost
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


# Between two fields of an account in the index's text, and between two accounts: characters no
# folded field holds (a field's own are made spaces) and no query word either, so a word found in
# the text lies inside one field of one account.
FIELD, RECORD = "\x1f", "\x1e"
_SEPARATORS = str.maketrans({FIELD: " ", RECORD: " "})


def searched(account: Account) -> tuple[tuple[str, ...], tuple[str, ...], str, tuple[str, ...]]:
    """What the search sees of an account: the labels and folded texts of its fields, in the order
    a word is looked for in them; its CNPJ/CPF without punctuation; its phone number as digits,
    with and without the country code (a Brazilian number is given either way)."""
    fields = (("empresa", account.company), ("id", account.id), ("contato", account.contact_name),
              ("domínio", account.domain), *(("e-mail", e) for e in (*account.emails, account.portal_email or "")),
              *(("rede social", h) for _, h in account.social))
    texts = tuple(folded(t).translate(_SEPARATORS) for _, t in fields)
    document = "".join(c for c in folded(account.document) if c.isalnum())
    phone = digits(account.whatsapp or "")
    phones = tuple(p for p in ((phone, phone[2:]) if phone.startswith("55") else (phone,)) if p)
    return tuple(label for label, _ in fields), texts, document, phones


class _Text:
    """The texts of many accounts as one string, each account's between two RECORD marks: a
    substring is found in C (`str.find`) over all of them at once, and
    the account holding a place found is a bisection of the accounts' starts. At 50,000 accounts
    this is a few megabytes, where an object per field was sixty."""

    def __init__(self, parts: list[str]):
        self.text = RECORD + RECORD.join(parts) + RECORD
        self.starts = array("q")
        at = 1
        for part in parts:
            self.starts.append(at)
            at += len(part) + 1
        self.starts.append(at)  # the end of the last account's text, after its RECORD: a sentinel

    def holders(self, word: str, also: tuple[str, ...] = ()) -> Iterator[int]:
        """The accounts (their places) whose text holds `word`, and every word of `also` too, each
        once, in order."""
        text, starts, find = self.text, self.starts, self.text.find
        at = find(word)
        while at >= 0:
            n = bisect_right(starts, at) - 1
            start, end = starts[n], starts[n + 1]
            for other in also:
                if find(other, start, end - 1) < 0:
                    break
            else:
                yield n
            at = find(word, end)  # on from the next account's text

    def estimate(self, word: str) -> int:
        """About how many times `word` is in the text, from SAMPLES slices spread over it (a
        sixteenth of it): to pick a query's rarest word, where counting over the whole text
        (megabytes at 50,000 accounts) cost more than the search itself. Spread, because the
        accounts are in company-name order: the first slice alone holds mostly "Academia"s."""
        text, size = self.text, len(self.text)
        step = size // SAMPLES
        return sum(text.count(word, at, at + step // 16 + len(word)) for at in range(0, size, max(step, 1)))

    def part(self, n: int) -> str:
        return self.text[self.starts[n]:self.starts[n + 1] - 1]


class Index:
    """The accounts of one state version, prepared for `find`: in the order they are listed (by
    company name, then the store's order), their searched fields as three texts (words, CNPJ/CPF,
    phones)."""

    def __init__(self, accounts: Iterable[Account]):
        accounts = list(accounts)  # the store's order (`take` compares a later version in it)
        companies = [folded(a.company).translate(_SEPARATORS) for a in accounts]
        order = sorted(range(len(accounts)), key=companies.__getitem__)  # stable
        del companies
        self.accounts = [accounts[n] for n in order]
        self.stored = accounts
        self.place = array("q", bytes(8 * len(accounts)))  # the store's position -> the listed one
        for listed, n in enumerate(order):
            self.place[n] = listed
        self.by_id = {a.id: n for n, a in enumerate(self.accounts)}
        layouts: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple for each layout of fields
        self.labels, words, documents, phones = [], [], [], []
        for account in self.accounts:
            labels, texts, document, numbers = searched(account)
            self.labels.append(layouts.setdefault(labels, labels))
            words.append(FIELD.join(texts))
            documents.append(document)
            phones.append(FIELD.join(numbers))
        self.words, self.documents, self.phones = _Text(words), _Text(documents), _Text(phones)

    def find(self, query: str, limit: int = LIMIT) -> list[Found]:
        """The accounts matching `query`, best first: the exact id, then accounts whose field
        starts with the text, then those that contain it; ties by company name.

        Every word of the query must appear (in any field): "padaria joao" finds "Padaria São
        João". A CNPJ/CPF is matched without its punctuation and a phone number on its digits, so
        "15.881.399/0001-34", "15881399000134" and "+55 (11) 98745-2310" all work."""
        text = folded(query).strip()
        if not text:
            return []
        words = [w.translate(_SEPARATORS) for w in text.split()]
        # A CNPJ (also the new alphanumeric one) or CPF without its dots, slash and dash; a phone
        # number as digits without the country code.
        compact = "".join(c for c in text if c.isalnum())
        number = digits(text)
        if len(number) in (12, 13) and number.startswith("55"):
            number = number[2:]
        hits: dict[int, tuple[str, bool]] = {}  # account's place -> (label, whether it starts so)
        if len(number) >= MIN_DIGITS:
            for n in self.documents.holders(compact):
                hits[n] = ("CNPJ/CPF", self.documents.part(n).startswith(compact))
            if compact.isdigit():
                for n in self.phones.holders(number):
                    if n not in hits:
                        phone = next(p for p in self.phones.part(n).split(FIELD) if number in p)
                        hits[n] = ("telefone", phone.startswith(number))
        exact = self.by_id.get(query.strip())
        ranked = [(1 if starts else 2, n, label) for n, (label, starts) in hits.items() if n != exact]
        # The rarest word is looked for in every account, the others only in those that hold it;
        # in the order accounts are listed, so that once `limit` of them start with the text the
        # rest cannot be shown (a vague word, "ltda", is in every account: 20 are read, not all).
        # Ties (words too rare for the samples to see) go to the longer word: the more specific.
        rarest = min(words, key=lambda w: (self.words.estimate(w), -len(w))) if len(words) > 1 else words[0]
        others = tuple(w for w in words if w != rarest)
        starting, containing = [], []
        for n in self.words.holders(rarest, others):
            if n in hits or n == exact:
                continue
            label, starts = _matches(tuple(zip(self.labels[n], self.words.part(n).split(FIELD))), words)
            if starts:
                starting.append((1, n, label))
                if len(starting) >= limit:
                    break
            elif len(containing) < limit:
                containing.append((2, n, label))
        found = [(0, exact, "id")] if exact is not None else []
        found += heapq.nsmallest(limit, ranked + starting + containing)
        return [Found(self.accounts[n], label) for _, n, label in found[:limit]]

    def take(self, table: Mapping[str, Account]) -> bool:
        """Take the accounts of `table`, another version of the state, when none of them changed
        what a search sees (an opt-out, a payment, the cycle's ledger changed the version): True,
        and the results show the new version's objects; False when the index must be built again.
        A write copies the table and replaces only the accounts it changed, in their place, so
        the versions are compared position by position by identity, in C (a few milliseconds at
        50,000 accounts, where looking each account up by id took 30 and building the index
        again takes seconds; the cycle makes a new version every few seconds), and only the
        accounts replaced have their fields compared."""
        now = list(table.values())
        if len(now) != len(self.stored):
            return False
        replaced = list(compress(range(len(now)), map(operator.is_not, now, self.stored)))
        if any(now[n].id != self.stored[n].id or searched(now[n]) != searched(self.stored[n]) for n in replaced):
            return False
        if replaced:
            listed = list(self.accounts)
            for n in replaced:
                listed[self.place[n]] = now[n]
            self.accounts = listed
        self.stored = now
        return True


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


def forget() -> None:
    """Let go of the index kept, with the version of the accounts it was built from."""
    global _last
    with _lock:
        _last = None


def index_of(snapshot) -> Index:
    """The index of `snapshot`'s accounts, built only when the state changed since the last one."""
    global _last
    table = snapshot.accounts_table()
    with _lock:
        if _last is None or _last[0] is not table:
            # Another version of the state (a write, the cycle's or an action's): the index is
            # built again only when what a search sees of an account changed, not when only
            # invoices, the ledger or an account's opt-outs did.
            index = _last[1] if _last is not None and _last[1].take(table) else None
            _last = (table, index or Index(table.values()))
        return _last[1]


def find(snapshot, query: str, limit: int = LIMIT) -> list[Found]:
    """The accounts of `snapshot` that match `query` (see `Index.find`)."""
    return index_of(snapshot).find(query, limit)
