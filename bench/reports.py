"""The Relatórios page and its CLI at a large company's size (issue 21): 50,000 accounts and
1,000,000 log records, the code before beside this checkout.

    python bench/reports.py                      # the code before (merge-base with main) and now
    python bench/reports.py --trees now          # this checkout only (the code before takes minutes)
    python bench/reports.py --before REV

What it does, with the real code end to end, on bench/company.py's fixture (cached under
$BENCH_CACHE) copied to bench/out/reports (the state, the archive, the log and its head; the packs,
which nothing here writes, linked), with an admin added by `notifier users add`:
1. for each tree (the code at REV, exported with `git archive`, then this checkout), in fresh
   processes: `notifier report --month MONTH --format csv` and `notifier forecast --format csv`,
   their wall time and peak memory; the CSVs of the two trees must be byte-identical (the numbers
   did not change);
2. a real `notifier web` of each tree: logs in, waits until its start's warm-up is over (idle),
   then `/relatorios?mes=MONTH` twice (the first view after start, and a second one: the month's
   report and the forecast are kept), the page's month CSV, which must equal the CLI's, and a
   first view of the month before (a second month kept); then a payment recorded through the
   console (a customer page's form: the state's tables change) and Relatórios again. Each view's
   wall time and the console's CPU time for it (the machine is shared), and the console's memory
   (issue 21: <= 300 MB at this size): its RSS idle, after each view (what a view leaves it
   holding) and its peak during each (VmHWM, set back to the RSS before each view through
   /proc/PID/clear_refs); the forecast CSV of the console after the payment must equal
   `notifier forecast`'s run then.
This checkout runs first: its `notifier report` is the first process to need the log's index at
this size, and reads the whole log once to build it (`attempts.jsonl.index`, kept beside the log
for every later process); that first run is reported apart.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import BENCH_PASSWORD, Console, emit, fmt, fresh_copy, run_measured  # noqa: E402
from bench.audit import export  # noqa: E402
from bench.company import DAY, fixture  # noqa: E402
from bench.painel import cpu_seconds, settle  # noqa: E402

AREA = "Console"
PASSWORD = BENCH_PASSWORD


def workdir(source: Path, work: Path) -> Path:
    fresh_copy(source, work, ("state.json", "state.archive.jsonl", "attempts.jsonl", "attempts.jsonl.head"))
    (work / "attempts.jsonl.messages").symlink_to(source / "attempts.jsonl.messages")
    subprocess.run([sys.executable, str(ROOT / "run.py"), "users", "add", "bench", "--role", "admin"], cwd=work,
                   input=PASSWORD + "\n", text=True, capture_output=True, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return work


def open_invoices(work: Path) -> list[str]:
    """November's open invoices, as the state file (and its journal's payments) hold them."""
    from notifier.state.store import Store
    snap = Store(work / "state.json").snapshot()
    return sorted(i.id for i in snap.invoices() if i.paid is None and i.id.startswith("2026-11-"))


def cli(tree: Path, work: Path, *args: str) -> tuple[float, float, str]:
    """`notifier ARGS` of `tree` in a fresh process: (seconds, peak MB, stdout)."""
    return run_measured([sys.executable, str(tree / "run.py"), *args], cwd=work,
                        env={"PYTHONPATH": str(tree)})


def rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of process `pid`, MB."""
    found = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(found["VmRSS"].split()[0]) / 1024, int(found["VmHWM"].split()[0]) / 1024


