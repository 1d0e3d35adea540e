"""Speed of the daily cycle against a local SMTP server (README, "Speed").

    python bench/cycle.py [N] [--workers W] [--delay SECONDS] [--idle SECONDS]

1. N accounts with one open invoice each, imported; the cycle of 17/11/2026 sends each one
   reminder e-mail (nothing superseded).
2. The local limit: the same N messages rendered and composed beforehand, then sent with plain
   `smtplib` over one connection to an SMTP server that answers at once.
3. `run-once` (a real process: plan, render, write-ahead log with its fsyncs, pool, ledger) to the
   same server; throughput compared with 2. Goal: at least 0.5x.
4. `run-once` to a server that waits DELAY (50 ms) per message; compared with the ideal
   N x DELAY / W. Goal: within 1.3x.
5. An idle daemon (nothing to send) for IDLE seconds: CPU share and resident memory. Goal: < 1%
   of a core and < 100 MB.
The SMTP server runs in its own process (aiosmtpd), so it does not compete for our GIL. It offers
PIPELINING, as Postfix and the big providers do, so the cycle sends MAIL, RCPT and DATA in one write
(`--no-pipelining`: a server that does not, one round trip per command).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from tests.smtp_server import _Controller as Controller  # binds port 0 and learns the port
delay, pipelining = float(sys.argv[1]), sys.argv[3] == "1"
class Handler:
    count = 0
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if pipelining:  # as Postfix, Exim and the big providers do
            responses.insert(-1, "250-PIPELINING")
        return responses
    async def handle_DATA(self, server, session, envelope):
        if delay:
            await asyncio.sleep(delay)
        Handler.count += 1
        return f"250 2.0.0 Ok: queued as B{Handler.count}"
c = Controller(Handler(), hostname="127.0.0.1", port=0)
c.start()
print(c.port, flush=True)
sys.stdin.read()
c.stop()
print(Handler.count, flush=True)
"""
SENDER = "Lucanet Cobranca <cobranca@lucanet.com.br>"


class Server:
    def __init__(self, delay: float, pipelining: bool = True):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(delay), str(ROOT), "1" if pipelining else "0"],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}/?from=Lucanet%20Cobranca%20%3Ccobranca%40lucanet.com.br%3E"

    def stop(self) -> int:
        self.proc.stdin.close()
        count = int(self.proc.stdout.readline())
        self.proc.wait()
        return count


def billing(n: int) -> dict:
    accounts = [{"id": f"c{i:05}", "company": f"Cliente {i} Ltda", "document": "11.222.333/0001-81",
                 "emails": [f"financeiro@c{i:05}.com.br"], "due_day": 20} for i in range(n)]
    invoices = [{"id": f"2026-11-c{i:05}", "account": f"c{i:05}", "amount": "149.90", "issued": "2026-11-05"}
                for i in range(n)]
    return {"accounts": accounts, "invoices": invoices}


