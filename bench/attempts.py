"""Speed and disk of the contact-attempt log: append, verify-log, attempts, audit, a month's disk.

    python bench/attempts.py                    # 1k, 100k and 1M records; 5,000 accounts a month
    python bench/attempts.py --sizes 1000,100000 --accounts 500

What it does, with the real code (AttemptLog, the message store, the real renderer and e-mail
channel for the payloads) and real fsyncs, into bench/out/ (ignored by git):
1. grows one log to each size in `--sizes` (half `sending` records with a real rendered e-mail as
   payload, half their `sent` outcomes; one group commit per 250 attempts), and at each size
   times single appends (a start and a finish, each written and fsynced alone): median and p95;
2. on the largest log, runs in fresh processes, as an operator would, `verify-log`,
   `attempts --account`, and `audit ACCOUNT --html`: wall time and peak memory (max RSS);
3. writes a month of the default ladder for `--accounts` accounts into a fresh log (typical: 88%
   pay on time and get the reminder and due-day e-mails, 12% are late and get every stage, the
   first-time extra WhatsApp and social messages included; and the worst case, nobody pays), and
   measures the disk taken by the log and the message store.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from notifier.channels import Message, Result, build  # noqa: E402
from notifier.log.attempts import AttemptLog  # noqa: E402
from notifier.config import load_config  # noqa: E402
from notifier.billing.models import Account, Invoice, Notice  # noqa: E402
from notifier.run.render import Renderer  # noqa: E402
from bench._common import emit  # noqa: E402  (the figures, for bench/run_all.py)

AREA = "Attempt log"

OUT = ROOT / "bench" / "out"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
DAY = date(2026, 11, 24)
BATCH = 250
TEMPLATE_TO = "financeiro@padariasaojoao.com.br"
EMAIL_STAGES = ("reminder", "due_today", "overdue", "suspension_warning", "suspended", "deletion_warning")


class Messages:
    """Real messages: each stage rendered by the real templates for a sample account, and its
    payload prepared by the real channel (e-mail: the whole .eml, as for the outbox)."""

    def __init__(self) -> None:
        self.config = load_config(None, {"TUTORIAL_URL": "https://www.lucanet.com.br/cobranca"})
        self.renderer = Renderer(self.config)
        self.channels = {name: build(name, self.config) for name in ("email", "whatsapp", "social")}
        self.cache: dict[tuple[str, str], Message] = {}

    def get(self, account: str, stage: str, channel: str, recipient: str) -> Message:
        """The stage's message prepared once, then given to each recipient by replacing the
        address in its bytes: composing an .eml takes milliseconds, and a million would take
        hours; the payload's size and compressibility are the same."""
        key = (stage, channel)
        if key not in self.cache:
            acc = Account(account, "Padaria São João Ltda", "15.881.399/0001-34", (recipient,), "João Batista Ferreira",
                          whatsapp="+5511987452310", social=(("instagram", "@padaria"),))
            inv = Invoice(f"2026-11-{account}", account, Decimal("89.90"), date(2026, 11, 5), date(2026, 11, 20))
            r = recipient if channel == "email" else ("+5511987452310" if channel == "whatsapp" else "instagram:@padaria")
            notice = Notice(account, DAY, stage, channel, r, (inv.id,), True, channel != "email")
            message = self.renderer.render(notice, acc, [inv], DAY)
            self.cache[key] = self.channels[channel].prepare(replace(message, recipient=r if channel != "email" else TEMPLATE_TO))
        message = self.cache[key]
        if channel != "email":
            return message
        return replace(message, recipient=recipient, payload=message.payload.replace(TEMPLATE_TO.encode(), recipient.encode()))


def fields(account: str, stage: str) -> dict:
    return {"account": account, "invoices": [f"2026-11-{account}"], "stage": stage, "notice_date": DAY.isoformat(),
            "first_time": True, "tutorial": False, "covers": [[f"2026-11-{account}", DAY.isoformat(), stage]],
            "template": f"email/{stage}", "attempt": 1}


SENT = Result("sent", "smtp", provider_id="4F2A1", code="250", detail="250 2.0.0 Ok: queued as 4F2A1",
              evidence={"message_id": "<1@lucanet.com.br>", "server": "smtp.lucanet.com.br:587",
                        "smtp_reply": "250 2.0.0 Ok: queued as 4F2A1"})


