"""The command line as an operator uses it: real subprocesses, real files, a frozen day."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BILLING = {
    "accounts": [
        {"id": "acme", "company": "ACME Comércio Ltda", "contact_name": "Maria Souza",
         "document": "45.723.174/0001-10", "domain": "acme.com.br",
         "emails": ["financeiro@acme.com.br", "maria@acme.com.br"], "portal_email": "maria@acme.com.br",
         "whatsapp": "+5511987654321", "social": {"instagram": "@acme"}, "due_day": 20},
        {"id": "beta", "company": "Beta Serviços Ltda", "document": "12.ABC.345/01DE-35",
         "emails": ["contas@beta.com.br"], "due_day": 28, "past_delinquencies": 1},
    ],
    "invoices": [
        {"id": "2026-10-acme", "account": "acme", "amount": "149.90", "issued": "2026-10-05", "paid": "2026-10-20"},
        {"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05",
         "payment_url": "https://pagar.exemplo.com.br/2026-11-acme"},
        {"id": "2026-11-beta", "account": "beta", "amount": "1234.56", "issued": "2026-11-05"},
    ],
}


@pytest.fixture
def imported(cli, tmp_path):
    path = tmp_path / "billing.json"
    path.write_text(json.dumps(BILLING, ensure_ascii=False, indent=1), encoding="utf-8")
    out = cli("import", str(path), "--date", "2026-11-10")
    assert "imported 2 accounts and 3 invoices" in out.stdout
    return cli


def test_every_command_has_help(cli):
    from notifier.cli import cli as group
    for name, command in group.commands.items():
        assert command.help, name
        assert cli(name, "--help").returncode == 0


def test_plan_json_for_a_day(imported):
    plan = imported.json("plan", "--date", "2026-11-24")
    assert plan == [
        {"account": "acme", "date": "2026-11-24", "stage": "overdue", "channel": "email",
         "recipient": "financeiro@acme.com.br", "invoices": ["2026-11-acme"], "first_time": True, "tutorial": True},
        {"account": "acme", "date": "2026-11-24", "stage": "overdue", "channel": "email",
         "recipient": "maria@acme.com.br", "invoices": ["2026-11-acme"], "first_time": True, "tutorial": True},
        {"account": "acme", "date": "2026-11-24", "stage": "overdue", "channel": "social",
         "recipient": "instagram:@acme", "invoices": ["2026-11-acme"], "first_time": True, "tutorial": True},
        {"account": "acme", "date": "2026-11-24", "stage": "overdue", "channel": "whatsapp",
         "recipient": "+5511987654321", "invoices": ["2026-11-acme"], "first_time": True, "tutorial": True},
        # beta: due 28/11 (a saturday): its reminder was on 25/11, so nothing on the 24th
    ]
    table = imported("plan", "--date", "2026-11-24").stdout
    assert "4 notices for 24/11/2026" in table and "instagram:@acme" in table


def test_frozen_day_from_the_environment(imported):
    plan = imported.json("plan", env={"NOTIFIER_DATE": "2026-11-25"})
    assert ("beta", "reminder") in {(n["account"], n["stage"]) for n in plan}


def test_timeline_json(imported):
    timeline = imported.json("timeline", "beta")
    assert [(e["date"], e["stage"]) for e in timeline] == [
        ("2026-11-25", "reminder"), ("2026-11-30", "due_today"), ("2026-12-01", "suspended"),
        ("2026-12-21", "deletion_warning"), ("2026-12-28", "deletion_due")]


def test_accounts_and_show(imported):
    accounts = imported.json("accounts")
    assert [(a["id"], a["open_invoices"], a["open_amount"]) for a in accounts] == [("acme", 1, "149.90"), ("beta", 1, "1234.56")]
    shown = imported.json("show", "acme")
    nov = [i for i in shown["invoices"] if i["id"] == "2026-11-acme"][0]
    assert (nov["effective_due"], nov["overdue"], nov["suspension"], nov["deletion"]) == (
        "2026-11-23", "2026-11-24", "2026-11-30", "2026-12-20")
    assert "effective due" in imported("show", "acme").stdout


def test_pay_stops_the_notices(imported):
    assert "paid on 23/11/2026" in imported("pay", "2026-11-acme", "--date", "2026-11-23").stdout
    assert [n["account"] for n in imported.json("plan", "--date", "2026-11-24")] == []


def test_pay_unknown_invoice_is_a_clear_error(imported):
    proc = imported("pay", "nope", "--date", "2026-11-23", check=False)
    assert proc.returncode != 0 and "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_rejected_import_leaves_the_state_byte_for_byte_unchanged(imported, tmp_path):
    state = tmp_path / "state.json"
    before = state.read_bytes()
    bad = json.loads(json.dumps(BILLING))
    bad["accounts"][0]["emails"] = ["not-an-address"]
    bad["invoices"][2]["amount"] = "12,50"
    bad["invoices"].append({"id": "x", "account": "ghost", "amount": "1.00", "issued": "2026-11-05"})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad, indent=1), encoding="utf-8")
    proc = imported("import", str(path), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "bad.json:" in proc.stderr and "emails" in proc.stderr and "amount" in proc.stderr and "ghost" in proc.stderr
    assert state.read_bytes() == before


def test_corrupt_state_stops_every_command_and_is_not_overwritten(cli, tmp_path):
    state = tmp_path / "state.json"
    state.write_text('{"accounts": {"acme": ', encoding="utf-8")
    before = state.read_bytes()
    for args in (["plan", "--date", "2026-11-24"], ["pay", "x", "--date", "2026-11-24"], ["accounts"]):
        proc = cli(*args, check=False)
        assert proc.returncode != 0 and "state.json" in proc.stderr and "Traceback" not in proc.stderr
    assert state.read_bytes() == before


def test_bad_config_names_the_key(cli, tmp_path):
    (tmp_path / "n.toml").write_text('[[ladder]]\nstage = "overdue"\nchannels = ["fax"]\n', encoding="utf-8")
    proc = cli("--config", "n.toml", "plan", check=False)
    assert proc.returncode != 0 and "ladder[0].channels" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_date_is_a_usage_error(cli):
    proc = cli("plan", "--date", "24/11/2026", check=False)
    assert proc.returncode == 2 and "--date" in proc.stderr


def test_unknown_account(imported):
    proc = imported("timeline", "ghost", check=False)
    assert proc.returncode != 0 and "ghost" in proc.stderr and "Traceback" not in proc.stderr


def test_preview_and_send_to_the_outbox(imported, tmp_path):
    preview = imported("preview", "acme", "--date", "2026-11-24", "--channel", "email").stdout
    assert "Assunto:" in preview and "R$\xa0149,90" in preview and "20/11/2026" in preview
    whatsapp = imported("preview", "acme", "--date", "2026-11-24", "--channel", "whatsapp").stdout
    assert "723.174" not in whatsapp and "Olá, Maria Souza!" in whatsapp  # no CPF/CNPJ outside e-mail
    sent = imported("send", "acme", "--channel", "email", "--date", "2026-11-24").stdout
    assert sent.count("sent via outbox") == 2
    emls = sorted((tmp_path / "outbox" / "email").glob("*.eml"))
    assert len(emls) == 2
    records = [json.loads(line) for line in (tmp_path / "attempts.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["sending", "result", "sending", "result"]
    assert {r["recipient"] for r in records if r["event"] == "sending"} == {"financeiro@acme.com.br", "maria@acme.com.br"}
    # a test send does not mark the plan's notice as handled
    assert len(imported.json("plan", "--date", "2026-11-24")) == 4


def test_send_with_missing_credential_names_the_variable_and_other_channels_work(imported, tmp_path):
    env = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32}
    proc = imported("send", "acme", "--channel", "whatsapp", "--date", "2026-11-24", env=env, check=False)
    assert proc.returncode == 1 and "TWILIO_AUTH_TOKEN" in proc.stdout
    ok = imported("send", "acme", "--channel", "email", "--date", "2026-11-24", env=env)
    assert ok.stdout.count("sent via outbox") == 2


def test_check_passes_on_defaults_and_warns_about_the_example_company(cli):
    out = cli("check").stdout
    assert "templates: ok" in out and "built-in example" in out


def test_python_dash_m_runs_the_same_program(cli):
    proc = subprocess.run([sys.executable, "-m", "notifier", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "plan" in proc.stdout


def test_state_example_is_the_import_of_the_example_billing_data(cli, tmp_path):
    # state.json.example is generated, never edited by hand: this keeps it in step with examples/.
    cli("--state", "fresh.json", "import", str(ROOT / "examples" / "billing.json"), "--date", "2026-11-26")
    assert (tmp_path / "fresh.json").read_bytes() == (ROOT / "state.json.example").read_bytes()


def test_readme_main_command_plans_the_example_state(cli):
    out = cli("--state", str(ROOT / "state.json.example"), "plan", "--date", "2026-11-24").stdout
    assert "padaria-sao-joao" in out and "whatsapp" in out and "notices for 24/11/2026" in out


def test_send_refuses_when_a_template_is_broken(imported, tmp_path):
    override = tmp_path / "my_templates" / "stages"
    override.mkdir(parents=True)
    (override / "overdue.txt").write_text("Olá {{ cliente_inexistente }}\n", encoding="utf-8")
    (tmp_path / "n.toml").write_text('templates = "my_templates"\n', encoding="utf-8")
    proc = imported("--config", "n.toml", "send", "acme", "--channel", "email", "--date", "2026-11-24", check=False)
    assert proc.returncode == 1 and "overdue.txt:1" in proc.stderr and "cliente_inexistente" in proc.stderr
    assert not (tmp_path / "outbox").exists() and not (tmp_path / "attempts.jsonl").exists()
    check = imported("--config", "n.toml", "check", check=False)
    assert check.returncode == 1 and "overdue.txt:1" in check.stderr
