"""docs/rules.md and README.md say what the program does: their worked examples are run here."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from datetime import date, datetime
from decimal import Decimal

import pytest

from notifier.billing.calendar import BankCalendar, due_date_for, invoice_dates
from notifier.config import Config
from notifier.billing.models import Account, Invoice
from notifier.billing.rules import account_timeline
from tests.conftest import ROOT
from tests.test_rules import DATES

RULES = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
CAL = BankCalendar()


def table_under(heading: str, text: str = RULES) -> list[dict[str, str]]:
    """The rows of the first Markdown table after `heading`, as dicts keyed by the header cells."""
    section = text.split(f"\n{heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(section) if line.startswith("|"))
    lines = []
    for line in section[start:]:
        if not line.startswith("|"):
            break
        lines.append([cell.strip() for cell in line.strip("|").split("|")])
    header, _rule, *rows = lines
    return [dict(zip(header, row)) for row in rows]


def br(text: str) -> date:
    return datetime.strptime(text, "%d/%m/%Y").date()


DATE_ROWS = table_under("### Worked examples: dates")


@pytest.mark.parametrize("row", DATE_ROWS, ids=[r["case"] for r in DATE_ROWS])
def test_each_worked_example_of_dates_is_what_the_calendar_computes(row):
    due = br(row["due"])
    if row["due day"] != "-":
        assert due_date_for(br(row["issued"]), int(row["due day"])) == due
    d = invoice_dates(due, CAL, Config().settlement_days)
    assert [d.effective_due, d.overdue, d.suspension, d.deletion] == [
        br(row[k]) for k in ("effective due", "overdue", "suspension", "deletion")]


def test_the_tests_worked_examples_are_on_the_page():
    on_page = {tuple(br(r[k]) for k in ("due", "effective due", "overdue", "suspension", "deletion")) for r in DATE_ROWS}
    in_tests = {tuple(date.fromisoformat(v) for v in row[1:]) for row in DATES}
    assert in_tests <= on_page, in_tests - on_page


def test_the_default_ladder_on_the_page_is_the_built_in_one():
    rows = table_under("## The default ladder")
    assert [r["stage"] for r in rows] == [s.name for s in Config().ladder]
    for row, stage in zip(rows, Config().ladder):
        assert row["channels"].split(":")[0].split(", ") == list(stage.channels)
        extra = row["extra channels for a first-time delinquent"].split(" (")[0]
        assert (extra.split(", ") if extra else []) == list(stage.first_time_channels)


def customer(**kw) -> Account:
    return Account(**{"id": "acme", "company": "ACME Ltda", "document": "11.222.333/0001-81",
                      "emails": ("financeiro@acme.com.br",), "whatsapp": "+5511987654321",
                      "social": (("instagram", "@acme"),), **kw})


def bill(id: str, due: str) -> Invoice:
    d = br(due)
    return Invoice(id, "acme", Decimal("149.90"), d.replace(day=5), d)


@pytest.mark.parametrize("heading,acc,invoices", [
    ("### Worked example: the timeline of an invoice due on a holiday", customer(), [bill("November", "20/11/2026")]),
    ("### Worked example: due day 28", customer(past_delinquencies=1), [bill("November", "28/11/2026")]),
    ("### Worked example: two open invoices on one date", customer(past_delinquencies=1),
     [bill("October", "30/10/2026"), bill("November", "30/11/2026")]),
])
def test_each_worked_timeline_is_what_the_rules_compute(heading, acc, invoices):
    rows = table_under(heading)
    entries = account_timeline(acc, invoices, None, CAL, Config())
    shown = {br(r["date"]) for r in rows}
    got = [(e.date, e.stage, ", ".join(e.channels)) + ((", ".join(e.invoices),) if "invoices" in rows[0] else ())
           for e in entries if e.date in shown]
    assert got == [(br(r["date"]), r["stage"], r["channels"]) + ((r["invoices"],) if "invoices" in r else ())
                   for r in rows]
    if "invoices" not in rows[0]:
        assert len(entries) == len(rows)  # the whole timeline is on the page


def test_readme_links_the_rules_in_the_repository():
    links = re.findall(r"\]\(([^)]+)\)", README)
    assert "docs/rules.md" in links
    assert all(not link.startswith("../") for link in links)
    for link in links:
        if "://" not in link and not link.startswith("#"):
            assert (ROOT / link).exists(), link


# The README's example commands that depend on today's date, with the option that freezes it.
DATED = ("plan", "preview", "send", "pay", "import")


def readme_shell() -> list[list[str]]:
    """The commands of the README's shell blocks, each as an argv (`a && b` gives two)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            commands += [shlex.split(part) for part in line.split("#")[0].split("&&") if part.strip()]
    return commands


def readme_commands() -> list[list[str]]:
    """The notifier's commands in the README: the argv after `python run.py`."""
    return [argv[2:] for argv in readme_shell() if argv[:2] == ["python", "run.py"]]


def command_name(argv: list[str]) -> str:
    """The command of an argv: the first word that is not a group option or its value."""
    words = iter(argv)
    for word in words:
        if word in ("--state", "--config", "--env-file"):
            next(words)
        elif not word.startswith("-"):
            return word
    return ""


def test_readme_examples_that_depend_on_today_pass_a_date():
    commands = readme_commands()
    assert len(commands) > 5
    for argv in commands:
        if command_name(argv) in DATED:
            assert "--date" in argv, argv


def test_readme_examples_run_as_written(cli, tmp_path):
    for name in ("state.json.example", "examples", "notifier.example.toml"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    for argv in readme_shell():
        if argv[:2] == ["python", "run.py"] and command_name(argv[2:]) in ("users", "web"):
            continue  # the console's set-up asks a password and starts a server: tests/test_web.py runs it
        if argv[:2] == ["python", "run.py"] and command_name(argv[2:]) != "check":  # check --connect needs providers
            cli(*argv[2:])
        elif argv[0] == "cp":
            subprocess.run(argv, cwd=tmp_path, check=True)
