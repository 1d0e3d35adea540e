"""The state file, on real files: round trips, atomic writes, corrupt files, archive, two writers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from filelock import FileLock
from tinydb import TinyDB
from tinydb.table import Document, Table

from notifier.billing.calendar import BankCalendar
from notifier.config import Config
from notifier.billing.models import Account, History, Invoice, LedgerEntry
from notifier.billing.rules import is_first_time
from notifier.state.store import (
    CHUNK, AlreadyPaid, AtomicJSONStorage, Store, StoreError, ledger_key, read_archive, retention_cutoff,
)

ROOT = Path(__file__).resolve().parent.parent
D = date.fromisoformat
CFG = Config()

FULL_ACCOUNT = Account(
    id="acme", company="ACME Comércio Ltda", document="11.222.333/0001-81",
    emails=("financeiro@acme.com.br", "maria@acme.com.br"), contact_name="Maria Souza",
    domain="acme.com.br", portal_email="maria@acme.com.br", whatsapp="+5511987654321",
    social=(("instagram", "@acme"), ("telegram", "tgram://BOT_TOKEN/CHAT_ID")),
    due_day=10, past_delinquencies=2, opt_out=frozenset({"whatsapp", "social"}),
)
BARE_ACCOUNT = Account(id="bare", company="Bare Ltda", document="123.456.789-09", emails=("a@bare.com.br",))
FULL_INVOICE = Invoice(
    id="2026-11-acme", account="acme", amount=Decimal("1234.50"), issued=D("2026-11-05"), due=D("2026-11-10"),
    paid=D("2026-11-12"), payment_url="https://pague.example.com/2026-11-acme", pix_code="00020126580014br.gov.bcb.pix",
)
BARE_INVOICE = Invoice(id="2026-11-bare", account="bare", amount=Decimal("0"), issued=D("2026-11-05"), due=D("2026-11-20"))
FULL_ENTRY = LedgerEntry(
    invoice="2026-11-acme", account="acme", notice_date=D("2026-11-24"), stage="overdue", channel="whatsapp",
    recipient="+5511987654321", status="failed", tutorial=True, attempt_id="a-0001",
)
BARE_ENTRY = LedgerEntry(
    invoice="2026-11-bare", account="bare", notice_date=D("2026-11-17"), stage="reminder", channel="email",
    recipient="a@bare.com.br", status="sent",
)


def fill(store: Store) -> None:
    with store.transaction() as s:
        s.upsert_accounts([FULL_ACCOUNT, BARE_ACCOUNT])
        s.upsert_invoices([FULL_INVOICE, BARE_INVOICE])
        s.add_ledger([FULL_ENTRY, BARE_ENTRY])


def read_only(store: Store):
    return store.snapshot()


def in_transaction(store: Store):
    # The other kind of snapshot: raw documents converted on demand. Nothing changes, so the
    # transaction writes nothing.
    with store.transaction() as s:
        return s


SNAPSHOTS = pytest.mark.parametrize("open_snapshot", [read_only, in_transaction], ids=["snapshot", "transaction"])


@SNAPSHOTS
def test_every_field_round_trips(tmp_path, open_snapshot):
    store = Store(tmp_path / "state.json")
    fill(store)
    s = open_snapshot(store)
    assert s.accounts() == [FULL_ACCOUNT, BARE_ACCOUNT]
    assert s.account("acme") == FULL_ACCOUNT and s.account("bare") == BARE_ACCOUNT and s.account("nope") is None
    assert s.invoices() == [FULL_INVOICE, BARE_INVOICE]
    assert s.invoice("2026-11-acme") == FULL_INVOICE and s.invoice("nope") is None
    assert s.invoices("bare") == [BARE_INVOICE] and s.invoices("nobody") == []
    assert s.ledger() == [FULL_ENTRY, BARE_ENTRY]
    assert s.ledger("acme") == [FULL_ENTRY]
    assert s.histories() == {}
    assert isinstance(s.invoice("2026-11-acme").amount, Decimal)


def test_documents_are_compact_and_keyed_by_id(tmp_path):
    path = tmp_path / "state.json"
    fill(Store(path))
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {"accounts", "invoices", "ledger", "history", "archived", "imports"}
    assert data["accounts"]["bare"] == {
        "company": "Bare Ltda", "document": "123.456.789-09", "emails": ["a@bare.com.br"], "due_day": 20,
    }
    assert data["accounts"]["acme"]["social"] == {"instagram": "@acme", "telegram": "tgram://BOT_TOKEN/CHAT_ID"}
    assert data["accounts"]["acme"]["opt_out"] == ["social", "whatsapp"]
    assert data["invoices"]["2026-11-bare"] == {"account": "bare", "amount": "0", "issued": "2026-11-05", "due": "2026-11-20"}
    assert data["ledger"][ledger_key(BARE_ENTRY)]["notice_date"] == "2026-11-17"
    assert "Comércio" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes


def test_upsert_replaces_by_id(tmp_path):
    store = Store(tmp_path / "state.json")
    fill(store)
    moved = Account(id="acme", company="ACME Nova Ltda", document="11.222.333/0001-81", emails=("novo@acme.com.br",))
    repriced = Invoice(id="2026-11-bare", account="bare", amount=Decimal("99.90"), issued=D("2026-11-05"), due=D("2026-11-20"))
    resent = BARE_ENTRY._replace(status="failed")
    with store.transaction() as s:
        s.upsert_accounts([moved])
        s.upsert_invoices([repriced])
        s.add_ledger([resent])
        assert s.account("acme") == moved  # a transaction sees its own changes
    s = store.snapshot()
    assert s.accounts() == [moved, BARE_ACCOUNT]
    assert s.invoices() == [FULL_INVOICE, repriced]
    assert s.ledger() == [FULL_ENTRY, resent]


def test_ledger_keys_never_collide():
    a = BARE_ENTRY._replace(invoice="x|2026-11-17", recipient="r")
    b = BARE_ENTRY._replace(invoice="x", recipient="2026-11-17|r")
    c = BARE_ENTRY._replace(invoice="x%7C2026-11-17", recipient="r")
    assert len({ledger_key(a), ledger_key(b), ledger_key(c)}) == 3


def test_record_payment(tmp_path):
    store = Store(tmp_path / "state.json")
    fill(store)
    with store.transaction() as s:
        paid = s.record_payment("2026-11-bare", D("2026-11-21"))
    assert paid.paid == D("2026-11-21") and paid.amount == BARE_INVOICE.amount
    assert store.snapshot().invoice("2026-11-bare") == paid
    with pytest.raises(StoreError, match="unknown invoice '2026-12-bare'"), store.transaction() as s:
        s.record_payment("2026-12-bare", D("2026-11-21"))


def test_an_invoice_of_an_unknown_account_ends_the_transaction(tmp_path):
    path = tmp_path / "state.json"
    store = Store(path)
    fill(store)
    before = path.read_bytes()
    stray = Invoice(id="2026-11-ghost", account="ghost", amount=Decimal("1"), issued=D("2026-11-05"), due=D("2026-11-20"))
    fine = Invoice(id="2026-12-bare", account="bare", amount=Decimal("1"), issued=D("2026-12-05"), due=D("2026-12-20"))
    with pytest.raises(StoreError, match="invoice '2026-11-ghost': unknown account 'ghost'"), store.transaction() as s:
        s.upsert_invoices([fine, stray])
    assert path.read_bytes() == before


def test_a_read_only_snapshot_refuses_changes(tmp_path):
    store = Store(tmp_path / "state.json")
    fill(store)
    with pytest.raises(RuntimeError, match="read-only"):
        store.snapshot().upsert_accounts([BARE_ACCOUNT])


def test_missing_file_is_an_empty_store_created_on_first_write(tmp_path):
    path = tmp_path / "state.json"
    store = Store(path)
    s = store.snapshot()
    assert (s.accounts(), s.invoices(), s.ledger(), s.histories()) == ([], [], [], {})
    with store.transaction() as s:
        assert s.accounts() == []
    assert not path.exists()  # nothing changed, nothing written
    fill(store)
    assert path.exists()


def _fails_to_serialise(store: Store, monkeypatch):
    with store.transaction() as s:
        s.upsert_accounts([Account(id="odd", company=object(), document="x", emails=("o@odd.com.br",))])


def _fails_to_fsync(store: Store, monkeypatch):
    def broken(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", broken)
    with store.transaction() as s:
        s.upsert_accounts([Account(id="new", company="New", document="x", emails=("n@new.com.br",))])


def _fails_to_rename(store: Store, monkeypatch):
    def broken(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken)
    with store.transaction() as s:
        s.upsert_accounts([Account(id="new", company="New", document="x", emails=("n@new.com.br",))])


def _raises_inside(store: Store, monkeypatch):
    with store.transaction() as s:
        s.upsert_accounts([Account(id="new", company="New", document="x", emails=("n@new.com.br",))])
        s.add_ledger([BARE_ENTRY])
        raise ValueError("the command failed half-way")


@pytest.mark.parametrize("crash", [_fails_to_serialise, _fails_to_fsync, _fails_to_rename, _raises_inside])
def test_a_failed_transaction_leaves_the_file_as_it_was(tmp_path, monkeypatch, crash):
    path = tmp_path / "state.json"
    store = Store(path)
    fill(store)
    before = path.read_bytes()
    with pytest.raises((StoreError, TypeError, ValueError)):
        crash(store, monkeypatch)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]  # no temporary file left
    assert store.snapshot().accounts() == [FULL_ACCOUNT, BARE_ACCOUNT]


def _our_layout(path: Path) -> bytes:
    fill(Store(path))
    return path.read_bytes()


CORRUPT = {
    "empty": lambda p: b"",
    "blank": lambda p: b"  \n",
    "not json": lambda p: b"{accounts: nope}",
    "a list": lambda p: b"[]",
    "table not an object": lambda p: b'{"accounts": []}',
    "document not an object": lambda p: b'{"accounts": {"acme": 1}}',
    "truncated mid-line": lambda p: (b := _our_layout(p))[: len(b) // 2],
    "truncated at a line end": lambda p: (b := _our_layout(p))[: b.index(b"\n", len(b) // 2) + 1],
    "trailing comma after the last table": lambda p: _our_layout(p)[:-4] + b"},\n}\n",
    "not UTF-8": lambda p: b'{"accounts": {"acme": {"company": "\xff"}}}',
}


@pytest.mark.parametrize("open_snapshot", [read_only, in_transaction], ids=["snapshot", "transaction"])
@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_file_stops_and_is_never_overwritten(tmp_path, content, open_snapshot):
    path = tmp_path / "state.json"
    bad = content(path)
    path.write_bytes(bad)
    store = Store(path)
    with pytest.raises(StoreError, match=r"state\.json: not a valid state file: "):
        with store.transaction() as s:
            s.upsert_accounts([BARE_ACCOUNT])
    with pytest.raises(StoreError, match=r"state\.json: not a valid state file: "):
        open_snapshot(store)
    assert path.read_bytes() == bad


@pytest.mark.parametrize("doc, reason", [
    ({"account": "acme", "amount": 149.9, "issued": "2026-11-05", "due": "2026-11-20"}, "amount must be a string"),
    ({"account": "acme", "amount": "149.90", "issued": "05/11/2026", "due": "2026-11-20"}, "a date must be text YYYY-MM-DD"),
    ({"account": "acme", "amount": "149.90", "issued": "2026-11-05"}, "KeyError: 'due'"),
])
def test_a_document_that_does_not_fit_names_itself(tmp_path, doc, reason):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"invoices": {"2026-11-acme": doc}}), encoding="utf-8")
    with pytest.raises(StoreError, match=f"state.json: not a valid state file: invoices '2026-11-acme': .*{reason}"):
        Store(path).snapshot()
    with pytest.raises(StoreError, match=reason), Store(path).transaction() as s:
        s.invoice("2026-11-acme")


def test_a_missing_comma_between_two_chunks_is_not_accepted(tmp_path):
    # The reader parses our layout a chunk at a time; it must still reject what JSON rejects.
    path = tmp_path / "state.json"
    store = Store(path)
    with store.transaction() as s:
        s.upsert_accounts(Account(id=f"a{i:05d}", company="C", document="x", emails=("e@x.com.br",)) for i in range(CHUNK + 1))
    lines = path.read_bytes().split(b"\n")
    assert lines[1 + CHUNK].endswith(b"},")  # line 0 is "{", line 1 the table header
    lines[1 + CHUNK] = lines[1 + CHUNK][:-1]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StoreError, match="not a valid state file: not JSON"):
        store.snapshot()


@pytest.mark.parametrize("count", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3])
def test_tables_of_any_size_read_back_whole(tmp_path, count):
    store = Store(tmp_path / "state.json")
    accounts = [Account(id=f"a{i:05d}", company=f"C{i}", document="x", emails=("e@x.com.br",)) for i in range(count)]
    with store.transaction() as s:
        s.upsert_accounts(accounts)
    assert store.snapshot().accounts() == accounts
    with store.transaction() as s:
        assert s.accounts() == accounts


@pytest.mark.parametrize("dump", [
    lambda data: json.dumps(data, indent=2, ensure_ascii=False),
    lambda data: json.dumps(data),
    lambda data: json.dumps({"_default": {"1": {"note": "written by TinyDB"}}, **data}, indent=4),
], ids=["indented", "one line", "with a TinyDB default table"])
def test_files_laid_out_by_others_read_the_same_and_are_rewritten_in_ours(tmp_path, dump):
    ours = tmp_path / "ours.json"
    theirs = tmp_path / "state.json"
    fill(Store(ours))
    theirs.write_text(dump(json.loads(ours.read_text(encoding="utf-8"))), encoding="utf-8")
    store = Store(theirs)
    assert store.snapshot().accounts() == [FULL_ACCOUNT, BARE_ACCOUNT]
    assert store.snapshot().ledger() == [FULL_ENTRY, BARE_ENTRY]
    with store.transaction() as s:
        s.record_payment("2026-11-bare", D("2026-11-20"))
    assert theirs.read_bytes().startswith(b'{\n"')
    assert json.loads(theirs.read_text(encoding="utf-8")).get("_default") == json.loads(dump({})).get("_default")
    assert store.snapshot().invoice("2026-11-bare").paid == D("2026-11-20")


class StrTable(Table):
    document_id_class = str

    def _get_next_id(self):
        raise TypeError("documents of the notifier's store are keyed by their own ids")


def test_tinydb_reads_and_writes_the_file_through_our_storage(tmp_path):
    path = tmp_path / "state.json"
    fill(Store(path))
    db = TinyDB(path, storage=AtomicJSONStorage)
    db.table_class = StrTable
    assert db.tables() == {"accounts", "invoices", "ledger", "history", "archived", "imports"}
    assert db.table("accounts").get(doc_id="acme")["company"] == "ACME Comércio Ltda"
    db.table("accounts").insert(Document({"company": "Via TinyDB", "document": "x", "emails": ["t@t.com.br"], "due_day": 5}, doc_id="tiny"))
    assert Store(path).snapshot().account("tiny") == Account(id="tiny", company="Via TinyDB", document="x", emails=("t@t.com.br",), due_day=5)


def test_the_file_mode_survives_a_rewrite(tmp_path):
    path = tmp_path / "state.json"
    fill(Store(path))
    path.chmod(0o600)
    with Store(path).transaction() as s:
        s.record_payment("2026-11-bare", D("2026-11-20"))
    assert path.stat().st_mode & 0o777 == 0o600


def test_transactions_do_not_nest(tmp_path):
    store = Store(tmp_path / "state.json")
    with store.transaction():
        with pytest.raises(RuntimeError, match="not re-entrant"):
            with store.transaction():
                pass


def test_a_held_lock_stops_a_writer_with_a_message(tmp_path):
    path = tmp_path / "state.json"
    fill(Store(path))
    before = path.read_bytes()
    with FileLock(str(path) + ".lock"):  # another holder, as the daemon would be
        with pytest.raises(StoreError, match=r"another notifier process has held .*state\.json\.lock"):
            with Store(path, lock_timeout=0.1).transaction() as s:
                s.upsert_accounts([BARE_ACCOUNT])
        assert Store(path).snapshot().accounts() == [FULL_ACCOUNT, BARE_ACCOUNT]  # readers need no lock
    assert path.read_bytes() == before


# Archive


TODAY = D("2026-11-25")


def archive_store(tmp_path, retention_months: int = 3) -> Store:
    """Two accounts. `late`: an invoice paid late long ago, one paid on time long ago, one paid last
    month, one open. `ontime`: only an invoice paid on time long ago, and one open."""
    store = Store(tmp_path / "state.json", retention_months=retention_months)
    late = Account(id="late", company="Late Ltda", document="x", emails=("l@late.com.br",))
    ontime = Account(id="ontime", company="On Time Ltda", document="x", emails=("o@ontime.com.br",))

    def inv(id, acc, due, paid=None):
        return Invoice(id=id, account=acc, amount=Decimal("149.90"), issued=D(due) - timedelta(days=15), due=D(due),
                       paid=D(paid) if paid else None)

    def row(invoice, acc, day, recipient):
        return LedgerEntry(invoice=invoice, account=acc, notice_date=D(day), stage="reminder", channel="email",
                           recipient=recipient, status="sent")

    with store.transaction() as s:
        s.upsert_accounts([late, ontime])
        s.upsert_invoices([
            inv("2026-05-late", "late", "2026-05-20", paid="2026-06-02"),  # late, archived
            inv("2026-06-late", "late", "2026-06-20", paid="2026-06-19"),  # on time, archived
            inv("2026-10-late", "late", "2026-10-20", paid="2026-10-30"),  # late, kept: paid last month
            inv("2026-11-late", "late", "2026-11-20"),                     # open, kept
            inv("2026-06-ontime", "ontime", "2026-06-20", paid="2026-06-22"),  # 22/06 is a Monday: on time
            inv("2026-11-ontime", "ontime", "2026-11-20"),
        ])
        s.add_ledger([
            row("2026-05-late", "late", "2026-05-17", "l@late.com.br"),
            row("2026-10-late", "late", "2026-10-17", "l@late.com.br"),
            row("2026-11-late", "late", "2026-11-17", "l@late.com.br"),
            row("2026-11-ontime", "ontime", "2026-11-17", "o@ontime.com.br"),
        ])
    return store


def archive_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_archive_moves_old_paid_invoices_and_the_ledger_of_paid_ones(tmp_path):
    store = archive_store(tmp_path)
    with store.transaction() as s:
        assert s.archive(TODAY, CFG) == (3, 2)
    s = store.snapshot()
    assert [i.id for i in s.invoices()] == ["2026-10-late", "2026-11-late", "2026-11-ontime"]
    assert [e.invoice for e in s.ledger()] == ["2026-11-late", "2026-11-ontime"]
    assert s.histories() == {"late": History("late", first_late_due=D("2026-05-20"), late_count=1)}
    records = archive_lines(store.archive_path)
    assert store.archive_path.name == "state.archive.jsonl"
    assert [(r["kind"], r["id"]) for r in records] == [
        ("invoice", "2026-05-late"), ("invoice", "2026-06-late"), ("invoice", "2026-06-ontime"),
        ("ledger", "2026-05-late|2026-05-17|email|l@late.com.br"), ("ledger", "2026-10-late|2026-10-17|email|l@late.com.br"),
    ]
    assert records[0] == {
        "kind": "invoice", "archived": "2026-11-25", "id": "2026-05-late", "account": "late", "amount": "149.90",
        "issued": "2026-05-05", "due": "2026-05-20", "paid": "2026-06-02",
    }
    with store.transaction() as s:
        assert s.archive(TODAY, CFG) == (0, 0)
    assert len(archive_lines(store.archive_path)) == 5


@pytest.mark.parametrize("archive_first", [False, True], ids=["before archive", "after archive"])
def test_history_still_tells_first_time_after_archive(tmp_path, archive_first):
    store = archive_store(tmp_path)
    if archive_first:
        with store.transaction() as s:
            s.archive(TODAY, CFG)
    s = store.snapshot()
    cal, histories = BankCalendar(), s.histories()
    for account_id, first_time in (("late", False), ("ontime", True)):
        account, own = s.account(account_id), s.invoices(account_id)
        assert is_first_time(account, s.invoice(f"2026-11-{account_id}"), own, histories.get(account_id), cal, CFG) is first_time


@pytest.mark.parametrize("retention_months, paid, archived", [
    (3, "2026-08-24", True),
    (3, "2026-08-25", False),  # exactly three months: kept
    (1, "2026-10-24", True),
    (1, "2026-10-25", False),
])
def test_retention_window(tmp_path, retention_months, paid, archived):
    store = Store(tmp_path / "state.json", retention_months=retention_months)
    with store.transaction() as s:
        s.upsert_accounts([BARE_ACCOUNT])
        s.upsert_invoices([Invoice(id="i", account="bare", amount=Decimal("1"), issued=D("2026-08-01"), due=D(paid), paid=D(paid))])
        assert s.archive(TODAY, CFG)[0] == int(archived)


def test_import_sends_old_paid_invoices_straight_to_the_archive(tmp_path):
    # The same invoices through import_invoices() end where upsert + archive() puts them.
    via_archive = archive_store(tmp_path / "a")
    with via_archive.transaction() as s:
        s.archive(TODAY, CFG)
    direct = Store(tmp_path / "b" / "state.json")
    source = archive_store(tmp_path / "c").snapshot()
    with direct.transaction() as s:
        s.upsert_accounts(source.accounts())
        assert s.import_invoices(source.invoices(), TODAY, CFG) == (3, 0)
    assert direct.snapshot().invoices() == via_archive.snapshot().invoices()
    assert direct.snapshot().histories() == via_archive.snapshot().histories()
    assert [r["id"] for r in archive_lines(direct.archive_path)] == ["2026-05-late", "2026-06-late", "2026-06-ontime"]
    # an invoice kept open earlier and now imported as paid long ago leaves the state
    late_payment = source.invoice("2026-11-ontime")._replace(due=D("2026-06-20"), paid=D("2026-07-10"))
    with direct.transaction() as s:
        assert s.import_invoices([late_payment], TODAY, CFG) == (1, 0)
    assert direct.snapshot().invoice("2026-11-ontime") is None
    assert direct.snapshot().histories()["ontime"] == History("ontime", first_late_due=D("2026-06-20"), late_count=1)


def test_history_keeps_the_earliest_late_due_and_counts(tmp_path):
    store = archive_store(tmp_path)
    with store.transaction() as s:
        s.archive(TODAY, CFG)
    with store.transaction() as s:
        s.archive(D("2027-03-01"), CFG)  # now 2026-10-late, paid late, is old enough too
    assert store.snapshot().histories()["late"] == History("late", first_late_due=D("2026-05-20"), late_count=2)


def test_a_crash_between_archive_and_state_duplicates_lines_and_loses_none(tmp_path, monkeypatch):
    store = archive_store(tmp_path)
    state_before = store.path.read_bytes()

    def broken(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(StoreError), store.transaction() as s:
        s.archive(TODAY, CFG)
    monkeypatch.undo()
    assert store.path.read_bytes() == state_before
    with store.transaction() as s:
        s.archive(TODAY, CFG)
    records = archive_lines(store.archive_path)
    assert len(records) == 10
    assert len({(r["kind"], r["id"]) for r in records}) == 5


def test_a_state_that_cannot_be_written_leaves_the_archive_as_it_was(tmp_path):
    """The archive is appended while the new state is written: when the state cannot be, the
    archive is cut back to what it held, and neither file changes."""
    store = archive_store(tmp_path)
    store.archive_path.write_bytes(b'{"kind":"invoice","archived":"2026-10-01","id":"older"}\n')
    before = store.path.read_bytes(), store.archive_path.read_bytes()
    (store.path.parent / (store.path.name + ".tmp")).mkdir()  # where the new state would be written
    with pytest.raises(StoreError, match="cannot write the state file"), store.transaction() as s:
        assert s.archive(TODAY, CFG)[0] == 3
    assert (store.path.read_bytes(), store.archive_path.read_bytes()) == before
    (store.path.parent / (store.path.name + ".tmp")).rmdir()
    with store.transaction() as s:
        s.archive(TODAY, CFG)
    invoices = [r["id"] for r in archive_lines(store.archive_path) if r["kind"] == "invoice"]
    assert invoices == ["older", "2026-05-late", "2026-06-late", "2026-06-ontime"]


def test_a_torn_archive_line_is_kept_apart(tmp_path):
    store = archive_store(tmp_path)
    store.archive_path.write_bytes(b'{"kind":"invoice","archived":"2026-10-01","id":"tor')
    with store.transaction() as s:
        s.archive(TODAY, CFG)
    lines = store.archive_path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith('"id":"tor')
    assert [json.loads(line)["id"] for line in lines[1:4]] == ["2026-05-late", "2026-06-late", "2026-06-ontime"]


# Two processes


WRITER = textwrap.dedent("""
    import sys, time
    from datetime import date
    from pathlib import Path
    from notifier.billing.models import Account, LedgerEntry
    from notifier.state.store import Store

    path, name, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not go.exists():  # both processes start writing together
        time.sleep(0.005)
    store = Store(path)
    for i in range(50):
        with store.transaction() as s:
            if i % 2:
                s.upsert_accounts([Account(id=f"{name}-{i}", company=name, document="x", emails=("e@x.com.br",))])
            else:
                s.add_ledger([LedgerEntry(invoice=f"{name}-{i}", account=name, notice_date=date(2026, 11, 24),
                                          stage="overdue", channel="email", recipient="e@x.com.br", status="sent")])
