"""Speed and memory of import, plan, timeline and pay on a generated portfolio.

    python bench/plan.py 50000            # N accounts, 24 monthly invoices each

Generates an import file of N accounts with 24 months of invoices (mostly paid on time, some paid
late, some open), then measures, each in a fresh process as an operator would run it: a plain
`json.load` of the import file (the baseline), `import` into an empty store, the same file
imported again (the everyday case: nothing new, nothing archived), `plan` for one day,
`timeline` of every account (one process walking all accounts through the library), and one
`pay` (on a copy of the state, so that every run pays an open invoice). Prints the sizes, times
(best of 3 runs), peak memory (max RSS) and each time as a multiple of the baseline.
Run by hand, not in CI. Files go to bench/out/ (ignored by git).
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.billing.calendar import due_date_for  # noqa: E402
from notifier.billing.documents import pix_crc16  # noqa: E402

TODAY = date(2026, 11, 26)
MONTHS = 24
PIX = "00020101021226900014br.gov.bcb.pix2568pix.lucanet.com.br/qr/v2/cobv/{}5204000053039865406{}5802BR5925LUCANET HOSPEDAGEM6009SAO PAULO62070503***6304"


def cnpj(n: int) -> str:
    """A valid CNPJ from a sequence number (check digits computed, as the importer verifies)."""
    base = [int(c) for c in f"{n:08d}0001"]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        r = sum(d * w for d, w in zip(base, weights)) % 11
        base.append(0 if r < 2 else 11 - r)
    s = "".join(map(str, base))
    return f"{s[:2]}.{s[2:5]}.{s[5:8]}/{s[8:12]}-{s[12:]}"


def generate(n: int, path: Path, seed: int = 7) -> str:
    """Write the import file line by line (one record per line), never holding it all in memory.
    Returns the id of an invoice still open (for `pay`)."""
    rnd = random.Random(seed)
    first_month = date(TODAY.year - 2, TODAY.month + 1, 5) if TODAY.month < 12 else date(TODAY.year - 1, 1, 5)
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"accounts": [\n')
        for i in range(n):
            acc = {
                "id": f"acc{i:06d}", "company": f"Empresa Exemplo {i} Comércio e Serviços Ltda",
                "contact_name": "Maria da Silva", "document": cnpj(10_000_000 + i), "domain": f"empresa{i}.com.br",
                "emails": [f"financeiro@empresa{i}.com.br"] + ([f"contato@empresa{i}.com.br"] if i % 2 else []),
                "whatsapp": f"+55119{i % 100_000_000:08d}", "due_day": rnd.choice([20] * 8 + [10, 28]),
                "past_delinquencies": 0 if rnd.random() < 0.8 else 1,
            }
            if i % 3 == 0:
                acc["portal_email"] = acc["emails"][0]
            if i % 5 == 0:
                acc["social"] = {"instagram": f"@empresa{i}"}
            out.write(("," if i else "") + json.dumps(acc, ensure_ascii=False) + "\n")
        out.write('],\n"invoices": [\n')
        first, open_one = True, None
        for i in range(n):
            for m in range(MONTHS):
                month = first_month.month - 1 + m
                issued = date(first_month.year + month // 12, month % 12 + 1, 5)
                due = due_date_for(issued, 20)
                roll = rnd.random()
                if m == MONTHS - 1 and roll < 0.10:
                    paid = None  # this month's invoice still open
                elif roll < 0.003:
                    paid = None  # an old debt, on its way to deletion
                elif roll < 0.12:
                    paid = due + timedelta(days=rnd.randint(2, 25))  # paid late
                else:
                    paid = due - timedelta(days=rnd.randint(0, 10))  # on time
                if paid is not None and paid > TODAY:
                    paid = None
                if paid is None and m == MONTHS - 1 and open_one is None:
                    open_one = f"{issued:%Y-%m}-acc{i:06d}"
                amount = f"{rnd.choice([29.9, 49.9, 149.9, 299.9, 1234.56]):.2f}"
                inv = {"id": f"{issued:%Y-%m}-acc{i:06d}", "account": f"acc{i:06d}", "amount": amount,
                       "issued": issued.isoformat(), "due": due.isoformat(),
                       "paid": paid.isoformat() if paid else None,
                       "payment_url": f"https://pagar.lucanet.com.br/f/{issued:%Y-%m}-acc{i:06d}"}
                if m % 3 == 0:  # billing systems issue PIX codes for part of the portfolio only
                    code = PIX.format(f"{i:06d}{m:02d}", amount.replace(".", ""))
                    inv["pix_code"] = code + pix_crc16(code)  # the importer checks the CRC
                out.write(("" if first else ",") + json.dumps(inv) + "\n")
                first = False
        out.write("]}\n")
    return open_one


def measure(code: str, setup: str = "", repeat: int = 3) -> dict:
    """Run `code` in a fresh Python `repeat` times; the best wall time (the least disturbed by
    the rest of the machine) and the largest peak memory (max RSS) of the runs. `setup` runs
    before the clock starts."""
    wrapper = (
        "import resource, time, sys, json\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"{setup}\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "elapsed = time.perf_counter() - t0\n"
        "print(json.dumps({'seconds': elapsed, 'max_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark step failed:\n{proc.stderr[-3000:]}")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"seconds": min(r["seconds"] for r in runs), "max_rss_mb": max(r["max_rss_mb"] for r in runs)}


def cli(args: list[str], quiet: bool = False) -> str:
    """Code that runs one notifier command in-process (user errors raise, so the step fails)."""
    call = f"cli.main({args!r}, prog_name='notifier', standalone_mode=False)"
    if quiet:
        call = f"with contextlib.redirect_stdout(io.StringIO()): {call}"
    return f"import io, contextlib\nfrom notifier.cli import cli\n{call}"


TIMELINES = """
from notifier.config import Config
from notifier.billing.rules import account_timeline
from notifier.state.store import Store
config = Config()
snap = Store(STATE).snapshot()
by_account = {}
for inv in snap.invoices():
    by_account.setdefault(inv.account, []).append(inv)
