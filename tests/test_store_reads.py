"""A store's read-only snapshots parse the state file again only when it changed (notifier/state/store.py,
`Store.snapshot`): a cycle asks three times, mostly of the same file. Whatever changed it (this
store, another process, a person's editor), the next snapshot sees it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal

import orjson
import pytest
from hypothesis import example, given, settings, strategies as st

from notifier.state import store as store_module, storedocs
from notifier.billing.models import Account, Invoice, LedgerEntry
from notifier.state.store import Store, StoreError, _Converter
from tests.conftest import ROOT

ACME = Account(id="acme", company="ACME Ltda", document="12.345.678/0001-95", emails=("a@acme.com.br",))
BETA = Account(id="beta", company="Beta Ltda", document="123.456.789-09", emails=("b@beta.com.br",))


def store_with_acme(path) -> Store:
    store = Store(path)
    with store.transaction() as snap:
        snap.upsert_accounts([ACME])
    return store


def test_an_unchanged_file_is_parsed_once_and_every_change_is_seen(tmp_path):
    # A parse makes new model objects: the same objects again mean the file was not read again.
    path = tmp_path / "state.json"
    store = store_with_acme(path)
    first = store.snapshot().account("acme")
    assert first == ACME
    assert store.snapshot().accounts()[0] is first and store.snapshot().account("acme") is first

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

    path.unlink()
    assert store.snapshot().accounts() == []


def test_forget_drops_the_kept_models_so_an_idle_daemon_holds_no_copy_of_the_state(tmp_path):
    store = store_with_acme(tmp_path / "state.json")
    kept = store.snapshot().account("acme")
    store.forget()  # what the daemon does after each of its passes
    assert store._seen is None
    again = store.snapshot().account("acme")
    assert again == ACME and again is not kept  # parsed anew


def test_a_transaction_checks_a_file_that_changed_since_the_last_snapshot(tmp_path):
    """A transaction reuses the models of the last snapshot when the file is the same one (a
    cycle plans, then claims): a file changed meanwhile is checked again, and a bad one refused."""
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


# --- a big table's chunks are decoded by msgspec (notifier/state/storedocs.py) -------------------------

# Each table's usual document (as the store writes it) and, per field, values of every JSON type,
# the good ones among them.
_ODD = [None, 0, 1, -1, 2**64 - 1, 2**64, 2**70, 1.5, 20.0, True, False, "", "x", " ", [], ["x"], [1], {}, {"a": "b"}, {"a": 1}]
USUAL = {
    "accounts": {"company": "ACME Ltda", "document": "12.345.678/0001-95", "emails": ["a@acme.com.br"],
                 "contact_name": "Ana", "domain": "acme.com.br", "portal_email": "a@acme.com.br",
                 "whatsapp": "+5511987654321", "social": {"instagram": "@acme"}, "due_day": 20,
                 "past_delinquencies": 1, "opt_out": ["sms"], "staff_opt_out": {"whatsapp": {"by": "ana", "date": "2026-11-02"}}},
    "invoices": {"account": "acme", "amount": "149.90", "issued": "2026-11-05", "due": "2026-11-20",
                 "paid": "2026-11-19", "payment_url": "https://pague.example/1", "pix_code": "000201"},
    "ledger": {"invoice": "2026-11-acme", "account": "acme", "notice_date": "2026-11-20", "stage": "due_today",
               "channel": "email", "recipient": "a@acme.com.br", "status": "sent", "tutorial": True, "attempt_id": "a1"},
    "history": {"first_late_due": "2026-06-20", "late_count": 2},
}
GOOD = {
    "due_day": [1, 31, 32, 0], "past_delinquencies": [0, 3], "late_count": [0, 7], "tutorial": [True, False],
    "emails": [["a@acme.com.br", "b@acme.com.br"], "a@acme.com.br", [None]], "opt_out": [["sms", "whatsapp"], "sms"],
    "social": [{"facebook": "acme", "x": "@acme"}, ["@acme"]], "staff_opt_out": [{"sms": 1}, ["sms"]],
    "amount": ["89", "1234.5", "1.234,56", "１２３", "-1"], "issued": ["2026-02-30", "20261105", "05/11/2026"],
    "due": ["2026-12-01"], "paid": ["2026-13-01"], "notice_date": ["2026-11-2"], "first_late_due": ["2026-6-20"],
}
_DROP = object()


def _outcome(table: str, docs: dict):
    """What the store's own checks make of `docs`: the models, or "refused"."""
    try:
        return _Converter("state.json").many(table, docs)
    except StoreError:
        return "refused"


