"""Two years in one test: `run-once --date D` for every day of two years over a few hundred
generated accounts, with the real command line in subprocesses, the local SMTP server and the
Twilio-compatible server, and the invariants of issue 10 checked after every day
(tests/simulation/oracle.py).

The world (tests/simulation/model.py) is drawn from one seed: accounts with the default and legacy
due days 1–31, one or two e-mails, with and without WhatsApp and social handles, opt-outs and
numbers on the do-not-contact list; invoices issued on day 5 of each month; customers paying on
time, on the effective due date after a weekend or holiday, late or never; payments learned the
morning after through a re-import of the billing file or `notifier pay`; staff holds, releases,
escalations and contacts on random days. By default the two years are two worlds of one year each
(01/12/2024–30/11/2025 and 01/12/2025–30/11/2026), run side by side; SIM_WORLDS=1 runs one
world through both years.

    SIM_SEED=7 SIM_ACCOUNTS=300 SIM_DAYS=730 SIM_WORLDS=2 python -m pytest -q tests/test_simulation.py
"""
from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from email import policy
from email.parser import BytesHeaderParser

from tests.conftest import clean_cli
from tests.fake_twilio import FakeTwilio
from tests.simulation.model import DAY, World
from tests.simulation.oracle import Oracle
from tests.smtp_server import RecordingHandler, SmtpServer

SEED = int(os.environ.get("SIM_SEED", "20261201"))
ACCOUNTS = int(os.environ.get("SIM_ACCOUNTS", "200"))
# The default run simulates two worlds of 120 days (December to March of each year: the year's
# turn, Carnaval, every stage up to deletion); NOTIFIER_STRESS=1 (or SIM_DAYS=730) the two whole
# years, which alone took longer than the rest of the suite (the suite's 10 minutes, issue 18).
DAYS = int(os.environ.get("SIM_DAYS", "730" if os.environ.get("NOTIFIER_STRESS") else "240"))
START = date.fromisoformat(os.environ.get("SIM_START", "2024-12-01"))  # two years ending before today
# Days between two runs of `notifier verify-log` (the chain and every stored message), besides the
# last day; the oracle checks the chain of each day's records itself.
VERIFY_EVERY = int(os.environ.get("SIM_VERIFY_EVERY", "30"))
# The days are split among independent worlds run side by side (one per core), each of ACCOUNTS
# accounts: the time goes into ~2 processes a day, so splitting the accounts would not help.
# SIM_WORLDS=1 is one world through the two years (twice the time).
SHARDS = int(os.environ.get("SIM_WORLDS", "2"))

CONFIG = """
do_not_contact = "nao-me-ligue.csv"

[cycle]
workers = 4
backoff = 0.2

[channels.whatsapp]
freeform = true
rate = 0

[channels.sms]
rate = 0
"""
HEADERS = BytesHeaderParser(policy=policy.default)


class Counting(RecordingHandler):
    """Keeps only (recipients, attempt id) of each message: two years of e-mails would not fit."""

    def __init__(self):
        super().__init__()
        self.got: list[tuple[tuple[str, ...], str | None]] = []
        self._count_lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        headers = HEADERS.parsebytes(envelope.original_content)
        with self._count_lock:
            self.got.append((tuple(envelope.rcpt_tos), headers.get("X-Notifier-Attempt-Id")))
            return f"250 2.0.0 Ok: queued as SIM{len(self.got)}"


class Timed:
    """The command line, with the number and wall time of each command's processes (printed at
    the end: where the test's minutes go)."""

    def __init__(self, cli):
        self.cli, self.spent = cli, defaultdict(lambda: [0, 0.0])

    def __call__(self, *args: str):
        began = time.monotonic()
        try:
            return self.cli(*args)
        finally:
            self.spent[args[0]][0] += 1
            self.spent[args[0]][1] += time.monotonic() - began

    def report(self) -> str:
        return ", ".join(f"{name} {n}× {t / n:.2f} s" for name, (n, t) in sorted(self.spent.items()))


