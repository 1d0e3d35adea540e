"""The audit of one account in the console at the company's size (issue 21: <= 1 s at 1,000,000
log records and 50,000 accounts), beside the code before and the CLI.

    python bench/audit.py                                   # 50,000 accounts, 1,000,000 records
    python bench/audit.py --accounts 500 --records 10000    # a quick look
    python bench/audit.py --before REV                      # compare with REV (default: merge-base with main)

What it does, with the real code end to end:
1. the fixture of bench/console.py (cached under $BENCH_CACHE): the accounts imported, the log grown
   to `--records` records of real e-mails with their payloads; copied to bench/out/audit (the log,
   its head, the state; the message packs, which nothing here writes, linked), since a login and
   the contacts below append to the log;
2. for each tree (the code at REV, exported with `git archive`, and this checkout): a real `notifier
   web` process; logs in over HTTP as an admin, waits for its warm-up (the customer page of one
   account answers), then `--audits` times: logs a contact on an account (one record appended to
   the log, as the daemon and staff do all day) and downloads the audit report of another account
   as HTML (before: `/clientes/ID/auditoria?formato=html`, the only address; now
   `/auditoria/ID.html`); the median and the worst; then one PDF;
3. `notifier audit ACCOUNT --html` in a fresh process, for each tree (what finance ran before).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Console, emit, fmt  # noqa: E402
from bench.console import DAY, fixture  # noqa: E402

AREA = "Console"
GOAL_MS = 1000


def workdir(source: Path, target: Path) -> Path:
    """A copy of the fixture that the console may append to; the packs linked, not copied."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("attempts.jsonl", "attempts.jsonl.head", "state.json", "state.json.users"):
        if (source / name).exists():  # a fixture grown before the head file has none
            shutil.copy2(source / name, target / name)
    (target / "attempts.jsonl.messages").symlink_to(source / "attempts.jsonl.messages")
    return target


def export(rev: str, into: Path) -> Path:
    """The tree of `rev`, as `git archive` gives it."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def cli_seconds(tree: Path, work: Path, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(tree / "run.py"), *args], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)})
    if proc.returncode != 0:
        raise SystemExit(f"notifier {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def console(tree: Path, work: Path, url_of, audits: int, accounts: int) -> dict:
    """The console of `tree` on `work`: seconds until warm, then the audits' milliseconds."""
    started = time.perf_counter()
    with Console(tree, work, DAY, timeout=300, stderr=subprocess.PIPE) as web:
        client, csrf, origin = web.client, web.csrf, {"Origin": web.base}
        assert client.get("/clientes/acc-00001").status_code == 200  # waits for the log index
        start = time.perf_counter()
        first = client.get(url_of("acc-00002", "html"))
        assert first.status_code == 200, first.text[-500:]
        first_ms = (time.perf_counter() - start) * 1000
        warm_s = time.perf_counter() - started
        times = []
        for n in range(audits):
            account = f"acc-{(n * 7919 + 123) % accounts:05d}"
            answer = client.post(f"/clientes/acc-{n:05d}/contato", headers=origin,
                                 data={"csrf": csrf, "canal": "phone", "resultado": "reached", "nota": "bench"})
            assert answer.status_code == 200, answer.text[-500:]
            start = time.perf_counter()
            report = client.get(url_of(account, "html"))
            times.append((time.perf_counter() - start) * 1000)
            assert report.status_code == 200 and "data-head" in report.text, report.text[-500:]
        start = time.perf_counter()
        pdf = client.get(url_of("acc-00123", "pdf"))
        pdf_ms = (time.perf_counter() - start) * 1000
        assert pdf.content.startswith(b"%PDF"), pdf.text[-500:]
        relatorios_ms = None
        if "/auditoria/" in url_of("x", "html"):  # the page exists: the month's report beside the audit
            start = time.perf_counter()
            assert client.get("/relatorios?mes=2026-11").status_code == 200
            relatorios_ms = (time.perf_counter() - start) * 1000
        verified = re.search(r'<p class="ok" data-verified>(.*?)</p>', report.text, re.S)
        return {"first": first_ms, "warm": warm_s, "median": statistics.median(times), "max": max(times),
                "pdf": pdf_ms, "relatorios": relatorios_ms, "said": verified.group(1) if verified else "(the sentence before: "
                + re.search(r'<p class="ok">(Registro íntegro.*?)</p>', report.text, re.S).group(1) + ")"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--audits", type=int, default=10)
    parser.add_argument("--before", default=None, help="the code to compare with (default: merge-base with main)")
    parser.add_argument("--now-only", action="store_true", help="this checkout only (the code before takes minutes)")
    args = parser.parse_args()
    source = fixture(args.accounts, args.records)
    before_rev = args.before or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True,
                                               text=True, check=True).stdout.strip()
    out = ROOT / "bench" / "out" / "audit"
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        trees = {"before": (export(before_rev, Path(tmp) / "before"),
                            lambda a, kind: f"/clientes/{a}/auditoria?formato={kind}"),
                 "now": (ROOT, lambda a, kind: f"/auditoria/{a}.{kind}")}
        if args.now_only:
            del trees["before"]
        for name, (tree, url_of) in trees.items():
            work = workdir(source, out / name)
            results[name] = console(tree, work, url_of, args.audits, args.accounts)
            results[name]["cli"] = cli_seconds(tree, work, "audit", "acc-00123", "--html", str(work / "a.html"),
                                               "--date", DAY)
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.accounts:,} accounts, {args.records:,} log records; before = {before_rev[:7]}; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print("| | console: first audit after start | audit of one account (HTML), median / worst of "
          f"{args.audits} | PDF | `notifier audit --html` (fresh process) |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {fmt(r['first'])} ms | {fmt(r['median'])} / {fmt(r['max'])} ms | {fmt(r['pdf'])} ms "
              f"| {r['cli']:.1f} s |")
    if results["now"]["relatorios"] is not None:
        print(f"Relatórios (the month's report and the forecast), one view: {fmt(results['now']['relatorios'])} ms")
    print(f"goal: the audit of one account <= {GOAL_MS} ms: "
          + ("met" if results["now"]["max"] <= GOAL_MS else "NOT met"))
    print("the report says (now):", re.sub(r"\s+", " ", results["now"]["said"]))
    before = results.get("before")
    emit("console.audit.html", results["now"]["median"], "ms", goal=f"<= {GOAL_MS}", area=AREA, source="issue 21",
         label="the audit of one account (HTML), median", baseline=before["median"] if before else None,
         baseline_label=f"the console before ({before_rev[:7]})" if before else "")


if __name__ == "__main__":
    main()
