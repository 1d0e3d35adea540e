"""Disk per month: what a month of the default ladder adds to the attempt log, the message store
and the state (store and its archive), at N accounts, typical and nobody pays (issue 7).

    python bench/disk.py [--accounts 5000]

1. Log and message store: bench/attempts.py's `month()` writes the month's attempts with the real
   log code, real rendered payloads and real compression (typical: 88% pay on time and get the
   reminder and due-day e-mails, 12% are late and get every stage and the first-time extras;
   worst: nobody pays); half the accounts have two billing addresses.
2. State: N accounts with that month's invoice are imported into a real store (`notifier import`),
   then the next month's import (the month's invoices paid, or not, and the next ones issued),
   then the ledger rows the cycle would write for every `sending` of the month's log (built by the
   cycle's own `ledger_rows` from each record, as `reconcile()` does after a crash). What the state
   file and its archive grew by is the month's share.
Sizes are allocated blocks on disk (st_blocks), not file lengths.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import emit  # noqa: E402
from bench.attempts import OUT, Messages, disk, month  # noqa: E402
from notifier.log.attempts import scan  # noqa: E402

AREA = "Disk per month"
SCENARIOS = (("typical", "typical month (12% late)", 0.12), ("nobody_pays", "nobody-pays month", 1.0))


def billing(accounts: int, late_share: float, paid_by: str | None) -> dict:
    """The accounts of attempts.month() (acc-00000...) with November's invoice (the id its log records
    name) and, when `paid_by` is set, December's too, November paid on time except the late share."""
    late_every = round(1 / late_share) if late_share < 1 else 1
    accs, invoices = [], []
    for i in range(accounts):
        acc = f"acc-{i:05d}"
        emails = [f"financeiro@{acc}.com.br"] + ([f"joao@{acc}.com.br"] if i % 2 else [])
        accs.append({"id": acc, "company": f"Cliente {i} Ltda", "document": "11.222.333/0001-81", "emails": emails,
                     "whatsapp": f"+5511987{i % 1_000_000:06d}", "due_day": 20})
        late = late_share >= 1 or i % late_every == 0
        nov = {"id": f"2026-11-{acc}", "account": acc, "amount": "149.90", "issued": "2026-11-05"}
        if paid_by:
            if not late:
                nov["paid"] = "2026-11-19"
            invoices.append({"id": f"2026-12-{acc}", "account": acc, "amount": "149.90", "issued": "2026-12-05"})
        invoices.append(nov)
    return {"accounts": accs, "invoices": invoices}


def notifier(folder: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=folder, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"notifier {' '.join(args)} failed: {proc.stderr[-2000:]}")


def state_growth(folder: Path, log: Path, accounts: int, late_share: float) -> int:
    """Bytes the state (store + archive) grows by over the month: the next import and the ledger."""
    from notifier.run.cycle import ledger_rows
    from notifier.state.store import Store, archive_path_for
    state = folder / "state.json"
    (folder / "nov.json").write_text(json.dumps(billing(accounts, late_share, None)), encoding="utf-8")
    (folder / "dec.json").write_text(json.dumps(billing(accounts, late_share, "2026-12-06")), encoding="utf-8")
    notifier(folder, "import", "nov.json", "--date", "2026-11-10")
    before = disk([state, archive_path_for(state)])
    notifier(folder, "import", "dec.json", "--date", "2026-12-06")
    rows = [row for line in scan(log) if line.record and line.record.get("event") == "sending"
            for row in ledger_rows(line.record, "sent", line.record["id"])]
    if not rows:
        raise SystemExit(f"{log}: no sending record to build the ledger from")
    store = Store(state)
    with store.transaction() as snap:
        snap.add_ledger(rows)
    return disk([state, archive_path_for(state)]) - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=5000)
    args = parser.parse_args()
    messages = Messages()
    n = f"{args.accounts:,} accounts"
    for key, label, late in SCENARIOS:
        folder = OUT / "disk" / key
        sent, log_bytes, store_bytes, records = month(folder / "log", messages, args.accounts, late)
        state_bytes = state_growth(folder, folder / "log" / "attempts.jsonl", args.accounts, late)
        total = log_bytes + store_bytes + state_bytes
        note = f"{sent:,} messages, {records:,} records"
        emit(f"disk.{key}.log", log_bytes / 1e6, "MB", area=AREA, label=f"{label}, {n}: attempt log", note=note, echo=True)
        emit(f"disk.{key}.messages", store_bytes / 1e6, "MB", area=AREA, label=f"{label}, {n}: message store",
             echo=True)
        emit(f"disk.{key}.state", state_bytes / 1e6, "MB", area=AREA,
             label=f"{label}, {n}: state (store + archive; the next import and the month's ledger)", echo=True)
        emit(f"disk.{key}.total", total / 1e6, "MB", area=AREA, label=f"{label}, {n}: total",
             note=f"{total * 12 / 1e9:.2f} GB a year", echo=True)
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
