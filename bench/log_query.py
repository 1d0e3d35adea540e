"""Finance's log queries at a large company's size: 1,000,000 log records, 50,000 accounts (issue 21).

    python bench/log_query.py                           # 1,000,000 records; the console too
    python bench/log_query.py --records 100000 --no-console

What it does:
1. builds the fixture once (cached under $BENCH_CACHE, see bench/_common.py): an attempt log of
   `--records` records in the log's own format and chain (seq, prev), written straight to the
   file (no message store, no fsync: what is measured reads the log, and bench/log_scale.py's
   real-append fixture takes minutes per million): sendings over eleven months with real-sized
   e-mail texts, 50,000 accounts, every channel and stage, a few staff actors, a few hundred DMs
   handed to staff, their outcomes from
   the provider each channel uses, and delivery statuses and bounces for a fifth of them;
2. in this process: the log index built from the log (time, the arrays' bytes, the process's RSS
   growth), written to its file and read back by a fresh index (what a new process does);
3. the queries the Registro page and `notifier attempts` make (`notifier/log/query.py`): page 1
   newest first with no filter, a month and a channel, a status, an actor, a provider, one
   account, a far page; best of 5 each;
4. `notifier attempts --account acc-00123` in a fresh process with the index file in place (the
   3.4 s whole-log scan before), and with none (the first run, which writes it);
5. unless --no-console: a real `notifier web` on the fixture, `/registro` with filters over HTTP
   (p95 of 20 views), and the console's RSS after them.

Goals (issue 21): the Registro page with filters <= 300 ms; the console <= 300 MB RSS.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import BENCH_PASSWORD, Chain, Console, cache_dir, emit  # noqa: E402

AREA = "Registro (log queries)"
ACCOUNTS = 50_000
GENERATOR = 2  # bump when `grow` or `fixture` changes what they write
PASSWORD = BENCH_PASSWORD
STAGES = ("reminder", "due_today", "overdue", "suspension_warning", "suspended", "deletion_warning")
TEXT = ("Olá, João Batista Ferreira,\n\nValor em aberto: R$ 89,90 (vencimento em 20/11/2026)\n\n"
        "Lembramos que a fatura de R$ 89,90 dos serviços contratados por Padaria São João Ltda vence em "
        "20/11/2026. ") * 6


def grow(path: Path, records: int) -> None:
    """`records` records in the log's format, chained, in time order."""
    start = datetime(2026, 1, 1, 11, tzinfo=timezone.utc)
    span = (datetime(2026, 11, 30, 23, tzinfo=timezone.utc) - start).total_seconds()
    attempts = records * 9 // 20  # 45% sendings, 45% outcomes, 10% later statuses
    n = 0
    later: list[tuple[str, str, str, str]] = []
    with open(path, "wb", buffering=1 << 22) as out:
        chain = Chain(out)
        put = chain.put
        while chain.seq < records:
            i = n
            n += 1
            when = start + timedelta(seconds=span * min(i, attempts) / attempts)
            t = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            account = f"acc-{(i * 7919) % ACCOUNTS:05d}"
            k = i % 20
            # a DM by hand (a staff task) for one attempt in a thousand: a few hundred open tasks, as
            # bench/console.py has; the task queue's size is not what this bench measures
            channel = "social" if i % 1000 == 999 else "email" if k < 14 else "whatsapp" if k < 18 else "sms"
            stage = STAGES[i % len(STAGES)]
            actor = "daemon" if i % 97 else ("caio" if i % 2 else "ana")
            aid = hashlib.md5(str(i).encode()).hexdigest()
            recipient = {"email": f"financeiro@{account}.com.br", "whatsapp": "+5511987452310", "sms": "+5511987452310",
                         "social": "instagram:@empresa"}[channel]
            put({"id": aid, "event": "sending", "time": t, "actor": actor, "account": account,
                 "invoices": [f"2026-{when.month:02d}-{account}"], "stage": stage, "notice_date": t[:10],
                 "first_time": False, "tutorial": False, "covers": [[f"2026-{when.month:02d}-{account}", t[:10], stage]],
                 "template": f"{channel}/{stage}", "attempt": 1, "channel": channel, "recipient": recipient,
                 "content": {"subject": "Fatura em aberto: R$ 89,90", "text": TEXT}})
            if chain.seq >= records:
                break
            provider = {"email": "smtp", "whatsapp": "twilio", "sms": "twilio", "social": "staff-task"}[channel]
            event = "task" if channel == "social" else "failed" if i % 53 == 0 else "sent"
            put({"id": hashlib.md5(b"o" + str(i).encode()).hexdigest(), "event": event, "time": t, "actor": actor,
                 "account": account, "channel": channel, "recipient": recipient, "ref": aid, "provider": provider,
                 "provider_id": f"Q{i:08X}", "code": "250", "detail": "250 2.0.0 Ok: queued", "permanent": False,
                 "evidence": {"message_id": f"<{aid}@lucanet.com.br>"}})
            if event == "sent" and i % 9 < 2:
                status = "bounced" if channel == "email" else ("read" if i % 2 else "delivered")
                later.append((aid, account, channel, status))
            if len(later) > 50 or (later and chain.seq >= records - 1):
                aid2, acc2, ch2, status = later.pop(0)
                if chain.seq < records:
                    put({"id": hashlib.md5(b"s" + aid2.encode()).hexdigest(), "event": status, "time": t,
                         "actor": "daemon", "account": acc2, "channel": ch2, "ref": aid2,
                         "provider": "smtp" if ch2 == "email" else "twilio", "detail": status})


