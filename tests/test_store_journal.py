"""The state's journal (notifier/state/journal.py), on real files and real processes: a small change
is appended beside the state instead of rewriting it, another process sees it at once without
parsing the state again, and a crash anywhere (mid-append, mid-fold, mid-rewrite) leaves a store
that lost no acknowledged change and applied none twice.

Small stores are journaled here by asking for it (`journal_from=0`, NOTIFIER_JOURNAL_FROM=0), as
a state of more than a megabyte is by default.
"""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pytest

from notifier.billing.models import Account, Invoice
from notifier.state.store import Store, StoreError
from tests.conftest import ROOT

D = date.fromisoformat
ACCOUNTS = [Account(id=f"a{i:03}", company=f"Empresa {i}", document="x", emails=(f"e{i}@x.com.br",)) for i in range(30)]
INVOICES = [Invoice(id=f"2026-11-a{i:03}", account=f"a{i:03}", amount=__import__("decimal").Decimal("149.90"),
                    issued=D("2026-11-05"), due=D("2026-11-20")) for i in range(30)]


def journaled(path: Path, **options) -> Store:
    """A store of 30 accounts and invoices, written whole; later small changes go to its journal."""
    store = Store(path, journal_from=0, **options)
    with store.transaction() as snap:
        snap.upsert_accounts(ACCOUNTS)
        snap.upsert_invoices(INVOICES)
    return store


def journal_lines(path: Path) -> list[bytes]:
    return Path(f"{path}.journal").read_bytes().splitlines()


def test_a_small_change_is_appended_and_the_state_file_is_not_rewritten(tmp_path):
    path = tmp_path / "state.json"
    store = journaled(path)
    before = path.read_bytes()
    with store.transaction() as snap:
        snap.record_payment("2026-11-a003", D("2026-11-21"))
    assert path.read_bytes() == before
    [line] = journal_lines(path)
    assert json.loads(line) == {"seq": 1, "changes": [["invoices", "2026-11-a003", {
        "account": "a003", "amount": "149.90", "issued": "2026-11-05", "due": "2026-11-20", "paid": "2026-11-21"}]]}
    assert Store(path).snapshot().invoice("2026-11-a003").paid == D("2026-11-21")
    # Payments only move forward, in the journal as in the file.
    with pytest.raises(StoreError, match="already paid on 21/11/2026"), Store(path, journal_from=0).transaction() as snap:
        snap.record_payment("2026-11-a003", D("2026-11-22"))


READER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from notifier.state.store import Store
    store = Store(Path(sys.argv[1]), journal_from=0)
    first = store.snapshot().account("a001")
    for line in sys.stdin:
        snap = store.snapshot()
        inv = snap.invoice(line.strip())
        # the same account object: the state file was not parsed again
        print(inv.paid.isoformat() if inv.paid else "open", snap.account("a001") is first, flush=True)
