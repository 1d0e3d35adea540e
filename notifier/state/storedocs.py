"""The state's big tables as a read-only snapshot reads them: each chunk decoded by msgspec in C.

`plan` turns every account, invoice, ledger row and history of the store into a model; checking
each document field by field in Python (`store._FROM_DOC`) was a third of its time on a big
store. Here msgspec checks the JSON types of a whole chunk in C and the models are built from
its structs, dates and amounts through the store's shared `_Dates`/`_Amounts` (which check their
text, and keep one object per distinct value).

This is a fast way to accept a chunk, never a second judge: anything msgspec refuses (a wrong
type, a missing field, invalid JSON) makes `decode` return None, and the store's own checks
decide, with their own words for the error. It never accepts what those checks refuse, and it
builds the same models (tests/test_store_reads.py holds it to both over every JSON type of every
field). A module of its own, as `archived.py`, so that msgspec is imported only by a process
that reads a big store.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from notifier.billing.models import Account, History, Invoice, LedgerEntry

# orjson, which the store's checks read with, gives a whole number above 2**64 - 1 as a float (and
# the checks refuse it); msgspec would keep it whole. Its bounds stop at int64: above, the checks decide.
_WHOLE = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_NO_OPT_OUT: frozenset[str] = frozenset()


class _AccountDoc(msgspec.Struct, kw_only=True, gc=False):
    company: str
    document: str
    emails: tuple[str, ...]
    contact_name: str | None = ""  # a null stays None, as the store's checks keep it
    domain: str | None = ""
    portal_email: str | None = None
    whatsapp: str | None = None
    social: dict[str, str] = {}
    due_day: Annotated[int, msgspec.Meta(ge=1, le=31)]
    past_delinquencies: _WHOLE = 0
    opt_out: tuple[str, ...] = ()
    staff_opt_out: dict[str, Any] = {}  # store.STAFF_OPT_OUT: only its channels count here


class _InvoiceDoc(msgspec.Struct, gc=False):
    account: str
    amount: str
    issued: str
    due: str
    paid: str | None = None
    payment_url: str | None = None
    pix_code: str | None = None


class _LedgerDoc(msgspec.Struct, gc=False):
    invoice: str
    account: str
    notice_date: str
    stage: str
    channel: str
    recipient: str
    status: str
    tutorial: bool = False
    attempt_id: str | None = None


class _HistoryDoc(msgspec.Struct, gc=False):
    first_late_due: str | None = None
    late_count: _WHOLE = 0


def _accounts(docs: dict[str, _AccountDoc], dates, amounts, names) -> dict[str, Account]:
    return {key: Account(key, d.company, d.document, d.emails, d.contact_name, d.domain, d.portal_email,
                         d.whatsapp, tuple(d.social.items()), d.due_day, d.past_delinquencies,
                         frozenset(d.opt_out).union(d.staff_opt_out) if d.opt_out or d.staff_opt_out else _NO_OPT_OUT)
            for key, d in docs.items()}


def _invoices(docs: dict[str, _InvoiceDoc], dates, amounts, names) -> dict[str, Invoice]:
    get = names.get  # the account's id as the accounts table holds it: one string, not one per invoice
    return {key: Invoice(key, get(d.account, d.account), amounts[d.amount], dates[d.issued], dates[d.due], dates[d.paid],
                         d.payment_url, d.pix_code)
            for key, d in docs.items()}


def _ledger(docs: dict[str, _LedgerDoc], dates, amounts, names) -> dict[str, LedgerEntry]:
    return {key: LedgerEntry(d.invoice, d.account, dates[d.notice_date], d.stage, d.channel, d.recipient,
                             d.status, d.tutorial, d.attempt_id)
            for key, d in docs.items()}


def _histories(docs: dict[str, _HistoryDoc], dates, amounts, names) -> dict[str, History]:
    return {key: History(key, dates[d.first_late_due], d.late_count) for key, d in docs.items()}


_TABLES: dict[str, tuple[msgspec.json.Decoder, Callable]] = {
    "accounts": (msgspec.json.Decoder(dict[str, _AccountDoc]), _accounts),
    "invoices": (msgspec.json.Decoder(dict[str, _InvoiceDoc]), _invoices),
    "ledger": (msgspec.json.Decoder(dict[str, _LedgerDoc]), _ledger),
    "history": (msgspec.json.Decoder(dict[str, _HistoryDoc]), _histories),
}


def ledger_docs(blob: bytes, dates) -> dict[str, _LedgerDoc] | None:
    """A chunk of the ledger checked as `decode` checks it (its notice dates too, through `dates`),
    as msgspec's structs, no model made: what a packed ledger keeps (notifier/state/packed.py).
    None when this path does not take it."""
    try:
        docs = _TABLES["ledger"][0].decode(blob)
        for day in {d.notice_date for d in docs.values()}:
            dates[day]
    except (ValueError, TypeError, RecursionError):
        return None
    return docs


def decode(table: str, blob: bytes, dates, amounts, names: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The models of a chunk of `table` (a JSON object of documents), or None when this path does
    not take it: a table it does not know, or anything msgspec, `dates` or `amounts` refuse.
    `names`: account ids already read (id -> the same string), shared by the invoices read."""
    known = _TABLES.get(table)
    if known is None:
        return None
    decoder, build = known
    try:
        return build(decoder.decode(blob), dates, amounts, {} if names is None else names)
    # msgspec's DecodeError is a ValueError; `dates`/`amounts` raise either; a value nested deeper
    # than msgspec goes is a RecursionError (orjson takes it, and so do the store's checks).
    except (ValueError, TypeError, RecursionError):
        return None
