"""One day's cycle: plan, screen, render, claim, send, log, and mark handled in the ledger.

The order of writes is what makes "at most once" survive a crash:
1. a message's `sending` record (the claim) is in the attempt log, fsynced, before its provider
   is called; claims are written for a batch at a time (one fsync for many: group commit);
2. outcomes are appended as they come back, also grouped;
3. the ledger (in the store) is updated in batches, a handful of store writes per cycle, and the
   store lock is only held for those writes, never while a provider is being called.
A process that dies between 1 and 3 leaves claims the ledger does not know: `reconcile()` at the
next start writes their ledger rows from the log (a `sending` record carries the `covers` of its
notice), and claims with no outcome become `unknown` (`log.recover`), which are never sent again
automatically but given to staff as tasks.

What a notice becomes, by outcome (ledger row or not):
- sent / task / failed permanently / skipped / unknown: a ledger row: handled, never again;
- failed temporarily, blocked (our configuration problem), waiting for contact hours, on hold:
  no row, so a later pass within the notice's catch-up window sends it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Callable, Iterable, Iterator

from notifier import channels
from notifier.channels import FAILED, OUTBOX, SENT, ChannelError, Message, Result

from notifier.billing import hours, rules
from notifier.log.attempts import AttemptLog, LinesAfter, Mark, parse_line, seq_of
from notifier.config import Config
from notifier.run.delivery import Delivery, close_all, do_not_contact, failure_alerts, notice_fields, prepare
from notifier.run.dispatch import BLOCKED, Job, Outcome, Pool
from notifier.staff.holds import screen
from notifier.billing.models import LedgerEntry, Notice
from notifier.state.store import Store, ledger_key

logger = logging.getLogger("notifier.cycle")

TASK = getattr(channels, "TASK", "task")
UNKNOWN = "unknown"
# Claims are written ahead of the workers, a group at a time (one fsync each): up to CLAIM_AHEAD
# messages per worker. That bounds what a SIGKILL can leave `unknown` (claimed, never sent).
CLAIM_AHEAD = 4
CLAIM_MIN = 64  # ...and at least this many: one fsync per message would cost more than the sends
# Each fsync in this thread also waits for the workers to hand back the GIL: outcomes are logged
# in groups (half a claim window of answers, or OUTCOME_SECONDS), which only delays their record.
OUTCOME_SECONDS = 0.1
FLUSH_EVERY = 2500  # outcomes between two ledger writes...
FLUSH_SECONDS = 15.0  # ...or seconds, whichever comes first
STAMP_SECONDS = 0.5  # how often the cycle looks whether another process changed the store
COLUMNS = ("sent", "outbox", "task", "failed", "retry", "waiting", "held", "skipped", "blocked")


@dataclass
class Summary:
    """Per channel, how many notices ended how; `waiting_until` the earliest contact-hours time."""
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    waiting_until: datetime | None = None
    stopped: bool = False
    problems: dict[str, str] = field(default_factory=dict)  # blocked: code -> what to configure

    def add(self, channel: str, column: str, n: int = 1) -> None:
        self.counts[channel][column] += n

    def total(self, column: str) -> int:
        return sum(c[column] for c in self.counts.values())

    def to_json(self) -> dict:
        return {ch: {k: c[k] for k in COLUMNS if c[k]} for ch, c in sorted(self.counts.items())}

    def table(self) -> list[list]:
        rows = [[ch, *(c[k] for k in COLUMNS)] for ch, c in sorted(self.counts.items())]
        return rows + [["total", *(self.total(k) for k in COLUMNS)]] if len(rows) > 1 else rows


def outcome_column(result: Result) -> str:
    if result.status in (SENT, OUTBOX):
        return result.status
    if result.status == TASK:
        return "task"
    if result.status == BLOCKED:
        return "blocked"
    return "failed" if result.permanent else "retry"


def ledger_status(status: str, permanent: bool) -> str | None:
    """The ledger row an outcome writes, or None when the notice must be tried again."""
    if status in (SENT, OUTBOX, TASK, UNKNOWN):
        return status
    if status == FAILED and permanent:
        return "failed"
    return None


def ledger_rows(fields: dict, status: str, attempt_id: str | None) -> list[LedgerEntry]:
    """The ledger rows of one logged notice: one per invoice timeline entry it covers."""
    return [
        LedgerEntry(inv, fields["account"], date.fromisoformat(day), stage, fields["channel"], fields["recipient"],
                    status, bool(fields.get("tutorial")) and status in (SENT, OUTBOX), attempt_id)
        for inv, day, stage in fields.get("covers", ())
    ]


# --- at start: the ledger catches up with the log ------------------------------------------------


def reconcile(store: Store, log: AttemptLog, now: datetime) -> tuple[int, int]:
    """Make the ledger agree with the attempt log after a crash; returns (unknown, rows added).

    Claims without an outcome become `unknown` (never re-sent). Then every record appended since
    the last reconcile is read: a claim whose outcome handles it (sent, task, permanent failure,
    unknown) and every `skipped` with covers gives ledger rows, added where the ledger has none.
    Run it when no cycle is running (the daemon's pid lock sees to that).
    """
    store.refuse_a_cut_log()  # before recovery appends to a log that lost records
    applied_doc = store.snapshot().meta("log_applied") or {}
    unknown = log.recover(now, since=Mark.of(applied_doc.get("answered")))
    answered = log.answered or Mark.of(applied_doc.get("answered"))
    applied = applied_doc.get("records", 0)
    claims: dict[str, dict] = {}
    outcomes: dict[str, tuple[str, bool]] = {}
    skips: list[dict] = []
    lines = LinesAfter(log.path, Mark.of(applied_doc))
    for record in _records_after(lines, applied):
        event = record.get("event")
        if event == "sending":
            if record.get("covers"):
                claims[record["id"]] = record
        elif event == "skipped":
            if record.get("covers"):
                skips.append(record)
        elif record.get("ref"):
            outcomes[record["ref"]] = (event, bool(record.get("permanent")))
    end = lines.end if lines.end.records >= applied else Mark(applied, 0)
    rows = [row for record in skips for row in ledger_rows(record, "skipped", None)]
    for attempt_id, claim in claims.items():
        status = ledger_status(*outcomes.get(attempt_id, (None, False)))
        if status is not None:
            rows += ledger_rows(claim, status, attempt_id)
    checkpoint = {**end.doc(), **({"answered": answered.doc()} if answered else {})}
    with store.transaction() as snap:
        invoices, ledger = snap.raw["invoices"], snap.raw["ledger"]
        missing = [r for r in rows if r.invoice in invoices and ledger_key(r) not in ledger]
        if missing:
            snap.add_ledger(missing)
        if checkpoint != applied_doc:
            snap.set_meta("log_applied", checkpoint)
    if unknown or missing:
        logger.warning("reconciled the ledger with the attempt log: %d unknown attempt(s), %d ledger row(s) added",
                       len(unknown), len(missing))
    return len(unknown), len(missing)


def _records_after(lines: Iterable[bytes], applied: int) -> Iterator[dict]:
    """The records numbered after `applied` among `lines` (which start at the mark of the last
    reconcile when it still fits the log: a run-once each day would otherwise read the whole log,
    a little longer every day, to use only its last day's records). Lines before are skipped on
    their first bytes (`{"seq":N,`), unparsed."""
    for raw in lines:
        seq = seq_of(raw)
        if seq is not None and seq <= applied:
            continue
        record = parse_line(raw)
        if record is not None and record["seq"] > applied:
            yield record


# --- the cycle -------------------------------------------------------------------------------------


class Cycle:
    """One pass over a day's plan. Run it any number of times a day: the ledger makes a pass
    send only what is still pending (what waited for contact hours, what failed temporarily).

    `clock` gives the current time in the configured zone (frozen days advance it from the
    cycle's start); `stop` (an Event) ends the pass early and cleanly; `progress(done, total)`
    is told as messages finish.
    """

    def __init__(self, store: Store, config: Config, log: AttemptLog, renderer, clock: Callable[[], datetime],
                 stop: threading.Event | None = None, progress: Callable[[int, int], None] | None = None,
                 actor: str = "daemon"):
        self.store, self.config, self.log, self.renderer = store, config, log, renderer
        self.clock = clock
        self.stop = stop or threading.Event()
        self.progress = progress or (lambda done, total: None)
        self.actor = actor
        self.log_lock = threading.Lock()
        # Channels that prepare each message's bytes before its claim (no provider is called).
        self._preparers: dict = {}

    def run(self, today: date, dry_run: bool = False, limit: int | None = None) -> Summary:
        now = self.clock()
        summary = Summary()
        snap = self.store.snapshot()
        plan = rules.plan_day(today, snap.accounts(), snap.invoices(), snap.histories(), snap.ledger(),
                              self.config.calendar, self.config)
        account_of = {inv.id: inv.account for inv in snap.invoices()}
        screened = screen(today, plan.notices, plan.superseded, snap.holds(), do_not_contact(self.config), account_of)
        for notice in screened.held:
            summary.add(notice.channel, "held")
        sendable = []
        for notice in screened.send:
            if hours.allowed(notice.channel, now, self.config.contact_hours):
                sendable.append(notice)
                continue
            summary.add(notice.channel, "waiting")
            at = hours.next_allowed(notice.channel, now, self.config.contact_hours)
            if at is not None and (summary.waiting_until is None or at < summary.waiting_until):
                summary.waiting_until = at
        blocked = self._broken_channels({n.channel for n in sendable})
        for notice in sendable:
            if notice.channel in blocked:
                summary.add(notice.channel, "blocked")
                summary.problems[f"config:channel.{notice.channel}"] = blocked[notice.channel]
        sendable = [n for n in sendable if n.channel not in blocked]
        if limit is not None:
            sendable = sendable[:limit]
        if dry_run:
            self._dry_run(snap, today, sendable, screened, summary)
            return summary
        rows = self._record_skips(screened, account_of, summary)
        deliveries = self._send(snap, today, sendable, rows, summary)
        self._alert(snap, today, deliveries, summary)
        return summary

    def _broken_channels(self, names: Iterable[str]) -> dict[str, str]:
        """Channels that cannot be built as configured (a missing credential, a bad rate): their
        messages are blocked, the others go on."""
        from notifier.run.dispatch import rate_of
        broken = {}
        for name in sorted(names):
            try:
                rate_of(self.config, name)
                channels.build(name, self.config).close()
            except ChannelError as exc:
                broken[name] = str(exc)
        return broken

    def _dry_run(self, snap, today, sendable, screened, summary: Summary) -> None:
        for notice in sendable:
            try:
                self._render(snap, notice, today)
                summary.add(notice.channel, "sent")
            except Exception as exc:
                summary.add(notice.channel, "blocked")
                summary.problems[f"config:template.{notice.channel}/{notice.stage}"] = str(exc)
        for notice, _ in screened.refused:
            summary.add(notice.channel, "skipped")
        for pending, _ in screened.superseded:
            summary.add(pending.channel, "skipped")

    def _record_skips(self, screened, account_of, summary: Summary) -> list[LedgerEntry]:
        """Log `skipped` (superseded, do-not-contact, a hold's reason) and return their ledger rows.
        Superseded entries are grouped per account, channel, recipient and reason: one record each."""
        now = self.clock()
        groups: dict[tuple, list] = defaultdict(list)
        for pending, reason in screened.superseded:
            groups[(account_of[pending.invoice], pending.channel, pending.recipient, reason)].append(pending)
        rows: list[LedgerEntry] = []
        for (account, channel, recipient, reason), items in sorted(groups.items()):
            fields = {"account": account, "channel": channel, "recipient": recipient,
                      "invoices": sorted({p.invoice for p in items}), "stage": items[-1].notice.stage,
                      "covers": [[p.invoice, p.notice.date.isoformat(), p.notice.stage] for p in items]}
            record = self.log.skip(now, fields, reason, actor=self.actor)
            rows += ledger_rows(fields, "skipped", record)
            summary.add(channel, "skipped", len(items))
        for notice, reason in screened.refused:
            fields = notice_fields(notice)
            record = self.log.skip(now, fields, reason, actor=self.actor)
            rows += ledger_rows(fields, "skipped", record)
            summary.add(notice.channel, "skipped")
        return rows

    def _render(self, snap, notice: Notice, today: date) -> Message:
        open_invoices = [i for i in snap.invoices(notice.account) if i.unpaid_on(today)]
        return self.renderer.render(notice, snap.account(notice.account), open_invoices, today)

    def _send(self, snap, today: date, notices: list[Notice], rows: list[LedgerEntry],
              summary: Summary) -> list[Delivery]:
        """Claim, send and log `notices` through the worker pool, writing the ledger in batches."""
        pool = Pool(self.config, self.log, self.clock, self.stop, log_lock=self.log_lock, actor=self.actor)
        ledger = _LedgerWriter(self.store, rows)
        queue = list(reversed(notices))  # popped from the end: in plan order
        window = max(CLAIM_AHEAD * pool.workers, CLAIM_MIN)
        total, done = len(notices), 0
        deliveries: list[Delivery] = []
        answered: list[Outcome] = []  # outcomes not yet in the log: written in groups too
        oldest = 0.0
        try:
            while queue or pool.outstanding:
                if queue and not self.stop.is_set() and pool.outstanding <= window // 2:
                    self._claim(snap, today, queue, pool, summary, window - pool.outstanding)
                got = pool.take()
                if got and not answered:
                    oldest = time.monotonic()
                answered += got
                if answered and (len(answered) >= window // 2 or not pool.outstanding or self.stop.is_set()
                                 or time.monotonic() - oldest >= OUTCOME_SECONDS):
                    self._finish(answered, ledger, summary, deliveries)
                    done += len(answered)
                    answered = []
                    self.progress(done, total)
                if self.stop.is_set() and not pool.outstanding:
                    break
                if ledger.due():
                    stale = ledger.flush(today)
                    if stale:
                        queue[:] = [n for n in queue if not stale(n)]
        finally:
            pool.close()
            close_all(self._preparers)
            if answered:
                self._finish(answered, ledger, summary, deliveries)
            ledger.flush(today)
        summary.stopped = self.stop.is_set() and bool(queue)
        return deliveries

    def _claim(self, snap, today, queue: list[Notice], pool: Pool, summary: Summary, size: int) -> None:
        """Render the next `size` messages, write their claims with one fsync, hand them to the workers."""
        batch = []
        while queue and len(batch) < size:
            notice = queue.pop()
            try:
                message = self._render(snap, notice, today)
            except Exception as exc:  # a broken template stops only the messages that need it
                code = f"config:template.{notice.channel}/{notice.stage}"
                summary.add(notice.channel, "blocked")
                summary.problems.setdefault(code, f"{type(exc).__name__}: {exc}")
                continue
            message, _ = prepare(self._preparers, self.config, message)  # a channel error blocks it in the pool
            batch.append((notice, message, notice_fields(notice, message)))
        if not batch:
            return
        now = self.clock()
        with self.log_lock:
            ids = self.log.start_many([(now, m, f, self.actor, m.payload, m.meta["attempt_id"]) for _, m, f in batch])
        for (notice, message, fields), attempt in zip(batch, ids):
            pool.submit(Job(notice, message, fields, attempt))

    def _finish(self, outcomes: list[Outcome], ledger: "_LedgerWriter", summary: Summary,
                deliveries: list[Delivery]) -> None:
        with self.log_lock:
            self.log.finish_many([(o.attempt, o.when, o.result) for o in outcomes if o.attempt is not None])
        for o in outcomes:
            result, notice = o.result, o.job.notice
            summary.add(notice.channel, outcome_column(result))
            if result.status == BLOCKED:
                summary.problems.setdefault(result.code or f"config:{notice.channel}", result.detail)
            status = ledger_status(result.status, result.permanent)
            if status is not None:
                ledger.add(ledger_rows(o.job.fields, status, o.attempt or o.job.attempt))
            deliveries.append(Delivery(notice, o.job.message, o.attempt or o.job.attempt, result))
            if not result.ok:
                logger.info("%s %s → %s: %s%s: %s", notice.account, notice.channel, notice.recipient, result.status,
                            " [permanent]" if result.permanent else "", result.detail)

    def _alert(self, snap, today: date, deliveries: list[Delivery], summary: Summary) -> None:
        """Staff alerts: each permanent failure, and each configuration problem once a day."""
        alerts = failure_alerts(snap, self.renderer, deliveries, today)
        for code, detail in sorted(self._new_problems(today, summary.problems).items()):
            alerts.append((None, config_alert(code, detail, today)))
        if not alerts:
            return
        try:
            staff = channels.build("staff", self.config)
        except ChannelError as exc:
            logger.error("cannot alert staff: %s", exc)
            return
        try:
            for notice, message in alerts:
                fields = {"account": notice.account, "stage": notice.stage, "invoices": list(notice.invoices),
                          "channel": "staff", "recipient": "staff", "alert": message.meta.get("alert")} \
                    if notice else {"channel": "staff", "recipient": "staff", **message.meta}
                with self.log_lock:
                    [attempt] = self.log.start_many([(self.clock(), message, fields, self.actor, None)])
                try:
                    result = staff.send(message)
                except Exception as exc:
                    result = Result(FAILED, "staff", detail=f"{type(exc).__name__}: {exc}", permanent=True)
                with self.log_lock:
                    self.log.finish_many([(attempt, self.clock(), result)])
                if not result.ok:
                    logger.error("staff alert not delivered: %s", result.detail)
        finally:
            staff.close()

    def _new_problems(self, today: date, problems: dict[str, str]) -> dict[str, str]:
        """The configuration problems not yet reported to staff today (one alert per problem per day)."""
        if not problems:
            return {}
        with self.store.transaction() as snap:
            seen = snap.meta("alerts") or {}
            reported = set(seen.get("codes", ())) if seen.get("date") == today.isoformat() else set()
            new = {code: detail for code, detail in problems.items() if code not in reported}
            if new:
                snap.set_meta("alerts", {"date": today.isoformat(), "codes": sorted(reported | set(new))})
        return new


def record_cycle(store: Store, today: date, now: datetime, summary: Summary, pid: int | None = None) -> None:
    """The heartbeat `notifier status` reads: when the last pass ran, for which day, and its counts."""
    beat = {"time": now.isoformat(timespec="seconds"), "day": today.isoformat(), "counts": summary.to_json(),
            "waiting_until": summary.waiting_until.isoformat(timespec="minutes") if summary.waiting_until else None,
            "stopped": summary.stopped, "pid": pid}
    with store.transaction() as snap:
        snap.set_meta("heartbeat", beat)
        if not summary.stopped:
            last = snap.meta("last_cycle") or {}
            if last.get("day", "") <= today.isoformat():
                snap.set_meta("last_cycle", {"day": today.isoformat(), "time": beat["time"]})


def config_alert(code: str, detail: str, today: date) -> Message:
    """The staff alert for one configuration problem: messages are waiting for someone to fix it."""
    text = (f"Problema de configuração do notificador em {today:%d/%m/%Y}: {code}\n\n{detail}\n\n"
            "As mensagens que dependem disso não foram enviadas e serão enviadas quando a configuração "
            "for corrigida (veja `notifier check`). Não é falha do cliente.\n")
    return Message(channel="staff", recipient="staff", subject=f"Configuração: {code}", text=text,
                   meta={"alert": "config", "code": code})


class _LedgerWriter:
    """Ledger rows waiting to be written, flushed every FLUSH_EVERY rows or FLUSH_SECONDS.

    Each flush is one store transaction (lock, read, write): it is also when the cycle learns of
    payments and holds recorded by other processes meanwhile, and drops the queued notices they
    concern (the next pass plans them again, rendered with the payment known)."""

    def __init__(self, store: Store, rows: list[LedgerEntry]):
        self._time = time.monotonic
        self.store = store
        self.rows = list(rows)
        self.count = 0
        self.last = self._time()
        self.writes = 0
        self.seen = self._stamp()
        self.looked = self.last

    def add(self, rows: list[LedgerEntry]) -> None:
        self.rows += rows
        self.count += len(rows)

    def due(self) -> bool:
        """Time to write: enough rows, enough time, or another process changed the store (a
        payment, a hold: learn of it now rather than at the end). The store's file is looked at
        once every STAMP_SECONDS, not at every turn of the cycle's loop: a stat() gives up the
        GIL, and the senders then keep the cycle's thread waiting to get it back."""
        now = self._time()
        if now - self.looked >= STAMP_SECONDS:
            self.looked = now
            if self._stamp() != self.seen:
                return True
        return bool(self.rows) and (self.count >= FLUSH_EVERY or now - self.last >= FLUSH_SECONDS)

    def _stamp(self) -> int | None:
        try:
            return self.store.path.stat().st_mtime_ns
        except OSError:
            return None

    def flush(self, today: date):
        """Write the waiting rows; returns a predicate telling the queued notices that a payment or
        hold recorded meanwhile has made stale (None when there are none)."""
        self.last, self.count = self._time(), 0
        with self.store.transaction() as snap:
            if self.rows:
                snap.add_ledger(self.rows)
                self.writes += 1
            paid = {key for key, doc in snap.raw["invoices"].items()
                    if doc.get("paid") is not None and doc["paid"] <= today.isoformat()}
            held = {h.account for h in snap.holds().values() if h.active_on(today)}
        self.rows = []
        self.seen = self._stamp()
        if not paid and not held:
            return None
        return lambda n: n.account in held or any(inv in paid for inv in n.invoices)
