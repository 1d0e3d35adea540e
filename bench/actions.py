"""Staff and finance actions at a large company's size, alone and during a cycle (issue 21).

    python bench/actions.py                                   # 50,000 accounts, a 10,000-e-mail cycle
    python bench/actions.py --accounts 5000 --emails 1000     # a quick look
    python bench/actions.py --baseline-tree /tmp/main         # also main's code, in the same run

The goal: at 50,000 accounts a staff or finance action (pay, hold, release, opt-out, contact) has
p95 <= 1 s with 10 sessions acting at once while a cycle sends 10,000 e-mails to a local SMTP
server. What it measures, for this checkout and (with --baseline-tree, e.g. main exported by
`git archive main | tar -x -C /tmp/main`) for another one, each on a fresh copy of one fixture:
1. `notifier pay` alone, a fresh process as an operator runs it (3 invoices; p50 and max);
2. 10 `notifier` commands at once (pay, hold, release, opt-out, contact), fresh processes;
3. a console-like process (one Store shared by 10 threads, as `notifier web` keeps one, made the
   way notifier/web/app.py makes it) whose 10 sessions act in a loop, a pause of 0.25-0.75 s between
   two actions of a session, while `run-once` sends the e-mails to aiosmtpd in its own process:
   each action's time, and the cycle's.
The HTTP figures of the console and the API are bench/load.py's.

The fixture (cached under $BENCH_CACHE, see bench/_common.py): N accounts with 24 monthly invoices
each (paid, a few late: the state is 78 MB at 50,000 after the import archives the old ones, as
bench/plan.py's), and `--emails` of them with November's invoice open and one e-mail address, so
the cycle of 24/11/2026 (overdue) sends exactly that many e-mails.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import cache_dir, emit, fresh_copy  # noqa: E402

AREA = "Staff actions"
DAY = "2026-11-24"
GOAL = "<= 1"  # seconds, p95 (issue 21)


def billing(n: int, emails: int, path: Path) -> None:
    """The import file, written a line at a time. Accounts `acc000000`...; the first `emails` of
    them (spread over the portfolio) owe November's invoice."""
    from bench.plan import cnpj
    rnd = random.Random(21)
    owing = set(rnd.sample(range(n), emails))
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"accounts": [\n')
        for i in range(n):
            acc = {"id": f"acc{i:06d}", "company": f"Empresa Exemplo {i} Comércio e Serviços Ltda",
                   "contact_name": "Maria da Silva", "document": cnpj(10_000_000 + i), "domain": f"empresa{i}.com.br",
                   "emails": [f"financeiro@empresa{i}.com.br"], "due_day": 20}
            out.write(("," if i else "") + json.dumps(acc, ensure_ascii=False) + "\n")
        out.write('],\n"invoices": [\n')
        first = True
        for i in range(n):
            for m in range(24):
                month = 11 + m  # December 2024 ... November 2026
                issued = date(2024 + month // 12, month % 12 + 1, 5)
                due = issued + timedelta(days=15)
                if m == 23 and i in owing:
                    paid = None
                elif m < 23 and rnd.random() < 0.12:  # late (November's: paid on time, not yet late)
                    paid = due + timedelta(days=rnd.randint(2, 25))
                else:
                    paid = due - timedelta(days=rnd.randint(0, 10))
                inv = {"id": f"{issued:%Y-%m}-acc{i:06d}", "account": f"acc{i:06d}",
                       "amount": rnd.choice(["29.90", "49.90", "149.90", "299.90"]), "issued": issued.isoformat(),
                       "due": due.isoformat(), "paid": paid.isoformat() if paid else None,
                       "payment_url": f"https://pagar.lucanet.com.br/f/{issued:%Y-%m}-acc{i:06d}"}
                out.write(("" if first else ",") + json.dumps(inv) + "\n")
                first = False
        out.write("]}\n")
    (path.parent / "owing.json").write_text(json.dumps(sorted(f"acc{i:06d}" for i in owing)))


def fixture(n: int, emails: int) -> Path:
    folder = cache_dir("actions", {"accounts": n, "emails": emails}, ("bench/actions.py", "bench/plan.py"))
    if (folder / "done").exists():
        return folder
    billing(n, emails, folder / "billing.json")
    (folder / "notifier.toml").write_text("[cycle]\nworkers = 8\n", encoding="utf-8")
    subprocess.run([sys.executable, str(ROOT / "run.py"), "import", "billing.json", "--date", DAY], cwd=folder,
                   env=clean_env(ROOT), check=True, stdout=subprocess.DEVNULL)
    (folder / "billing.json").unlink()
    (folder / "done").write_text("")
    return folder


def clean_env(tree: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}
    return {**env, "PYTHONPATH": str(tree), "NOTIFIER_CONFIG": "notifier.toml"}


def copy_of(fixture_dir: Path, work: Path) -> Path:
    return fresh_copy(fixture_dir, work, ("state.json", "state.archive.jsonl", "notifier.toml", "owing.json"))


def cli_args(action: str, account: str) -> list[str]:
    by = ["--by", "bench"]
    return {
        "pay": ["pay", f"2026-11-{account}", "--date", DAY, *by],
        "hold": ["hold", account, "--reason", "negotiating", "--until", "2026-12-10", "--date", DAY, *by],
        "release": ["release", account, "--date", DAY, *by],
        "opt-out": ["opt-out", account, "--channel", "whatsapp", "--date", DAY, *by],
        "contact": ["contact", account, "--channel", "phone", "--outcome", "reached", "--date", DAY, *by],
    }[action]


def run_cli(tree: Path, work: Path, args: list[str]) -> float:
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, str(tree / "run.py"), *args], cwd=work, env=clean_env(tree),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"notifier {' '.join(args)} failed: {proc.stderr[-1500:]}")
    return time.perf_counter() - began


