"""Guards for the state file (issue 18, point 17): one-line mistakes in the store that the rest of
the suite let through, each caught here through the command line.

- A payment corrected twice: each correction keeps the date it replaced, so finance can show every
  date that was ever recorded; the second correction must not erase the first.
- The attempt log replaced by another one of the same length (its last records re-chained, or a
  copy from another machine): the state saw a different last record at that count, and no command
  may write on, as when records were cut off the end.
"""
from __future__ import annotations

import json
import shutil

from tests.cycle_helpers import account, records, setup

INVOICE = "2026-11-acme"


def stored_invoice(workdir) -> dict:
    return json.loads((workdir / "state.json").read_text(encoding="utf-8"))["invoices"][INVOICE]


def test_every_correction_of_a_payment_keeps_the_date_it_replaced(cli):
    setup(cli, [account("acme")])
    cli("pay", INVOICE, "--date", "2026-11-21", "--by", "ana")
    cli("pay", INVOICE, "--date", "2026-11-22", "--correct", "--reason", "extrato do banco", "--by", "bia")
    cli("pay", INVOICE, "--date", "2026-11-25", "--correct", "--reason", "extrato do banco", "--by", "caio")
    cli("import", "billing.json", "--date", "2026-11-26")  # an import that knows of no payment keeps them too
    doc = stored_invoice(cli.workdir)
    assert doc["paid"] == "2026-11-25"
    assert [(c["paid"], c["by"]) for c in doc["corrections"]] == [("2026-11-21", "bia"), ("2026-11-22", "caio")]
    corrected = [(r["previous_paid"], r["paid"], r["actor"]) for r in records(cli.workdir)
                 if r["event"] == "payment_corrected"]
    assert corrected == [("2026-11-21", "2026-11-22", "bia"), ("2026-11-22", "2026-11-25", "caio")]


def test_a_log_whose_last_record_was_replaced_at_the_same_count_stops_every_write(cli, tmp_path):
    """Two copies of one state run the same day's cycle: their logs have the same number of
    records and different last ones (ids differ). One state with the other's log is a log whose
    end was replaced, chained as our program chains it, so only the state's head can tell."""
    setup(cli, [account("acme"), account("beta")])
    cli("run-once", "--date", "2026-11-17")
    fork = type(cli)(tmp_path / "fork", cli.env)
    shutil.copytree(cli.workdir, fork.workdir)
    for each in (cli, fork):
        each("run-once", "--date", "2026-11-23")
    mine, theirs = records(cli.workdir), records(fork.workdir)
    assert len(mine) == len(theirs) and mine[-1] != theirs[-1]
    for name in ("attempts.jsonl", "attempts.jsonl.messages"):
        target = cli.workdir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        shutil.move(fork.workdir / name, target)
    state, log = (cli.workdir / "state.json").read_bytes(), (cli.workdir / "attempts.jsonl").read_bytes()
    outbox = sorted((cli.workdir / "outbox" / "email").iterdir())
    for args in (["run-once", "--date", "2026-11-24"],
                 ["hold", "acme", "--by", "ana", "--reason", "other", "--until", "2026-12-01", "--date", "2026-11-24"],
                 ["pay", INVOICE, "--date", "2026-11-24", "--by", "ana"],
                 ["send", "beta", "--channel", "email", "--date", "2026-11-24"]):
        proc = cli(*args, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (args, proc.stdout, proc.stderr)
        assert "attempt" in proc.stderr, (args, proc.stderr)  # one line that names the log
        assert (cli.workdir / "state.json").read_bytes() == state
        assert (cli.workdir / "attempts.jsonl").read_bytes() == log
        assert sorted((cli.workdir / "outbox" / "email").iterdir()) == outbox  # nothing sent
    assert cli("verify-log", check=False).returncode == 1