def simulate(folder, seed: str, start: date, days: int) -> tuple[Oracle, Timed]:
    """One world, every day of it: the morning's billing file, payments and staff commands, the
    cycle at 09:00, then the oracle's checks of the day (and verify-log every VERIFY_EVERY days)."""
    folder.mkdir()
    world = World.generate(seed, ACCOUNTS, start, days)
    plain = clean_cli(folder)
    # Some machines set PYTHONDONTWRITEBYTECODE: every process would compile the notifier's
    # modules again (10–20% of a process). Their bytecode goes to a folder of the test instead.
    plain.env.pop("PYTHONDONTWRITEBYTECODE", None)
    plain.env["PYTHONPYCACHEPREFIX"] = str(folder.parent / "pycache")
    cli = Timed(plain)
    (folder / "notifier.toml").write_text(CONFIG, encoding="utf-8")
    (folder / "nao-me-ligue.csv").write_text(
        "telefone\n" + "".join(n.removeprefix("+55") + "\n" for n in sorted(world.do_not_contact)), encoding="utf-8")
    handler = Counting()
    oracle = Oracle(world, folder / "attempts.jsonl", seed)
    holds_on, releases_on = defaultdict(list), defaultdict(list)
    for h in world.holds:
        holds_on[h.since].append(h)
        if h.released:
            releases_on[h.released].append(h)
    with SmtpServer(handler) as smtp, FakeTwilio() as twilio:
        plain.env.update(NOTIFIER_CONFIG="notifier.toml", EMAIL_URL=smtp.url(), **twilio.env())
        day = world.start
        while day <= world.end:
            iso = day.isoformat()
            changed, to_pay = world.news(day)
            if changed or day == world.start:
                (folder / "billing.json").write_text(json.dumps(world.billing(day)), encoding="utf-8")
                cli("import", "billing.json", "--date", iso)
            for inv in to_pay:  # learned from the bank by hand: the billing file never hears of it
                cli("pay", inv.id, "--date", inv.paid.isoformat(), "--by", "financeiro")
            for h in releases_on.get(day, []):
                cli("release", h.account, "--by", "ana", "--date", iso)
            for h in holds_on.get(day, []):
                cli("hold", h.account, "--by", "ana", "--reason", h.reason, "--until", h.until.isoformat(), "--date", iso)
            for acc in world.contacts.get(day, []):
                cli("contact", acc, "--by", "bia", "--channel", "phone", "--outcome", "promised_payment", "--date", iso)
            for acc in world.escalations.get(day, []):
                cli("escalate", acc, "--by", "bia", "--date", iso)
            cli("run-once", "--date", iso)
            problems = oracle.check_day(day, handler.got, set(twilio.messages))
            assert not problems, "\n".join(problems[:20])
            if (day - world.start).days % VERIFY_EVERY == VERIFY_EVERY - 1 or day == world.end:
                assert "chain and messages: ok" in cli("verify-log").stdout
            day += DAY
    problems = oracle.check_end()
    assert not problems, "\n".join(problems[:30])
    return oracle, cli


def test_two_years_every_day_keeps_every_promise(tmp_path):
    # Independent worlds side by side (one per core): the subprocesses are the time, not the test.
    # Each world starts a year after the one before (by default 01/12/2024 and 01/12/2025).
    span = DAYS // SHARDS
    spans = [(k, (START + timedelta(days=k * max(span, 365)), span if k < SHARDS - 1 else DAYS - k * span))
             for k in range(SHARDS)]
    began, cpu, own = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    with ThreadPoolExecutor(SHARDS) as pool:
        runs = [pool.submit(simulate, tmp_path / f"world{k}", f"{SEED}/{k}", start, days) for k, (start, days) in spans]
        results = [r.result() for r in runs]
    for (k, (start, days)), (_, cli) in zip(spans, results):
        print(f"\nworld {SEED}/{k}: {days} days from {start}, {ACCOUNTS} accounts: {cli.report()}")
    used, mine = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    print(f"{time.monotonic() - began:.0f} s, the commands' CPU {used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime:.0f} s, "
          f"the test's own (servers, oracle) {mine.ru_utime + mine.ru_stime - own.ru_utime - own.ru_stime:.0f} s")
    if DAYS // SHARDS < 120:
        return
    # the simulation did exercise what it checks
    sendings = [r for oracle, _ in results for r in oracle.sendings.values()]
    assert {"reminder", "due_today", "overdue", "suspension_warning", "suspended", "deletion_warning",
            "deletion_due"} <= {r["stage"] for r in sendings}
    assert {r["channel"] for r in sendings if r.get("tutorial")} == {"email", "whatsapp", "social"}
    assert any(r.get("escalation") for r in sendings)


def test_an_escalation_is_logged_as_sent_and_a_social_task_is_no_failure(cli):
    """Found by the simulation: escalate's e-mails went without their attempt id (no
    X-Notifier-Attempt-Id, no stored bytes: the log could not prove what was sent), and a social
    DM handed to staff made `escalate` exit 1."""
    from tests.cycle_helpers import account, records, setup
    setup(cli, [account("acme", social={"instagram": "@acme"})])
    handler = Counting()
    with SmtpServer(handler) as smtp:
        cli.env["EMAIL_URL"] = smtp.url()
        out = cli("escalate", "acme", "--by", "bia", "--date", "2026-11-24")  # exit 0
    assert "social → instagram:@acme: task" in out.stdout
    sendings = {r["id"]: r for r in records(cli.workdir) if r["event"] == "sending"}
    [(rcpts, attempt)] = handler.got
    assert sendings[attempt]["channel"] == "email" and rcpts == ("financeiro@acme.com.br",)
    assert all(r.get("message") for r in sendings.values())  # the exact bytes are in the message store
    assert "chain and messages: ok" in cli("verify-log").stdout
