"""The console at a large company's size, under load: 10 staff sessions at once, during a cycle (issue 21).

    python bench/load.py                                              # 50,000 accounts, 1,000,000 records, 10,000 e-mails
    python bench/load.py --accounts 2000 --records 40000 --emails 500   # a look in a minute

What it does, with the real programs end to end:
1. the fixture of bench/company.py (built once, cached): accounts, invoices, holds and opt-outs in
   the state, and an attempt log of `--records` records with its messages; copied to bench/out/load
   (the log copied, the packs of past months linked: nothing writes to them);
2. users of each role (`notifier users add NAME --role ROLE`, password on stdin) and, where the
   build has it, an API token each (`notifier users token NAME`);
3. a real `notifier web --date 2026-12-07` (its start-up timed until its first customer page);
4. `--sessions` logged-in sessions (httpx, one thread each, a short pause between clicks) doing what
   staff and finance do: search (htmx, as typed), customer page, `/api/accounts/{id}/history`,
   Registro with filters, the audit of one account, and actions (pay, hold, release, contact,
   opt-out), first for `--quiet` seconds alone, then while `notifier run-once --date 2026-12-07`
   sends the cycle's e-mails (about `--emails`) to a local SMTP server (aiosmtpd, its own process);
5. the console's resident memory sampled meanwhile (VmRSS), its peak (VmHWM) and its size at the end;
6. the CLI's equivalent of each question, in a fresh process, on the same files, in the same run.

A page whose URL answers 404 (or the token command, missing) is "not available on this build":
Registro, Auditoria and the API are being built beside this script; until they are merged, the
audit falls back to the customer page's existing report (`/clientes/{id}/auditoria`).

Goals (issue 21): search p95 <= 50 ms; customer page and history p95 <= 200 ms; Registro page with
filters <= 300 ms; audit of one account <= 1 s; a staff or finance action p95 <= 1 s during the
cycle; the console's resident memory <= 300 MB.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import emit, fmt  # noqa: E402
from bench.company import DAY, account_id, fixture, in_cycle  # noqa: E402

AREA = "Console under load"
PASSWORD = "senha-do-bench-123"
ROLES = ("support", "finance", "admin")
GOALS = {"search": 50, "customer": 200, "history": 200, "registro": 300, "audit": 1000, "action": 1000}
ACTIONS = ("pay", "hold", "release", "contact", "opt-out")
LABELS = {"search": "search (htmx, as typed)", "customer": "customer page", "history": "/api/accounts/{id}/history",
          "registro": "Registro with filters", "audit": "audit of one account", "audit-old": "audit (customer page's report)",
          "pay": "record a payment", "hold": "hold", "release": "release a hold", "contact": "log a contact",
          "opt-out": "opt-out of a channel"}
MISSING = "not available on this build"


def env() -> dict:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}
    return {**keep, "PYTHONPATH": str(ROOT)}


def cli(work: Path, *args: str, stdin: str | None = None, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """`notifier ARGS` in a fresh process in `work`: (milliseconds, the process)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=work, input=stdin, text=True,
                          capture_output=True, env=env())
    ms = (time.perf_counter() - start) * 1000
    if check and proc.returncode != 0:
        raise SystemExit(f"notifier {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return ms, proc


def workdir(source: Path) -> Path:
    """A copy of the fixture that the run may change: the state, the log and the head copied, the
    packs of months before DAY's linked (only DAY's month is appended to)."""
    work = ROOT / "bench" / "out" / "load"
    shutil.rmtree(work, ignore_errors=True)
    (work / "attempts.jsonl.messages").mkdir(parents=True)
    for name in ("state.json", "state.archive.jsonl", "billing.json", "attempts.jsonl", "attempts.jsonl.head"):
        if (source / name).exists():
            shutil.copy2(source / name, work / name)
    for pack in (source / "attempts.jsonl.messages").iterdir():
        target = work / "attempts.jsonl.messages" / pack.name
        if pack.name < DAY[:7]:
            os.link(pack, target)
        else:
            shutil.copy2(pack, target)
    return work


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of process `pid` in MB."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                found[line.split(":")[0]] = int(line.split()[1]) / 1024
    return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)