def fixture(records: int) -> Path:
    # keyed by GENERATOR, not this file's source: editing the measuring code keeps the fixture
    folder = cache_dir("log-query", {"records": records, "generator": GENERATOR})
    if (folder / "done").exists():
        return folder
    t = time.perf_counter()
    grow(folder / "attempts.jsonl", records)
    state = json.loads((ROOT / "state.json.example").read_text(encoding="utf-8"))
    state.pop("meta", None)
    (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")
    cli(folder, "users", "add", "bench", "--role", "finance", stdin=PASSWORD + "\n")
    (folder / "done").write_text(f"{records}\n")
    print(f"fixture: {records:,} records grown in {time.perf_counter() - t:.0f} s into {folder}", flush=True)
    return folder


def cli(folder: Path, *args: str, stdin: str | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=folder, input=stdin, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"notifier {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - start, proc.stdout


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def best(fn, runs: int = 5) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return min(times), result


def main() -> None:
    from zoneinfo import ZoneInfo
    from notifier.log.index import LogIndex
    from notifier.log.query import Query, page
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--no-console", action="store_true")
    args = parser.parse_args()
    source = fixture(args.records)
    work = ROOT / "bench" / "out" / "log_query"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in ("attempts.jsonl", "state.json", "state.json.users"):
        if (source / name).exists():
            shutil.copy(source / name, work / name)  # copied, not linked: the console's login appends to the log
    log = work / "attempts.jsonl"
    log.read_bytes()  # into the page cache, as for every command measured after
    tz = ZoneInfo("America/Sao_Paulo")
    print(f"{args.records:,} records, {log.stat().st_size / 1e6:,.0f} MB; {os.cpu_count()} cores", flush=True)

    before = rss_mb()
    t = time.perf_counter()
    index = LogIndex(log, tz, persist=False)
    index.refresh()
    build = time.perf_counter() - t
    grown = rss_mb() - before
    held = index.memory() / 1e6
    print(f"index built from the log: {build:.1f} s; arrays and tables {held:.1f} MB; RSS grew {grown:.0f} MB "
          f"({len(index.row_line):,} attempts, {len(index.accounts) - 1:,} accounts)")
    emit("registro.index.build", build, "s", area=AREA, label="log index built from the whole log (once per log)")
    emit("registro.index.memory", held, "MB", area=AREA, label="log index: arrays and tables")
    t = time.perf_counter()
    index.save()
    saved = time.perf_counter() - t
    t = time.perf_counter()
    again = LogIndex(log, tz)
    again.refresh()
    loaded = time.perf_counter() - t
    print(f"index file: {index.file.stat().st_size / 1e6:.1f} MB, written in {saved * 1000:.0f} ms, read back and "
          f"checked by a fresh index in {loaded * 1000:.0f} ms (from the file: {again.loaded})")
    emit("registro.index.load", loaded * 1000, "ms", area=AREA, label="log index read from its file by a new process")

    month = dict(since=date(2026, 10, 1), until=date(2026, 10, 31))
    queries = [("no filter, page 1", Query(), 1), ("October, e-mail", Query(channel="email", **month), 1),
               ("October, e-mail, page 20", Query(channel="email", **month), 20),
               ("status bounced", Query(status="bounced"), 1), ("actor caio", Query(actor="caio"), 1),
               ("provider twilio, stage overdue", Query(provider="twilio", stage="overdue"), 1),
               ("account acc-00123", Query(account="acc-00123"), 1),
               ("account acc-00123, October", Query(account="acc-00123", **month), 1),
               ("every filter", Query(channel="email", stage="reminder", status="sent", actor="daemon",
                                      provider="smtp", **month), 1)]
    print("\n| query (notifier/log/query.py `page`, 50 rows) | matches | best of 5 |")
    print("| --- | --- | --- |")
    for name, query, number in queries:
        ms, found = best(lambda: page(again, query, number))
        print(f"| {name} | {found.total:,} | {ms:.1f} ms |")
        emit(f"registro.query.{name}", ms, "ms", goal="<= 300", area=AREA, label=f"query: {name}")

    index.file.unlink()
    first, _ = cli(work, "attempts", "--account", "acc-00123", "-o", "first.txt")
    warm, out = cli(work, "attempts", "--account", "acc-00123", "-o", "again.txt")
    lines = len((work / "again.txt").read_text().splitlines()) - 2
    print(f"\n`notifier attempts --account acc-00123` ({lines} attempts): {first:.2f} s with no index file "
          f"(builds and writes it), {warm:.2f} s with it")
    emit("registro.cli.account", warm, "s", area=AREA, label="notifier attempts --account (index file in place)")
    if args.no_console:
        return
    console(work)


def console(work: Path) -> None:
    with Console(ROOT, work, "2026-11-30", timeout=120) as web:
        client, server = web.client, web.server
        t = time.perf_counter()
        assert client.get("/registro").status_code == 200
        print(f"\nconsole: first /registro {time.perf_counter() - t:.2f} s (the index read from its file, or built)")
        urls = ["/registro?de=2026-10-01&ate=2026-10-31&canal=email",
                "/registro?de=2026-10-01&ate=2026-10-31&canal=email&situacao=sent&pagina=7",
                "/registro?conta=acc-00123", "/registro?pessoa=caio&provedor=smtp", "/registro?situacao=bounced"]
        for url in urls:
            times = []
            for _ in range(20):
                t = time.perf_counter()
                answer = client.get(url)
                times.append((time.perf_counter() - t) * 1000)
                assert answer.status_code == 200, (url, answer.status_code)
            times.sort()
            p95 = times[int(len(times) * 0.95) - 1]
            print(f"  {url}: p95 {p95:.0f} ms (best {times[0]:.0f} ms)")
            emit(f"registro.page.{url}", p95, "ms", goal="<= 300", area=AREA, label=f"Registro page {url}: p95 of 20")
        print(f"console RSS after: {rss_mb(server.pid):.0f} MB")
        emit("registro.console.rss", rss_mb(server.pid), "MB", goal="<= 300", area=AREA,
             label="console RSS after the Registro pages (log of this bench, example state)")


if __name__ == "__main__":
    main()