def _agree(table: str, changes) -> None:
    doc = dict(USUAL[table])
    for key, value in changes:
        doc.pop(key, None) if value is _DROP else doc.__setitem__(key, value)
    docs = {"k1": USUAL[table], "k2": doc}
    converter = _Converter("state.json")
    fast = storedocs.decode(table, json.dumps(docs).encode(), converter.dates, converter.amounts)
    slow = _outcome(table, orjson.loads(json.dumps(docs)))  # as the store parses a chunk
    assert fast is None or fast == slow, (changes, fast, slow)
    if not changes:
        assert fast is not None, "a usual document must be taken"


def test_each_field_of_every_json_type_is_taken_by_msgspec_only_as_the_stores_checks_take_it():
    for table, usual in USUAL.items():
        _agree(table, [])
        for key in usual:
            for value in [_DROP, *_ODD, *GOOD.get(key, [])]:
                _agree(table, [(key, value)])


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(USUAL)).flatmap(lambda table: st.tuples(st.just(table), st.lists(
    st.sampled_from(sorted(USUAL[table])).flatmap(lambda key: st.tuples(st.just(key), st.sampled_from(
        [_DROP, *_ODD, *GOOD.get(key, [])]))), max_size=3))))
@example(("accounts", [("contact_name", None), ("opt_out", _DROP)]))
def test_a_chunk_msgspec_decodes_gives_what_the_stores_checks_give(case):
    _agree(*case)  # several fields changed at once


def test_a_big_store_reads_the_same_and_a_bad_document_still_names_itself(tmp_path):
    """A store of more than TYPED_MIN documents a table: its snapshot is what the store's checks
    alone make of it, and a document they refuse is named in the same words as in a small store."""
    n = store_module.TYPED_MIN + 5
    path = tmp_path / "state.json"
    store = Store(path)
    with store.transaction() as snap:
        snap.upsert_accounts(ACME._replace(id=f"a{i:05d}", opt_out=frozenset({"sms"}) if i % 2 else frozenset())
                             for i in range(n))
        snap.upsert_invoices([Invoice(f"i{i:05d}", f"a{i:05d}", Decimal("149.90"), date(2026, 11, 5), date(2026, 11, 20),
                                      date(2026, 11, 19) if i % 3 else None) for i in range(n)])
        snap.add_ledger([LedgerEntry(f"i{i:05d}", f"a{i:05d}", date(2026, 11, 15), "reminder", "email",
                                     "a@acme.com.br", "sent", attempt_id=f"t{i}") for i in range(n)])
    data = json.loads(path.read_text(encoding="utf-8"))
    typed = Store(path).snapshot()
    for name in ("accounts", "invoices", "ledger"):
        assert typed._models[name] == _Converter("state.json").many(name, data[name]) and len(data[name]) == n
    # One bad amount deep in the big table, the file still in the store's own layout.
    good = path.read_bytes()
    path.write_bytes(good.replace(b'"i00500":{"account":"a00500","amount":"149.90"', b'"i00500":{"account":"a00500","amount":149.9'))
    with pytest.raises(StoreError, match="not a valid state file: invoices 'i00500': TypeError: amount must be a string"):
        Store(path).snapshot()
    # A value nested deeper than msgspec goes (1,000 levels) but within what every orjson reads
    # (1,024 since 3.13, the whole document): read as the store's checks read it.
    path.write_bytes(_nested(good, 1010))
    assert Store(path).snapshot().account("a00500").opt_out == {"sms"}
    # Deeper still: an orjson that reads it gives the same; a newer one refuses, and so does the store, by name.
    path.write_bytes(_nested(good, 5000))
    if _orjson_reads_depth(5000):
        assert Store(path).snapshot().account("a00500").opt_out == {"sms"}
    else:
        with pytest.raises(StoreError, match=f"^{re.escape(str(path))}: not a valid state file: nested too deep "):
            Store(path).snapshot()
    # The big tables went through msgspec; a small store's never load it (5 ms of every command).
    path.write_bytes(good)
    assert _snapshot_loads_msgspec(path)
    store_with_acme(tmp_path / "small.json")
    assert not _snapshot_loads_msgspec(tmp_path / "small.json")


