"""What the attempt log's index (notifier/log/index.py) costs a fresh process in resident memory, at
the large company's size (bench/company.py: 50,000 accounts, 1,000,000 records; issue 21).

    python bench/log_index_memory.py [--log PATH]

Each phase runs in a fresh process on a copy of the fixture's log (bench/out/logidx, copied once;
the cached fixture is never changed), glibc's free pages given back (`malloc_trim`, as the console
does) before each reading of VmRSS:
1. `build`: no index file: the index built from the log (and written beside it);
2. `restart`: the index file in place (a restarted console);
3. `append`: 20,000 lines appended to the log copy (new attempts and statuses of old ones), read
   by an index started from the file; the copy is cut back to its size afterwards.
After each start, the questions the console asks: five customer histories (`account_records`), a
Registro page with filters and one without (notifier/log/query.py `page`), a month's stream (the
monthly report's), then the task list (measured apart: what it keeps is the parsed tasks, not the
index). Printed: VmRSS growth over the process before the index (after the start, after the
questions, with the task list), the peak's growth (VmHWM), and each question's time. The same
script run from an older tree (`--log` given) measures the index before a change.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Chain, emit  # noqa: E402

AREA = "Registro (log queries)"
LABELS = {"build": "first build from the log", "restart": "restart from its file",
          "append": "20,000 lines appended"}
APPENDED = 20_000
ACCOUNTS = ("acc-00123", "acc-04567", "acc-12345", "acc-33333", "acc-49999")


def memory() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB, after glibc gave back its free pages."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                found[line.split(":")[0]] = int(line.split()[1]) / 1024
    return found["VmRSS"], found["VmHWM"]


def append(path: Path, lines: int) -> None:
    """`lines` lines in the log's format: new sendings with their outcomes, and later statuses of
    the log's old attempts (rows of the index file updated in place)."""
    olds = []
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 400_000_000))
        for raw in f:
            if b'"event":"sending"' in raw and len(olds) < lines // 10:
                rec = json.loads(raw)
                if "id" in rec and "account" in rec:
                    olds.append((rec["id"], rec["account"]))
            if len(olds) >= lines // 10:
                break
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 100_000))
        last = f.read().splitlines()[-1]
    out = open(path, "ab")
    put = Chain(out, json.loads(last)["seq"], hashlib.sha256(last).hexdigest()).put

    written, i = 0, 0
    while written < lines:
        t = f"2026-12-07T{10 + i // 3600 % 10:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
        if i % 5 == 4 and olds:
            ref, account = olds.pop()
            put({"id": hashlib.md5(b"x" + ref.encode()).hexdigest(), "event": "delivered", "time": t, "actor": "daemon",
                 "account": account, "channel": "email", "ref": ref, "provider": "smtp", "detail": "delivered"})
            written += 1
        else:
            account = f"acc-{(i * 7919) % 50_000:05d}"
            aid = hashlib.md5(b"bench-append" + str(i).encode()).hexdigest()
            put({"id": aid, "event": "sending", "time": t, "actor": "daemon", "account": account,
                 "invoices": [f"2026-12-{account}"], "stage": "reminder", "channel": "email",
                 "recipient": f"financeiro@{account}.com.br", "content": {"subject": "Fatura", "text": "Olá"}})
            put({"id": hashlib.md5(b"o" + aid.encode()).hexdigest(), "event": "sent", "time": t, "actor": "daemon",
                 "account": account, "channel": "email", "ref": aid, "provider": "smtp", "provider_id": f"B{i}"})
            written += 2
        i += 1
    out.close()


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t) * 1000, result


def phase(log: Path, name: str) -> dict:
    """One phase in this (fresh) process: the figures as a dict."""
    from zoneinfo import ZoneInfo
    from notifier.log.index import LogIndex
    from notifier.log.query import Query, page, stream
    tz = ZoneInfo("America/Sao_Paulo")
    size = log.stat().st_size
    if name == "build":
        Path(str(log) + ".index").unlink(missing_ok=True)
    rss0, hwm0 = memory()
    try:
        if name == "append":
            index = LogIndex(log, tz)
            index.refresh()
            append(log, APPENDED)
            ms_start, _ = timed(index.refresh)
        else:
            index = LogIndex(log, tz)
            ms_start, _ = timed(index.refresh)
        started, hwm_start = memory()
        times = {}
        for account in ACCOUNTS:
            ms, found = timed(lambda: index.account_records(account))
            times[f"history {account} ({len(found)} records)"] = ms
        month = dict(since=date(2026, 10, 1), until=date(2026, 10, 31))
        ms, found = timed(lambda: page(index, Query(channel="email", **month)))
        times[f"Registro: October, e-mail ({found.total:,})"] = ms
        ms, found = timed(lambda: page(index, Query(status="bounced", stage="overdue")))
        times[f"Registro: bounced, overdue ({found.total:,})"] = ms
        ms, found = timed(lambda: page(index, Query()))
        times["Registro: no filter"] = ms
        ms, found = timed(lambda: sum(1 for _ in stream(index, Query(**month), newest_first=False)))
        times[f"stream of October ({found:,} attempts)"] = ms
        asked, hwm = memory()
        ms, found = timed(index.task_list)
        times[f"task_list ({len(found):,} tasks)"] = ms
        tasks, hwm_tasks = memory()
        return {"phase": name, "start_ms": ms_start, "loaded": index.loaded, "rss_start": started - rss0,
                "rss_asked": asked - rss0, "hwm": hwm - max(hwm0, rss0), "hwm_start": hwm_start - max(hwm0, rss0),
                "rss_tasks": tasks - asked, "hwm_tasks": hwm_tasks - max(hwm0, rss0),
                "times": times, "lines": len(index.line_off)}
    finally:
        if name == "append":
            os.truncate(log, size)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", type=Path, help="an attempt log to measure (changed: lines appended, then cut back)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.log, args.phase)))
        return
    log = args.log
    if log is None:
        from bench.company import fixture
        log = ROOT / "bench" / "out" / "logidx" / "attempts.jsonl"
        source = fixture() / "attempts.jsonl"
        if not log.exists() or log.stat().st_size != source.stat().st_size:
            log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, log)
    print(f"log {log} ({log.stat().st_size / 1e6:,.0f} MB)")
    for name in ("build", "restart", "append"):
        proc = subprocess.run([sys.executable, __file__, "--log", str(log), "--phase", name], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        r = json.loads(proc.stdout.splitlines()[-1])
        print(f"\n{name}: start {r['start_ms']:,.0f} ms (from the file: {r['loaded']}, {r['lines']:,} lines); RSS +"
              f"{r['rss_start']:.1f} MB after the start, +{r['rss_asked']:.1f} MB after the questions; "
              f"peak +{r['hwm_start']:.1f} MB during the start, +{r['hwm']:.1f} MB with the questions; the task "
              f"list then +{r['rss_tasks']:.1f} MB (the parsed tasks it keeps, staff/actions.py `TaskBook`), "
              f"peak +{r['hwm_tasks']:.1f} MB")
        for what, ms in r["times"].items():
            print(f"  {what}: {ms:,.1f} ms")
        emit(f"registro.index.rss.{name}", r["rss_asked"], "MB", goal="<= 20", source="issue 21 (the log index's part)",
             area=AREA, label=f"log index, {LABELS[name]}: RSS after the questions")
        emit(f"registro.index.peak.{name}", r["hwm"], "MB", area=AREA, label=f"log index, {LABELS[name]}: peak (VmHWM)")


if __name__ == "__main__":
    main()
