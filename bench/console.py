"""The console's speed at the company's size: 5,000 accounts and 100,000 log records (issue 19).

    python bench/console.py                      # 5,000 accounts, 100,000 records, 30 views a page
    python bench/console.py --accounts 500 --records 10000 --views 10     # a quick look

What it does, with the real code end to end:
1. builds the fixture (cached under $BENCH_CACHE, see bench/_common.py): an import file of
   `--accounts` accounts (three monthly invoices each, a tenth of November's still open, Pix codes
   on some), imported with `notifier import`; an attempt log grown to `--records` records of real
   rendered e-mails with their payloads in the message store (bench/attempts.py's `grow`, over the
   same account ids), and a few hundred social DMs handed to staff (the task queue);
2. starts a real `notifier web` process on 127.0.0.1 (`--date 2026-11-25`), logs in over HTTP as a
   admin (who may open every page and do every action), and measures each page `--views` times
   (p95, and the first view apart: it builds the per-account log index), then each action once on
   accounts of its own;
3. runs the CLI's equivalent of each page in a fresh process, as staff would at a terminal
   (`notifier find`, `show`, `tasks --open`, `status`), in the same run.

Goals (issue 19): every page p95 <= 200 ms, every action <= 500 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import BENCH_PASSWORD as PASSWORD, Console, cache_dir, emit, fmt  # noqa: E402

AREA = "Console"
DAY = "2026-11-25"
PAGE_GOAL, ACTION_GOAL = "<= 200", "<= 500"


def billing(n: int, path: Path) -> None:
    """The import file: accounts `acc-00000`... (the ids bench/attempts.py's log speaks of)."""
    from bench.plan import PIX, cnpj
    from notifier.billing.documents import pix_crc16
    rnd = random.Random(19)
    accounts, invoices = [], []
    for i in range(n):
        aid = f"acc-{i:05d}"
        accounts.append({"id": aid, "company": f"Empresa Exemplo {i} Comércio e Serviços Ltda",
                         "contact_name": "Maria da Silva", "document": cnpj(10_000_000 + i), "domain": f"empresa{i}.com.br",
                         "emails": [f"financeiro@{aid}.com.br"], "whatsapp": f"+55119{i:08d}", "due_day": 20,
                         **({"social": {"instagram": f"@empresa{i}"}} if i % 5 == 0 else {})})
        for month in (9, 10, 11):
            inv = {"id": f"2026-{month:02d}-{aid}", "account": aid, "amount": "149.90", "issued": f"2026-{month:02d}-05"}
            if month < 11 or rnd.random() > 0.1:
                inv["paid"] = f"2026-{month:02d}-{rnd.randint(15, 20)}"
            elif i % 3 == 0:
                code = PIX.format(f"{i:06d}11", "14990")
                inv["pix_code"] = code + pix_crc16(code)
            invoices.append(inv)
    path.write_text(json.dumps({"accounts": accounts, "invoices": invoices}, ensure_ascii=False), encoding="utf-8")


def fixture(accounts: int, records: int) -> Path:
    """A folder with the state, the log (and its messages) and an admin; cached."""
    folder = cache_dir("console", {"accounts": accounts, "records": records},
                       ("bench/console.py", "bench/attempts.py", "bench/plan.py"))
    if (folder / "done").exists():
        return folder
    from bench.attempts import T0, Messages, grow
    from notifier.channels import Result
    from notifier.log.attempts import AttemptLog
    billing(accounts, folder / "billing.json")
    cli(folder, "import", "billing.json", "--date", DAY)
    log = AttemptLog(folder / "attempts.jsonl")
    messages = Messages()
    grow(log, messages, records - 400, accounts=accounts)
    for i in range(0, min(accounts, 1000), 5):  # a DM per customer with a handle: tasks for support
        m = messages.get(f"acc-{i:05d}", "overdue", "social", "")
        aid = log.start(T0, m, {"account": f"acc-{i:05d}", "stage": "overdue", "invoices": [f"2026-11-acc-{i:05d}"]})
        log.finish(aid, T0, Result("task", "staff-task", detail="send by hand"))
    log.close()
    cli(folder, "users", "add", "bench", "--role", "admin", stdin=PASSWORD + "\n")
    (folder / "done").write_text("")
    return folder


def cli(folder: Path, *args: str, stdin: str | None = None) -> float:
    """`notifier ARGS` in a fresh process in `folder`; its wall seconds. Fails loudly, but for the
    exit 1 of `status` (the daemon is stale: no cycle ran on the bench's state) and of `check`
    (no WhatsApp template configured), which are answers, not failures."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=folder, input=stdin, text=True,
                          capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0 and not (args[0] in ("status", "check") and proc.returncode == 1):
        raise SystemExit(f"notifier {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=5000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--views", type=int, default=30)
    args = parser.parse_args()
    t = time.perf_counter()
    source = fixture(args.accounts, args.records)
    print(f"fixture: {args.accounts:,} accounts, {args.records:,} log records ({time.perf_counter() - t:.0f} s, "
          f"cached in {source})")
    work = ROOT / "bench" / "out" / "console"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)  # the actions write: every run starts from the same state
    with Console(ROOT, work, DAY, timeout=60, stderr=subprocess.PIPE) as web:
        client, csrf, origin = web.client, web.csrf, {"Origin": web.base}
        one = "acc-00123"
        attempt = re.search(r"/mensagens/(\w+)", client.get(f"/clientes/{one}").text).group(1)
        rows = []

        def page(name: str, url: str, cli_args: tuple[str, ...] | None, headers: dict | None = None) -> None:
            times = []
            for n in range(args.views):
                start = time.perf_counter()
                answer = client.get(url, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, (url, answer.status_code, answer.text[-500:])
            cli_ms = cli(work, *cli_args) * 1000 if cli_args else None
            rows.append((name, p95(times), PAGE_GOAL, cli_args, cli_ms))
            emit(f"console.page.{name}", p95(times), "ms", goal=PAGE_GOAL, area=AREA, source="issue 19",
                 label=f"{name}: p95 of {args.views} views", baseline_label="the CLI's equivalent (not a goal)")

        # The first customer page of the process builds the log index (one read of the log).
        start = time.perf_counter()
        client.get(f"/clientes/{one}")
        print(f"(the first customer page since start, with the log index already built by the one above: "
              f"{(time.perf_counter() - start) * 1000:.0f} ms)")
        page("painel", "/", ("status",))
        page("clientes (busca htmx)", "/clientes?q=exemplo+123", ("find", "exemplo 123"), {"HX-Request": "true"})
        page("clientes (CNPJ)", "/clientes?q=10.000.123", ("find", "10.000.123"), {"HX-Request": "true"})
        page("cliente", f"/clientes/{one}", ("show", one, "--date", DAY))
        page("mensagem (e-mail)", f"/clientes/{one}/mensagens/{attempt}", None)
        page("tarefas", "/tarefas", ("tasks", "--open"))
        page("configuração", "/configuracao", ("check",))

        def action(name: str, url: str, data: dict, cli_args: tuple[str, ...] | None = None) -> None:
            start = time.perf_counter()
            answer = client.post(url, data={"csrf": csrf, **data}, headers=origin)
            ms = (time.perf_counter() - start) * 1000
            assert answer.status_code in (200, 303), (url, answer.status_code, answer.text[-800:])
            cli_ms = cli(work, *cli_args) * 1000 if cli_args else None
            rows.append((name, ms, ACTION_GOAL, cli_args, cli_ms))
            emit(f"console.action.{name}", ms, "ms", goal=ACTION_GOAL, area=AREA, source="issue 19", label=name)

        action("registrar contato", "/clientes/acc-00200/contato",
               {"canal": "phone", "resultado": "reached", "nota": "bench"},
               ("contact", "acc-00201", "--by", "bench", "--channel", "phone", "--outcome", "reached", "--date", DAY))
        action("pausar", "/clientes/acc-00202/pausar", {"motivo": "disputed", "ate": "2026-12-20"},
               ("hold", "acc-00203", "--by", "bench", "--reason", "disputed", "--until", "2026-12-20", "--date", DAY))
        action("encerrar pausa", "/clientes/acc-00202/liberar", {},
               ("release", "acc-00203", "--by", "bench", "--date", DAY))
        action("não enviar por (opt-out)", "/clientes/acc-00204/opt-out", {"canal": "sms"},
               ("opt-out", "acc-00205", "--channel", "sms", "--by", "bench", "--date", DAY))
        unpaid = next(i for i in json.loads((work / "billing.json").read_text())["invoices"] if "paid" not in i)
        action("escalonar (e-mail)", f"/clientes/{unpaid['account']}/escalar", {"canal": "email"})
        action("registrar pagamento", f"/clientes/{unpaid['account']}/pagamento", {"fatura": unpaid["id"], "pago_em": DAY},
               ("pay", next(i for i in json.loads((work / "billing.json").read_text())["invoices"]
                            if "paid" not in i and i["id"] != unpaid["id"])["id"], "--date", DAY, "--by", "bench"))
        task = re.search(r'action="/tarefas/(\w+)/concluir"', client.get("/tarefas").text).group(1)
        action("concluir tarefa", f"/tarefas/{task}/concluir", {"resultado": "enviei"})
    print(f"\n{args.accounts:,} accounts, {args.records:,} log records; `notifier web` on 127.0.0.1, {os.cpu_count()} cores")
    print("| page or action | console | goal | the CLI's equivalent (a fresh process) |")
    print("| --- | --- | --- | --- |")
    for name, ms, goal, cli_args, cli_ms in rows:
        kind = "p95 " if goal == PAGE_GOAL else ""
        equivalent = f"`notifier {' '.join(cli_args)}` {fmt(cli_ms)} ms" if cli_args else "-"
        print(f"| {name} | {kind}{fmt(ms)} ms | {goal} ms: {'met' if ms <= float(goal.split()[1]) else 'NOT met'} | {equivalent} |")


if __name__ == "__main__":
    main()