# The console-like process: one Store shared by threads, as notifier/web/app.py keeps it.
SESSIONS = r"""
import json, random, sys, threading, time
from datetime import date, datetime
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from notifier.config import load_config
from notifier.log.attempts import AttemptLog
from notifier.staff.actions import place_hold, record_contact, release_hold
from notifier.staff.actor import Actor
from notifier.staff.optout import opt_out
from notifier.staff.payments import record_payment
from notifier.state.store import Store
import inspect
config = load_config(Path("notifier.toml"), {}, Path("state.json"))
log = AttemptLog(config.attempt_log)
options = {"fold": False} if "fold" in inspect.signature(Store).parameters else {}
store = Store(config.state, retention_months=config.retention_months, log=log, keep_written=True, **options)
store.snapshot()  # the console reads the state once at start
owing = json.loads(Path("owing.json").read_text())
sessions = int(sys.argv[2])
DAY = date(2026, 11, 24)
now = lambda: datetime(2026, 11, 24, 10, 0, tzinfo=config.tz)
times, errors = [], []
stop = threading.Event()

def session(k):
    rnd = random.Random(k)
    mine = owing[k::sessions]  # each session its own accounts: no two act on one invoice
    by = Actor(f"sessao{k}", "admin", "127.0.0.1")
    held = None
    while not stop.is_set():
        action = rnd.choice(["pay", "hold", "opt-out", "contact"]) if held is None else "release"
        account = mine.pop() if action in ("pay", "opt-out") else (held or rnd.choice(mine))
        began = time.perf_counter()
        try:
            if action == "pay":
                record_payment(store, log, now(), f"2026-11-{account}", DAY, by)
            elif action == "hold":
                place_hold(store, log, config, now(), account, by, "negotiating", date(2026, 12, 10), replace=True)
                held = account
            elif action == "release":
                release_hold(store, log, now(), held, by)
                held = None
            elif action == "opt-out":
                opt_out(store, log, now(), account, ["whatsapp"], DAY, by)
            else:
                record_contact(store, log, now(), account, by, "phone", "reached")
        except Exception as exc:
            errors.append(f"{action} {account}: {type(exc).__name__}: {exc}"[:300])
        times.append((action, time.perf_counter() - began))
        stop.wait(rnd.uniform(0.25, 0.75))

print("ready", flush=True)
sys.stdin.readline()  # the cycle has started
threads = [threading.Thread(target=session, args=(k,)) for k in range(sessions)]
for t in threads:
    t.start()
sys.stdin.readline()  # the cycle has ended
stop.set()
for t in threads:
    t.join()
print(json.dumps({"times": times, "errors": errors[:20], "error_count": len(errors)}), flush=True)
"""