def idle(pid: int, limit: float = 600) -> float:
    """Wait until process `pid` and its children use less than a tenth of a core over a second (or
    `limit` seconds passed); the time it was idle (perf_counter). The children count: the
    console's warm-up waits for one (the channels' check), idle meanwhile."""
    ticks = os.sysconf("SC_CLK_TCK")

    def stat(p) -> list[str]:
        with open(f"/proc/{p}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    def cpu() -> float:
        fields = stat(pid)
        total = sum(int(v) for v in fields[11:15])  # utime, stime, and those of children waited for
        for p in filter(str.isdigit, os.listdir("/proc")):
            try:
                child = stat(p)
            except OSError:
                continue
            if child[1] == str(pid):
                total += int(child[11]) + int(child[12])
        return total / ticks

    deadline = time.perf_counter() + limit
    before = cpu()
    while time.perf_counter() < deadline:
        time.sleep(1)
        now = cpu()
        if now - before < 0.1:
            break
        before = now
    return time.perf_counter()


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


class Pools:
    """What the sessions act on, each item once (two sessions never pay the same invoice)."""

    def __init__(self, accounts: int, emails: int, rnd: random.Random):
        # Accounts the fixture holds or opted out (i % 100 in 7, 13) are left out: a hold on a held account is refused.
        ids = [i for i in range(accounts) if i % 100 not in (7, 13)]
        rnd.shuffle(ids)
        self.read = [account_id(i) for i in ids[: max(200, accounts // 10)]]
        # payments on accounts outside the cycle: what the cycle sends stays about --emails
        self._act = iter([account_id(i) for i in ids if not in_cycle(i, accounts, emails)])
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            return next(self._act)


def login(client, name: str) -> str:
    """Log `name` in; the session's CSRF token, from the search page (the Painel, where a login
    lands, is timed once apart: at this size it plans the whole day, seconds)."""
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"csrf": token, "nome": name, "senha": PASSWORD}, headers={"Origin": str(client.base_url).rstrip("/")})
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/clientes").text).group(1)


class Session(threading.Thread):
    """One logged-in person clicking through the console until told to stop."""

    def __init__(self, n: int, base: str, role: str, token: str | None, pools: Pools, results: list,
                 phase: list, stop: threading.Event, missing: set, seed: int):
        super().__init__(daemon=True)
        self.name_, self.base, self.role, self.token, self.pools = f"bench{n}", base, role, token, pools
        self.results, self.phase, self.stop, self.missing = results, phase, stop, missing
        self.rnd = random.Random(seed)
        self.held: list[str] = []
        self.errors: list[str] = []

    def run(self) -> None:
        import httpx
        with httpx.Client(base_url=self.base, timeout=600) as client:
            self.client = client
            self.origin = {"Origin": self.base}
            try:
                self.csrf = login(client, self.name_)
            except Exception as exc:  # noqa: BLE001 - shown with the other failures
                self.errors.append(f"login: {type(exc).__name__}: {exc}"[:300])
                return
            while not self.stop.is_set():
                what = self.pick()
                try:
                    getattr(self, what.replace("-", "_"))()
                except Exception as exc:  # noqa: BLE001 - a failed request is counted and shown, the run goes on
                    self.errors.append(f"{what}: {type(exc).__name__}: {exc}"[:300])
                self.stop.wait(self.rnd.uniform(0.2, 0.8))  # a person reads before the next click

    def pick(self) -> str:
        weights = {"search": 6, "customer": 5, "history": 2, "contact": 1, "hold": 1, "release": 1 if self.held else 0,
                   "opt-out": 0.5}
        if self.role in ("finance", "admin"):
            weights.update({"registro": 2, "audit": 0.7, "pay": 1.5})
        names = [k for k in weights if weights[k] and k not in self.missing]
        return self.rnd.choices(names, [weights[k] for k in names])[0]

    def timed(self, what: str, method: str, url: str, ok=(200,), **kw):
        start = time.perf_counter()
        answer = self.client.request(method, url, **kw)
        ms = (time.perf_counter() - start) * 1000
        if answer.status_code == 404 and what in ("registro", "audit", "history") and "/clientes/" not in url:
            self.missing.add(what)
            return answer
        if answer.status_code not in ok:
            said = re.search(r'class="erro" role="alert">(.*?)</p>', answer.text, re.S)
            raise RuntimeError(f"{method} {url}: {answer.status_code} {said.group(1) if said else answer.text[-300:]!r}")
        self.results.append((self.phase[0], what, ms))
        return answer

    def account(self) -> str:
        return self.rnd.choice(self.pools.read)

    def search(self) -> None:
        n = int(self.account()[4:])
        query = self.rnd.choice((f"empresa{n}", f"{n} ltda", f"10.{n // 1000:03d}.{n % 1000:03d}", f"financeiro@acc-{n:05d}",
                                 f"119{n:08d}"[-9:], "padaria sao"))
        self.timed("search", "GET", "/clientes", params={"q": query}, headers={"HX-Request": "true"})

    def customer(self) -> None:
        self.timed("customer", "GET", f"/clientes/{self.account()}")

    def history(self) -> None:
        if self.token is None:
            self.missing.add("history")
            return
        self.timed("history", "GET", f"/api/accounts/{self.account()}/history",
                   headers={"Authorization": f"Bearer {self.token}"})

    def registro(self) -> None:
        filters = self.rnd.choice(({"canal": "email", "situacao": "bounced"}, {"conta": self.account()},
                                   {"canal": "whatsapp", "etapa": "overdue"}, {"situacao": "failed"}, {"pessoa": "ana"}))
        self.timed("registro", "GET", "/registro", params={"de": "2026-11-01", "ate": "2026-11-30", **filters,
                                                            "pagina": self.rnd.choice((1, 1, 2, 5))})

    def audit(self) -> None:
        account = self.account()
        answer = self.timed("audit", "GET", "/auditoria", params={"conta": account, "de": "2026-09-01", "ate": "2026-11-30"})
        if answer.status_code == 404:  # the customer page's report, which exists on every build
            self.timed("audit-old", "GET", f"/clientes/{account}/auditoria", params={"formato": "html"})

    def post(self, what: str, account: str, path: str, data: dict) -> None:
        self.timed(what, "POST", f"/clientes/{account}/{path}", ok=(200, 303), data={"csrf": self.csrf, **data},
                   headers=self.origin)

    def pay(self) -> None:
        account = self.pools.take()
        self.post("pay", account, "pagamento", {"fatura": f"2026-12-{account}", "pago_em": DAY})

    def hold(self) -> None:
        account = self.pools.take()
        self.post("hold", account, "pausar", {"motivo": "disputed", "ate": "2026-12-20", "nota": "bench"})
        self.held.append(account)

    def release(self) -> None:
        self.post("release", self.held.pop(), "liberar", {})

    def contact(self) -> None:
        self.post("contact", self.account(), "contato", {"canal": "phone", "resultado": "reached", "nota": "bench"})

    def opt_out(self) -> None:
        self.post("opt-out", self.pools.take(), "opt-out", {"canal": "sms"})


def smtp_server():
    from bench.cycle import Server
    return Server(0.0)


def main() -> None:
    import httpx
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--quiet", type=float, default=30, help="seconds of sessions before the cycle starts")
    parser.add_argument("--cycle-sessions", type=float, default=300,
                        help="the sessions stop after this many seconds of a cycle that has not ended (it goes on alone)")
    args = parser.parse_args()
    size = f"{args.accounts:,} accounts, {args.records:,} records"
    t = time.perf_counter()
    source = fixture(args.accounts, args.records, args.emails)
    print(f"fixture: {size} ({time.perf_counter() - t:.0f} s, cached in {source})", flush=True)
    t = time.perf_counter()
    work = workdir(source)
    print(f"copied to {work} ({time.perf_counter() - t:.0f} s)", flush=True)

    roles = [ROLES[n % len(ROLES)] for n in range(args.sessions)]
    tokens: dict[int, str | None] = {}
    for n, role in enumerate(roles):
        cli(work, "users", "add", f"bench{n}", "--role", role, stdin=PASSWORD + "\n")
        _, proc = cli(work, "users", "token", f"bench{n}", check=False)
        tokens[n] = proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None
    print(f"{args.sessions} users ({', '.join(roles)}); API tokens: {'yes' if any(tokens.values()) else MISSING}",
          flush=True)

    from bench._common import free_port
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    began = time.perf_counter()
    server = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "web", "--port", str(port), "--date", DAY],
                              cwd=work, env=env(), stdout=subprocess.DEVNULL, stderr=open(work / "web.stderr", "w"))
    samples: list[tuple[float, float]] = []
    results: list[tuple[str, str, float]] = []
    missing: set[str] = set()
    rows = []
    try:
        probe = httpx.Client(base_url=base, timeout=300)
        while True:
            try:
                probe.get("/login")
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    raise SystemExit(f"notifier web stopped: {(work / 'web.stderr').read_text()[-2000:]}")
                time.sleep(0.1)
        listening = time.perf_counter() - began
        rss_listening = memory(server.pid)[0]
        # A first customer page, logged in: it waits for what `warm` builds at start (the search
        # index, the log index).
        login(probe, "bench0")
        start = time.perf_counter()
        probe.get("/clientes", params={"q": "empresa123"}, headers={"HX-Request": "true"})
        probe.get(f"/clientes/{account_id(123)}")
        first = time.perf_counter() - start
        ready = time.perf_counter() - began
        # The console's warm-up (the next cycle's plan, the forecast, the chain's check: a minute
        # of CPU at this size) goes on after its first pages answer; staff meet a console that
        # has been up for hours, so the sessions start once it is idle.
        warmed = idle(server.pid) - began
        rss_ready = memory(server.pid)[0]
        print(f"console: listening after {listening:.1f} s ({rss_listening:.0f} MB), first search and customer page "
              f"{first:.1f} s, ready after {ready:.1f} s, its warm-up done after {warmed:.1f} s ({rss_ready:.0f} MB)",
              flush=True)
        start = time.perf_counter()
        probe.get("/")
        painel = time.perf_counter() - start
        print(f"Painel (where a login lands), once: {painel:.1f} s", flush=True)

        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(0.25):
                try:
                    samples.append(memory(server.pid))
                except OSError:
                    return
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        phase = ["quiet"]
        stop = threading.Event()
        pools = Pools(args.accounts, args.emails, random.Random(21))
        sessions = [Session(n, base, roles[n], tokens[n], pools, results, phase, stop, missing, seed=n)
                    for n in range(args.sessions)]
        for s in sessions:
            s.start()
        time.sleep(args.quiet)
        phase[0] = "cycle"
        smtp = smtp_server()
        start = time.perf_counter()
        # Its warnings to a file, not a pipe: a pipe nobody reads until the end fills up and stops
        # the cycle at its next warning, and the sessions would then act beside a cycle that waits.
        cycle_log = open(work / "run-once.stderr", "w+")
        cycle = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "run-once", "--date", DAY], cwd=work,
                                 env={**env(), "EMAIL_URL": smtp.url()}, stdout=subprocess.DEVNULL,
                                 stderr=cycle_log, text=True)
        try:
            cycle.wait(timeout=args.cycle_sessions)
        except subprocess.TimeoutExpired:
            print(f"the cycle still runs after {args.cycle_sessions:.0f} s: the sessions stop, the cycle goes on alone",
                  flush=True)
        stop.set()
        deadline = time.monotonic() + 300  # a request still waiting then is left (its thread is a daemon)
        for s in sessions:
            s.join(timeout=max(0.0, deadline - time.monotonic()))
        cycle.wait()
        cycle_log.seek(0)
        cycle_stderr = cycle_log.read()
        cycle_log.close()
        cycle_s = time.perf_counter() - start
        sent = smtp.stop()
        if cycle.returncode not in (0, 1):
            print(f"run-once exited {cycle.returncode}: {cycle_stderr[-1500:]}")
        stop_sampling.set()
        sampler.join()
        rss_end, hwm = memory(server.pid)
        # Finance's Relatórios for the last month, once, after the figures above (its first view
        # reads a month of the log: seconds of CPU, which the sessions' figures should not wait
        # behind): what the console then holds beside everything else.
        finance = httpx.Client(base_url=base, timeout=600)
        login(finance, f"bench{roles.index('finance')}")
        start = time.perf_counter()
        answer = finance.get("/relatorios", params={"mes": "2026-11"})
        relatorios = time.perf_counter() - start
        if answer.status_code != 200 or "recupera" not in answer.text.lower():
            raise SystemExit(f"Relatórios answered {answer.status_code}: {answer.text[-500:]}")
        rss_relatorios, hwm_relatorios = memory(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    errors = [e for s in sessions for e in s.errors]
    print(f"cycle: {sent:,} e-mails received by the SMTP server in {cycle_s:.1f} s (run-once exit {cycle.returncode}); "
          f"{len(results):,} requests by {args.sessions} sessions, {len(errors)} failed", flush=True)
    for e in errors[:10]:
        print("  failed:", e)

    # --- the CLI's equivalents, in fresh processes, on the same files ---------------------------
    one = pools.read[0]
    cli_ms = {}
    cli_ms["search"] = (cli(work, "find", "empresa123")[0], "notifier find empresa123")
    cli_ms["customer"] = (cli(work, "show", one, "--date", DAY)[0], f"notifier show {one}")
    cli_ms["history"] = (cli(work, "attempts", "--account", one, "--format", "json")[0], f"notifier attempts --account {one}")
    cli_ms["registro"] = (cli(work, "attempts", "--since", "2026-11-01", "--until", "2026-11-30", "--channel", "email",
                              "--status", "bounced", "-o", "registro.csv", "--format", "csv")[0],
                          "notifier attempts --since --until --channel email --status bounced")
    audit_cli = (cli(work, "audit", one, "--since", "2026-09-01", "--until", "2026-11-30", "--html", "audit.html",
                     "--date", DAY)[0], f"notifier audit {one} --since --until --html")
    cli_ms["audit"] = cli_ms["audit-old"] = audit_cli
    account = pools.take()
    cli_ms["pay"] = (cli(work, "pay", f"2026-12-{account}", "--date", DAY, "--by", "bench0")[0], "notifier pay INVOICE")
    account = pools.take()
    cli_ms["hold"] = (cli(work, "hold", account, "--by", "bench0", "--reason", "disputed", "--until", "2026-12-20",
                          "--date", DAY)[0], "notifier hold")
    cli_ms["release"] = (cli(work, "release", account, "--by", "bench0", "--date", DAY)[0], "notifier release")
    cli_ms["contact"] = (cli(work, "contact", one, "--by", "bench0", "--channel", "phone", "--outcome", "reached",
                             "--date", DAY)[0], "notifier contact")
    cli_ms["opt-out"] = (cli(work, "opt-out", pools.take(), "--channel", "sms", "--by", "bench0", "--date", DAY)[0],
                         "notifier opt-out")

    # --- the figures -------------------------------------------------------------------------------
    by = defaultdict(list)
    for ph, what, ms in results:
        by[(ph, what)].append(ms)
    print(f"\n{size}, {args.sessions} sessions; `notifier web` on 127.0.0.1, {os.cpu_count()} cores, "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| question or action | phase | requests | p95 | median | goal | the CLI's equivalent (fresh process) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    action_times = []
    for what in ("search", "customer", "history", "registro", "audit", "audit-old", *ACTIONS):
        goal = GOALS["action" if what in ACTIONS else "audit" if what == "audit-old" else what]
        kind = "action" if what in ACTIONS else what
        c_ms, c_label = cli_ms[what]
        for ph in ("quiet", "cycle"):
            times = by.get((ph, what), [])
            if what in ACTIONS and ph == "cycle":
                action_times += times
            if not times:
                if what in missing or (what == "audit" and by.get((ph, "audit-old"))):
                    print(f"| {LABELS[what]} | {ph} | - | {MISSING} | | <= {goal} ms | `{c_label}` {fmt(c_ms)} ms |")
                continue
            met = "met" if p95(times) <= goal else "NOT met"
            print(f"| {LABELS[what]} | {ph} | {len(times)} | {fmt(p95(times))} ms | {fmt(sorted(times)[len(times) // 2])} ms "
                  f"| <= {goal} ms: {met} | `{c_label}` {fmt(c_ms)} ms |")
            if what in ACTIONS and ph == "quiet":
                continue  # the goal is during the cycle; the quiet ones are printed only
            emit(f"load.{kind}.{what}.{ph}" if kind == "action" else f"load.{what}.{ph}", p95(times), "ms",
                 baseline=c_ms, goal=f"<= {goal}", area=AREA, source="issue 21",
                 label=f"{LABELS[what]}, p95 of {len(times)}, {'during the cycle' if ph == 'cycle' else 'no cycle'}",
                 baseline_label=f"{c_label}, fresh process", note=size)
    if action_times:
        print(f"| every action, during the cycle | cycle | {len(action_times)} | {fmt(p95(action_times))} ms | "
              f"{fmt(sorted(action_times)[len(action_times) // 2])} ms | <= 1000 ms: "
              f"{'met' if p95(action_times) <= 1000 else 'NOT met'} | |")
        emit("load.action.cycle", p95(action_times), "ms", goal="<= 1000", area=AREA, source="issue 21",
             label=f"a staff or finance action, p95 of {len(action_times)}, 10 sessions during the cycle", note=size)
    peak_sampled = max((r for r, _ in samples), default=rss_end)
    print(f"| console memory: peak (VmHWM) | | | {hwm:.0f} MB | | <= 300 MB: {'met' if hwm <= 300 else 'NOT met'} | |")
    print(f"| console memory: at the end (VmRSS) | | | {rss_end:.0f} MB | | <= 300 MB: {'met' if rss_end <= 300 else 'NOT met'} | |")
    print(f"| console memory: ready, before the sessions | | | {rss_ready:.0f} MB | | | |")
    print(f"| console memory after a Relatórios view (2026-11), then: at the end / peak | | | {rss_relatorios:.0f} MB / "
          f"{hwm_relatorios:.0f} MB | | | first view {relatorios:.1f} s |")
    print(f"| console start-up: ready (first customer page answered) | | | {ready:.1f} s | | | warm-up done after {warmed:.1f} s |")
    print(f"| Painel, one view before the sessions | | | {painel * 1000:,.0f} ms | | | `notifier status` |")
    print(f"| cycle: run-once | | {sent:,} e-mails | {cycle_s:.1f} s | {sent / cycle_s:.0f} msg/s | | |")
    emit("load.memory.peak", hwm, "MB", goal="<= 300", area=AREA, source="issue 21",
         label="console's resident memory, peak (VmHWM)", note=f"{size}; sampled peak {peak_sampled:.0f} MB")
    emit("load.memory.end", rss_end, "MB", goal="<= 300", area=AREA, source="issue 21",
         label="console's resident memory at the end (VmRSS)", note=size)
    emit("load.memory.ready", rss_ready, "MB", area=AREA, label="console's resident memory when ready, before the sessions")
    emit("load.memory.relatorios", rss_relatorios, "MB", area=AREA,
         label="console's resident memory after the sessions and one Relatórios view (2026-11)",
         note=f"peak then {hwm_relatorios:.0f} MB; the view {relatorios:.1f} s")
    emit("load.painel", painel * 1000, "ms", area=AREA, label="Painel, one view before the sessions", note=size)
    emit("load.startup", ready, "s", area=AREA, label="console start-up, until its first customer page answered",
         note=f"listening after {listening:.1f} s; its warm-up done after {warmed:.1f} s")
    emit("load.cycle", sent / cycle_s, "msg/s", area=AREA, label=f"run-once beside the sessions, {sent:,} e-mails",
         note=f"{cycle_s:.1f} s")
    if missing:
        print(f"\n{MISSING}: {', '.join(LABELS[m] for m in sorted(missing))}")


if __name__ == "__main__":
    main()
