"""The archive's records of imported invoices, written by msgspec in C.

A module of its own so that msgspec is imported only by a process that archives invoices (an
import that moves old ones out of the store), not by every command that opens the store.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import partial
from itertools import starmap

import msgspec

from notifier.billing.models import Invoice


class ArchivedInvoice(msgspec.Struct, tag_field="kind", tag="invoice", omit_defaults=True, gc=False):
    """An imported invoice's archive record: the fields of the store's `_invoice_doc` after kind, archived and id.
    msgspec writes a million of these in C (dates as YYYY-MM-DD, the amount as its text), where
    building a dict per invoice for orjson took a fifth of a first import."""
    archived: str
    id: str
    account: str
    amount: Decimal
    issued: date
    due: date
    paid: date | None = None
    payment_url: str | None = None
    pix_code: str | None = None


_ENCODE_LINES = msgspec.json.Encoder().encode_lines


def archive_records(invoices: list[Invoice], archived: str) -> bytearray:
    """The archive's JSON lines of `invoices`, archived on the day `archived` (ISO), a chunk at a
    time (the records of one chunk only are alive at once)."""
    lines, record = bytearray(), partial(ArchivedInvoice, archived)
    for start in range(0, len(invoices), 2000):  # a chunk's records stay in the processor's cache
        lines += _ENCODE_LINES(list(starmap(record, invoices[start:start + 2000])))
    return lines
