"""A large company's data for the console's load bench: 50,000 accounts and 1,000,000 log records.

    python bench/company.py [--accounts 50000] [--records 1000000] [--emails 10000]   # build (cached) and say where

What the fixture holds (seeded: the same bytes every build; cached under $BENCH_CACHE, keyed by the
parameters and by the source of this file, see bench/_common.py `cache_dir`):
- `billing.json`, imported with the real `notifier import`: `--accounts` accounts (company, CNPJ,
  domain, one or two e-mails, WhatsApp, some with a social handle), a monthly invoice each from
  June to December 2026 (seven; the older paid ones go to the archive on import, as in
  production). About 85% pay on time, 12% late, 3% of November's are still open. December's
  invoices are due on the 10th for exactly `--emails` accounts (spread over the ids) and later
  for the others, so that the cycle of DAY (07/12/2026, three days before the 10th) sends each
  of them its reminder e-mail: the load bench's cycle.
- `attempts.jsonl` and its message store, written directly (not through `AttemptLog`, which would
  take minutes at this size) in the log's real format: `{"seq":N,"id":...,"prev":"<SHA-256 of the
  line before>"}`, the head file the state keeps, and each e-mail's bytes in the month's pack
  with its pointer (`notifier verify-log` accepts it; compressed at zlib level 1 instead of 9 to
  build faster: the packs are 8% larger, the format the same). Six months of the ladder
  (June to November): every invoice's reminder and due-day e-mail, the late ones' overdue,
  suspension-warning and suspended notices by e-mail, WhatsApp and SMS, a social DM handed to
  staff as a task; outcomes (sent, failed, blocked, task) and later statuses (delivered, read,
  undelivered, bounced); and staff's records: contacts by phone, holds and their release,
  escalations, opt-outs, payments recorded by hand, tasks closed. Attempts are dropped oldest
  first until the log has `--records` records (give or take the few of one attempt).
- in the state: about 1% of accounts on hold over DAY, 1% opted out of SMS or WhatsApp, and the
  ledger the daily cycles would have left (a row for each notice handled of the invoices still in
  the state), written by the daemon's own `reconcile`.

Built in about two minutes at full size on this 2-core machine (most of it compressing e-mails and
hashing 1.7 GB of lines); the real `notifier import` and `notifier verify-log` run on it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import time
import zlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import cache_dir  # noqa: E402

DAY = "2026-12-07"  # the console's today and the cycle's day: a Monday
MONTHS = (6, 7, 8, 9, 10, 11)  # the ladder's history in the log
DUE_DAYS = (15, 20, 25, 28)  # December's due days of the accounts that are not in the cycle
STAFF = ("ana", "bruno", "carla", "diego", "elisa")
GENESIS = "0" * 64
SEED = 21


def account_id(i: int) -> str:
    return f"acc-{i:05d}"


def in_cycle(i: int, accounts: int, emails: int) -> bool:
    """Whether account i is one of the `emails` accounts (spread evenly) due on 10/12: the cycle's."""
    return (i * emails) // accounts != ((i + 1) * emails) // accounts


def two_emails(i: int, accounts: int, emails: int) -> bool:
    """A third of the accounts have a second address, but none of the cycle's: one e-mail each."""
    return i % 3 == 0 and not in_cycle(i, accounts, emails)


def billing(accounts: int, emails: int, rnd: random.Random) -> tuple[dict, dict]:
    """The import file, and per account the fate of each month's invoice: "on_time", "late" (paid
    after the due date, on the day under "paid-MONTH") or "open"."""
    from bench.plan import PIX, cnpj
    from notifier.billing.documents import pix_crc16
    out_accounts, invoices, fates = [], [], {}
    for i in range(accounts):
        aid = account_id(i)
        due_day = 10 if in_cycle(i, accounts, emails) else DUE_DAYS[i % len(DUE_DAYS)]
        emails_ = [f"financeiro@{aid}.com.br"] + ([f"contato@{aid}.com.br"] if two_emails(i, accounts, emails) else [])
        acc = {"id": aid, "company": f"{rnd.choice(NAMES)} {rnd.choice(KINDS)} {i} Ltda",
               "contact_name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)}", "document": cnpj(10_000_000 + i),
               "domain": f"empresa{i}.com.br", "emails": emails_, "whatsapp": f"+55119{i:08d}", "due_day": due_day}
        if i % 5 == 0:
            acc["social"] = {"instagram": f"@empresa{i}"}
        out_accounts.append(acc)
        late_prone = rnd.random() < 0.15
        fate = {}
        for month in (*MONTHS, 12):
            inv = {"id": f"2026-{month:02d}-{aid}", "account": aid, "amount": rnd.choice(AMOUNTS),
                   "issued": f"2026-{month:02d}-01"}
            due = date(2026, month, min(due_day, 28))
            if month == 12:
                fate[month] = "open"
            elif month == 11 and late_prone and rnd.random() < 0.25:
                fate[month] = "open"
            elif late_prone and rnd.random() < 0.6:
                inv["paid"] = min(due + timedelta(days=rnd.randint(4, 14)), date(2026, 12, 4)).isoformat()
                fate[month] = "late"
                fate[f"paid-{month}"] = inv["paid"]  # what a payment recorded by hand says: the bank's date
            else:
                fate[month] = "on_time"
                inv["paid"] = (due - timedelta(days=rnd.randint(0, 4))).isoformat()
            if fate[month] == "open" and i % 3 == 0:
                code = PIX.format(f"{i:06d}{month:02d}", inv["amount"].replace(".", "").rjust(5, "0"))
                inv["pix_code"] = code + pix_crc16(code)
            invoices.append(inv)
        fates[aid] = fate
    return {"accounts": out_accounts, "invoices": invoices}, fates


