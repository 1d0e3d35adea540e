"""The command line as an operator uses it: real subprocesses, real files, a frozen day."""
from __future__ import annotations

import json
import subprocess
import sys

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
    assert sent.count("not sent, written to the local outbox") == 2
    emls = sorted((tmp_path / "outbox" / "email").glob("*.eml"))
    assert len(emls) == 2
    records = [json.loads(line) for line in (tmp_path / "attempts.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["sending", "outbox", "sending", "outbox"]
    assert {r["recipient"] for r in records if r["event"] == "sending"} == {"financeiro@acme.com.br", "maria@acme.com.br"}
    # a test send does not mark the plan's notice as handled
    assert len(imported.json("plan", "--date", "2026-11-24")) == 4


def test_send_with_missing_credential_names_the_variable_and_other_channels_work(imported, tmp_path):
    env = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32}
    proc = imported("send", "acme", "--channel", "whatsapp", "--date", "2026-11-24", env=env, check=False)
    assert proc.returncode == 1 and "TWILIO_AUTH_TOKEN" in proc.stdout
    ok = imported("send", "acme", "--channel", "email", "--date", "2026-11-24", env=env)
    assert ok.stdout.count("not sent, written to the local outbox") == 2


def test_check_passes_on_defaults_and_warns_about_the_example_company(cli, tmp_path):
    # Out of the box WhatsApp has no approved template (tests/test_send_e2e.py checks that check
    # says so); with free-form text allowed, the defaults pass.
    (tmp_path / "n.toml").write_text("[channels.whatsapp]\nfreeform = true\n", encoding="utf-8")
    out = cli("--config", "n.toml", "check").stdout
    assert "templates: ok" in out and "built-in example" in out


def test_python_dash_m_runs_the_same_program(cli):
    proc = subprocess.run([sys.executable, "-m", "notifier", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "plan" in proc.stdout


def test_state_example_is_the_import_of_the_example_billing_data(cli, tmp_path):
    # state.json.example is generated, never edited by hand: this keeps it in step with examples/.
    cli("--state", "fresh.json", "import", str(ROOT / "examples" / "billing.json"), "--date", "2026-11-26")
    assert (tmp_path / "fresh.json").read_bytes() == (ROOT / "state.json.example").read_bytes()


def test_readme_main_command_runs_one_cycle_on_a_copy_of_the_example_state(cli, tmp_path):
    example = (ROOT / "state.json.example").read_bytes()
    (tmp_path / "state.json").write_bytes(example)  # README: cp state.json.example state.json
    out = cli("run-once", "--date", "2026-11-24").stdout
    assert out.splitlines()[0].split() == ["channel", "sent", "outbox", "task", "unknown", "failed", "retry",
                                           "waiting", "held", "skipped", "blocked"]
    emails = sorted(p.name.split("-", 1)[1].rsplit("-", 1)[0] for p in (tmp_path / "outbox" / "email").glob("*.eml"))
    assert "financeiro@padariasaojoao.com.br" in emails and len(emails) == 6
    assert (ROOT / "state.json.example").read_bytes() == example
    # At most once: the second cycle of the day sends nothing again. WhatsApp has no approved
    # template out of the box, so its notice stays blocked (our configuration, not the customer's):
    # tried at every cycle, told to staff once a day.
    staff = sorted((tmp_path / "outbox" / "staff").iterdir())
    again = cli("run-once", "--date", "2026-11-24").stdout.splitlines()
    assert [line.split() for line in again[2:]] == [["whatsapp"] + ["0"] * 9 + ["1"]]
    assert len(list((tmp_path / "outbox" / "email").glob("*.eml"))) == 6
    assert sorted((tmp_path / "outbox" / "staff").iterdir()) == staff


def test_send_refuses_when_a_template_is_broken(imported, tmp_path):
    override = tmp_path / "my_templates" / "stages"
    override.mkdir(parents=True)
    (override / "overdue.txt").write_text("Olá {{ cliente_inexistente }}\n", encoding="utf-8")
    (tmp_path / "n.toml").write_text('templates = "my_templates"\n', encoding="utf-8")
    proc = imported("--config", "n.toml", "send", "acme", "--channel", "email", "--date", "2026-11-24", check=False)
    assert proc.returncode == 1 and proc.stdout.count(": blocked via notifier config:templates.email.overdue") == 2
    assert "overdue.txt:1" in proc.stdout and "cliente_inexistente" in proc.stdout
    # No e-mail: only the one staff alert that says what to fix.
    assert not (tmp_path / "outbox" / "email").exists()
    [alert] = [json.loads(line) for line in (tmp_path / "attempts.jsonl").read_text().splitlines()
               if json.loads(line)["event"] == "sending"]
    assert alert["channel"] == "staff" and "config:templates.email.overdue" in alert["content"]["subject"]
    check = imported("--config", "n.toml", "check", check=False)
    assert check.returncode == 1 and "overdue.txt:1" in check.stderr


# Where files go (issue 6, point 3)

def test_without_a_config_the_log_and_outbox_go_beside_the_state(cli, tmp_path):
    home = tmp_path / "srv" / "n"
    home.mkdir(parents=True)
    (tmp_path / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    state = str(home / "state.json")
    cli("--state", state, "import", "billing.json", "--date", "2026-11-10")
    cli("--state", state, "send", "acme", "--channel", "email", "--date", "2026-11-24")
    assert (home / "attempts.jsonl").is_file() and len(list((home / "outbox" / "email").glob("*.eml"))) == 2
    assert not (tmp_path / "attempts.jsonl").exists() and not (tmp_path / "outbox").exists()


def test_relative_paths_in_the_config_count_from_its_folder(cli, tmp_path):
    etc = tmp_path / "etc"
    (etc / "my_templates" / "stages").mkdir(parents=True)
    ours = (ROOT / "message_templates" / "stages" / "overdue.txt").read_text(encoding="utf-8")
    assert "{% macro headline() %}\n" in ours
    (etc / "my_templates" / "stages" / "overdue.txt").write_text(
        ours.replace("{% macro headline() %}\n", "{% macro headline() %}\nMARCA-DO-OPERADOR\n"), encoding="utf-8")
    (etc / "n.toml").write_text('state = "data/state.json"\nattempt_log = "logs/attempts.jsonl"\n'
                                'outbox = "out"\ntemplates = "my_templates"\n', encoding="utf-8")
    (etc / "data").mkdir()
    (tmp_path / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    cli("--config", "etc/n.toml", "import", "billing.json", "--date", "2026-11-10")
    cli("--config", "etc/n.toml", "send", "acme", "--channel", "email", "--date", "2026-11-24")
    assert (etc / "data" / "state.json").is_file() and (etc / "logs" / "attempts.jsonl").is_file()
    emls = list((etc / "out" / "email").glob("*.eml"))
    assert len(emls) == 2 and "MARCA-DO-OPERADOR" in emls[0].read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["billing.json", "etc"]


@pytest.mark.parametrize("args", [
    ["accounts"], ["plan", "--date", "2026-11-24"], ["show", "acme"], ["timeline", "acme"],
    ["preview", "acme", "--stage", "overdue"], ["send", "acme", "--channel", "email", "--stage", "overdue"],
    ["pay", "2026-11-acme", "--date", "2026-11-23"],
])
def test_a_command_on_a_state_file_that_does_not_exist_stops(cli, tmp_path, args):
    proc = cli("--state", "typo.json", *args, check=False)
    assert proc.returncode == 1 and "typo.json: no such state file" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_import_creates_the_state_only_in_a_folder_that_exists(cli, tmp_path):
    (tmp_path / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    proc = cli("--state", "nowhere/state.json", "import", "billing.json", "--date", "2026-11-10", check=False)
    assert proc.returncode == 1 and "the folder nowhere does not exist" in proc.stderr
    assert not (tmp_path / "nowhere").exists()
    cli("--state", "new.json", "import", "billing.json", "--date", "2026-11-10")
    assert (tmp_path / "new.json").is_file()


# Small things and tracebacks at the edge (issue 6, point 23 and "small things")

def test_version_comes_from_the_package_metadata(cli):
    from importlib.metadata import version
    assert cli("--version").stdout == f"notifier {version('dunning-notifier')}\n"


def test_an_env_file_named_on_the_command_line_must_exist(imported):
    proc = imported("--env-file", "nope.env", "accounts", check=False)
    assert proc.returncode == 1 and "nope.env: env file not found" in proc.stderr
    assert imported("accounts").returncode == 0  # the default .env may be absent


def test_a_bad_date_from_the_environment_names_the_variable(imported):
    proc = imported("plan", check=False, env={"NOTIFIER_DATE": "24/11/2026"})
    assert proc.returncode == 2 and "NOTIFIER_DATE" in proc.stderr and "'--date'" not in proc.stderr


def test_an_empty_timeline_says_so(imported):
    imported("pay", "2026-11-acme", "--date", "2026-11-23")
    assert imported("timeline", "acme").stdout == "acme has no open invoice: no notice ahead.\n"
    assert imported.json("timeline", "acme") == []


LONG = "x" * 100_000


@pytest.mark.parametrize("args,says", [
    (["--state", "", "accounts"], "Invalid value for '--state': an empty path"),
    (["--config", "", "accounts"], "Invalid value for '--config': an empty path"),
    (["--env-file", "", "accounts"], "Invalid value for '--env-file': an empty path"),
    (["--config", LONG, "accounts"], "(100000 characters)': File name too long"),
    (["--env-file", LONG, "accounts"], "(100000 characters)': File name too long"),
    (["--state", LONG, "accounts"], "(100000 characters)': File name too long"),
    (["--config", ".", "accounts"], "is a folder, not a file"),
    (["--env-file", "binary.env", "accounts"], "binary.env: not a text file in UTF-8"),
    (["--config", "crlf.toml", "accounts"], "crlf.toml: company.legal_name: control character '\\r' not allowed"),
])
def test_bad_paths_and_files_at_the_edge_are_one_clear_line(imported, tmp_path, args, says):
    (tmp_path / "binary.env").write_bytes(bytes(range(256)))
    (tmp_path / "crlf.toml").write_text('[company]\nlegal_name = "Lucanet Ltda\\r\\nBcc: x@y.z"\n', encoding="utf-8")
    before = (tmp_path / "state.json").read_bytes()
    proc = imported(*args, check=False)
    assert proc.returncode in (1, 2) and says in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr) < 500
    assert (tmp_path / "state.json").read_bytes() == before


def test_an_email_url_that_does_not_parse_gives_no_traceback(cli):
    proc = cli("check", check=False, env={"EMAIL_URL": "smtp://[::1"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_an_unexpected_exception_is_one_line_that_does_not_quote_its_message():
    import click
    from click.testing import CliRunner
    from notifier.cli.base import BUG_EXIT_CODE, Group

    @click.group(cls=Group)
    def group():
        pass

    @group.command()
    def boom():
        raise ValueError("smtp://cobranca:S3cr3t@[::1")

    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == BUG_EXIT_CODE and "S3cr3t" not in result.output
    assert result.output.startswith("Error: internal error: unexpected ValueError at notifier/cli/")


# The timeline tells what the plan sends (issue 6, points 16 and 17)

def test_timeline_json_one_row_per_date_and_stage_as_the_plan_sends_it(cli, tmp_path):
    billing = json.loads(json.dumps(BILLING))
    billing["accounts"][0]["due_day"] = 30
    billing["accounts"][0]["past_delinquencies"] = 1
    billing["invoices"][0].update(issued="2026-10-05", paid=None)  # October still open: due 30/10, deleted 30/11
    (tmp_path / "billing.json").write_text(json.dumps(billing), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-10")
    rows = [r for r in cli.json("timeline", "acme") if r["date"] == "2026-11-30"]
    assert rows == [
        {"date": "2026-11-30", "stage": "due_today", "channels": ["email"], "invoices": ["2026-11-acme"], "first_time": False},
        {"date": "2026-11-30", "stage": "deletion_due", "channels": ["staff"], "invoices": ["2026-10-acme"], "first_time": False},
    ]
    plan = {(n["stage"], n["channel"], tuple(n["invoices"])) for n in cli.json("plan", "--date", "2026-11-30")
            if n["account"] == "acme"}
    assert plan == {("due_today", "email", ("2026-11-acme",)), ("deletion_due", "staff", ("2026-10-acme",))}


def test_timeline_of_the_example_state_leaves_out_channels_that_reach_nobody(cli):
    state = str(ROOT / "state.json.example")
    no_contact = cli.json("--state", state, "timeline", "contabilidade-exata")  # no WhatsApp, no social handle
    opted_out = cli.json("--state", state, "timeline", "pet-shop-amigo-fiel")  # opted out of WhatsApp
    assert {c for r in no_contact for c in r["channels"]} == {"email", "staff"}
    assert {c for r in opted_out for c in r["channels"]} == {"email", "social", "staff"}


def test_example_state_atelie_on_30_11_each_channel_carries_its_own_stage(cli):
    state = str(ROOT / "state.json.example")
    plan = [n for n in cli.json("--state", state, "plan", "--date", "2026-11-30") if n["account"] == "atelie-flor-de-lis"]
    # October's deletion_due (28/11, never expires) is still due on staff; the e-mail is November's due_today.
    assert {(n["channel"], n["stage"], tuple(n["invoices"])) for n in plan} == {
        ("email", "due_today", ("2026-11-atelie-flor-de-lis",)), ("staff", "deletion_due", ("2026-10-atelie-flor-de-lis",))}
    rows = {r["date"]: r for r in cli.json("--state", state, "timeline", "atelie-flor-de-lis")}
    assert (rows["2026-11-28"]["stage"], rows["2026-11-28"]["channels"]) == ("deletion_due", ["staff"])
    assert (rows["2026-11-30"]["stage"], rows["2026-11-30"]["channels"]) == ("due_today", ["email"])


def test_a_reader_that_goes_away_is_not_reported_as_a_bug(cli):
    # `notifier plan --json | head -1`: the pipe closes before the output is written.
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--state", str(ROOT / "state.json.example"),
                             "plan", "--date", "2026-11-24", "--json"], cwd=cli.workdir, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1 and err == ""
