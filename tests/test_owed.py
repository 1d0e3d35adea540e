"""What an account owes on a day (RULES.md "An invoice is", `minimum_amount`), as `plan`,
`timeline`, `preview` and a real cycle see it: they all go through the rules and must agree."""
from __future__ import annotations

import json

import pytest

ACME = {"id": "acme", "company": "ACME Comércio Ltda", "document": "45.723.174/0001-10", "domain": "acme.com.br",
        "emails": ["financeiro@acme.com.br"], "due_day": 20, "past_delinquencies": 1}


def billing(cli, tmp_path, invoices, accounts=(ACME,), day="2026-10-17"):
    path = tmp_path / "billing.json"
    path.write_text(json.dumps({"accounts": list(accounts), "invoices": invoices}, ensure_ascii=False), encoding="utf-8")
    cli("import", str(path), "--date", day)
    return cli


def sent_texts(tmp_path) -> str:
    """Everything the cycle wrote to the local outbox (no provider is configured in tests)."""
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted((tmp_path / "outbox").rglob("*"))
                     if p.is_file())


# --- point 8: an invoice issued after today is not owed yet ---------------------------------------

EARLY = [  # November's invoice imported in October, ahead of its issue date
    {"id": "2026-10-acme", "account": "acme", "amount": "29.90", "issued": "2026-10-05"},
    {"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05"},
]


def test_a_reminder_before_the_next_issue_date_neither_lists_nor_totals_that_invoice(cli, tmp_path):
    billing(cli, tmp_path, EARLY)
    preview = cli("preview", "acme", "--date", "2026-10-17").stdout
    assert "R$ 29,90" in preview
    assert "2026-11-acme" not in preview and "179,80" not in preview and "149,90" not in preview
    assert "Total em aberto" not in preview
    cli("run-once", "--date", "2026-10-17")
    sent = sent_texts(tmp_path)
    assert "29,90" in sent and "2026-11-acme" not in sent and "179,80" not in sent


def test_a_forced_stage_on_an_account_owing_nothing_yet_is_a_clear_error(cli, tmp_path):
    billing(cli, tmp_path, EARLY[1:])
    proc = cli("preview", "acme", "--stage", "reminder", "--date", "2026-10-17", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "acme" in proc.stderr and "no open invoice on 17/10/2026" in proc.stderr


DUE_DAY_5 = [{"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05", "due": "2026-11-05"}]


def test_no_notice_is_dated_before_the_invoice_is_issued(cli, tmp_path):
    # Issued and due on 05/11: the ladder's reminder (due - 3 days, 02/11) would speak of an
    # invoice that does not exist yet.
    billing(cli, tmp_path, DUE_DAY_5, accounts=[{**ACME, "due_day": 5}])
    assert cli.json("plan", "--date", "2026-11-02") == []
    timeline = cli.json("timeline", "acme")
    assert [(e["date"], e["stage"]) for e in timeline][:2] == [("2026-11-05", "due_today"), ("2026-11-06", "overdue")]
    assert cli("preview", "acme", "--date", "2026-11-02", check=False).returncode == 1
    assert [n["stage"] for n in cli.json("plan", "--date", "2026-11-05")] == ["due_today"]


# --- point 9: minimum_amount -------------------------------------------------------------------------

CENTS = [{"id": "2026-11-acme", "account": "acme", "amount": "3.00", "issued": "2026-11-05"}]
PRE_DUE = [("2026-11-17", "reminder"), ("2026-11-23", "due_today")]


def test_an_account_owing_less_than_the_minimum_gets_reminder_and_due_day_only(cli, tmp_path):
    billing(cli, tmp_path, CENTS, day="2026-11-10")
    assert [(e["date"], e["stage"]) for e in cli.json("timeline", "acme")] == PRE_DUE
    assert [n["stage"] for n in cli.json("plan", "--date", "2026-11-17")] == ["reminder"]
    assert [n["stage"] for n in cli.json("plan", "--date", "2026-11-23")] == ["due_today"]
    for day in ("2026-11-24", "2026-11-30", "2026-12-20"):  # overdue, suspended, deletion task
        assert cli.json("plan", "--date", day) == [], day
        proc = cli("preview", "acme", "--date", day, check=False)
        assert proc.returncode == 1 and "nothing planned for acme" in proc.stderr
    for day in ("2026-11-23", "2026-11-24", "2026-11-30", "2026-12-20"):
        cli("run-once", "--rehearsal", "--date", day)  # 20/12 may be weeks ahead of the real today
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 1  # the due-day e-mail only
    assert not list((tmp_path / "outbox").glob("staff*/**/*.*"))


def test_the_minimum_is_the_sum_of_what_the_account_owes(cli, tmp_path):
    two = [CENTS[0], {"id": "2026-11-acme-b", "account": "acme", "amount": "2.00", "issued": "2026-11-05"}]
    billing(cli, tmp_path, two, day="2026-11-10")  # R$ 5,00 together: the ladder runs in full
    assert [n["stage"] for n in cli.json("plan", "--date", "2026-11-24")] == ["overdue"]
    assert "2026-11-30" in [e["date"] for e in cli.json("timeline", "acme")]
    assert "Total em aberto: R$\u00a05,00" in cli("preview", "acme", "--date", "2026-11-24").stdout


@pytest.mark.parametrize("value,ok", [('"0.01"', True), ("0", True), ('"cinco"', False), ("-1", False)])
def test_minimum_amount_is_configurable(cli, tmp_path, value, ok):
    (tmp_path / "n.toml").write_text(f"minimum_amount = {value}\n", encoding="utf-8")
    billing(cli, tmp_path, CENTS, day="2026-11-10")
    proc = cli("--config", "n.toml", "plan", "--date", "2026-11-24", "--json", check=False)
    if ok:
        assert [n["stage"] for n in json.loads(proc.stdout)] == ["overdue"]
    else:
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert "n.toml: minimum_amount: must be an amount in BRL" in proc.stderr