""")


def test_two_threads_sharing_a_store_lose_nothing(tmp_path):
    store = Store(tmp_path / "state.json")

    def write(name):
        for i in range(50):
            with store.transaction() as s:
                s.upsert_accounts([Account(id=f"{name}-{i}", company=name, document="x", emails=("e@x.com.br",))])

    threads = [threading.Thread(target=write, args=(name,)) for name in ("sender-1", "sender-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.snapshot().accounts()) == 100


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path, go = tmp_path / "state.json", tmp_path / "go"
    fill(Store(path))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(go)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("daemon", "staff")
    ]
    go.touch()
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    s = Store(path).snapshot()
    for name in ("daemon", "staff"):
        assert sorted(a.id for a in s.accounts() if a.company == name) == sorted(f"{name}-{i}" for i in range(1, 50, 2))
        assert sorted(e.invoice for e in s.ledger(name)) == sorted(f"{name}-{i}" for i in range(0, 50, 2))
    assert len(s.accounts()) == 2 + 50 and len(s.ledger()) == 2 + 50


# Payments only move forward (issue 6, point 1)


def test_an_upsert_never_clears_nor_changes_a_stored_payment(tmp_path):
    store = Store(tmp_path / "state.json")
    fill(store)
    with store.transaction() as s:
        s.record_payment("2026-11-bare", D("2026-11-23"))
    for billing_says in (None, D("2026-11-21")):
        with store.transaction() as s:
            s.upsert_invoices([BARE_INVOICE._replace(paid=billing_says, amount=Decimal("99.90"))])
        kept = store.snapshot().invoice("2026-11-bare")
        assert (kept.paid, kept.amount) == (D("2026-11-23"), Decimal("99.90"))  # the rest of the record is updated


def test_paying_again_is_refused_and_a_correction_keeps_the_previous_date(tmp_path):
    store = Store(tmp_path / "state.json")
    fill(store)
    with pytest.raises(AlreadyPaid, match="2026-11-acme: already paid on 12/11/2026"), store.transaction() as s:
        s.record_payment("2026-11-acme", D("2026-11-13"))
    with store.transaction() as s:
        invoice, previous = s.correct_payment("2026-11-acme", D("2026-11-13"), on=D("2026-11-25"), by="ana")
    assert (invoice.paid, previous) == (D("2026-11-13"), D("2026-11-12"))
    doc = json.loads(store.path.read_text(encoding="utf-8"))["invoices"]["2026-11-acme"]
    assert doc["corrections"] == [{"paid": "2026-11-12", "on": "2026-11-25", "by": "ana"}]
    with store.transaction() as s:  # an import of the old date neither undoes it nor drops the record of it
        s.upsert_invoices([FULL_INVOICE])
    doc = json.loads(store.path.read_text(encoding="utf-8"))["invoices"]["2026-11-acme"]
    assert doc["paid"] == "2026-11-13" and len(doc["corrections"]) == 1


def test_an_import_without_the_payment_does_not_bring_an_archived_invoice_back(tmp_path):
    store = archive_store(tmp_path)
    with store.transaction() as s:
        s.archive(TODAY, CFG)
    unpaid_again = source_invoice = Invoice(id="2026-05-late", account="late", amount=Decimal("149.90"),
                                            issued=D("2026-05-05"), due=D("2026-05-20"))
    with store.transaction() as s:
        assert s.import_invoices([unpaid_again], TODAY, CFG) == (0, 1)
    assert store.snapshot().invoice(source_invoice.id) is None


# Archiving is idempotent (issue 6, point 5)


def test_importing_the_same_history_again_archives_nothing_and_counts_nothing(tmp_path):
    source = archive_store(tmp_path / "source").snapshot()
    store = Store(tmp_path / "state.json")
    with store.transaction() as s:
        s.upsert_accounts(source.accounts())
    for _ in range(3):
        with store.transaction() as s:
            s.import_invoices(source.invoices(), TODAY, CFG)
            s.archive(TODAY, CFG)
    assert [r["id"] for r in read_archive(store.archive_path)] == ["2026-05-late", "2026-06-late", "2026-06-ontime"]
    assert store.snapshot().histories() == {"late": History("late", first_late_due=D("2026-05-20"), late_count=1)}


def test_an_import_that_changes_nothing_writes_nothing(tmp_path):
    source = archive_store(tmp_path / "source").snapshot()
    store = Store(tmp_path / "state.json")
    with store.transaction() as s:
        s.upsert_accounts(source.accounts())
        s.import_invoices(source.invoices(), TODAY, CFG)
    before = store.path.stat().st_mtime_ns, store.path.read_bytes()
    with store.transaction() as s:
        s.upsert_accounts(source.accounts())
        s.import_invoices(source.invoices(), TODAY, CFG)
        s.archive(TODAY, CFG)
        assert not s.changed
    assert (store.path.stat().st_mtime_ns, store.path.read_bytes()) == before


def test_the_archive_reader_skips_torn_lines_and_repeated_blocks(tmp_path):
    path = tmp_path / "state.archive.jsonl"
    block = b'{"kind":"invoice","id":"a","paid":"2026-01-10"}\n{"kind":"ledger","id":"a|2026-01-17|email|x"}\n'
    path.write_bytes(b'{"kind":"invoice","id":"a","pa\n'  # torn by a crash, then kept apart by the next append
                     + block + block  # a block appended again after a crash before the state's rename
                     + b'{"kind":"invoice","id":"b"}\n{"kind":"invoice","id":"c","pa')  # torn tail
    assert [(r["kind"], r["id"]) for r in read_archive(path)] == [
        ("invoice", "a"), ("ledger", "a|2026-01-17|email|x"), ("invoice", "b")]
    assert list(read_archive(tmp_path / "none.jsonl")) == []


# Bound by bound, import and archive() agree (issue 6, point 24)


@pytest.mark.parametrize("paid, archived", [("2026-08-24", True), ("2026-08-25", False)])
def test_import_and_archive_agree_at_the_retention_boundary(tmp_path, paid, archived):
    assert retention_cutoff(TODAY, 3) == D("2026-08-25")
    invoice = Invoice(id="i", account="bare", amount=Decimal("1"), issued=D("2026-08-01"), due=D("2026-08-20"), paid=D(paid))
    direct, later = Store(tmp_path / "a.json"), Store(tmp_path / "b.json")
    for store in (direct, later):
        with store.transaction() as s:
            s.upsert_accounts([BARE_ACCOUNT])
    with direct.transaction() as s:
        assert s.import_invoices([invoice], TODAY, CFG) == (int(archived), 0)
    with later.transaction() as s:
        s.upsert_invoices([invoice])
        assert s.archive(TODAY, CFG)[0] == int(archived)
    assert direct.snapshot().invoices() == later.snapshot().invoices() == ([] if archived else [invoice])


def test_archive_takes_the_ledger_of_an_invoice_paid_today_and_of_invoices_no_longer_stored(tmp_path):
    store = Store(tmp_path / "state.json")
    fill(store)
    orphan = BARE_ENTRY._replace(invoice="2026-10-gone")
    with store.transaction() as s:
        s.record_payment("2026-11-bare", TODAY)
        s.add_ledger([orphan])
        assert s.archive(TODAY, CFG) == (0, 3)  # acme's (paid 12/11), bare's (paid today) and the orphan
    assert store.snapshot().ledger() == []
    assert {r["invoice"] for r in read_archive(store.archive_path)} == {"2026-11-acme", "2026-11-bare", "2026-10-gone"}


# A transaction reads exactly what a snapshot reads (issue 6, point 7)


BAD_DOCUMENTS = {
    "amount as a number": ("invoices", "2026-11-bare", {"amount": 89.9}, "amount must be a string"),
    "amount in fullwidth digits": ("invoices", "2026-11-bare", {"amount": "１２３"}, "amount must be a string"),
    "emails as text": ("accounts", "bare", {"emails": "ab@x.com"}, "emails must be a list of text"),
    "an e-mail not text": ("accounts", "bare", {"emails": [7]}, "emails must be a list of text"),
    "social as a list": ("accounts", "bare", {"social": ["@x"]}, "social must be an object"),
    "due_day as text": ("accounts", "bare", {"due_day": "20"}, "due_day must be a whole number"),
    "due_day out of range": ("accounts", "bare", {"due_day": 40}, "due_day out of range"),
    "company missing": ("accounts", "bare", {"company": None}, "company must be text"),
    "issued missing": ("invoices", "2026-11-bare", {"issued": None}, "issued and due must be dates"),
    "date in another format": ("invoices", "2026-11-bare", {"due": "20261120"}, "a date must be text YYYY-MM-DD"),
    "ledger tutorial as text": ("ledger", ledger_key(BARE_ENTRY), {"tutorial": "yes"}, "tutorial must be true or false"),
    "history count as text": ("history", "bare", {"late_count": "1"}, "late_count must be a whole number"),
    "archived ids as text": ("archived", "bare", {"invoices": "2026-01-bare"}, "invoices must be a list of text"),
}


@pytest.mark.parametrize("table, key, change, reason", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
def test_a_transaction_refuses_what_a_snapshot_refuses_and_never_writes_over_it(tmp_path, table, key, change, reason):
    path = tmp_path / "state.json"
    fill(Store(path))
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault(table, {}).setdefault(key, {}).update(change)
    path.write_text(json.dumps(data), encoding="utf-8")
    before = path.read_bytes()
    refused = f"not a valid state file: {table} '.*': .*{reason}"
    if table != "archived":  # a table a read-only snapshot has no use for, so does not read
        with pytest.raises(StoreError, match=refused):
            Store(path).snapshot()
    with pytest.raises(StoreError, match=refused), Store(path).transaction() as s:
        s.record_payment("2026-11-bare", D("2026-11-23"))
    assert path.read_bytes() == before


def test_a_new_state_and_archive_are_not_readable_by_others_and_a_chosen_mode_stays(cli):
    """Customers' personal data (LGPD): a new state file and archive get 0640, as the attempt log
    does, whatever the umask lets other users read; an operator's chmod 600 survives rewrites."""
    acme = {"id": "acme", "company": "Acme Ltda", "document": "11.222.333/0001-81",
            "emails": ["financeiro@acme.com.br"]}
    old = {"id": "2026-01-acme", "account": "acme", "amount": "149.90", "issued": "2026-01-05",
           "paid": "2026-01-10"}  # long paid: archived at once
    (cli.workdir / "billing.json").write_text(json.dumps({"accounts": [acme], "invoices": [old]}), encoding="utf-8")
    previous = os.umask(0o002)  # a umask that would let everyone read
    try:
        cli("import", "billing.json", "--date", "2026-11-24")
    finally:
        os.umask(previous)
    state, archive = cli.workdir / "state.json", cli.workdir / "state.archive.jsonl"
    assert archive.read_text(encoding="utf-8").count("2026-01-acme") == 1
    assert [oct(p.stat().st_mode & 0o777) for p in (state, archive)] == [oct(0o640)] * 2
    state.chmod(0o600)
    (cli.workdir / "billing.json").write_text(json.dumps({"accounts": [{**acme, "company": "Acme S.A."}],
                                                          "invoices": []}), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-25")
    assert oct(state.stat().st_mode & 0o777) == oct(0o600)