""")


def test_another_process_sees_an_action_at_once_without_parsing_the_state_again(cli, tmp_path):
    """A long-lived reader (the console, the cycle) keeps its models; `notifier pay` in another
    process appends its entry; the reader's next snapshot has it, from the journal alone."""
    path = tmp_path / "state.json"
    journaled(path)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        reader.stdin.write("2026-11-a007\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["open", "True"]
        env = {**cli.env, "NOTIFIER_JOURNAL_FROM": "0"}
        proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--state", str(path), "pay", "2026-11-a007",
                               "--date", "2026-11-23", "--by", "ana"], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        reader.stdin.write("2026-11-a007\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["2026-11-23", "True"]
    finally:
        reader.kill()
    assert len(journal_lines(path)) == 1


def test_a_torn_last_line_is_skipped_and_the_next_entry_starts_on_its_own_line(tmp_path):
    path = tmp_path / "state.json"
    store = journaled(path)
    with store.transaction() as snap:
        snap.record_payment("2026-11-a001", D("2026-11-21"))
    with open(f"{path}.journal", "ab") as f:  # a process killed mid-append: never acknowledged
        f.write(b'{"seq":2,"changes":[["invoices","2026-11-a002",{"account":"a0')
    assert Store(path).snapshot().invoice("2026-11-a002").paid is None
    with Store(path, journal_from=0).transaction() as snap:
        snap.record_payment("2026-11-a004", D("2026-11-22"))
    lines = journal_lines(path)
    assert len(lines) == 3 and lines[1].startswith(b'{"seq":2,') and json.loads(lines[2])["seq"] == 2
    for reader in (Store(path).snapshot(), store.snapshot()):
        assert reader.invoice("2026-11-a001").paid == D("2026-11-21")
        assert reader.invoice("2026-11-a002").paid is None
        assert reader.invoice("2026-11-a004").paid == D("2026-11-22")


def test_a_missing_entry_stops_every_command_and_nothing_is_written(tmp_path):
    path = tmp_path / "state.json"
    store = journaled(path)
    for inv in ("2026-11-a001", "2026-11-a002", "2026-11-a003"):
        with store.transaction() as snap:
            snap.record_payment(inv, D("2026-11-21"))
    lines = journal_lines(path)
    Path(f"{path}.journal").write_bytes(lines[0] + b"\n" + lines[2] + b"\n")
    before = path.read_bytes(), Path(f"{path}.journal").read_bytes()
    with pytest.raises(StoreError, match="entry 2 is missing"):
        Store(path).snapshot()
    with pytest.raises(StoreError, match="entry 2 is missing"), Store(path, journal_from=0).transaction() as snap:
        snap.record_payment("2026-11-a009", D("2026-11-21"))
    assert (path.read_bytes(), Path(f"{path}.journal").read_bytes()) == before


def test_a_fold_keeps_every_entry_and_readers_keep_their_models(tmp_path):
    path = tmp_path / "state.json"
    store = journaled(path, fold_at=1 << 30)
    reader = Store(path)
    first = reader.snapshot().account("a001")
    for i in range(5):
        with store.transaction() as snap:
            snap.record_payment(f"2026-11-a{i:03}", D("2026-11-21"))
    assert reader.snapshot().account("a001") is first  # five entries applied, the state not parsed again
    assert store.fold()
    assert Path(f"{path}.journal").read_bytes() == b""
    with store.transaction() as snap:  # numbers go on after the fold
        snap.record_payment("2026-11-a010", D("2026-11-22"))
    assert json.loads(journal_lines(path)[0])["seq"] == 6
    after = reader.snapshot()
    assert after.account("a001") is first  # a fold of what it had seen: nothing parsed again
    fresh = Store(path).snapshot()
    assert after.invoices() == fresh.invoices() and after.accounts() == fresh.accounts()
    assert [i.id for i in fresh.invoices() if i.paid] == [f"2026-11-a{i:03}" for i in (0, 1, 2, 3, 4, 10)]


def test_a_reader_ahead_of_a_fold_keeps_the_documents_after_its_marker(tmp_path):
    """A fold may hold fewer entries than a reader has seen (it reads the journal outside the lock
    and entries go on being appended): the reader's next transaction still sees those entries'
    documents, read again from the cut journal."""
    path = tmp_path / "state.json"
    store = journaled(path, fold_at=1 << 30)
    reader = Store(path, journal_from=0)
    reader.snapshot()
    for i in range(5):
        with store.transaction() as snap:
            snap.record_payment(f"2026-11-a{i:03}", D("2026-11-21"))
    assert reader.snapshot().invoice("2026-11-a004").paid == D("2026-11-21")  # it has seen entries 1-5
    # The fold of entries 1-3 only, as when 4 and 5 came while it wrote; its cut leaves them.
    lines = journal_lines(path)
    Path(f"{path}.journal").write_bytes(b"".join(line + b"\n" for line in lines[:3]))
    assert store.fold()
    Path(f"{path}.journal").write_bytes(b"".join(line + b"\n" for line in lines[3:]))
    # Payments only move forward: the reader's transaction knows invoice a004 is paid (entry 5).
    with pytest.raises(StoreError, match="already paid on 21/11/2026"), reader.transaction() as snap:
        snap.record_payment("2026-11-a004", D("2026-11-25"))
    with reader.transaction() as snap:
        snap.record_payment("2026-11-a005", D("2026-11-25"))
    fresh = Store(path).snapshot()
    assert [i.id for i in fresh.invoices() if i.paid] == [f"2026-11-a{i:03}" for i in range(6)]
    assert reader.snapshot().invoices() == fresh.invoices()


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from notifier.state.store import Store
    # Small transactions go to the journal, folded whenever it passes 600 bytes; every fifth
    # transaction changes four documents, more than `max_changes`: a whole rewrite.
    store = Store(Path(sys.argv[1]), journal_from=0, fold_at=600, max_changes=3)
    n = int(sys.argv[2])
    print("ready", flush=True)
    while True:
        n += 1
        with store.transaction() as snap:
            snap.set_meta("v", {"n": n})
            snap.set_meta(f"t{n}", {})
            if n % 5 == 0:
                for k in range(3):
                    snap.set_meta(f"big{k}", {"n": n})
        print(n, flush=True)
""")


def _check_consistent(path: Path, acknowledged: int) -> int:
    """The store after a crash: every acknowledged transaction there, each exactly as its own
    last write left it (an entry applied twice over a newer state would put `v` back)."""
    snap = Store(path).snapshot()
    n = snap.meta("v")["n"]
    assert n in (acknowledged, acknowledged + 1)  # the one in flight may or may not have landed
    assert all(snap.meta(f"t{k}") == {} for k in range(1, n + 1)) and snap.meta(f"t{n + 1}") is None
    assert snap.meta("big0") == {"n": n - n % 5}
    return n


def test_a_writer_killed_at_random_moments_loses_no_acknowledged_change_and_applies_none_twice(tmp_path):
    path = tmp_path / "state.json"
    journaled(path)
    with Store(path, journal_from=0).transaction() as snap:
        snap.set_meta("v", {"n": 0})
        snap.set_meta("big0", {"n": 0})
    rng = random.Random(21)
    n, folds = 0, 0
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(n)], cwd=ROOT, stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        # Every number printed was acknowledged (its transaction had returned); a cut last line is not.
        acknowledged = max([n, *(int(x) for x in out.split(b"\n")[:-1])])
        n = _check_consistent(path, acknowledged)
        folds += json.loads(path.read_text(encoding="utf-8")).get("journal") is not None
    assert n > 20 and folds  # many transactions, folds and rewrites were cut short


@pytest.mark.parametrize("fault", ["fold:renamed", "rewrite:replaced"])
def test_a_crash_between_the_new_base_and_the_journals_cut_applies_nothing_twice(tmp_path, fault):
    """Killed just after the new base took the state's place, before the journal was cut (fold) or
    deleted (whole rewrite): the journal's first entries are in the base already, and skipped."""
    path = tmp_path / "state.json"
    journaled(path)
    with Store(path, journal_from=0).transaction() as snap:
        snap.set_meta("v", {"n": 0})
        snap.set_meta("big0", {"n": 0})
    driver = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from notifier.state.store import Store
        store = Store(Path(sys.argv[1]), journal_from=0, fold_at=1 << 30, max_changes=3)
        for n in range(1, 5):
            with store.transaction() as snap:
                snap.set_meta("v", {{"n": n}})
                snap.set_meta(f"t{{n}}", {{}})
        os.environ["NOTIFIER_STORE_FAULT"] = {fault!r}
        if {fault!r} == "fold:renamed":
            store.fold()
        else:
            with store.transaction() as snap:
                snap.set_meta("v", {{"n": 5}})
                snap.set_meta("t5", {{}})
                for k in range(3):
                    snap.set_meta(f"big{{k}}", {{"n": 5}})
    """)
    proc = subprocess.run([sys.executable, "-c", driver, str(path)], cwd=ROOT)
    assert proc.returncode == 137
    assert len(journal_lines(path)) == 5  # not cut: its entries are also in the new base
    n = _check_consistent(path, 4 if fault == "fold:renamed" else 5)
    with Store(path, journal_from=0).transaction() as snap:  # and the store goes on from there
        snap.set_meta("v", {"n": n + 1})
        snap.set_meta(f"t{n + 1}", {})
        if (n + 1) % 5 == 0:
            snap.set_meta("big0", {"n": n + 1})
    _check_consistent(path, n + 1)


def _billing(path: Path, accounts: list[str], paid: dict | None = None, old: bool = False) -> None:
    invoices = [{"id": f"2026-11-{a}", "account": a, "amount": "149.90", "issued": "2026-11-05",
                 **({"paid": paid[a]} if paid and a in paid else {})} for a in accounts]
    if old:  # paid long ago: past the retention window, archived by the import (a whole rewrite)
        invoices += [{"id": f"2026-01-{a}", "account": a, "amount": "149.90", "issued": "2026-01-05",
                      "paid": "2026-01-20"} for a in accounts]
    path.write_text(json.dumps({"accounts": [{"id": a, "company": f"Empresa {a}", "document": "11.222.333/0001-81",
                                              "emails": [f"financeiro@{a}.com.br"], "due_day": 20} for a in accounts],
                                "invoices": invoices}), encoding="utf-8")


def test_a_journaled_payment_survives_every_kind_of_reimport(cli):
    """`pay` goes to the journal; re-importing the same file writes nothing, a file that does not
    know of the payment does not undo it (a small import: journaled too), and an import that
    archives (a whole rewrite) folds everything into the state and deletes the journal."""
    cli.env["NOTIFIER_JOURNAL_FROM"] = "0"
    state, journal = cli.workdir / "state.json", cli.workdir / "state.json.journal"
    _billing(cli.workdir / "billing.json", ["acme", "beta"])
    cli("import", "billing.json", "--date", "2026-11-10")
    cli("pay", "2026-11-acme", "--date", "2026-11-12", "--by", "ana")
    assert len(journal.read_bytes().splitlines()) == 1
    before = state.read_bytes(), journal.read_bytes()
    cli("import", "billing.json", "--date", "2026-11-13")
    assert (state.read_bytes(), journal.read_bytes()) == before  # the same file: nothing written
    _billing(cli.workdir / "billing.json", ["acme", "beta", "gama"])
    cli("import", "billing.json", "--date", "2026-11-14")
    assert state.read_bytes() == before[0] and len(journal.read_bytes().splitlines()) == 2
    _billing(cli.workdir / "billing.json", ["acme", "beta", "gama"], old=True)
    cli("import", "billing.json", "--date", "2026-11-15")
    assert not journal.exists() and b'"journal":{' in state.read_bytes()
    snap = Store(state).snapshot()
    assert snap.invoice("2026-11-acme").paid == D("2026-11-12") and snap.account("gama") is not None
    assert snap.invoice("2026-01-acme") is None  # archived
    proc = cli("pay", "2026-11-acme", "--date", "2026-11-13", "--by", "ana", check=False)
    assert proc.returncode != 0 and "already paid on 12/11/2026" in proc.stderr


def test_a_damaged_document_in_the_state_or_its_journal_is_refused_and_nothing_is_written(cli):
    cli.env["NOTIFIER_JOURNAL_FROM"] = "0"
    state, journal = cli.workdir / "state.json", cli.workdir / "state.json.journal"
    _billing(cli.workdir / "billing.json", ["acme", "beta"])
    cli("import", "billing.json", "--date", "2026-11-10")
    cli("pay", "2026-11-beta", "--date", "2026-11-12", "--by", "ana")
    # A person's editor changes acme's amount into a number, in place.
    state.write_bytes(state.read_bytes().replace(b'"amount":"149.90","issued":"2026-11-05","due"', b'"amount":149.9,"issued":"2026-11-05","due"', 1))
    before = state.read_bytes(), journal.read_bytes()
    for args in (["plan", "--date", "2026-11-24"], ["pay", "2026-11-acme", "--date", "2026-11-12"]):
        proc = cli(*args, check=False)
        assert proc.returncode == 1 and "not a valid state file: invoices '2026-11-acme'" in proc.stderr, proc.stderr
    assert (state.read_bytes(), journal.read_bytes()) == before
    # The journal's own documents are checked as the state's are.
    state.write_bytes(before[0].replace(b'"amount":149.9,', b'"amount":"149.90",'))
    journal.write_bytes(before[1].replace(b'"amount":"149.90"', b'"amount":149.9'))
    proc = cli("plan", "--date", "2026-11-24", check=False)
    assert proc.returncode == 1 and "invoices '2026-11-beta': TypeError: amount must be a string" in proc.stderr, proc.stderr


def test_a_long_lived_reader_finds_each_accounts_documents_as_a_fresh_reader_does(tmp_path):
    """The console keeps its per-account lists across journal entries, changing only the accounts
    an entry touched (rebuilding them whole after each write was most of its slow pages at 50,000
    accounts), and its ledger packed by account: after payments, new invoices, ledger rows and holds, in this process and in
    another, every account's invoices and ledger are those a fresh reader finds, in its order."""
    from notifier.billing.models import Hold, LedgerEntry
    path = tmp_path / "state.json"
    store = journaled(path, keep_written=True, packed_ledger=True)  # as the console's store is made
    other = Store(path, journal_from=0)

    def asked(snap):
        return {a.id: (snap.invoices(a.id), snap.ledger(a.id)) for a in ACCOUNTS + [NEW]}

    NEW = Account(id="a999", company="Nova", document="y", emails=("n@x.com.br",))
    asked(store.snapshot())  # the lists built, then kept
    for step in range(4):
        writer = store if step % 2 else other  # this process's own write, then another's
        with writer.transaction() as snap:
            snap.record_payment(f"2026-11-a{step:03}", D("2026-11-21"))
            if step == 1:
                snap.upsert_accounts([NEW])
            snap.upsert_invoices([Invoice(id=f"2026-12-a{i:03}", account=f"a{i:03}", amount=INVOICES[0].amount,
                                          issued=D("2026-12-05"), due=D("2026-12-20")) for i in (step, 7)]
                                 + ([Invoice(id=f"2026-12-a999-{step}", account="a999", amount=INVOICES[0].amount,
                                             issued=D("2026-12-05"), due=D("2026-12-20"))] if step else []))
            snap.add_ledger([LedgerEntry(invoice=f"2026-11-a{i:03}", account=f"a{i:03}", notice_date=D("2026-11-17"),
                                         stage="reminder", channel="email", recipient=f"e{i}@x.com.br",
                                         status="sent") for i in (step, 5)])
            snap.put_hold(Hold(account=f"a{step:03}", reason="disputed", until=D("2026-12-20"), by="ana",
                               since=D("2026-11-21")))
        kept, fresh = asked(store.snapshot()), asked(Store(path).snapshot())
        assert kept == fresh, f"after write {step}"
    assert [i.id for i in kept["a007"][0]] == ["2026-11-a007", "2026-12-a007"]
    assert len(kept["a999"][0]) == 3 and len(kept["a005"][1]) == 1
    assert journal_lines(path)  # the writes were journaled, not whole rewrites


def test_the_journal_a_process_keeps_costs_about_its_size_in_json():
    """A process keeps the journal's documents as JSON bytes (`journal.overlaid`) for hours (the
    console): each must hold its own size, not the 4 KB buffer orjson wrote it in."""
    import tracemalloc

    from notifier.state import journal
    rows = [("ledger", f"2026-12-acc-{i:05}|2026-12-07|email|x{i}@example.com.br",
             {"invoice": f"2026-12-acc-{i:05}", "account": f"acc-{i:05}", "notice_date": "2026-12-07",
              "stage": "due_soon", "channel": "email", "recipient": f"x{i}@example.com.br", "status": "sent"})
            for i in range(2000)]
    tracemalloc.start()
    try:
        kept = journal.overlaid({}, [(1, rows)])
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    json_size = sum(len(doc) for doc in kept["ledger"].values())
    assert json_size > 2000 * 150
    assert held < 2 * json_size + 2000 * 200  # the bytes, their keys' strings and the dict


def test_the_console_lets_go_of_a_version_rewritten_whole_not_of_one_journaled_or_folded(tmp_path):
    """The console drops what it kept of the state (plans, forecast, search index) when the file
    was rewritten whole (an import, an archive), before reading the new one; a journal entry or a
    fold of what it holds changes a few documents and keeps them."""
    from notifier.web.app import ConsoleStore
    path = tmp_path / "state.json"
    store = journaled(path, fold_at=1 << 30)
    let_go = []
    console = ConsoleStore(path, journal_from=0, fold=False, on_new_base=lambda: let_go.append(console._seen))
    assert console.snapshot().invoice("2026-11-a000").paid is None
    with store.transaction() as snap:
        snap.record_payment("2026-11-a000", D("2026-11-21"))
    assert console.snapshot().invoice("2026-11-a000").paid == D("2026-11-21")
    assert store.fold()
    console.snapshot()
    assert let_go == []
    with Store(path).transaction() as snap:  # a small state is rewritten whole (journal_from: 1 MB)
        snap.record_payment("2026-11-a001", D("2026-11-22"))
    after = console.snapshot()
    assert let_go == [None]  # once, and the old version already dropped by then
    assert after.invoice("2026-11-a001").paid == D("2026-11-22") and after.invoice("2026-11-a000").paid
    console.snapshot()
    assert len(let_go) == 1