def _nested(state: bytes, depth: int) -> bytes:
    """`state` with account a00500's staff opt-outs holding a list nested `depth` levels deep."""
    return state.replace(b'"a00500":{', b'"a00500":{"staff_opt_out":{"sms":' + b"[" * depth + b"]" * depth + b"},")


def _orjson_reads_depth(depth: int) -> bool:
    try:
        orjson.loads(b"[" * depth + b"]" * depth)
    except orjson.JSONDecodeError:
        return False
    return True


def _snapshot_loads_msgspec(path) -> bool:
    """Whether a fresh process that takes a snapshot of `path` ends up with msgspec loaded."""
    probe = ("import sys; from notifier.state.store import Store; "
             f"Store(__import__('pathlib').Path({str(path)!r})).snapshot(); print('msgspec' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return out.strip() == "True"


def test_after_a_write_the_next_snapshot_is_what_was_written_without_parsing_the_file(tmp_path, monkeypatch):
    """A console's action writes, then draws the page again: the snapshot after the transaction
    takes its models from what the transaction wrote (the tables it left alone are the very
    objects read before) instead of parsing the whole state again; and it equals a fresh parse."""
    from notifier.billing.models import Hold
    path = tmp_path / "state.json"
    store_with_acme(path)
    store = Store(path, keep_written=True)  # as the console's
    acme = store.snapshot().account("acme")
    parses = []
    real_read = store_module._read
    monkeypatch.setattr(store_module, "_read", lambda p, sink: parses.append(type(sink).__name__) or real_read(p, sink))

    with store.transaction() as snap:
        snap.put_hold(Hold("acme", "disputed", date(2026, 12, 20), "bia", date(2026, 11, 24), ""))
    after = store.snapshot()
    assert parses == ["_RawTables"]  # the transaction's own read; no parse for the snapshot after it
    assert after.account("acme") is acme  # accounts untouched: the same objects
    assert after.holds()["acme"].until == date(2026, 12, 20)

    with store.transaction() as snap:
        snap.upsert_accounts([BETA])
    assert [a.id for a in store.snapshot().accounts()] == ["acme", "beta"]
    with store.transaction() as snap:  # a document changed in place: as many accounts as before
        snap.record_opt_out("acme", "sms", "bia", date(2026, 11, 24))
    assert "sms" in store.snapshot().account("acme").opt_out
    assert parses == ["_RawTables"] * 3
    fresh = Store(path).snapshot()
    kept = store.snapshot()
    assert kept.accounts() == fresh.accounts() and kept.holds() == fresh.holds()
    assert kept.invoices() == fresh.invoices() and kept.meta("log_head") == fresh.meta("log_head")

    store.forget()  # a store that keeps no snapshot keeps none after its writes either
    with store.transaction() as snap:
        snap.drop_hold("acme")
    assert store._written is None
    plain = Store(path)  # nor does a store not asked to (a cycle, an import, a CLI command)
    plain.snapshot()
    with plain.transaction() as snap:
        snap.drop_hold("beta")
        snap.set_meta("probe", {"n": 1})
    assert plain._written is None