NAMES = ("Padaria", "Ateliê", "Oficina", "Clínica", "Escritório", "Mercado", "Papelaria", "Construtora",
         "Farmácia", "Pousada", "Restaurante", "Academia", "Livraria", "Floricultura", "Pet Shop")
KINDS = ("São João", "Flor de Lís", "Bom Jesus", "Santa Luzia", "Exemplo", "Horizonte", "Aurora", "Ipê Amarelo",
         "Boa Vista", "Três Irmãos", "Vale Verde", "Estrela", "Central", "do Bairro", "Nova Era")
FIRST = ("Maria", "João", "Ana", "José", "Francisca", "Antônio", "Adriana", "Carlos", "Juliana", "Paulo")
LAST = ("da Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima", "Gomes")
AMOUNTS = ("29.90", "49.90", "89.90", "149.90", "299.00", "599.00")


class Writer:
    """Appends records to the log in its real format, each e-mail's bytes to its month's pack."""

    def __init__(self, folder: Path, rnd: random.Random):
        self.log = open(folder / "attempts.jsonl", "wb", buffering=1 << 22)
        self.packs_folder = folder / "attempts.jsonl.messages"
        self.packs_folder.mkdir(exist_ok=True)
        self.packs: dict[str, tuple] = {}  # month -> (file, size)
        self.rnd = rnd
        self.seq, self.last, self.size = 0, GENESIS, 0

    def new_id(self) -> str:
        return f"{self.rnd.getrandbits(128):032x}"

    def write(self, record: dict, payload: bytes | None = None) -> None:
        if payload is not None:
            record["message"] = self.store(record["id"], record["time"][:7], payload)
        self.seq += 1
        raw = orjson.dumps({"seq": self.seq, **record, "prev": self.last})
        self.last = hashlib.sha256(raw).hexdigest()
        self.log.write(raw + b"\n")
        self.size += len(raw) + 1

    def store(self, attempt_id: str, month: str, payload: bytes) -> dict:
        """messagestore.put_many's entry, byte for byte (at another compression level)."""
        f, size = self.packs.get(month) or (open(self.packs_folder / f"{month}.pack", "wb", buffering=1 << 22), 0)
        packed = zlib.compress(payload, 1)
        digest, zdigest = hashlib.sha256(payload).hexdigest(), hashlib.sha256(packed).hexdigest()
        header = orjson.dumps({"id": attempt_id, "sha256": digest, "size": len(payload), "zsize": len(packed),
                               "zsha256": zdigest}) + b"\n"
        f.write(header + packed + b"\n")
        self.packs[month] = (f, size + len(header) + len(packed) + 1)
        return {"pack": f"{month}.pack", "offset": size + len(header), "zsize": len(packed), "size": len(payload),
                "sha256": digest, "zsha256": zdigest}

    def close(self, folder: Path) -> None:
        from notifier.log.attempts import HeadFile, Kept, head_file_for
        self.log.close()
        for f, _ in self.packs.values():
            f.close()
        HeadFile(head_file_for(folder / "attempts.jsonl")).write(Kept(self.seq, self.last, self.size))


