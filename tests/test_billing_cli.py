"""Billing commands as an operator runs them (issue 6): payments that only move forward, idempotent
archiving, dates within reason, states that are refused, and plain-text output."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta

import pytest

from notifier.state.store import Store, read_archive
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"
PADARIA = "2026-11-padaria-sao-joao"


@pytest.fixture
def example_state(cli, tmp_path):
    shutil.copy(ROOT / "state.json.example", tmp_path / "state.json")
    return cli


def stored(tmp_path) -> dict:
    return json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))


# --- point 1: payments only move forward --------------------------------------------------------

def test_readme_sequence_keeps_the_payment_recorded_with_pay(example_state, tmp_path):
    example_state("pay", PADARIA, "--date", "2026-11-23")
    out = example_state("import", str(EXAMPLES), "--date", "2026-11-26")
    assert out.stderr == ""  # the file does not know of the payment: nothing to warn about
    assert stored(tmp_path)["invoices"][PADARIA]["paid"] == "2026-11-23"
    plan = example_state.json("plan", "--date", "2026-11-24")
    assert "padaria-sao-joao" not in {n["account"] for n in plan}


def test_a_different_payment_date_in_the_file_is_a_warning_and_the_stored_one_stays(example_state, tmp_path):
    example_state("pay", PADARIA, "--date", "2026-11-23")
    billing = json.loads((EXAMPLES / "billing.json").read_text(encoding="utf-8"))
    index = next(i for i, inv in enumerate(billing["invoices"]) if inv["id"] == PADARIA)
    billing["invoices"][index]["paid"] = "2026-11-25"
    path = tmp_path / "billing.json"
    path.write_text(json.dumps(billing, ensure_ascii=False, indent=2), encoding="utf-8")
    line = next(n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if '"2026-11-25"' in text)
    out = example_state("import", str(path), "--date", "2026-11-26")
    assert out.returncode == 0
    assert out.stderr == f"warning: {path}:{line}: invoices[{index}].paid: already paid on 23/11/2026 (kept)\n"
    assert stored(tmp_path)["invoices"][PADARIA]["paid"] == "2026-11-23"


def test_paying_again_is_refused_unless_corrected_and_the_correction_is_logged(example_state, tmp_path):
    example_state("pay", PADARIA, "--date", "2026-11-23")
    before = (tmp_path / "state.json").read_bytes()
    again = example_state("pay", PADARIA, "--date", "2026-11-24", check=False)
    assert again.returncode == 1 and "already paid on 23/11/2026" in again.stderr and "--correct" in again.stderr
    assert (tmp_path / "state.json").read_bytes() == before
    # A correction says why (the console's Pagamentos asks the same): without --reason, nothing changes.
    unexplained = example_state("pay", PADARIA, "--date", "2026-11-24", "--correct", "--reason", "  ", check=False)
    assert unexplained.returncode == 2 and "--reason" in unexplained.stderr
    assert (tmp_path / "state.json").read_bytes() == before
    out = example_state("pay", PADARIA, "--date", "2026-11-24", "--correct", "--reason", "o banco corrigiu a data", "--by", "ana.financeiro")
    assert "corrected from 23/11/2026 to 24/11/2026 (by ana.financeiro)" in out.stdout
    doc = stored(tmp_path)["invoices"][PADARIA]
    assert doc["paid"] == "2026-11-24"
    assert [(c["paid"], c["by"]) for c in doc["corrections"]] == [("2026-11-23", "ana.financeiro")]
    [paid, record] = [json.loads(line) for line in (tmp_path / "attempts.jsonl").read_text().splitlines()]
    assert (paid["event"], paid["invoice"], paid["paid"]) == ("payment", PADARIA, "2026-11-23")
    assert (record["event"], record["actor"], record["invoice"], record["previous_paid"], record["paid"]) == (
        "payment_corrected", "ana.financeiro", PADARIA, "2026-11-23", "2026-11-24")
    assert record["reason"] == "o banco corrigiu a data"
    same = example_state("pay", PADARIA, "--date", "2026-11-24", "--correct", check=False)
    assert same.returncode == 1 and "nothing to correct" in same.stderr


# --- point 2 and 23: pay checks what import checks, and dates stay within reason ------------------

def test_pay_refuses_the_dates_the_importer_refuses_with_the_same_words(example_state, tmp_path):
    before = (tmp_path / "state.json").read_bytes()
    tomorrow = date.today() + timedelta(days=2)  # the real clock's: a payment cannot have happened yet
    for day, reason in ((tomorrow.isoformat(), "paid: in the future (today is "),
                        ("2026-11-04", "paid: before the issue date 2026-11-05: 2026-11-04")):
        proc = example_state("pay", PADARIA, "--date", day, check=False)
        assert proc.returncode == 1 and f"{PADARIA}: {reason}" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    # Days no billing date can have are refused by every command's --date, before anything is read.
    for day in ("0001-01-01", "9999-12-31"):
        proc = example_state("pay", PADARIA, "--date", day, check=False)
        assert proc.returncode == 2 and f"{day} is outside 2000–2099" in proc.stderr, proc.stderr
    assert (tmp_path / "state.json").read_bytes() == before


@pytest.mark.parametrize("day, code, reason", [
    ("9999-12-31", 2, "9999-12-31 is outside 2000–2099"),
    ((date.today() + timedelta(days=400)).isoformat(), 1, "more than a year after today"),
    ("0001-01-01", 2, "0001-01-01 is outside 2000–2099"),
])
def test_import_refuses_a_day_far_from_today(example_state, tmp_path, day, code, reason):
    before = (tmp_path / "state.json").read_bytes()
    proc = example_state("import", str(EXAMPLES / "billing.json"), "--date", day, check=False)
    assert proc.returncode == code and day in proc.stderr and reason in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "state.json").read_bytes() == before
    assert not (tmp_path / "state.archive.jsonl").exists()


# --- point 5: archiving is idempotent ----------------------------------------------------------

def test_three_imports_archive_each_invoice_once_and_count_its_lateness_once(cli, tmp_path):
    # The second file holds the same records laid out otherwise, so it is imported in full; the
    # third is the second again, recognised by its digest.
    reindented = tmp_path / "billing.json"
    reindented.write_text(json.dumps(_BASE, ensure_ascii=False, indent=4), encoding="utf-8")
    lines, counts, outputs = [], [], []
    for path in (EXAMPLES / "billing.json", reindented, reindented):
        outputs.append(cli("import", str(path), "--date", "2027-06-01").stdout)
        lines.append(len((tmp_path / "state.archive.jsonl").read_text(encoding="utf-8").splitlines()))
        counts.append(cli.json("show", "clinica-vida-plena")["archived_late_invoices"])
    assert lines == [23, 23, 23] and counts == [1, 1, 1]  # the issue saw 23, 46, 69 and 1, 2, 3
    assert "23 invoices already in the archive, left as archived" in outputs[1]
    assert outputs[2].startswith(f"nothing new: {reindented} holds what was imported on 01/06/2027")


def test_the_same_file_again_is_nothing_new_but_a_later_day_still_archives(cli, tmp_path):
    cli("import", str(EXAMPLES / "billing.json"), "--date", "2026-11-26")
    state = (tmp_path / "state.json").read_bytes()
    assert cli("import", str(EXAMPLES / "billing.json"), "--date", "2026-11-26").stdout.startswith("nothing new")
    assert (tmp_path / "state.json").read_bytes() == state  # nothing written
    later = cli("import", str(EXAMPLES / "billing.json"), "--date", "2027-06-01").stdout
    assert later.startswith("nothing new") and "archived 23 paid invoices" in later


KILLED_IMPORT = """
import sys
sys.path.insert(0, {bench!r})
from pathlib import Path
import plan
plan.generate({accounts}, Path({path!r}))
"""


def test_kill_9_during_imports_leaves_an_archive_the_reader_reads_right(cli, tmp_path):
    billing = tmp_path / "billing.json"
    subprocess.run([sys.executable, "-c", KILLED_IMPORT.format(bench=str(ROOT / "bench"), accounts=300, path=str(billing))],
                   check=True, cwd=ROOT)
    command = [sys.executable, str(ROOT / "run.py"), "import", str(billing), "--date", "2026-11-26"]
    archive = tmp_path / "state.archive.jsonl"
    for delay in (0, 0, 0.001, 0.003, 0.01):
        # Killed while it commits: once the archive grows, the state's rename is milliseconds
        # away, and a kill before it leaves a block that the next import appends again.
        size = archive.stat().st_size if archive.exists() else 0
        proc = subprocess.Popen(command, cwd=tmp_path, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while (archive.stat().st_size if archive.exists() else 0) == size and proc.poll() is None:
            time.sleep(0.0002)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        Store(tmp_path / "state.json").snapshot()  # the state is always whole: the old file or the new
    cli("import", str(billing), "--date", "2026-11-26")
    cli("import", str(billing), "--date", "2026-11-26")
    killed = Store(tmp_path / "state.json").snapshot()
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    cli("--state", str(clean_dir / "state.json"), "import", str(billing), "--date", "2026-11-26")
    clean = Store(clean_dir / "state.json").snapshot()
    assert killed.histories() == clean.histories()  # lateness counted once, whatever the crashes
    assert killed.invoices() == clean.invoices()
    records = list(read_archive(tmp_path / "state.archive.jsonl"))
    assert records == list(read_archive(clean_dir / "state.archive.jsonl"))
    assert len(records) == len({(r["kind"], r["id"]) for r in records})


# --- point 7: a write command refuses what a read command refuses ------------------------------

@pytest.mark.parametrize("table, key, field, value", [
    ("invoices", "2026-11-atelie-flor-de-lis", "amount", 89.9),  # not the invoice paid: pay never reads it
    ("accounts", "oficina-dois-irmaos", "emails", "ab@x.com"),
])
def test_a_hand_edited_state_is_refused_by_pay_as_by_plan(example_state, tmp_path, table, key, field, value):
    data = stored(tmp_path)
    data[table][key][field] = value
    (tmp_path / "state.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    before = (tmp_path / "state.json").read_bytes()
    for args in (["plan", "--date", "2026-11-24"], ["pay", "2026-11-oficina-dois-irmaos", "--date", "2026-11-24"]):
        proc = example_state(*args, check=False)
        assert proc.returncode == 1 and "not a valid state file" in proc.stderr and field in proc.stderr, proc.stderr
    assert (tmp_path / "state.json").read_bytes() == before


# --- point 4: nothing to collect, nothing to send ---------------------------------------------

def test_an_account_whose_only_open_invoice_is_zero_gets_nothing(cli, tmp_path):
    billing = json.loads((EXAMPLES / "billing.json").read_text(encoding="utf-8"))
    for inv in billing["invoices"]:
        if inv["account"] == "oficina-dois-irmaos" and inv.get("paid") is None:
            inv["amount"] = "0.00"
    path = tmp_path / "billing.json"
    path.write_text(json.dumps(billing, ensure_ascii=False), encoding="utf-8")
    cli("import", str(path), "--date", "2026-11-26")
    for day in ("2026-11-24", "2026-11-30"):  # overdue and suspension (the timeline covers the rest)
        assert "oficina-dois-irmaos" not in {n["account"] for n in cli.json("plan", "--date", day)}
    assert cli.json("timeline", "oficina-dois-irmaos") == []
    for command in ("preview", "send"):
        proc = cli(command, "oficina-dois-irmaos", "--channel", "email", "--stage", "overdue", "--date", "2026-11-24",
                   check=False)
        assert proc.returncode == 1 and "no open invoice" in proc.stderr
    assert not (tmp_path / "outbox").exists()


# --- small things ---------------------------------------------------------------------------------

def test_import_counts_in_words_and_names_the_csv_file_read_beside_the_one_given(cli, tmp_path):
    one = {"accounts": [json.loads((EXAMPLES / "billing.json").read_text(encoding="utf-8"))["accounts"][0]]}
    (tmp_path / "one.json").write_text(json.dumps(one), encoding="utf-8")
    assert "imported 1 account and 0 invoices into" in cli("import", "one.json", "--date", "2026-11-26").stdout
    out = cli("import", str(EXAMPLES / "invoices.csv"), "--date", "2026-11-26").stdout
    assert f"also read {EXAMPLES / 'accounts.csv'}" in out and "imported 10 accounts and 29 invoices" in out


def test_show_and_accounts_print_plain_text_and_brazilian_amounts(example_state):
    show = example_state("show", "construtora-horizonte").stdout
    assert "['" not in show and "{'" not in show and "frozenset" not in show
    assert "contas.pagar@horizonteazul.com.br, ricardo.nogueira@horizonteazul.com.br" in show
    assert "instagram: @construtorahorizonteazul" in show and "1.234,56" in show
    accounts = example_state("accounts").stdout
    assert "299,80" in accounts and " 0,00" in accounts
    rows = {a["id"]: a for a in example_state.json("accounts")}
    assert rows["atelie-flor-de-lis"]["open_amount"] == "299.80" and rows["padaria-sao-joao"]["open_amount"] == "89.90"
    assert rows["construtora-horizonte"]["open_amount"] == "0.00"
    assert {i["amount"] for i in example_state.json("show", "marcos-andrade")["invoices"]} == {"29.90"}


# --- point 23: whatever the file holds, a clear error or success, never a traceback ----------------

from click.testing import CliRunner  # noqa: E402
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from notifier.cli import cli as notifier_cli  # noqa: E402

_BASE = json.loads((EXAMPLES / "billing.json").read_text(encoding="utf-8"))
_ACCOUNT_KEYS = sorted({k for a in _BASE["accounts"] for k in a} | {"opt_out", "bogus"})
_INVOICE_KEYS = sorted({k for i in _BASE["invoices"] for k in i} | {"bogus"})
_hostile_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\ud800", "\x00", "\x1b]0;x\x07", "a\r\nBcc: x", "１２３", "١٢٣", "9" * 400, " ", "",
                     "2026-11-31", "9999-12-31", "0001-01-01", "000201\n", "https://a b", "tgram://x/y"]),
)
_json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**40), max_value=10**40),
              st.floats(allow_nan=False, allow_infinity=False), _hostile_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_hostile_text, inner, max_size=3)),
    max_leaves=6,
)
_changes = st.lists(st.tuples(st.sampled_from(["accounts", "invoices"]), st.integers(0, 40),
                              st.one_of(st.sampled_from(_ACCOUNT_KEYS + _INVOICE_KEYS), _hostile_text),
                              st.one_of(_json_values, st.just("<drop>"))), min_size=1, max_size=4)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(_changes, st.booleans(), st.integers(0, 40_000), st.binary(max_size=3))
@example([("accounts", 0, "company", "\ud800")], True, 0, b"")  # the tracebacks the issue found
@example([("accounts", 0, "past_delinquencies", 10**30)], True, 0, b"")
def test_any_import_file_gives_a_clear_error_or_success_and_a_rejection_changes_nothing(
        tmp_path_factory, changes, ascii_only, cut, garbage):
    folder = tmp_path_factory.mktemp("fuzz")
    state, billing = folder / "state.json", folder / "billing.json"
    runner = CliRunner()  # click 8.2+: stdout and stderr apart
    args = ["--state", str(state), "--env-file", str(folder / "none.env"), "import", str(billing), "--date", "2026-11-26"]
    shutil.copy(ROOT / "state.json.example", state)
    before = state.read_bytes()
    data = json.loads(json.dumps(_BASE))
    for section, index, key, value in changes:
        record = data[section][index % len(data[section])]
        if value == "<drop>":
            record.pop(key, None)
        else:
            record[key] = value
    text = json.dumps(data, ensure_ascii=ascii_only, indent=1).encode("utf-8", "surrogatepass")
    if garbage:  # now and then a file torn or spoilt in transfer
        text = text[:cut] + garbage + text[cut:] if cut % 3 else text[:cut]
    billing.write_bytes(text)
    result = runner.invoke(notifier_cli, args, env={k: None for k in os.environ if k.startswith("NOTIFIER_")})
    assert result.exit_code in (0, 1), (result.output, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code:
        assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
        assert state.read_bytes() == before
        assert not (folder / "state.archive.jsonl").exists()


def test_import_inside_another_program_leaves_nothing_behind(tmp_path):
    """`leave_to_exit` keeps a big import's records for the process's exit only when the process
    ends with the command (`python run.py`); a program that goes on (here a CliRunner) gets them
    freed as usual, nothing hidden from its garbage collector."""
    import gc
    state = tmp_path / "state.json"
    frozen = gc.get_freeze_count()
    result = CliRunner().invoke(notifier_cli, ["--state", str(state), "import", str(EXAMPLES / "billing.json"),
                                               "--date", "2026-11-26"],
                                env={k: None for k in os.environ if k.startswith("NOTIFIER_")})
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "imported" in result.output
    assert gc.get_freeze_count() == frozen
