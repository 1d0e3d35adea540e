"""What a kill -9 in the middle of a cycle leaves `unknown`, and what claiming close to the send costs
(issue 18, point 13).

    python bench/kill_cycle.py [N] [--kills K] [--workers W] [--delay SECONDS] [--tree PATH]

1. N accounts (2,000) with one open invoice each, imported; the cycle of 17/11/2026 sends each one
   reminder e-mail (bench/cycle.py's data and SMTP server, in its own process).
2. The local limit: the same messages sent with plain `smtplib` over one connection, then a whole
   `run-once` to the same server: messages per second of each. Goal: run-once >= 0.5x.
3. K times: a fresh copy of the state, `run-once` to a server that takes DELAY per message, killed
   with SIGKILL at a random moment of its cycle (seeded: the same moments each run). The claims
   left without an outcome in the log are what the next start records as `unknown` (staff tasks:
   claimed, maybe sent). Goal: at most W (one message in flight per worker), mean and max.
`--tree` runs another checkout's `run.py` (e.g. /work/main) for a before/after on the same data.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cycle import Server, billing, plain_smtplib, prerendered  # noqa: E402

DAY = "2026-11-17"


def run_once(tree: Path, work: Path, env: dict, url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(tree / "run.py"), "run-once", "--date", DAY], cwd=work,
                            env={**env, "EMAIL_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fresh(work: Path) -> None:
    """The imported state again, with no log and no message store."""
    shutil.copy(work / "fresh.json", work / "state.json")
    for leftover in ("attempts.jsonl", "state.archive.jsonl"):
        (work / leftover).unlink(missing_ok=True)
    shutil.rmtree(work / "attempts.jsonl.messages", ignore_errors=True)


def unanswered(work: Path) -> tuple[int, int]:
    """(claims with no outcome, outcomes) in the log as the kill left it (a torn last line skipped)."""
    claims, answered = set(), set()
    path = work / "attempts.jsonl"
    for line in path.read_bytes().splitlines() if path.exists() else ():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "sending":
            claims.add(record["id"])
        elif record.get("ref"):
            answered.add(record["ref"])
    return len(claims - answered), len(answered)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=2000)
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose run.py is measured")
    args = parser.parse_args()
    tree = args.tree.resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-kill-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}
    env.update(PYTHONPATH=str(tree), NOTIFIER_CONFIG="notifier.toml")
    (work / "notifier.toml").write_text(f"[cycle]\nworkers = {args.workers}\n", encoding="utf-8")
    (work / "billing.json").write_text(json.dumps(billing(args.n)), encoding="utf-8")
    subprocess.run([sys.executable, str(tree / "run.py"), "import", "billing.json", "--date", "2026-11-10"],
                   cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    shutil.copy(work / "state.json", work / "fresh.json")

    from datetime import date
    messages = prerendered(work / "state.json", date.fromisoformat(DAY))

    def smtplib_seconds() -> float:
        server = Server(0.0)
        try:
            return plain_smtplib(server.port, messages)
        finally:
            server.stop()
    # The local limit before and after run-once, averaged: a shared machine's load changes by the minute.
    before = smtplib_seconds()
    fresh(work)
    server = Server(0.0)
    began = time.perf_counter()
    assert run_once(tree, work, env, server.url()).wait() == 0
    cycle_s = time.perf_counter() - began
    assert server.stop() == args.n
    smtplib_s = (before + smtplib_seconds()) / 2
    ratio = smtplib_s / cycle_s

    rng = random.Random("kill-cycle")
    found = []
    for _ in range(args.kills):
        fresh(work)
        server = Server(args.delay)
        proc = run_once(tree, work, env, server.url())
        time.sleep(rng.uniform(0.1, 0.9) * (cycle_s + args.n * args.delay / args.workers))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        server.stop()
        found.append(unanswered(work))
    unknown = [u for u, _ in found]
    mean, worst = sum(unknown) / len(unknown), max(unknown)
    print(json.dumps({"n": args.n, "workers": args.workers, "tree": str(tree), "smtplib_s": smtplib_s,
                      "run_once_s": cycle_s, "kills": [{"unknown": u, "answered": a} for u, a in found]}, indent=2))
    print(f"plain smtplib: {args.n / smtplib_s:.0f} msg/s; run-once: {args.n / cycle_s:.0f} msg/s "
          f"({ratio:.2f}x, goal >= 0.5x)")
    print(f"{args.kills} kills at random moments, {args.workers} workers, {args.delay * 1000:.0f} ms per message: "
          f"unknown mean {mean:.1f}, max {worst} (goal <= {args.workers})")
    from bench._common import emit  # the figures, for bench/run_all.py
    area = "Cycle"
    emit("cycle.kill.throughput", args.n / cycle_s, "msg/s", args.n / smtplib_s, goal=">= 0.5x", area=area,
         label=f"run-once, {args.n:,} e-mails", baseline_label="plain smtplib, one connection", source="issue 18 #13")
    emit("cycle.kill.unknown.mean", mean, "messages", goal=f"<= {args.workers}", area=area, source="issue 18 #13",
         label=f"unknown after a kill -9, mean of {args.kills}, {args.workers} workers")
    emit("cycle.kill.unknown.max", worst, "messages", goal=f"<= {args.workers}", area=area, source="issue 18 #13",
         label=f"unknown after a kill -9, worst of {args.kills}, {args.workers} workers")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