def cli(workdir: Path, env: dict, *args: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=workdir, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def prerendered(state: Path, day) -> list[tuple[str, bytes]]:
    """The cycle's messages, rendered and composed as the cycle would: the local limit's input."""
    from notifier.channels.email import EmailChannel
    from notifier.billing import rules
    from notifier.config import Config
    from notifier.run.render import Renderer
    from notifier.state.store import Store
    config = Config(state=state)
    snap = Store(state).snapshot()
    plan = rules.plan_day(day, snap.accounts(), snap.invoices(), snap.histories(), snap.ledger(), config.calendar, config)
    renderer, email = Renderer(config), EmailChannel(config)
    out = []
    for n in plan.notices:
        message = renderer.render(n, snap.account(n.account), snap.invoices(n.account), day)
        out.append((n.recipient, email.compose(message, SENDER)))
    return out


def plain_smtplib(port: int, messages: list[tuple[str, bytes]]) -> float:
    began = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for recipient, data in messages:
            smtp.sendmail("cobranca@lucanet.com.br", [recipient], data)
    return time.perf_counter() - began


def idle_daemon(workdir: Path, env: dict, seconds: float) -> tuple[float, float]:
    """(CPU share of one core, resident MB) of a daemon with nothing to send, after its start."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "daemon", "--date", "2026-11-17"], cwd=workdir,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)  # start-up and its catch-up pass
        tick = os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
        before, t0 = cpu(), time.monotonic()
        time.sleep(seconds)
        share = (cpu() - before) / (time.monotonic() - t0)
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS")) / 1024
    finally:
        proc.terminate()
        proc.wait()
    return share, rss


def main() -> None:
    from datetime import date
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--idle", type=float, default=30.0)
    parser.add_argument("--no-pipelining", action="store_true")
    args = parser.parse_args()
    day = date(2026, 11, 17)
    work = Path(tempfile.mkdtemp(prefix="bench-cycle-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}
    env["PYTHONPATH"] = str(ROOT)
    (work / "notifier.toml").write_text(f"[cycle]\nworkers = {args.workers}\n", encoding="utf-8")
    env["NOTIFIER_CONFIG"] = "notifier.toml"
    (work / "billing.json").write_text(json.dumps(billing(args.n)), encoding="utf-8")
    cli(work, env, "import", "billing.json", "--date", "2026-11-10")
    shutil.copy(work / "state.json", work / "fresh.json")
    results = {"n": args.n, "workers": args.workers}

    messages = prerendered(work / "state.json", day)
    assert len(messages) == args.n, len(messages)
    fast = Server(0.0)
    results["smtplib_s"] = plain_smtplib(fast.port, messages)
    fast.stop()
    del messages

    for name, delay in (("no_delay", 0.0), ("delay", args.delay)):
        shutil.copy(work / "fresh.json", work / "state.json")
        for leftover in ("attempts.jsonl", "state.archive.jsonl"):
            (work / leftover).unlink(missing_ok=True)
        server = Server(delay, pipelining=not args.no_pipelining)
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = cli(work, {**env, "EMAIL_URL": server.url()}, "run-once", "--date", day.isoformat())
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # run-once alone: the server still runs
        received = server.stop()
        assert received == args.n, f"{name}: {received} of {args.n} arrived"
        results[f"{name}_s"] = seconds
        results[f"{name}_cpu_ms_per_message"] = ((after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)) * 1000 / args.n
    results["throughput_ratio"] = (args.n / results["no_delay_s"]) / (args.n / results["smtplib_s"])
    ideal = args.n * args.delay / args.workers
    results["ideal_delay_s"] = ideal
    results["delay_ratio"] = results["delay_s"] / ideal
    share, rss = idle_daemon(work, env, args.idle)
    results.update(idle_cpu_percent=share * 100, idle_rss_mb=rss)
    state = work / "state.json"
    results["store_mb"] = state.stat().st_size / 1e6
    print(json.dumps(results, indent=2))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}; run-once CPU per message (start-up included): "
          f"{results['no_delay_cpu_ms_per_message']:.2f} ms, {results['delay_cpu_ms_per_message']:.2f} ms with the delay")
    print(f"local limit (plain smtplib, one connection): {args.n / results['smtplib_s']:.0f} msg/s; "
          f"run-once, no delay: {args.n / results['no_delay_s']:.0f} msg/s ({results['throughput_ratio']:.2f}x, goal >= 0.5x)")
    print(f"run-once, {args.delay * 1000:.0f} ms/message, {args.workers} workers: {results['delay_s']:.1f} s; ideal "
          f"{ideal:.1f} s ({results['delay_ratio']:.2f}x, goal <= 1.3x)")
    print(f"idle daemon: {results['idle_cpu_percent']:.2f}% of a core, {rss:.0f} MB resident")
    from bench._common import emit  # the figures, for bench/run_all.py
    area, n = "Cycle", f"{args.n:,} e-mails"
    emit("cycle.throughput", args.n / results["no_delay_s"], "msg/s", args.n / results["smtplib_s"], area=area,
         label=f"run-once, {n}", baseline_label="plain smtplib, one connection")
    emit("cycle.latency", results["delay_s"], "s", ideal, area=area, label=f"run-once, {n}, {args.delay * 1000:.0f} ms "
         f"per message", baseline_label=f"ideal: messages x delay / {args.workers} workers")
    emit("daemon.idle.cpu", results["idle_cpu_percent"], "%", area="Idle daemon", label=f"idle daemon, {args.idle:.0f} s")
    emit("daemon.idle.rss", rss, "MB", area="Idle daemon", label="idle daemon, resident memory")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