def during_cycle(tree: Path, work: Path, sessions: int, emails: int) -> dict:
    """The sessions acting while run-once sends; their times, and the cycle's."""
    from bench.cycle import Server
    console = subprocess.Popen([sys.executable, "-c", SESSIONS, str(tree), str(sessions)], cwd=work,
                               env=clean_env(tree), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert console.stdout.readline() == "ready\n"
    server = Server(0.0)
    try:
        began = time.perf_counter()
        cycle = subprocess.Popen([sys.executable, str(tree / "run.py"), "run-once", "--date", DAY], cwd=work,
                                 env={**clean_env(tree), "EMAIL_URL": server.url()},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while server_count(work) == 0 and cycle.poll() is None:  # the sessions start once it sends
            time.sleep(0.05)
        console.stdin.write("go\n")
        console.stdin.flush()
        _, err = cycle.communicate()
        cycle_s = time.perf_counter() - began
        console.stdin.write("stop\n")
        console.stdin.flush()
        result = json.loads(console.stdout.readline())
        console.wait()
        if cycle.returncode != 0:
            raise SystemExit(f"run-once failed: {err[-1500:]}")
    finally:
        received = server.stop()
    return {**result, "cycle_s": cycle_s, "received": received}


def server_count(work: Path) -> int:
    """Whether the cycle has begun sending: its first claim is in the log."""
    log = work / "attempts.jsonl"
    return log.stat().st_size if log.exists() else 0


def percentiles(times: list[float]) -> dict:
    times = sorted(times)
    if not times:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    return {"n": len(times), "p50": statistics.median(times), "p95": times[min(len(times) - 1, int(0.95 * len(times)))],
            "max": times[-1]}


def measure(tree: Path, fix: Path, work: Path, sessions: int, emails: int) -> dict:
    owing = json.loads((fix / "owing.json").read_text())
    rnd = random.Random(7)
    work = copy_of(fix, work)
    alone = [run_cli(tree, work, cli_args("pay", account)) for account in owing[-3:]]
    batch = [(a, acc) for a, acc in zip(["pay", "hold", "opt-out", "contact", "pay"] * 2, rnd.sample(owing[:-3], 10))]
    procs = []
    for action, account in batch:
        procs.append((subprocess.Popen([sys.executable, str(tree / "run.py"), *cli_args(action, account)], cwd=work,
                                       env=clean_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
                      time.perf_counter()))
    concurrent = []
    for proc, started in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a concurrent command failed: {err[-1500:]}")
        concurrent.append(time.perf_counter() - started)
    work = copy_of(fix, work)
    cycle = during_cycle(tree, work, sessions, emails)
    return {"alone": percentiles(alone), "concurrent": percentiles(concurrent),
            "cycle": percentiles([t for _, t in cycle["times"]]), "cycle_s": cycle["cycle_s"],
            "received": cycle["received"], "errors": cycle["errors"], "error_count": cycle["error_count"],
            "state_mb": (fix / "state.json").stat().st_size / 1e6,
            "by_action": {a: percentiles([t for b, t in cycle["times"] if b == a]) for a in
                          ("pay", "hold", "release", "opt-out", "contact")}}


def show(name: str, r: dict) -> None:
    def line(label, p):
        return f"  {label:<44} n={p['n']:<5} p50 {p['p50']:.3f} s  p95 {p['p95']:.3f} s  max {p['max']:.3f} s"
    print(f"{name}: state {r['state_mb']:.0f} MB")
    print(line("`notifier pay` alone (fresh process)", r["alone"]))
    print(line("10 `notifier` commands at once", r["concurrent"]))
    print(line(f"10 sessions during run-once ({r['received']} e-mails, {r['cycle_s']:.0f} s)", r["cycle"]) + "   goal p95 <= 1 s")
    for action, p in r["by_action"].items():
        print(line(f"    {action}", p))
    if r["error_count"]:
        print(f"  {r['error_count']} action(s) failed, e.g. {r['errors'][:3]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--baseline-tree", type=Path, help="another checkout measured the same way (e.g. main)")
    args = parser.parse_args()
    fix = fixture(args.accounts, args.emails)
    scratch = Path(tempfile.mkdtemp(prefix="bench-actions-"))
    try:
        results = {"this": measure(ROOT, fix, scratch / "this", args.sessions, args.emails)}
        show(f"this checkout ({ROOT})", results["this"])
        if args.baseline_tree:
            results["baseline"] = measure(args.baseline_tree.resolve(), fix, scratch / "base", args.sessions, args.emails)
            show(f"baseline ({args.baseline_tree})", results["baseline"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    base = results.get("baseline")
    n = f"{args.accounts:,} accounts"
    for key, label in (("alone", "`pay` alone, fresh process"), ("concurrent", "10 commands at once, fresh processes"),
                       ("cycle", f"10 sessions during a {args.emails:,}-e-mail run-once")):
        for stat in ("p50", "p95", "max"):
            emit(f"actions.{key}.{stat}.{args.accounts}", results["this"][key][stat], "s",
                 baseline=base[key][stat] if base else None, goal=GOAL if (key, stat) == ("cycle", "p95") else None,
                 area=AREA, label=f"{label}, {stat}, {n}", baseline_label="the baseline tree (main)" if base else "",
                 source="issue 21")


if __name__ == "__main__":
    main()
