"""Bad input (issue 10, Faults): generated import files give a clear error or success, never a
traceback, and a rejected one leaves the store (state and archive) byte for byte as it was.

Already proven elsewhere, not repeated here: JSON import files through hypothesis
(tests/test_billing_cli.py, 120 examples) and every command's arguments and NOTIFIER_ variables
through hypothesis in real subprocesses (tests/test_cli_arguments.py). Added here: the CSV pair
(invoices.csv with accounts.csv beside it), cell by cell, row by row and byte by byte. Hypothesis
drives the command in this process through click's CliRunner (a subprocess per example would cost
a second or more of interpreter start-up each); a seeded sample of the same kind of files goes
through the real `python run.py import` in a subprocess, so the two agree.
"""
from __future__ import annotations

import csv
import io
import os
import random
import shutil

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifier.cli import cli as notifier_cli
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"
DAY = "2026-11-26"
TABLES = {name: list(csv.reader(io.StringIO((EXAMPLES / f"{name}.csv").read_text(encoding="utf-8"))))
          for name in ("accounts", "invoices")}
HOSTILE = ["", " ", "\ud800", "\x00", "x" * 3000, "1e400", "-1", "2026-02-30", "9999-12-31", "0001-01-01",
           "12,50", "R$ 10", "NaN", "a;b;c", "=1+1", '"', "\r\n", "１２３", "instagram=", "tgram://x/y",
           "financeiro@", "+55", "99.999.999/9999-99", "31", "0", "999999999999999999999"]

cells = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20))
edits = st.lists(st.tuples(st.sampled_from(sorted(TABLES)), st.integers(0, 60), st.integers(0, 15),
                           st.one_of(cells, st.sampled_from(["<drop row>", "<extra cell>", "<drop cell>"]))),
                 min_size=1, max_size=5)


def write_pair(folder, changes, cut: int | None, garbage: bytes) -> None:
    """invoices.csv and accounts.csv, the examples with `changes` applied (cell values, dropped
    rows or cells, extra cells), the invoices file cut at `cut` bytes and `garbage` spliced in."""
    tables = {name: [list(row) for row in rows] for name, rows in TABLES.items()}
    for name, r, c, value in changes:
        rows = tables[name]
        row = rows[r % len(rows)]
        if value == "<drop row>" and len(rows) > 1:
            rows.remove(row)
        elif value == "<extra cell>":
            row.append("extra")
        elif value == "<drop cell>" and row:
            row.pop(c % len(row))
        elif row:
            row[c % len(row)] = value
    for name, rows in tables.items():
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        data = out.getvalue().encode("utf-8", "surrogatepass")
        if name == "invoices" and (cut is not None or garbage):
            at = len(data) if cut is None else cut % (len(data) + 1)
            data = data[:at] + garbage + data[at:]
        (folder / f"{name}.csv").write_bytes(data)


def fresh_store(folder):
    shutil.copy(ROOT / "state.json.example", folder / "state.json")
    return store_bytes(folder)


def store_bytes(folder) -> tuple[bytes, bytes | None]:
    archive = folder / "state.archive.jsonl"
    return (folder / "state.json").read_bytes(), archive.read_bytes() if archive.exists() else None


def check_answer(code: int, stderr: str, folder, before) -> None:
    assert code in (0, 1), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    if code:
        assert stderr.startswith("Error: ") and ("invoices.csv" in stderr or "accounts.csv" in stderr), stderr
        assert store_bytes(folder) == before, "a rejected import changed the store"


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(edits, st.one_of(st.none(), st.integers(0, 5000)), st.binary(max_size=3))
def test_any_csv_pair_gives_a_clear_error_or_success_and_a_rejection_changes_nothing(
        tmp_path_factory, changes, cut, garbage):
    folder = tmp_path_factory.mktemp("csv")
    before = fresh_store(folder)
    write_pair(folder, changes, cut, garbage)
    (folder / "none.env").write_text("", encoding="utf-8")  # no provider settings from the developer's .env
    args = ["--state", str(folder / "state.json"), "--env-file", str(folder / "none.env"),
            "import", str(folder / "invoices.csv"), "--date", DAY]
    result = CliRunner().invoke(notifier_cli, args, env={k: None for k in os.environ if k.startswith("NOTIFIER_")})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    check_answer(result.exit_code, result.stderr, folder, before)


@pytest.mark.parametrize("seed", range(4))
def test_a_sample_of_generated_csv_pairs_through_the_real_command(cli, seed):
    rng = random.Random(f"csv-{seed}")
    changes = [(rng.choice(sorted(TABLES)), rng.randrange(60), rng.randrange(15),
                rng.choice(HOSTILE + ["<drop row>", "<extra cell>", "<drop cell>"])) for _ in range(rng.randint(1, 4))]
    before = fresh_store(cli.workdir)
    write_pair(cli.workdir, changes, rng.choice([None, rng.randrange(5000)]), rng.choice([b"", b"\xff", b"\x00,"]))
    proc = cli("import", "invoices.csv", "--date", DAY, check=False)
    check_answer(proc.returncode, proc.stderr, cli.workdir, before)