def utc(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Ladder:
    """The attempts and staff records of every account, as groups of (time, records) to be merged
    in time order: an attempt's group is its sending, its outcome and its later statuses."""

    STAGES_ON_TIME = (("reminder", -3), ("due_today", 0))
    STAGES_LATE = (("overdue", 2), ("suspension_warning", 7), ("suspended", 10))

    def __init__(self, messages, rnd: random.Random):
        self.messages, self.rnd = messages, rnd

    def groups(self, i: int, addresses: list, due_day: int, fate: dict, months: tuple[int, ...], hold: bool,
               opt_out: str | None) -> list[tuple[datetime, list]]:
        """The groups of account i: (time of its first record, [(record, payload or None)])."""
        aid, rnd = account_id(i), self.rnd
        emails = [f"financeiro@{aid}.com.br"] + ([f"contato@{aid}.com.br"] if len(addresses) > 1 else [])
        out = []
        for month in months:
            due = date(2026, month, min(due_day, 28))
            kind = fate[month]
            invoice = f"2026-{month:02d}-{aid}"
            stages = list(self.STAGES_ON_TIME)
            if kind != "on_time":
                stages += self.STAGES_LATE
            first_late = kind != "on_time" and all(fate[m] == "on_time" for m in MONTHS if m < month)
            for stage, offset in stages:
                day = due + timedelta(days=offset)
                at = datetime(day.year, day.month, day.day, 12, 0, tzinfo=timezone.utc) + timedelta(
                    seconds=rnd.randint(0, 5400), milliseconds=rnd.randint(0, 999))
                channels = [("email", e) for e in emails]
                if stage in ("overdue", "suspension_warning"):
                    channels.append(("whatsapp", f"+55119{i:08d}"))
                if stage == "suspended":
                    channels.append(("sms", f"+55119{i:08d}"))
                if stage == "overdue" and first_late and i % 5 == 0:
                    channels.append(("social", f"instagram:@empresa{i}"))
                for channel, recipient in channels:
                    if opt_out == channel and month >= 10:
                        out.append((at, [(self.note(at, "skipped", "daemon", {
                            **self.fields(aid, invoice, stage, day), "channel": channel, "recipient": recipient,
                            "reason": "opted-out"}), None)]))
                        continue
                    out.append((at, self.attempt(at, aid, invoice, stage, day, channel, recipient)))
                    at += timedelta(milliseconds=rnd.randint(50, 400))
            if kind != "on_time" and rnd.random() < 0.3:  # staff called
                at = datetime(due.year, due.month, due.day, 14, tzinfo=timezone.utc) + timedelta(days=4, minutes=rnd.randint(0, 300))
                out.append((at, [(self.staff(at, "contact", {"account": aid, "channel": "phone",
                                                             "outcome": rnd.choice(("reached", "no_answer", "promised")),
                                                             "note": "cliente disse que paga na sexta"}), None)]))
            if kind == "late" and rnd.random() < 0.2:  # paid, recorded by hand from the bank statement
                paid = date.fromisoformat(fate[f"paid-{month}"])  # recorded the day after the bank's date
                at = datetime(paid.year, paid.month, paid.day, 15, tzinfo=timezone.utc) + timedelta(days=1)
                out.append((at, [(self.staff(at, "payment", {"invoice": invoice, "account": aid,
                                                             "paid": fate[f"paid-{month}"]},
                                             role="finance"), None)]))
        if hold:
            at = datetime(2026, 11, 27, 16, tzinfo=timezone.utc)
            out.append((at, [(self.staff(at, "hold", {"account": aid, "reason": "disputed", "until": "2026-12-20",
                                                      "note": "contestação em análise"}), None)]))
        elif i % 97 == 0:  # a hold that ended
            at = datetime(2026, 9, 2, 16, tzinfo=timezone.utc)
            out.append((at, [(self.staff(at, "hold", {"account": aid, "reason": "promised", "until": "2026-09-20",
                                                      "note": ""}), None)]))
            out.append((at + timedelta(days=5), [(self.staff(at + timedelta(days=5), "release", {
                "account": aid, "reason": "promised", "until": "2026-09-20"}), None)]))
        if opt_out:
            at = datetime(2026, 9, 28, 18, tzinfo=timezone.utc)
            out.append((at, [(self.staff(at, "opt_out", {"account": aid, "channel": opt_out, "date": "2026-09-28"}), None)]))
        return out

    def fields(self, aid: str, invoice: str, stage: str, day: date) -> dict:
        return {"account": aid, "invoices": [invoice], "stage": stage, "notice_date": day.isoformat(),
                "first_time": True, "tutorial": False, "covers": [[invoice, day.isoformat(), stage]],
                "template": f"email/{stage}", "attempt": 1}

    def note(self, at: datetime, event: str, actor: str, fields: dict) -> dict:
        return {"id": None, "event": event, "time": utc(at), "actor": actor, **fields}

    def staff(self, at: datetime, event: str, fields: dict, role: str = "support") -> dict:
        who = STAFF[self.rnd.randrange(len(STAFF))]
        return self.note(at, event, who, {**fields, "role": role, "client": "web"})

    def attempt(self, at, aid, invoice, stage, day, channel, recipient) -> list:
        """A sending, its outcome and its statuses: [(record, payload or None)]; ids filled by the writer."""
        rnd = self.rnd
        m = self.messages.template(stage, channel)
        content = {"subject": m.subject, "text": m.text} if channel == "email" else (
            {"content_sid": m.content_sid, "content_variables": dict(m.content_variables or {})} if m.content_sid
            else {"text": m.text})
        sending = {"id": None, "event": "sending", "time": utc(at), "actor": "daemon",
                   **self.fields(aid, invoice, stage, day), "channel": channel, "recipient": recipient, "content": content}
        same = {"account": aid, "channel": channel, "recipient": recipient}
        later = at + timedelta(milliseconds=rnd.randint(200, 2500))
        roll = rnd.random()
        if channel == "social":
            outcome = ("task", "staff-task", None, None, "send by hand")
        elif channel == "email":
            outcome = ("sent", "smtp", "4F2A1", "250", "250 2.0.0 Ok: queued as 4F2A1") if roll > 0.01 else (
                "failed", "smtp", None, "451", "451 4.7.1 try again later")
        elif roll < 0.03:
            outcome = ("blocked", "twilio", None, "63016", "fora da janela de 24h: modelo não aprovado")
        else:
            outcome = ("sent", "twilio", f"SM{rnd.getrandbits(64):016x}", None, "queued")
        event, provider, pid, code, detail = outcome
        records = [(sending, (stage, recipient) if channel == "email" else None),
                   ({"id": None, "event": event, "time": utc(later), "actor": "daemon", **same, "ref": None,
                     "provider": provider, "provider_id": pid, "code": code, "detail": detail,
                     "permanent": False, "evidence": {}}, None)]
        if event == "sent":
            statuses = []
            if channel == "email" and rnd.random() < 0.02:
                statuses = [("bounced", "550 5.1.1 mailbox unavailable")]
            elif channel in ("whatsapp", "sms"):
                statuses = [("delivered", "delivered")] + ([("read", "read")] if channel == "whatsapp" and rnd.random() < 0.7 else [])
                if rnd.random() < 0.05:
                    statuses = [("undelivered", "30003 unreachable")]
            for n, (status, why) in enumerate(statuses, 1):
                records.append(({"id": None, "event": status, "time": utc(later + timedelta(minutes=3 * n)),
                                 "actor": "daemon", **same, "ref": None, "provider": provider, "provider_id": pid,
                                 "code": None, "detail": why, "source": "callback"}, None))
        if channel == "social" and rnd.random() < 0.8:
            records.append((self.staff(later + timedelta(hours=3), "task_done", {
                "ref": None, "account": aid, "kind": "social", "outcome": "enviei pelo Instagram"}), None))
        return records


def build(folder: Path, accounts: int, records: int, emails: int) -> None:
    """Writes the fixture into `folder` (see the module's docstring)."""
    import heapq
    from notifier.billing.models import Hold
    from notifier.log.attempts import AttemptLog
    from notifier.state.store import Store
    rnd = random.Random(SEED)
    data, fates = billing(accounts, emails, rnd)
    (folder / "billing.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    cli(folder, "import", "billing.json", "--date", DAY)
    messages = SmsMessages()
    ladder = Ladder(messages, rnd)
    holds = {i for i in range(accounts) if i % 100 == 7}
    opt_outs = {i: ("sms" if i % 2 else "whatsapp") for i in range(accounts) if i % 100 == 13}
    # Each account's groups, merged in time order; then the newest groups up to `records`.
    # The newest months that hold `records` (about 7 records an account a month), one more to trim.
    months = MONTHS[-min(len(MONTHS), -(-records // (accounts * 6)) + 1):]
    per_account = [ladder.groups(i, data["accounts"][i]["emails"], data["accounts"][i]["due_day"], fates[account_id(i)],
                                 months, i in holds,
                                 opt_outs.get(i)) for i in range(accounts)]
    merged = list(heapq.merge(*(sorted(g, key=lambda x: x[0]) for g in per_account), key=lambda x: x[0]))
    del per_account
    total, start = 0, len(merged)
    while start > 0 and total + len(merged[start - 1][1]) <= records:
        start -= 1
        total += len(merged[start][1])
    events = sorted(((rec["time"], n, rec, payload, g) for g, (_, group) in enumerate(merged[start:])
                     for n, (rec, payload) in enumerate(group)), key=lambda e: (e[0], e[4], e[1]))
    writer = Writer(folder, rnd)
    ids: dict[int, str] = {}  # group -> its sending's (or first record's) id: what `ref` points at
    for _, n, rec, payload, g in events:
        rec["id"] = writer.new_id()
        if n == 0:
            ids[g] = rec["id"]
        if "ref" in rec and rec["ref"] is None:
            rec["ref"] = ids[g]
        writer.write(rec, None if payload is None else messages.payload(*payload))
    writer.close(folder)
    del events, merged
    # Holds and opt-outs in the state, as `hold` and `opt-out` leave them (one write for all).
    store = Store(folder / "state.json", log=AttemptLog(folder / "attempts.jsonl"))
    with store.transaction() as snap:
        for i in sorted(holds):
            snap.put_hold(Hold(account_id(i), "disputed", date(2026, 12, 20), STAFF[i % len(STAFF)],
                               date(2026, 11, 27), "contestação em análise"))
        for i, channel in sorted(opt_outs.items()):
            snap.record_opt_out(account_id(i), channel, STAFF[i % len(STAFF)], date(2026, 9, 28))
    # The ledger as the daily cycles that wrote this log would have left it: a row for each notice
    # handled of the invoices still in the state (about eight an account), by the daemon's own
    # reconcile. Without it the state is lighter than a real one and the bench's first run-once
    # rewrites the whole state to add them, beside the sessions.
    from notifier.run.cycle import reconcile
    reconcile(store, store.log, datetime(2026, 12, 7, 10, tzinfo=timezone.utc))
    # Everything in state.json itself (the writes above went to its journal): the benches copy
    # the state file alone, and a bench that lost the journal lost the holds, opt-outs and ledger.
    store.fold()
    journal = folder / "state.json.journal"
    if journal.exists() and journal.stat().st_size:
        raise SystemExit(f"{journal}: still holds entries after the fold")


class SmsMessages:
    """bench/attempts.py's real messages, SMS included (its `Messages` renders e-mail, WhatsApp and
    social): each (stage, channel) rendered once, e-mails given to each recipient."""

    def __init__(self):
        from bench.attempts import Messages
        from channels import build as build_channel
        self.inner = Messages()
        self.inner.channels["sms"] = build_channel("sms", self.inner.config)

    def template(self, stage: str, channel: str):
        """The message of (stage, channel) as rendered once (an e-mail to bench/attempts.py's TEMPLATE_TO)."""
        if (stage, channel) not in self.inner.cache:
            self.inner.get("acc-00000", stage, channel, "")
        return self.inner.cache[(stage, channel)]

    def payload(self, stage: str, recipient: str) -> bytes:
        """The e-mail of `stage` to `recipient`, as the real channel composed it."""
        from bench.attempts import TEMPLATE_TO
        return self.template(stage, "email").payload.replace(TEMPLATE_TO.encode(), recipient.encode())


def cli(folder: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=folder, input=stdin, text=True,
                          capture_output=True, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"notifier {' '.join(args)} failed: {proc.stderr[-2000:]}")
    return proc


def fixture(accounts: int = 50_000, records: int = 1_000_000, emails: int = 10_000) -> Path:
    """The folder of the fixture (built once, then cached): state, archive, log, packs, head."""
    folder = cache_dir("company", {"accounts": accounts, "records": records, "emails": emails, "seed": SEED},
                       # the state's and the log's formats too: a store or log written by older code is
                       # rebuilt (the format's modules, not the store's logic: a 10-minute build per change
                       # to how a transaction is taken would be a bench nobody runs)
                       ("bench/company.py", "bench/attempts.py", "bench/plan.py", "notifier/state/storefile.py",
                        "notifier/state/importer.py", "notifier/log/attempts.py", "notifier/log/messagestore.py"))
    if (folder / "done").exists():
        return folder
    import shutil
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    t = time.perf_counter()
    build(folder, accounts, records, emails)
    (folder / "done").write_text(f"{time.perf_counter() - t:.0f} s\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--emails", type=int, default=10_000)
    args = parser.parse_args()
    t = time.perf_counter()
    folder = fixture(args.accounts, args.records, args.emails)
    print(f"{folder} ({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
