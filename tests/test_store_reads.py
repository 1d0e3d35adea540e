"""A store's read-only snapshots parse the state file again only when it changed (notifier/store.py,
`Store.snapshot`): a cycle asks three times, mostly of the same file. Whatever changed it (this
store, another process, a person's editor), the next snapshot sees it."""
from __future__ import annotations

import os

from notifier import store as store_module
from notifier.models import Account
from notifier.store import Store

ACME = Account(id="acme", company="ACME Ltda", document="12.345.678/0001-95", emails=("a@acme.com.br",))
BETA = Account(id="beta", company="Beta Ltda", document="123.456.789-09", emails=("b@beta.com.br",))


def counting_reads(monkeypatch) -> list:
    reads = []
    real = store_module._read

    def read(path, sink):
        if isinstance(sink, store_module._ModelTables):  # a snapshot's read, not a transaction's
            reads.append(path)
        return real(path, sink)
    monkeypatch.setattr(store_module, "_read", read)
    return reads


def store_with_acme(path) -> Store:
    store = Store(path)
    with store.transaction() as snap:
        snap.upsert_accounts([ACME])
    return store


def test_an_unchanged_file_is_parsed_once_and_every_change_is_seen(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    store = store_with_acme(path)
    reads = counting_reads(monkeypatch)
    assert store.snapshot().accounts() == [ACME]
    assert store.snapshot().accounts() == [ACME] and store.snapshot().account("acme") == ACME
    assert len(reads) == 1

    with Store(path).transaction() as snap:  # another process's write
        snap.upsert_accounts([BETA])
    assert [a.id for a in store.snapshot().accounts()] == ["acme", "beta"]

    # A person's editor, in place, keeping the size: the modification time tells.
    text = path.read_text(encoding="utf-8")
    edited = text.replace("ACME Ltda", "ACME Ltdb")
    before = os.stat(path)
    path.write_text(edited, encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert store.snapshot().account("acme").company == "ACME Ltdb"
    assert len(reads) == 3

    path.unlink()
    assert store.snapshot().accounts() == []


def test_forget_drops_the_kept_models_so_an_idle_daemon_holds_no_copy_of_the_state(tmp_path, monkeypatch):
    store = store_with_acme(tmp_path / "state.json")
    reads = counting_reads(monkeypatch)
    store.snapshot()
    store.forget()  # what the daemon does after each of its passes
    assert store._seen is None
    assert store.snapshot().accounts() == [ACME] and len(reads) == 2


def test_a_transaction_checks_a_file_that_changed_since_the_last_snapshot(tmp_path):
    """A transaction reuses the models of the last snapshot when the file is the same one (a
    cycle plans, then claims): a file changed meanwhile is checked again, and a bad one refused."""
    import json

    import pytest

    from notifier.store import StoreError
    path = tmp_path / "state.json"
    store = store_with_acme(path)
    assert store.snapshot().account("acme") == ACME
    with store.transaction() as snap:  # the same file: the snapshot's models
        assert snap.account("acme") == ACME
        snap.upsert_accounts([BETA])
    assert [a.id for a in store.snapshot().accounts()] == ["acme", "beta"]
    state = json.loads(path.read_text(encoding="utf-8"))
    state["accounts"]["beta"]["emails"] = "not a list"  # a person's editor
    path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(StoreError, match="accounts 'beta'"):
        with store.transaction():
            pass
    # A document of a table no snapshot keeps is checked by every transaction all the same.
    store = store_with_acme(tmp_path / "other.json")
    store.snapshot()
    state = json.loads(store.path.read_text(encoding="utf-8"))
    state["imports"] = {"x": {"digest": 7}}
    store.path.write_text(json.dumps(state), encoding="utf-8")
    store.snapshot()
    with pytest.raises(StoreError, match="imports 'x'"):
        with store.transaction():
            pass