def grow(log: AttemptLog, messages: Messages, target: int, accounts: int = 50_000) -> None:
    """Append sending+sent pairs, BATCH attempts per group commit, until `target` records."""
    count = log.head().count
    n = count // 2
    while count < target:
        size = min(BATCH, (target - count) // 2 or 1)
        items = []
        for i in range(n, n + size):
            account = f"acc-{i % accounts:05d}"
            stage = EMAIL_STAGES[i % len(EMAIL_STAGES)]
            m = messages.get(account, stage, "email", f"financeiro@{account}.com.br")
            items.append((T0 + timedelta(seconds=i), m, fields(account, stage), "daemon", m.payload))
        ids = log.start_many(items)
        log.finish_many([(a, T0 + timedelta(seconds=n), SENT) for a in ids])
        n += size
        count += 2 * size


def append_cost(log: AttemptLog, messages: Messages, rounds: int = 200) -> tuple[float, float]:
    """Median and p95 milliseconds of one attempt appended alone: start (payload + record, two
    fsyncs) and finish (one fsync)."""
    m = messages.get("acc-bench", "overdue", "email", "financeiro@bench.com.br")
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        attempt = log.start(T0, m, fields("acc-bench", "overdue"), payload=m.payload)
        log.finish(attempt, T0, SENT)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


def run(folder: Path, *args: str) -> tuple[float, float, str]:
    """`notifier ARGS` in a fresh process in `folder`: (seconds, max RSS in MB, stdout). The CPU
    seconds it and its workers used go to CPU[-1]: on a shared machine they vary less than time."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    CPU.append(usage.ru_utime + usage.ru_stime)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"notifier {' '.join(args)} failed: {err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


CPU: list[float] = []


def tool_throughput(*paths: Path) -> str:
    """What `cat`, `sha256sum` and `openssl dgst` do with the same files here: the floor for reading and hashing."""
    size = sum(p.stat().st_size for p in paths)
    out = []
    for tool in (["cat"], ["sha256sum"], ["openssl", "dgst", "-sha256"]):  # coreutils' sha256sum has no SHA-NI
        start = time.perf_counter()
        proc = subprocess.Popen([*tool, *map(str, paths)], stdout=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.append(f"`{' '.join(tool)}` {size / 1e6 / wall:,.0f} MB/s ({size / 1e6 / (usage.ru_utime + usage.ru_stime or 1e-9):,.0f} MB/s of CPU)")
    return ", ".join(out)


def make_state(folder: Path) -> None:
    """A state with one account (verify-log and audit read the log's head from it)."""
    import json
    billing = {"accounts": [{"id": "acc-00123", "company": "Padaria São João Ltda", "document": "15.881.399/0001-34",
                             "emails": ["financeiro@acc-00123.com.br"], "due_day": 20}],
               "invoices": [{"id": "2026-11-acc-00123", "account": "acc-00123", "amount": "89.90", "issued": "2026-11-05"}]}
    (folder / "billing.json").write_text(json.dumps(billing), encoding="utf-8")
    run(folder, "import", "billing.json", "--date", "2026-11-10")


def disk(paths) -> int:
    total = 0
    for p in paths:
        p = Path(p)
        if p.is_file():
            total += p.stat().st_blocks * 512
        elif p.is_dir():
            total += sum(f.stat().st_blocks * 512 for f in p.rglob("*") if f.is_file())
    return total


def month(folder: Path, messages: Messages, accounts: int, late_share: float) -> tuple[int, int, int, int]:
    """A month of the default ladder: (messages, log bytes, message store bytes, records)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = AttemptLog(folder / "attempts.jsonl")
    late_every = round(1 / late_share) if late_share else None
    sent = 0
    batch: list = []
    for i in range(accounts):
        account = f"acc-{i:05d}"
        late = late_share >= 1 or (late_every and i % late_every == 0)
        stages = EMAIL_STAGES if late else EMAIL_STAGES[:2]
        emails = (f"financeiro@{account}.com.br",) + ((f"joao@{account}.com.br",) if i % 2 else ())
        plan = [(s, "email", e) for s in stages for e in emails]
        if late:  # a first-time delinquent's extra effort: WhatsApp at overdue and suspension warning, social once
            plan += [("overdue", "whatsapp", None), ("suspension_warning", "whatsapp", None), ("overdue", "social", None)]
        for stage, channel, recipient in plan:
            m = messages.get(account, stage, channel, recipient or "")
            batch.append((T0, m, fields(account, stage), "daemon", m.payload))
        if len(batch) >= BATCH:
            sent += _flush(log, batch)
            batch = []
    sent += _flush(log, batch)
    records = log.head().count
    return sent, disk([log.path]), disk([log.messages.folder]), records


def _flush(log: AttemptLog, batch: list) -> int:
    if batch:
        ids = log.start_many(batch)
        log.finish_many([(a, T0, SENT) for a in ids])
    return len(batch)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--accounts", type=int, default=5000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    messages = Messages()
    folder = OUT / "attempts"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log = AttemptLog(folder / "attempts.jsonl")
    print(f"payload of one e-mail: {len(messages.get('acc-x', 'overdue', 'email', 'a@b.com.br').payload):,} bytes")
    print("| records | grow to it | append one attempt (start + finish, 3 fsyncs): median | p95 | log | message store |")
    print("| --- | --- | --- | --- | --- | --- |")
    first = None
    for size in sizes:
        t = time.perf_counter()
        grow(log, messages, size)
        grown = time.perf_counter() - t
        median, p95 = append_cost(log, messages)
        print(f"| {size:,} | {grown:.1f} s | {median:.2f} ms | {p95:.2f} ms | {disk([log.path]) / 1e6:,.0f} MB "
              f"| {disk([log.messages.folder]) / 1e6:,.0f} MB |", flush=True)
        emit(f"log.append.{size}", median, "ms", first, area=AREA, label=f"append one attempt, {size:,} records",
             baseline_label=f"at {sizes[0]:,}")
        first = first or median
    records = log.head().count
    log.close()
    make_state(folder)
    print(f"\non the {records:,}-record log ({os.cpu_count()} cores; CPU = seconds of CPU, all processes):")
    print("| command | time | CPU | peak memory | |")
    print("| --- | --- | --- | --- | --- |")
    seconds, rss, out = run(folder, "verify-log")
    print(f"| `verify-log` | {seconds:.1f} s | {CPU[-1]:.1f} s | {rss:,.0f} MB | {records / seconds:,.0f} records/s, "
          f"every stored message checked too |")
    emit("log.verify.rate", records / seconds, "records/s", area=AREA, label=f"verify-log, {records:,} records")
    seconds, rss, out = run(folder, "verify-log", "--chain-only")
    print(f"| `verify-log --chain-only` | {seconds:.1f} s | {CPU[-1]:.1f} s | {rss:,.0f} MB | {records / seconds:,.0f} records/s |")
    emit("log.verify_chain.rate", records / seconds, "records/s", area=AREA, label="verify-log --chain-only")
    seconds, rss, out = run(folder, "attempts", "--account", "acc-00123", "--format", "json")
    print(f"| `attempts --account acc-00123` | {seconds:.1f} s | {CPU[-1]:.1f} s | {rss:,.0f} MB | {len(out.splitlines())} attempts |")
    emit("log.attempts_account", seconds, "s", area=AREA, label=f"attempts --account, {records:,} records")
    seconds, rss, out = run(folder, "audit", "acc-00123", "--html", "audit.html")
    print(f"| `audit acc-00123 --html` | {seconds:.1f} s | {CPU[-1]:.1f} s | {rss:,.0f} MB | includes verify-log "
          "--chain-only of the whole log |")
    emit("log.audit", seconds, "s", area=AREA, label=f"audit --html, {records:,} records")
    log_file, packs = folder / "attempts.jsonl", sorted((folder / "attempts.jsonl.messages").glob("*.pack"))
    print(f"\nreading and hashing the same {sum(p.stat().st_size for p in [log_file, *packs]) / 1e9:.2f} GB "
          f"(log and packs) here: {tool_throughput(log_file, *packs)}")

    print(f"\na month of the default ladder for {args.accounts:,} accounts:")
    print("| scenario | messages | records | log | message store | total |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, late in (("typical: 12% late", 0.12), ("worst: nobody pays", 1.0)):
        sent, log_bytes, store_bytes, recs = month(OUT / "month", messages, args.accounts, late)
        print(f"| {name} | {sent:,} | {recs:,} | {log_bytes / 1e6:,.1f} MB | {store_bytes / 1e6:,.1f} MB "
              f"| {(log_bytes + store_bytes) / 1e6:,.1f} MB |", flush=True)


if __name__ == "__main__":
    main()