def reset_peak(pid: int) -> None:
    """The process's peak RSS (VmHWM) set back to its RSS now: the peak of what follows is then its own."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def earlier(month: str) -> str:
    first = date.fromisoformat(month + "-01")
    return f"{first - timedelta(days=1):%Y-%m}"


def console(tree: Path, work: Path, month: str, paying: str) -> dict:
    """The console of `tree`: milliseconds (wall, and the console's CPU) of the first and second
    view of Relatórios, of a first view of the month before, and of a view after a payment through
    the console (invoice `paying`); the console's RSS (MB) once idle before them and after each,
    and its peak during each; the month CSV, and the forecast CSV after the payment."""
    with Console(tree, work, DAY, timeout=900) as web:
        client, out, pid = web.client, {}, web.server.pid

        def view(name: str, mes: str = month) -> None:
            reset_peak(pid)
            cpu, start = cpu_seconds(pid), time.perf_counter()
            answer = client.get(f"/relatorios?mes={mes}")
            out[name], out[name + "_cpu"] = (time.perf_counter() - start) * 1000, (cpu_seconds(pid) - cpu) * 1000
            out[name + "_rss"], out[name + "_peak"] = rss(pid)
            assert answer.status_code == 200 and "Relatórios" in answer.text, answer.text[-500:]

        settle(pid)  # the console's warm-up over: its CPU and memory are not the view's
        out["idle_rss"] = rss(pid)[0]
        view("first")
        view("second")
        csv = client.get(f"/relatorios/mensal.csv?mes={month}")
        assert csv.status_code == 200, csv.text[-500:]
        view("other", earlier(month))
        settle(pid)
        account = paying.split("-", 2)[2]
        answer = client.post(f"/clientes/{account}/pagamento", data={"csrf": web.csrf, "fatura": paying, "pago_em": DAY})
        assert answer.status_code in (200, 303), answer.text[-500:]
        out["paid_rss"] = rss(pid)[0]
        view("changed")
        forecast = client.get("/relatorios/previsao.csv")
        assert forecast.status_code == 200, forecast.text[-500:]
        return {**out, "csv": csv.content, "forecast_after_csv": forecast.content}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--month", default="2026-11")
    parser.add_argument("--before", default=None, help="the code to compare with (default: merge-base with main)")
    parser.add_argument("--trees", default="now,before", help="which code: now, before or both")
    parser.add_argument("--work", type=Path, help="an earlier run's work folder, taken as it is (no copy)")
    args = parser.parse_args()
    work = args.work or workdir(fixture(), ROOT / "bench" / "out" / f"reports-{args.trees.replace(',', '-')}")
    before_rev = args.before or subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True,
                                               text=True, check=True).stdout.strip()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        trees = {name: ROOT if name == "now" else export(before_rev, Path(tmp) / "before")
                 for name in args.trees.split(",")}
        for name, tree in trees.items():
            r = results[name] = {}
            if name == "now" and not args.work:
                (work / "attempts.jsonl.index").unlink(missing_ok=True)
                r["report_unindexed"], _, _ = cli(tree, work, "report", "--month", args.month, "--format", "csv")
            r["report"], r["report_mb"], r["report_csv"] = cli(tree, work, "report", "--month", args.month,
                                                               "--format", "csv")
            r["forecast"], r["forecast_mb"], r["forecast_csv"] = cli(tree, work, "forecast", "--format", "csv",
                                                                     "--date", DAY)
            # A payment through the console, of an open invoice of another account for each tree, on
            # DAY: the forecast from DAY counts it as not made (nobody pays from its first day on)
            # and November's report is past its window, so both trees print the same; the
            # account's documents changed all the same, and its part is planned again.
            r.update(console(tree, work, args.month, paying=open_invoices(work)[len(results) * 7]))
            r["forecast_after"], _, r["forecast_after_csv_cli"] = cli(tree, work, "forecast", "--format", "csv",
                                                                      "--date", DAY)
            assert r["forecast_after_csv"].decode("utf-8") == r["forecast_after_csv_cli"], \
                f"{name}: the console's forecast after the payment differs from `notifier forecast`'s"
            (work / f"{name}.report.csv").write_text(r["report_csv"], encoding="utf-8")
            (work / f"{name}.forecast.csv").write_text(r["forecast_csv"], encoding="utf-8")
            print(f"{name}: report {r['report']:.1f} s, forecast {r['forecast']:.1f} s, "
                  f"Relatórios {fmt(r['first'])} ms (console's CPU {fmt(r['first_cpu'])} ms) then {fmt(r['second'])} ms "
                  f"(CPU {fmt(r['second_cpu'])} ms), the month before {fmt(r['other'])} ms, after a payment "
                  f"{fmt(r['changed'])} ms (CPU {fmt(r['changed_cpu'])} ms)", flush=True)
            print(f"{name}: the console's RSS idle {r['idle_rss']:.0f} MB; after the first view {r['first_rss']:.0f} MB "
                  f"(peak {r['first_peak']:.0f}), the second {r['second_rss']:.0f} (peak {r['second_peak']:.0f}), "
                  f"the month before {r['other_rss']:.0f} (peak {r['other_peak']:.0f}); after the payment "
                  f"{r['paid_rss']:.0f}, then Relatórios {r['changed_rss']:.0f} (peak {r['changed_peak']:.0f})", flush=True)
    for name, r in results.items():
        # The month's CSV as the page serves it is the CLI's, byte for byte (the CLI writes text to stdout).
        assert r["csv"].decode("utf-8") == r["report_csv"], f"{name}: the page's CSV differs from `notifier report`'s"
    if "now" not in results:
        return
    now = results["now"]
    before = results.get("before")
    if before:
        assert before["report_csv"] == now["report_csv"], "the month's report changed"
        assert before["forecast_csv"] == now["forecast_csv"], "the forecast changed"
    print(f"\n50,000 accounts, 1,000,000 log records, month {args.month}; before = {before_rev[:7]}; "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print("| | `notifier report --format csv` | `notifier forecast --format csv` | Relatórios, first view | second view "
          "| after a payment through the console |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['report']:.1f} s ({r['report_mb']:.0f} MB) | {r['forecast']:.1f} s ({r['forecast_mb']:.0f} MB) "
              f"| {fmt(r['first'] / 1000)} s | {fmt(r['second'] / 1000)} s | {fmt(r['changed'] / 1000)} s |")
    print("\n| the console's RSS, MB | idle | first view (peak) | second view | the month before (peak) "
          "| after a payment, then Relatórios (peak) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['idle_rss']:.0f} | {r['first_rss']:.0f} (+{r['first_rss'] - r['idle_rss']:.0f}; "
              f"{r['first_peak']:.0f}) | {r['second_rss']:.0f} | {r['other_rss']:.0f} (+{r['other_rss'] - r['second_rss']:.0f}; "
              f"{r['other_peak']:.0f}) | {r['paid_rss']:.0f}, {r['changed_rss']:.0f} (+{r['changed_rss'] - r['paid_rss']:.0f}; "
              f"{r['changed_peak']:.0f}) |")
    if "report_unindexed" in now:
        print(f"now, `notifier report` without the log's index file (reads the whole log once to build it): "
              f"{now['report_unindexed']:.1f} s")
    print("the CSVs: " + ("identical before and now; " if before else "") + "the page's month CSV = the CLI's")
    base = (lambda key: before[key]) if before else (lambda key: None)
    label = f"the code before ({before_rev[:7]})" if before else ""
    emit("console.reports.first", now["first"], "ms", baseline=base("first"), baseline_label=label, area=AREA,
         source="issue 21", label="Relatórios, first view after start (month report + 30-day forecast)", goal="<= 5000")
    emit("console.reports.second", now["second"], "ms", baseline=base("second"), baseline_label=label, area=AREA,
         source="issue 21", label="Relatórios, a second view", goal="<= 1000")
    emit("console.reports.changed", now["changed"], "ms", baseline=base("changed"), baseline_label=label, area=AREA,
         source="painel task", label="Relatórios after a payment through the console", goal="<= 1000")
    for key, start, what in (("first", "idle_rss", "a first view of a month"), ("other", "second_rss", "a first view of another month"),
                             ("changed", "paid_rss", "a view after a payment")):
        emit(f"console.reports.memory.{key}", now[key + "_rss"] - now[start], "MB",
             baseline=before[key + "_rss"] - before[start] if before else None, baseline_label=label, area=AREA,
             source="issue 21", label=f"Relatórios, the console's RSS that stays after {what}", goal="<= 15")
        emit(f"console.reports.memory.{key}.peak", now[key + "_peak"] - now[start], "MB",
             baseline=before[key + "_peak"] - before[start] if before else None, baseline_label=label, area=AREA,
             source="issue 21", label=f"Relatórios, the console's peak RSS during {what}, above its RSS before")
    for key, what in (("first", "first view after start"), ("second", "a second view"),
                      ("changed", "after a payment through the console")):
        emit(f"console.reports.{key}.cpu", now[key + "_cpu"], "ms", baseline=base(key + "_cpu"),
             baseline_label=label, area=AREA, source="painel task", label=f"Relatórios, {what}: the console's CPU")
    emit("cli.report", now["report"], "s", baseline=base("report"), baseline_label=label, area=AREA,
         source="issue 21", label="notifier report --format csv, fresh process")
    emit("cli.forecast", now["forecast"], "s", baseline=base("forecast"), baseline_label=label, area=AREA,
         source="issue 21", label="notifier forecast --format csv, fresh process")


if __name__ == "__main__":
    main()
