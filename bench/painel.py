"""The pages every staff member opens first, Painel and Tarefas, at a large company's size (issue 21).

    python bench/painel.py [--source FOLDER] [--tasks 22000] [--views 3]

What it does:
1. the fixture of bench/company.py (50,000 accounts, 1,000,000 log records; or `--source`, a
   folder it built), copied as bench/load.py copies it;
2. `--tasks` DMs handed to staff appended to the log (a social sending and its `task` outcome
   each, in the log's format and chain, the head moved): a task-heavy queue, all open;
3. `notifier web` (a real process) on DAY, an admin logged in over HTTP: the Painel (`/`) and the
   Tarefas page (`/tarefas`) timed at their first view and `--views` more (the median);
4. `notifier pay` of an open invoice and `notifier tasks done` of a task in other processes, then
   the Painel and the Tarefas again (each must show the change: checked);
5. a payment recorded through the console (its customer page's form), then the Painel: its
   wall time and the console's CPU time for it (the machine is shared), its next cycle's count of
   notices checked against `notifier plan` of that day;
6. `notifier status`, `notifier plan --date NEXT` and `notifier tasks --open --json` in fresh
   processes (the CLI's equivalents);
7. the console's resident memory, at the end and its peak.
Figures are printed and handed to run_all (`emit`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import emit  # noqa: E402
from bench.company import DAY, account_id, fixture  # noqa: E402
from bench.load import PASSWORD, cli, env, login, memory, workdir  # noqa: E402

AREA = "Console: Painel and Tarefas"


def add_tasks(work: Path, count: int) -> list[str]:
    """Append `count` open DM tasks to the log at `work` (ids of their `task` records)."""
    from notifier.log.attempts import HeadFile, Kept, head_file_for
    head_file = HeadFile(head_file_for(work / "attempts.jsonl"))
    kept = head_file.read()
    seq, last, size = kept.count, kept.hash, kept.size
    rnd = random.Random(21)
    ids = []
    at = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    with open(work / "attempts.jsonl", "ab") as log:
        for n in range(count):
            i = (n * 37) % 50_000
            aid, sending = account_id(i), f"{rnd.getrandbits(128):032x}"
            when = (at + timedelta(seconds=n)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            task = f"{rnd.getrandbits(128):032x}"
            for record in (
                {"id": sending, "event": "sending", "time": when, "actor": "daemon", "account": aid,
                 "invoices": [f"2026-11-{aid}"], "stage": "overdue", "notice_date": "2026-12-04", "first_time": True,
                 "tutorial": False, "covers": [], "template": "social/overdue", "attempt": 1, "channel": "social",
                 "recipient": f"instagram:@empresa{i}",
                 "content": {"text": f"Olá! A fatura de novembro da empresa {i} está em aberto. Podemos ajudar?"}},
                {"id": task, "event": "task", "time": when, "actor": "daemon", "account": aid, "channel": "social",
                 "recipient": f"instagram:@empresa{i}", "ref": sending, "provider": "staff-task", "provider_id": None,
                 "code": None, "detail": "send by hand", "permanent": False, "evidence": {}}):
                seq += 1
                raw = orjson.dumps({"seq": seq, **record, "prev": last})
                last = hashlib.sha256(raw).hexdigest()
                log.write(raw + b"\n")
                size += len(raw) + 1
            ids.append(task)
    head_file.write(Kept(seq, last, size))
    return ids


def timed(client, url: str, views: int, expect: str = "") -> tuple[float, float, str]:
    """(first view s, median of `views` more s, the last page's text); `expect` must be on it."""
    times = []
    for _ in range(views + 1):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        if response.status_code != 200 or expect not in response.text:
            raise SystemExit(f"GET {url}: {response.status_code}, {expect!r} not on the page")
    return times[0], statistics.median(times[1:]), response.text


def invoices_open(work: Path):
    """(key, document) of November's open invoices in the state file."""
    invoices = json.loads((work / "state.json").read_text())["invoices"]
    return [(key, inv) for key, inv in invoices.items() if inv.get("paid") is None and key.startswith("2026-11-")]


def open_tasks(text: str) -> int:
    """The Painel's count of open tasks."""
    found = re.search(r"<h2>Tarefas abertas</h2>\s*<p class=\"grande\">(\d+)</p>", text)
    return int(found.group(1))


def recovered(text: str) -> str:
    """The Painel's count of late invoices paid this month."""
    return re.search(r"em (\d+) fatura\(s\) paga\(s\) depois do vencimento", text).group(1)


def planned(text: str) -> tuple[str, int]:
    """The Painel's next cycle: (its day as YYYY-MM-DD, its count of notices over the channels)."""
    box = re.search(r"<h2>Próximo ciclo</h2>\s*<p class=\"grande\">(\d\d)/(\d\d)/(\d{4})[^<]*</p>(.*?)</table>", text, re.S)
    day = f"{box.group(3)}-{box.group(2)}-{box.group(1)}"
    return day, sum(int(n) for n in re.findall(r'<td class="num">(\d+)</td>', box.group(4)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    import os
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, idle: float = 0.05, every: float = 2.0, limit: float = 600) -> None:
    """Wait until process `pid` uses less than `idle` of a core over `every` seconds (its start's
    warm-up done), at most `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(every)
        if cpu_seconds(pid) - before < idle * every:
            return


def main() -> None:
    import httpx
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="a folder bench/company.py built (default: build or reuse its cache)")
    parser.add_argument("--tasks", type=int, default=22_000)
    parser.add_argument("--views", type=int, default=3)
    args = parser.parse_args()
    source = args.source or fixture()
    t = time.perf_counter()
    work = workdir(source)
    ids = add_tasks(work, args.tasks)
    print(f"{source} copied to {work}, {args.tasks:,} open DM tasks appended ({time.perf_counter() - t:.0f} s)", flush=True)
    cli(work, "users", "add", "chefe", "--role", "admin", stdin=PASSWORD + "\n")

    from bench._common import free_port
    port = free_port()
    began = time.perf_counter()
    server = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "web", "--port", str(port), "--date", DAY],
                              cwd=work, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    figures = {}
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=900)
        while True:
            try:
                client.get("/login")
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    raise SystemExit(f"notifier web stopped: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.2)
        csrf = login(client, "chefe")
        print(f"console up and logged in after {time.perf_counter() - began:.0f} s", flush=True)
        figures["painel.first"], figures["painel.again"], text = timed(client, "/", args.views, "Tarefas abertas")
        before_tasks, before_paid = open_tasks(text), recovered(text)
        figures["tarefas.first"], figures["tarefas.again"], text = timed(client, "/tarefas", args.views, "Tarefas")
        print(f"Painel: first {figures['painel.first']:.2f} s, then {figures['painel.again']:.3f} s; "
              f"{before_tasks:,} open tasks; Tarefas: first {figures['tarefas.first']:.2f} s, "
              f"then {figures['tarefas.again']:.3f} s", flush=True)

        # Another process pays a late invoice and closes a task: both pages show it at once.
        invoices = json.loads((work / "state.json").read_text())["invoices"]
        late = next(key for key, inv in invoices.items() if inv.get("paid") is None and key.startswith("2026-11-"))
        del invoices
        cli(work, "pay", late, "--date", DAY, "--by", "bench")
        cli(work, "tasks", "done", ids[0], "--by", "bench", "--outcome", "enviei")
        start = time.perf_counter()
        text = client.get("/").text
        figures["painel.changed"] = time.perf_counter() - start
        assert open_tasks(text) == before_tasks - 1, (open_tasks(text), before_tasks)
        assert int(recovered(text)) == int(before_paid) + 1, (recovered(text), before_paid)
        start = time.perf_counter()
        text = client.get("/tarefas", params={"pagina": 10_000}).text
        figures["tarefas.changed"] = time.perf_counter() - start
        assert ids[0] not in text

        # A payment through the console (a staff action: the state's tables change), then the Painel,
        # once the console's warm-up is over (its CPU would be counted as the view's).
        settle(server.pid)
        account = next(key for key, inv in invoices_open(work) if key != late).split("-", 2)[2]
        answer = client.post(f"/clientes/{account}/pagamento", data={"csrf": csrf, "fatura": f"2026-11-{account}",
                             "pago_em": DAY}, headers={"Origin": str(client.base_url).rstrip("/")})
        assert answer.status_code in (200, 303), answer.text[-500:]
        cpu, start = cpu_seconds(server.pid), time.perf_counter()
        text = client.get("/").text
        figures["painel.paid"] = time.perf_counter() - start
        figures["painel.paid.cpu"] = cpu_seconds(server.pid) - cpu
        assert int(recovered(text)) == int(before_paid) + 2, (recovered(text), before_paid)
        next_day, notices = planned(text)
        print(f"after a payment through the console: Painel {figures['painel.paid']:.2f} s "
              f"({figures['painel.paid.cpu']:.2f} s of the console's CPU); next cycle {next_day}: {notices:,} notices",
              flush=True)
        rss, peak = memory(server.pid)
        figures["memory.end"], figures["memory.peak"] = rss, peak
        print(f"after a pay and a task closed by other processes: Painel {figures['painel.changed']:.2f} s "
              f"({before_tasks - 1:,} open tasks, one more invoice recovered), Tarefas (its last page) "
              f"{figures['tarefas.changed']:.2f} s; console RSS {rss:.0f} MB (peak {peak:.0f} MB)", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)

    figures["status"], _ = cli(work, "status", "--date", DAY, check=False)  # exit 1: no cycle on the fixture (STALE)
    figures["status.again"], _ = cli(work, "status", "--date", DAY, check=False)
    figures["tasks"], proc = cli(work, "tasks", "--open", "--json")
    figures["plan"], plan = cli(work, "plan", "--date", next_day, "--json")
    assert len(json.loads(plan.stdout)) == notices, "the Painel's next cycle differs from `notifier plan`"
    figures["plan"] /= 1000
    figures["status"] /= 1000
    figures["status.again"] /= 1000
    figures["tasks"] /= 1000
    print(f"CLI: `notifier status` {figures['status']:.1f} s (again {figures['status.again']:.1f} s), "
          f"`notifier tasks --open --json` {figures['tasks']:.1f} s ({len(json.loads(proc.stdout)):,} tasks), "
          f"`notifier plan --date {next_day}` {figures['plan']:.1f} s ({notices:,} notices, as on the Painel)", flush=True)
    size = f"50,000 accounts, 1,000,000 records + {args.tasks:,} open DM tasks"
    labels = {"painel.first": "Painel, first view", "painel.again": "Painel, a view after the first (median)",
              "painel.changed": "Painel after a pay and a task closed elsewhere",
              "tarefas.first": "Tarefas, first view", "tarefas.again": "Tarefas, a view after the first (median)",
              "tarefas.changed": "Tarefas after a task closed elsewhere (last page)",
              "status": "notifier status (fresh process)", "status.again": "notifier status again (index file)",
              "tasks": "notifier tasks --open --json"}
    for name, label in labels.items():
        emit(f"painel.{name}" if not name.startswith(("painel", "tarefas")) else name, figures[name], "s",
             area=AREA, label=label, note=size)
    emit("painel.paid", figures["painel.paid"], "s", baseline=figures["plan"],
         baseline_label=f"notifier plan --date {next_day} (fresh process)", goal="<= 1", source="painel task",
         area=AREA, label="Painel after a payment through the console", note=size)
    emit("painel.paid.cpu", figures["painel.paid.cpu"], "s", goal="<= 1", source="painel task", area=AREA,
         label="Painel after a payment through the console, the console's CPU", note=size)
    emit("painel.memory.end", figures["memory.end"], "MB", area=AREA, label="console RSS at the end", note=size)
    emit("painel.memory.peak", figures["memory.peak"], "MB", area=AREA, label="console RSS peak", note=size)


if __name__ == "__main__":
    main()
