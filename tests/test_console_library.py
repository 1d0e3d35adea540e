"""The library under the console's support pages (issue 19): search, the customer view and the
per-account index of the log, through `notifier find`/`notifier show` and on real files."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_cli import BILLING


@pytest.fixture
def examples(cli, tmp_path):
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")
    return cli


@pytest.mark.parametrize("text, account, matched", [
    ("padaria-sao-joao", "padaria-sao-joao", "id"),
    ("PADARIA sao", "padaria-sao-joao", "empresa"),  # accents and case ignored
    ("flor de lís", "atelie-flor-de-lis", "empresa"),
    ("batista ferreira", "padaria-sao-joao", "contato"),
    ("oficinadoisirmaos.com", "oficina-dois-irmaos", "domínio"),
    ("15.881.399/0001-34", "padaria-sao-joao", "CNPJ/CPF"),
    ("15881399000134", "padaria-sao-joao", "CNPJ/CPF"),
    ("881.399", "padaria-sao-joao", "CNPJ/CPF"),  # part of it, as printed
    ("financeiro@padariasaojoao", "padaria-sao-joao", "e-mail"),
    ("+55 (11) 98745-2310", "padaria-sao-joao", "telefone"),
    ("11 987452310", "padaria-sao-joao", "telefone"),
])
def test_find_knows_a_customer_the_ways_staff_are_told(examples, text, account, matched):
    [found, *others] = examples.json("find", text)
    assert (found["id"], found["matched"]) == (account, matched), (found, others)


def test_find_puts_the_exact_id_first_refuses_nothing_found_and_finds_an_alphanumeric_cnpj(cli, examples, tmp_path):
    assert [f["id"] for f in examples.json("find", "ltda")][:1] != []
    proc = examples("find", "nada-parecido", check=False)
    assert proc.returncode == 1 and "no account matches 'nada-parecido'" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "b.json").write_text(json.dumps(BILLING, ensure_ascii=False), encoding="utf-8")
    cli("import", "b.json", "--date", "2026-11-10")
    assert [f["id"] for f in cli.json("find", "12abc34501de35")] == ["beta"]
    assert [f["id"] for f in cli.json("find", "12.ABC.345/01DE-35")] == ["beta"]
    assert "beta" in cli("find", "Beta").stdout


def test_the_search_index_is_built_once_per_version_of_the_state(tmp_path, cli):
    from notifier.staff.search import find, index_of
    from notifier.state.store import Store
    (tmp_path / "b.json").write_text(json.dumps(BILLING, ensure_ascii=False), encoding="utf-8")
    cli("import", "b.json", "--date", "2026-11-10")
    store = Store(tmp_path / "state.json")
    first = index_of(store.snapshot())
    assert index_of(store.snapshot()) is first  # the file did not change: the same index
    assert [f.account.id for f in find(store.snapshot(), "acme")] == ["acme"]
    cli("pay", "2026-11-beta", "--date", "2026-11-11", "--by", "Ana")
    again = store.snapshot()
    assert index_of(again) is first  # a new file, but no account changed: the index is kept...
    [found] = find(again, "acme")
    assert found.account is again.account("acme")  # ...with the new version's accounts
    cli("opt-out", "acme", "--channel", "sms", "--by", "Ana", "--date", "2026-11-11")
    opted = store.snapshot()
    assert index_of(opted) is first  # an account changed, but not what a search sees: kept...
    assert find(opted, "acme")[0].account.opt_out == {"sms"}  # ...with the changed account
    renamed = json.loads(json.dumps(BILLING))
    renamed["accounts"][0]["company"] = "Zeta Comércio"
    (tmp_path / "b.json").write_text(json.dumps(renamed, ensure_ascii=False), encoding="utf-8")
    cli("import", "b.json", "--date", "2026-11-12")
    changed = store.snapshot()
    assert index_of(changed) is not first  # a searched field changed: built again
    assert [f.account.id for f in find(changed, "zeta")] == ["acme"]
    assert find(opted, "acme ltda") and find(changed, "acme ltda") == []  # the old name is gone


def test_find_lists_the_accounts_that_start_with_the_text_first_then_by_company_name():
    """Against the rule written out plainly, on more accounts than a list shows: a vague word in
    every account, words in several fields, a CNPJ and a phone, separators inside a field."""
    from notifier.billing.models import Account
    from notifier.staff.search import LIMIT, Index, folded
    names = ["Padaria Ltda", "Ltda Comércio", "Zebra Ltda", "Ateliê Lúcia Ltda", "Oficina\x1fLtda"]
    accounts = [Account(f"c{n:03d}", f"{names[n % len(names)]} {n}", f"11.222.{n:03d}/0001-{n % 100:02d}",
                        (f"financeiro@c{n:03d}.com.br",), contact_name="Lúcia Ltda" if n % 7 == 0 else "",
                        whatsapp=f"+55119874{n:05d}") for n in range(3 * LIMIT)]
    index = Index(reversed(accounts))

    def expected(word: str) -> list[str]:
        hits = []
        for a in reversed(accounts):
            fields = [folded(t) for t in (a.company, a.id, a.contact_name, "", *a.emails, "")]
            field = next((f for f in fields if word in f), None)
            if field is not None:
                hits.append((1 if field.startswith(word) or f" {word}" in field else 2, folded(a.company), a.id))
        return [i for _, _, i in sorted(hits, key=lambda h: h[:2])][:LIMIT]

    for word in ("ltda", "l", "lucia", "oficina", "2", "financeiro@c01"):
        assert [f.account.id for f in index.find(word)] == expected(word), word
    assert [(f.account.id, f.matched) for f in index.find("11.222.007")] == [("c007", "CNPJ/CPF")]
    assert [(f.account.id, f.matched) for f in index.find("98740-0042")] == [("c042", "telefone")]
    assert [f.account.id for f in index.find("c010")][:1] == ["c010"]  # the exact id first


def test_show_tells_what_comes_next_and_the_history_newest_first(cli, tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(BILLING, ensure_ascii=False), encoding="utf-8")
    cli("import", "b.json", "--date", "2026-11-10")
    cli("run-once", "--date", "2026-11-24")
    cli("contact", "acme", "--by", "Ana", "--channel", "phone", "--outcome", "promised_payment",
        "--note", "paga sexta", "--date", "2026-11-25")
    cli("hold", "acme", "--by", "Ana", "--reason", "promised_payment", "--until", "2026-11-28", "--date", "2026-11-25")
    shown = cli.json("show", "acme", "--date", "2026-11-25")
    nov = next(i for i in shown["invoices"] if i["id"] == "2026-11-acme")
    assert (nov["effective_due"], nov["suspension"], nov["paid"]) == ("2026-11-23", "2026-11-30", None)
    assert [(e["date"], e["stage"]) for e in shown["next"]][:2] == [("2026-11-27", "suspension_warning"),
                                                                    ("2026-11-30", "suspended")]
    kinds = [h["kind"] for h in shown["history"]]
    assert kinds[:2] == ["hold", "contact"] and kinds[-1] == "payment"  # newest first; October's payment last
    sent = [h for h in shown["history"] if h["kind"] == "sending"]
    # Written to the local outbox (no SMTP server configured): never called sent.
    assert {(h["record"]["channel"], h["status"]) for h in sent} >= {("email", "outbox"), ("social", "task")}
    email = next(h for h in sent if h["record"]["channel"] == "email")
    assert email["updates"][0]["ref"] == email["record"]["id"] and email["record"]["content"]["subject"]
    text = cli("show", "acme", "--date", "2026-11-25").stdout
    assert "what comes next:" in text and "27/11/2026  suspension_warning" in text
    assert "contact (by Ana)" not in text and "outcome=promised_payment" in text and "(by Ana)" in text
    proc = cli("show", "nobody", check=False)
    assert proc.returncode == 1 and "no account 'nobody'" in proc.stderr and "Traceback" not in proc.stderr


def _log_with(path: Path, accounts: list[str]):
    from notifier.channels import Message, Result
    from notifier.log.attempts import AttemptLog
    log = AttemptLog(path)
    when = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
    for account in accounts:
        message = Message(channel="sms", recipient="+5511987654321", text=f"Olá {account}")
        attempt = log.start(when, message, {"account": account, "stage": "overdue"})
        log.finish(attempt, when, Result("sent", "twilio", provider_id="SM1"))
    return log


def test_the_log_index_reads_only_what_was_appended_and_starts_over_when_the_log_is_replaced(tmp_path):
    from notifier.channels import Result
    from notifier.log.index import LogIndex
    path = tmp_path / "attempts.jsonl"
    log = _log_with(path, ["acme", "beta", "acme"])
    index = LogIndex(path)
    assert [r["event"] for r in index.account_records("acme")] == ["sending", "sent"] * 2
    assert index.rebuilds == 0
    # An outcome written by another process carries no account: it is the sending's account's.
    sending = index.account_records("beta")[0]
    other = type(log)(path)
    other.finish(sending["id"], datetime(2026, 11, 24, 13, tzinfo=timezone.utc), Result("failed", "twilio"))
    assert [r["event"] for r in index.account_records("beta")] == ["sending", "sent", "failed"]
    with open(path, "ab") as f:
        f.write(b'{"seq":99,"id":"torn","event":"contact","account":"acme"')  # a torn last line: not read
    assert len(index.account_records("acme")) == 4 and index.rebuilds == 0
    log.close()
    other.close()
    # Another log in its place (a restore: the log with its head and messages, not the log alone,
    # which the next writer would refuse as a log cut short).
    for old in tmp_path.glob("attempts.jsonl*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    _log_with(path, ["gama"])
    assert index.account_records("acme") == [] and [r["event"] for r in index.account_records("gama")] == ["sending", "sent"]
    assert index.rebuilds == 1


def test_the_task_records_of_the_index_give_the_same_tasks_as_the_whole_log(cli, tmp_path):
    from notifier.log.attempts import AttemptLog
    from notifier.log.index import LogIndex
    from notifier.staff.actions import tasks
    (tmp_path / "b.json").write_text(json.dumps(BILLING, ensure_ascii=False), encoding="utf-8")
    cli("import", "b.json", "--date", "2026-11-10")
    cli("run-once", "--date", "2026-11-24")
    cli("run-once", "--rehearsal", "--date", "2026-12-28")  # deletion tasks (days ahead: a rehearsal)
    whole = tasks(AttemptLog(tmp_path / "attempts.jsonl").records())
    assert {t.kind for t in whole} >= {"social_manual", "deletion_due"}
    assert tasks(LogIndex(tmp_path / "attempts.jsonl").task_records()) == whole
    # The list the index keeps (`task_list`), fed what each process appended since: the same.
    index = LogIndex(tmp_path / "attempts.jsonl")
    assert index.task_list() == whole
    social = next(t for t in whole if t.kind == "social_manual")
    cli("tasks", "done", social.id, "--by", "bia", "--outcome", "enviei")
    again = tasks(AttemptLog(tmp_path / "attempts.jsonl").records())
    assert next(t for t in again if t.id == social.id).done["actor"] == "bia"
    assert index.task_list() == again != whole and index.rebuilds == 0


def test_the_email_as_the_customer_saw_it_comes_from_the_message_store(cli, tmp_path):
    from notifier.log.attempts import AttemptLog
    from notifier.log.index import LogIndex
    from notifier.staff.customer import email_html
    billing = json.loads(json.dumps(BILLING))
    billing["invoices"][1]["pix_code"] = json.loads((ROOT / "examples" / "billing.json").read_text())["invoices"][-1].get("pix_code")
    (tmp_path / "b.json").write_text(json.dumps(BILLING, ensure_ascii=False), encoding="utf-8")
    cli("import", "b.json", "--date", "2026-11-10")
    cli("run-once", "--date", "2026-11-24")
    records = LogIndex(tmp_path / "attempts.jsonl").account_records("acme")
    email = next(r for r in records if r.get("channel") == "email" and r["event"] == "sending")
    html = email_html(AttemptLog(tmp_path / "attempts.jsonl"), email)
    assert "<html" in html.lower() and "ACME" in html and "cid:" not in html
    sms_or_social = next(r for r in records if r.get("channel") == "social" and r["event"] == "sending")
    assert email_html(AttemptLog(tmp_path / "attempts.jsonl"), sms_or_social) is None


def test_threads_sharing_one_attempt_log_keep_the_chain_whole(tmp_path):
    """The console's views run in a threadpool and share one AttemptLog. Its flock is taken on one
    file descriptor, which does not exclude the threads of one process: without its thread lock
    two appends would number and chain their records from the same tail."""
    import sys
    import threading

    from notifier.log.attempts import AttemptLog, line_hash

    log = AttemptLog(tmp_path / "attempts.jsonl")
    when = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
    start = threading.Barrier(4)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can: a race shows at once

    def write(n: int) -> None:
        start.wait()
        for i in range(150):
            log.note(when, "contact", {"account": f"acc-{n}", "n": i}, "test")
    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
        log.close()
    lines = (tmp_path / "attempts.jsonl").read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == list(range(1, 601))
    assert all(r["prev"] == line_hash(before) for before, r in zip(lines, records[1:]))
    assert log.head() == (600, line_hash(lines[-1]))


def test_the_consoles_threads_read_a_changed_state_once_between_them(tmp_path, cli):
    """After another process wrote the state, requests asking at the same moment share one read
    of it (one parse held in memory, not one per thread)."""
    import threading
    from notifier.web.app import ConsoleStore
    accounts = [{"id": f"c{i:04d}", "company": f"Empresa {i} Ltda", "document": "11.222.333/0001-81",
                 "emails": [f"financeiro@c{i:04d}.com.br"], "due_day": 20} for i in range(3000)]
    invoices = [{"id": f"2026-11-c{i:04d}", "account": f"c{i:04d}", "amount": "149.90", "issued": "2026-11-05"}
                for i in range(3000)]
    (tmp_path / "b.json").write_text(json.dumps({"accounts": accounts, "invoices": invoices}), encoding="utf-8")
    cli("import", "b.json", "--date", "2026-11-10")
    store = ConsoleStore(tmp_path / "state.json", keep_written=True)
    before = store.snapshot().accounts_table()
    cli("pay", "2026-11-c0001", "--date", "2026-11-11", "--by", "Ana")  # another process writes the file
    start, tables = threading.Barrier(8), []

    def ask() -> None:
        start.wait()
        tables.append(store.snapshot().accounts_table())
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(t) for t in tables}) == 1 and tables[0] is not before
    assert store.snapshot().invoice("2026-11-c0001").paid is not None
