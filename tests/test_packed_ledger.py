"""The console's ledger packed by account (notifier/state/packed.py), on real state files: a packed
snapshot holds exactly the rows the models hold, the day's plan drawn account by account from it is
`notifier plan`'s, and a journal entry's rows reach it as they reach a fresh reader."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from notifier.billing import rules
from notifier.billing.models import Account, Invoice, LedgerEntry
from notifier.config import load_config
from notifier.state.store import Store

D = date.fromisoformat
# Enough rows for one chunk of msgspec's path (store.TYPED_MIN), on 40 accounts.
ACCOUNTS = [Account(id=f"c{i:03}", company=f"Empresa {i}", document="x", emails=(f"e{i}@x.com.br",),
                    whatsapp=f"+551190000{i:04}") for i in range(40)]
INVOICES = [Invoice(id=f"2026-{m:02}-c{i:03}", account=f"c{i:03}", amount=Decimal("149.90"), issued=D(f"2026-{m:02}-01"),
                    due=D(f"2026-{m:02}-10")) for i in range(40) for m in (10, 11)]


def rows() -> list[LedgerEntry]:
    out = []
    for inv in INVOICES:
        n = int(inv.account[1:])
        for day in range(1, 16):
            out.append(LedgerEntry(inv.id, inv.account, D(f"{inv.due:%Y-%m}-{day:02}"), "reminder", "email",
                                   f"e{n}@x.com.br", "sent" if day % 3 else "skipped", tutorial=day == 2,
                                   attempt_id=f"{n:016x}{day:016x}" if day % 3 else None))
    # A recipient with "|" and "%" in it: its key is escaped, not the plain join of its parts.
    out.append(LedgerEntry("2026-11-c001", "c001", D("2026-11-20"), "overdue", "social", "x|y%z", "sent"))
    return out


def written(path: Path, count: int | None = None) -> Store:
    store = Store(path)
    with store.transaction() as snap:
        snap.upsert_accounts(ACCOUNTS)
        snap.upsert_invoices(INVOICES)
        snap.add_ledger(rows()[-count if count else 0:])
    return store


def same(packed, models) -> None:
    """Every way the console reads the ledger gives what the models give."""
    assert len(packed._all("ledger")) == len(models._all("ledger"))
    assert dict(packed._all("ledger").items()) == dict(models._all("ledger").items())
    assert sorted(packed.ledger()) == sorted(models.ledger())
    for account in [a.id for a in ACCOUNTS] + ["nobody"]:
        assert packed.ledger(account) == models.ledger(account), account


@pytest.mark.parametrize("count", [300, None])  # read by the store's converters, then by msgspec's path
def test_a_packed_ledger_holds_what_the_models_hold_and_plans_the_same_day(tmp_path, count):
    path = tmp_path / "state.json"
    written(path, count)
    packed, models = Store(path, packed_ledger=True).snapshot(), Store(path).snapshot()
    assert type(packed._all("ledger")).__name__ == "PackedLedger"
    same(packed, models)
    assert len(packed.ledger("c001")) == (31 if count is None else 1) and packed.ledger("c001")[-1].recipient == "x|y%z"
    config = load_config(None, {})
    for day in ("2026-11-12", "2026-11-24", "2026-12-15"):
        expected = rules.plan_day(D(day), models.accounts(), models.invoices(), models.histories(), models.ledger(),
                                  config.calendar, config)
        drawn = rules.plan_day(D(day), packed.accounts(), packed.invoices(), packed.histories(),
                               packed.ledger_by_account(), config.calendar, config)
        assert drawn == expected and drawn.notices, day


def test_a_key_edited_by_hand_is_given_back_as_stored(tmp_path):
    path = tmp_path / "state.json"
    written(path)
    text = path.read_text()
    path.write_text(text.replace('"2026-10-c005|2026-10-03|email|e5@x.com.br":', '"feito-a-mao":', 1))
    packed, models = Store(path, packed_ledger=True).snapshot(), Store(path).snapshot()
    assert "feito-a-mao" in dict(models._all("ledger").items())
    same(packed, models)


def test_journal_entries_reach_a_packed_ledger_as_they_reach_a_fresh_reader(tmp_path):
    path = tmp_path / "state.json"
    written(path)
    console = Store(path, journal_from=0, packed_ledger=True, keep_written=True)
    console.snapshot()
    writer = Store(path, journal_from=0)
    for step in range(3):
        store = console if step == 1 else writer  # another process's writes, and the console's own
        with store.transaction() as snap:
            # a row replaced (its status), a row added to an account that has rows, one to an account that had none
            snap.add_ledger([
                LedgerEntry("2026-11-c002", "c002", D("2026-11-04"), "reminder", "email", "e2@x.com.br", "failed"),
                LedgerEntry("2026-11-c003", "c003", D("2026-11-20"), "overdue", "whatsapp", f"+551190000{step:04}", "sent",
                            attempt_id=f"{step:032x}")])
            if step == 2:
                snap.upsert_accounts([Account(id="c999", company="Nova", document="y", emails=("n@x.com.br",))])
                snap.upsert_invoices([Invoice(id="2026-11-c999", account="c999", amount=Decimal("10.00"),
                                              issued=D("2026-11-01"), due=D("2026-11-10"))])
                snap.add_ledger([LedgerEntry("2026-11-c999", "c999", D("2026-11-07"), "reminder", "email", "n@x.com.br",
                                             "sent")])
        assert path.with_name("state.json.journal").exists()
        kept, fresh = console.snapshot(), Store(path).snapshot()
        same(kept, fresh)
    assert kept.ledger("c002")[18].status == "failed" and len(kept.ledger("c002")) == 30
    assert [e.recipient for e in kept.ledger("c003")[-3:]] == ["+5511900000000", "+5511900000001", "+5511900000002"]
    assert kept.ledger("c999")[0].invoice == "2026-11-c999"


def test_the_state_file_read_in_place_finds_what_a_whole_read_finds_across_its_read_windows(tmp_path):
    """A transaction looks a document up where it lies, reading the file a window at a time (never
    mapped: a mapped 160 MB file counted in the console's memory); a line across two windows is
    found as in the whole bytes."""
    import random
    from notifier.state.basefile import BaseFile, _Reader
    path = tmp_path / "state.bin"
    rnd = random.Random(7)
    alphabet = b'abc\n"{}:,'
    data = rnd.randbytes(2 * _Reader.WINDOW + 5000).translate(bytes(alphabet[i % len(alphabet)] for i in range(256)))
    path.write_bytes(data)
    with open(path, "rb") as f:
        reader = _Reader(f.fileno(), len(data))
        for boundary in (_Reader.WINDOW, 2 * _Reader.WINDOW - 12):
            for pos in range(boundary - 30, boundary + 10):
                for size in (1, 5, 13, 40):
                    needle = data[pos:pos + size]
                    # from the file's start once a boundary (a search of megabytes), else from nearby
                    far = ((0, None),) if pos == boundary - 1 else ((boundary - 5000, None),)
                    for start, end in (*far, (pos - 3, pos + size), (pos - 100, pos + size - 1)):
                        assert reader.find(needle, start, end) == data.find(needle, start, end), (pos, size, start)
        assert reader[len(data) - 3:len(data) + 10] == data[-3:]
    state = tmp_path / "state.json"
    written(state)
    with BaseFile(state) as base:
        assert base.find("ledger", "2026-11-c039|2026-11-15|email|e39@x.com.br")["status"] == "skipped"
        assert base.find("accounts", "c007")["company"] == "Empresa 7" and base.find("accounts", "nobody") is None
