"""The ledger as the console keeps it: each account's rows packed in one compressed string.

The ledger is the state's biggest table (400,000 rows at 50,000 accounts: eight or so for each
invoice still in the state), and the console reads almost none of it: an escalation plans one
account, the Painel plans the day account by account. As model objects (`LedgerEntry`, each with
its strings and its key in a dict) it took 270 MB of the console's 300 MB budget; packed, 20 MB.

`PackedLedger` is a read-only snapshot's ledger table (`Store(packed_ledger=True)`): per account,
its rows (key and `LedgerEntry` fields, as JSON arrays one a line) compressed by zlib. An
account's rows are unpacked when asked (`rows`), a few microseconds; the whole table only when
something walks it (`values`, the forecast). The rows are checked as every snapshot checks them
(the store's converters, or msgspec's path) before they are packed, and unpacked with the same
shared dates: a packed ledger holds exactly what the models would.

A journal entry that changes rows (the cycle's claims, a batch at a time) gives a new table with
only the accounts it touched packed again (`changed`); the older version keeps its own.
"""
from __future__ import annotations

import operator
import zlib
from array import array
from collections.abc import Iterator, Mapping
from datetime import date
from itertools import islice
from typing import Any, Callable

import orjson

from notifier.billing.models import LedgerEntry

LEVEL = 1  # zlib level: the rows are repetitive JSON; higher levels gain little and cost time


def ledger_key(entry: LedgerEntry) -> str:
    """The ledger document id: invoice, notice date, channel and recipient, joined by "|".

    "%" and "|" inside a part are escaped, so two different entries never share a key.
    """
    return "|".join(
        part.replace("%", "%25").replace("|", "%7C")
        for part in (entry.invoice, entry.notice_date.isoformat(), entry.channel, entry.recipient)
    )


def _row(key: str, invoice: str, day: str, stage: str, channel: str, recipient: str, status: str, tutorial: bool,
         attempt: str | None) -> bytes:
    """One row as a JSON array: the fields of its entry but the account (the one the rows are
    packed under; `day` its notice date as ISO text), and its key only when it is not the fields
    joined by "|" (`_plain_key`: a part with "|" or "%" in it, escaped by `ledger_key`, or a file
    edited by hand), so that the key stored is the key given back."""
    fields = (invoice, day, stage, channel, recipient, status, tutorial, attempt)
    return orjson.dumps(fields if key == _plain_key(invoice, day, channel, recipient) else (*fields, key))


def _plain_key(invoice: str, day: str, channel: str, recipient: str) -> str:
    return f"{invoice}|{day}|{channel}|{recipient}"


def _entry_row(key: str, e: LedgerEntry) -> bytes:
    return _row(key, e.invoice, e.notice_date.isoformat(), e.stage, e.channel, e.recipient, e.status, e.tutorial,
                e.attempt_id)


class Packer:
    """Collects the rows of a ledger read chunk by chunk, then packs them (`packed`)."""

    def __init__(self) -> None:
        self._rows: dict[str, bytearray] = {}
        # The keys' hashes, to tell whether a key came twice (a file edited by hand: in a dict the
        # last row would win) without keeping 400,000 keys alive meanwhile.
        self._hashes = array("q")

    def add(self, models: Mapping[str, LedgerEntry]) -> None:
        """Rows given as models (the store's converters read them)."""
        self._add(models, ((key, e.account, _entry_row(key, e)) for key, e in models.items()))

    def add_docs(self, docs: Mapping[str, Any]) -> None:
        """Rows given as checked documents with the fields of `LedgerEntry` as attributes and the
        notice date as ISO text already checked (notifier/state/storedocs.py): no model made."""
        self._add(docs, ((key, d.account, _row(key, d.invoice, d.notice_date, d.stage, d.channel, d.recipient,
                                               d.status, d.tutorial, d.attempt_id)) for key, d in docs.items()))

    def _add(self, keys, rows_of) -> None:
        rows = self._rows
        self._hashes.extend(map(hash, keys))
        for key, account, row in rows_of:
            buf = rows.get(account)
            if buf is None:
                buf = rows[account] = bytearray()
            buf += row
            buf += b"\n"

    def packed(self, dates: Callable[[str], date]) -> "PackedLedger":
        rows, hashes = self._rows, sorted(self._hashes)
        self._rows, self._hashes = {}, array("q")
        blobs = {}
        for account in list(rows):
            blobs[account] = zlib.compress(rows.pop(account), LEVEL)
        ledger = PackedLedger(blobs, len(hashes), dates)
        if any(map(operator.eq, hashes, islice(hashes, 1, None))):  # the same key twice (or two hashes alike)
            ledger = ledger.changed({}, None, again=True)
        return ledger