histories = snap.histories()
cal = config.calendar
count = sum(len(account_timeline(a, by_account.get(a.id, []), histories.get(a.id), cal, config)) for a in snap.accounts())
"""


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    billing, state = out / f"billing-{n}.json", out / f"state-{n}.json"
    for stale in (state, state.with_suffix(".archive.jsonl"), Path(f"{state}.lock")):
        stale.unlink(missing_ok=True)
    t = time.perf_counter()
    open_invoice = generate(n, billing)
    print(f"N = {n} accounts, {n * MONTHS} invoices; generated in {time.perf_counter() - t:.1f} s")
    print(f"import file: {billing.stat().st_size / 1e6:.1f} MB")

    base = measure(f"import json\njson.load(open({str(billing)!r}, encoding='utf-8'))")
    rows = [("json.load (baseline)", base)]
    day = ["--state", str(state), "--date", TODAY.isoformat()]
    fresh = "".join(f"pathlib.Path({str(p)!r}).unlink(missing_ok=True)\n" for p in (state, state.with_suffix(".archive.jsonl")))
    rows.append(("import", measure(cli(["--state", str(state), "import", str(billing), "--date", TODAY.isoformat()]),
                                   setup="import pathlib\n" + fresh)))
    archive = state.with_suffix(".archive.jsonl")
    print(f"store after import: {state.stat().st_size / 1e6:.1f} MB (archive {archive.stat().st_size / 1e6:.1f} MB)")
    archived = archive.stat().st_size
    rows.append(("re-import (same file)", measure(cli(["--state", str(state), "import", str(billing),
                                                      "--date", TODAY.isoformat()], quiet=True))))
    if archive.stat().st_size != archived:
        raise SystemExit("re-import added to the archive")
    rows.append(("plan (one day)", measure(cli(["--state", str(state), "plan", "--date", "2026-11-24", "--json"], quiet=True))))
    rows.append(("timeline (every account)", measure(TIMELINES.replace("STATE", repr(str(state))))))
    paid = out / f"pay-{n}.json"
    rows.append(("pay (one invoice)", measure(cli(["--state", str(paid), "pay", open_invoice] + day[2:],
                                                  quiet=True),
                                              setup=f"import shutil\nshutil.copy({str(state)!r}, {str(paid)!r})")))
    print(f"{'step':<26}{'seconds':>9}{'x baseline':>12}{'peak MB':>10}")
    for name, r in rows:
        print(f"{name:<26}{r['seconds']:>9.2f}{r['seconds'] / base['seconds']:>12.2f}{r['max_rss_mb']:>10.0f}")
    from bench._common import emit  # the figures, for bench/run_all.py
    keys = {"import": "import.first", "re-import (same file)": "import.again", "plan (one day)": "plan.day",
            "timeline (every account)": "timeline.all", "pay (one invoice)": "pay.one"}
    for name, r in rows[1:]:
        key, label = keys.get(name, name.split()[0]), f"{name}, {n:,} accounts"
        emit(f"{key}.{n}", r["seconds"], "s", base["seconds"], area="Import and plan", label=label,
             baseline_label=f"json.load ({billing.stat().st_size / 1e6:.0f} MB)")
        emit(f"memory.{key}.{n}", r["max_rss_mb"], "MB", base["max_rss_mb"], area="Memory (peak RSS)",
             label=label, baseline_label="json.load")


if __name__ == "__main__":
    main()