class PackedLedger(Mapping):
    """Ledger key -> `LedgerEntry`, packed by account (see the module). Not to be changed: a
    journal entry's changes give another table (`changed`)."""

    def __init__(self, blobs: dict[str, bytes], count: int, dates: Callable[[str], date]):
        self._blobs = blobs  # account -> zlib of its rows
        self._count = count
        self._dates = dates

    @classmethod
    def of(cls, models: Mapping[str, LedgerEntry], dates: Callable[[str], date]) -> "PackedLedger":
        packer = Packer()
        packer.add(models)
        return packer.packed(dates)

    def _unpacked(self, account: str) -> list[tuple[str, LedgerEntry]]:
        """(key, entry) of each row of `account`, in stored order."""
        return [(_plain_key(e.invoice, e.notice_date.isoformat(), e.channel, e.recipient) if key is None else key, e)
                for key, e in self._entries(account)]

    def _entries(self, account: str) -> list[tuple[str | None, LedgerEntry]]:
        """(the key when it is not the plain one (`_plain_key`), else None; the entry), in stored order."""
        blob = self._blobs.get(account)
        if blob is None:
            return []
        dates = self._dates
        return [(row[8] if len(row) > 8 else None,
                 LedgerEntry(row[0], account, dates(row[1]), row[2], row[3], row[4], row[5], row[6], row[7]))
                for row in orjson.loads(b"[" + zlib.decompress(blob).rstrip(b"\n").replace(b"\n", b",") + b"]")]

    def blobs(self) -> Mapping[str, bytes]:
        """Account id -> its packed rows, not to be changed: an account's is the same object in
        every version its rows did not change (`changed` packs only the accounts it touched), so a
        result kept per account can tell which to draw again (notifier/run/kept.py)."""
        return self._blobs

    def rows(self, account: str) -> list[LedgerEntry]:
        """The rows of `account`, in the order they were stored."""
        return [entry for _, entry in self._entries(account)]

    def by_account(self) -> "_ByAccount":
        """Account id -> its rows, unpacked when asked (`rules.plan_day` takes it as its ledger)."""
        return _ByAccount(self)

    def changed(self, docs: Mapping[str, Any], convert, again: bool = False) -> "PackedLedger":
        """A new table: this one with `docs` (key -> document, None: deleted) applied, only their
        accounts packed again (the others' strings are shared with this table).

        A row is looked for under the account its document names: a key holds its invoice, whose
        account no write of ours changes. A deleted row (no document to name it) is looked for
        in every account: our small writes never delete one (the archive rewrites the file)."""
        touched: dict[str, dict[str, LedgerEntry | None]] = {}
        for key, doc in docs.items():
            if doc is None:
                account = self._account_of(key)
                if account is not None:
                    touched.setdefault(account, {})[key] = None
            else:
                entry = convert.one("ledger", key, doc)
                touched.setdefault(entry.account, {})[key] = entry
        if again:  # every account packed again, each key once (the last row stored wins, as in a dict)
            touched = {account: {} for account in self._blobs}
        blobs, count = dict(self._blobs), 0 if again else self._count
        for account, rows in touched.items():
            table = dict(self._unpacked(account))
            count -= 0 if again else len(table)
            for key, entry in rows.items():
                if entry is None:
                    table.pop(key, None)
                else:
                    table[key] = entry
            count += len(table)
            if table:
                blobs[account] = zlib.compress(b"".join(_entry_row(k, e) + b"\n" for k, e in table.items()), LEVEL)
            else:
                blobs.pop(account, None)
        return PackedLedger(blobs, count, self._dates)

    def _account_of(self, key: str) -> str | None:
        """The account holding the row of `key`, looked for in every account."""
        for account in self._blobs:
            if any(k == key for k, _ in self._unpacked(account)):
                return account
        return None

    # Mapping: key -> entry. A lookup by key searches every account (nothing in the console does it).

    def __getitem__(self, key: str) -> LedgerEntry:
        account = self._account_of(key)
        if account is not None:
            for k, entry in self._unpacked(account):
                if k == key:
                    return entry
        raise KeyError(key)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        for account in self._blobs:
            for key, _ in self._unpacked(account):
                yield key

    def items(self):
        return [pair for account in self._blobs for pair in self._unpacked(account)]

    def values(self):
        """Every row, account by account (not in the stored order across accounts)."""
        return [entry for account in self._blobs for _, entry in self._unpacked(account)]


class _ByAccount(Mapping):
    """Account id -> its ledger rows, unpacked at each ask."""

    def __init__(self, ledger: PackedLedger):
        self._ledger = ledger

    def __getitem__(self, account: str) -> list[LedgerEntry]:
        rows = self._ledger.rows(account)
        if not rows:
            raise KeyError(account)
        return rows

    def get(self, account: str, default=None):
        return self._ledger.rows(account) or default

    def __len__(self) -> int:
        return len(self._ledger._blobs)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ledger._blobs)
