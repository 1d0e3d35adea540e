"""One day's cycle: plan, screen, render, claim, send, log, and mark handled in the ledger.

The order of writes is what makes "at most once" survive a crash:
1. a message's `sending` record (the claim) is in the attempt log, fsynced, before its provider
   is called; a worker claims its next message when it is free to send it, together with the
   outcome of its last one, and the claims of the workers free at once share one fsync (group
   commit, `_Claims`); claims are written under the store's lock, after looking at what staff
   changed, so a payment, hold or opt-out that returned stops what it concerns at once;
2. outcomes are appended as the workers come back for their next message, also grouped;
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
A notice that failed temporarily waits before its next pass (`next_try`), one try a pass, so an
outage of a few minutes does not use up every notice's tries; a blocked notice is logged once
(`meta` BLOCKED_NOTICES), and later passes count it without claiming it while it is still blocked.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Callable, Iterable, Iterator

from notifier import channels
from notifier.channels import FAILED, OUTBOX, SENT, UNKNOWN, ChannelError, Message, Result

from notifier.billing import hours, rules
from notifier.log.attempts import AttemptLog, LinesAfter, Mark, parse_line, seq_of
from notifier.config import Config
from notifier.run.delivery import Delivery, close_all, do_not_contact, failure_alerts, notice_fields, prepare
from notifier.run.dispatch import BLOCKED, Job, Outcome, Pool, retryable
from notifier.staff.holds import screen
from notifier.billing.models import LedgerEntry, Notice
from notifier.state.store import Store, ledger_key

logger = logging.getLogger("notifier.cycle")

TASK = getattr(channels, "TASK", "task")
FLUSH_EVERY = 2500  # outcomes between two ledger writes...
FLUSH_SECONDS = 15.0  # ...or seconds, whichever comes first
# `meta` key: per ledger key of a notice not yet handled, how many claims of it failed temporarily
# over past passes and days, and from when a pass may try it again ({"counts": {key: n}, "next":
# {key: iso time}}); `[cycle] notice_tries` bounds the count.
TRIES = "tries"
# `meta` key: the ledger keys of the notices already logged as blocked ({"notices": {key: code}}).
BLOCKED_NOTICES = "blocked"
# A notice that failed temporarily in a pass is tried again 15 minutes later (a provider's outage
# often lasts minutes), then after 1 h, 4 h...: each later wait four times the one before, at most a day.
FIRST_WAIT = timedelta(minutes=15)
LONGEST_WAIT = timedelta(days=1)
ALERT_LINES = 100  # notices listed in one staff alert of exhausted tries; the rest are counted
COLUMNS = ("sent", "outbox", "task", "unknown", "failed", "retry", "waiting", "held", "skipped", "blocked")


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
    if result.status in (SENT, OUTBOX, TASK, UNKNOWN):
        return result.status
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


def gave_up(result: Result) -> Result:
    """A temporary failure that used the notice's last try (`[cycle] notice_tries`): it has failed
    for good, and staff are told once (cause "exhausted")."""
    return replace(result, permanent=True, code="exhausted", detail=f"{result.code}: {result.detail}")


def next_try(started: datetime, used: int, tries: int) -> datetime:
    """When a notice that has used `used` tries, the last ones failed temporarily in the pass that
    `started` then, may be tried again. The first pass gives it `tries` ([cycle] tries) and each
    later pass one, so the tries beyond `tries` count the waits already made: 15 min, 1 h, 4 h...
    Rounded down to the minute: the daemon's passes come minutes apart, seconds after the minute."""
    wait = min(FIRST_WAIT * 4 ** min(max(used - tries, 0), 5), LONGEST_WAIT)
    return (started + wait).replace(second=0, microsecond=0)


def keys_of(fields: dict) -> list[str]:
    """The ledger keys of a logged notice (one per invoice timeline entry it covers)."""
    return [ledger_key(row) for row in ledger_rows(fields, "", None)]


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
    unknown) and every `skipped` with covers gives ledger rows, added where the ledger has none;
    a payment recorded with `pay` is given back to an open invoice (`Snapshot.restore_payments`).
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
    payments: dict[str, str] = {}
    lines = LinesAfter(log.path, Mark.of(applied_doc))
    for record in _records_after(lines, applied):
        event = record.get("event")
        if event == "sending":
            if record.get("covers"):
                claims[record["id"]] = record
        elif event == "skipped":
            if record.get("covers"):
                skips.append(record)
        elif event in ("payment", "payment_corrected"):  # staff.payments: the latest date wins
            payments[record.get("invoice")] = record.get("paid")
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
        restored, conflicts = snap.restore_payments(payments)  # a state rebuilt from a re-import
        if checkpoint != applied_doc:
            snap.set_meta("log_applied", checkpoint)
    if unknown or missing or restored:
        logger.warning("reconciled the ledger with the attempt log: %d unknown attempt(s), %d ledger row(s) added, "
                       "%d payment(s) recorded with `pay` restored", len(unknown), len(missing), len(restored))
    for invoice, stored, logged in conflicts:
        logger.warning("invoice %s: the state says paid on %s, the attempt log's `pay` record %s: kept %s",
                       invoice, stored, logged, stored)
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
        sendable = self._due_for_a_try(sendable, (snap.meta(TRIES) or {}).get("next", {}), now, summary)
        if limit is not None:
            sendable = sendable[:limit]
        if dry_run:
            self._dry_run(snap, today, sendable, screened, summary)
            return summary
        rows = self._record_skips(screened, account_of, summary)
        deliveries = self._send(snap, today, sendable, _LedgerWriter(self.store, rows, snap, now), summary)
        self._alert(snap, today, deliveries, summary)
        return summary

    @staticmethod
    def _due_for_a_try(notices: list[Notice], next_at: dict[str, str], now: datetime, summary: Summary) -> list[Notice]:
        """The notices a pass may try now: a notice that failed temporarily waits for its next try
        (`next_try`); meanwhile it is counted as to retry."""
        if not next_at:
            return notices
        due = []
        for notice in notices:
            waits = [datetime.fromisoformat(next_at[k]) for k in keys_of(notice_fields(notice)) if k in next_at]
            if waits and max(waits) > now:
                summary.add(notice.channel, "retry")
            else:
                due.append(notice)
        return due

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

    def _send(self, snap, today: date, notices: list[Notice], ledger: "_LedgerWriter",
              summary: Summary) -> list[Delivery]:
        """Claim, send and log `notices` through the worker pool, writing the ledger in batches.
        The workers claim through `_Claims` (a group commit each time they are free); this thread
        takes their outcomes, already in the log, into the summary and the ledger."""
        claims = _Claims(self, snap, today, notices, ledger)
        pool = Pool(self.config, self.log, self.clock, self.stop, log_lock=self.log_lock, actor=self.actor, feed=claims)
        total, done = len(notices), 0
        deliveries: list[Delivery] = []
        try:
            while pool.busy():
                got = pool.take()
                self._finish(got, ledger, summary, deliveries)
                done += len(got)
                if got:
                    self.progress(done, total)
                if ledger.due():
                    ledger.flush()
        finally:
            pool.close()
            close_all(self._preparers)
            self._finish(pool.take(timeout=0), ledger, summary, deliveries)
            ledger.flush()
        for notice, code, problem in claims.blocked:
            summary.add(notice.channel, "blocked")
            summary.problems.setdefault(code, problem)
        if pool.error is not None:
            raise pool.error
        summary.stopped = self.stop.is_set() and claims.left()
        return deliveries

    def _finish(self, outcomes: list[Outcome], ledger: "_LedgerWriter", summary: Summary,
                deliveries: list[Delivery]) -> None:
        """Outcomes the workers' claims already wrote to the log: into the summary and the ledger.
        A temporary failure counts against the notice's tries; its last one makes it failed."""
        for o in outcomes:
            result, notice = o.result, o.job.notice
            if retryable(result) and result.code != "stopped":
                used = ledger.tried(o.job.fields, o.tries)
                if used >= self.config.cycle.notice_tries:
                    result = gave_up(result)
                else:
                    ledger.wait(o.job.fields, next_try(ledger.started, used, self.config.cycle.tries))
            summary.add(notice.channel, outcome_column(result))
            if result.status == BLOCKED:
                summary.problems.setdefault(result.code or f"config:{notice.channel}", result.detail)
                ledger.blocked(o.job.fields, result.code or f"config:{notice.channel}")
            status = ledger_status(result.status, result.permanent)
            if status is not None:
                ledger.add(ledger_rows(o.job.fields, status, o.attempt or o.job.attempt))
            deliveries.append(Delivery(notice, o.job.message, o.attempt or o.job.attempt, result))
            if not result.ok:
                logger.info("%s %s → %s: %s%s: %s", notice.account, notice.channel, notice.recipient, result.status,
                            " [permanent]" if result.permanent else "", result.detail)

    def _alert(self, snap, today: date, deliveries: list[Delivery], summary: Summary) -> None:
        """Staff alerts: each permanent failure, one for every notice whose tries ran out in this
        pass (an outage ends the tries of many at once), and each configuration problem once a day."""
        exhausted = [d for d in deliveries if d.result.code == "exhausted"]
        alerts = failure_alerts(snap, self.renderer, [d for d in deliveries if d.result.code != "exhausted"], today)
        if exhausted:
            alerts.append((None, exhausted_alert(exhausted, today)))
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


def exhausted_alert(exhausted: list[Delivery], today: date) -> Message:
    """One staff alert for the notices whose tries ran out in one pass, each with its last answer."""
    n = len(exhausted)
    avisos = f"{n} aviso{'s' if n > 1 else ''}"
    lines = [f"- conta {d.notice.account}: {d.notice.channel} para {d.notice.recipient}, aviso \"{d.notice.stage}\" "
             f"de {d.notice.date:%d/%m/%Y}. Última resposta de {d.result.provider}: {d.result.detail[:200]}"
             for d in exhausted[:ALERT_LINES]]
    if n > ALERT_LINES:
        lines.append(f"- e mais {n - ALERT_LINES} (veja `notifier attempts --status failed`)")
    text = (f"{avisos} falh{'aram' if n > 1 else 'ou'} em todas as tentativas permitidas ao longo da janela de "
            "recuperação (provedor fora do ar, limite de envio, rede), e o notificador não vai mais tentar:\n\n"
            + "\n".join(lines) + "\n\nVerifique o status do provedor; quando ele voltar, envie os avisos "
            "manualmente (`notifier send CONTA --channel CANAL`), se ainda fizer sentido.\n")
    return Message(channel="staff", recipient="staff", text=text,
                   subject=f"Tentativas esgotadas: {avisos} não enviado{'s' if n > 1 else ''} em {today:%d/%m/%Y}",
                   meta={"alert": "failure:exhausted", "notices": n})


class _Request:
    """One worker's turn at the group commit: the outcome it hands in, the retry it asks to claim;
    `job` is what it got."""

    def __init__(self, done: Outcome | None, again: Job | None):
        self.done, self.again = done, again
        self.job: Job | None = None
        self.answered = False
        self.error: BaseException | None = None


class _Claims:
    """The pool's feed: outcomes and claims written as workers become free, in group commits.

    A worker that finished a message asks for its next one. The first to find no commit under way
    writes the requests of every waiting worker: under the store's lock, after looking at what
    staff changed (payments, holds, opt-outs), their outcomes and their next claims, in one append
    (one fsync); the others wait for it. Staff commands commit under that same lock before
    they return, so a claim written after a command returned has seen it: nothing it stops is
    claimed (issue 18, point 1). And a message is claimed only when a worker is free to send it,
    so a kill leaves at most one claim per worker without its outcome (point 13).
    Rendering happens here too, outside the store's lock, for the messages about to be claimed.
    """

    def __init__(self, cycle: Cycle, snap, today: date, notices: list[Notice], ledger: "_LedgerWriter"):
        self.cycle, self.snap, self.today, self.ledger = cycle, snap, today, ledger
        self.queue = list(reversed(notices))  # popped from the end: in plan order
        # Not claimed: a broken template, or still blocked and already logged so: (notice, code, problem).
        self.blocked: list[tuple[Notice, str, str]] = []
        self._cond = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False
        self._stamp: tuple | None = None  # of the store when `_stopped` was read
        self._stopped: Callable[[Notice], bool] = lambda n: False

    def left(self) -> bool:
        return bool(self.queue)

    def __call__(self, done: Outcome | None, again: Job | None) -> Job | None:
        request = _Request(done, again)
        with self._cond:
            self._waiting.append(request)
            while not request.answered:
                if self._busy:
                    self._cond.wait()
                    continue
                batch, self._waiting, self._busy = self._waiting, [], True
                self._cond.release()
                try:
                    self._commit(batch)
                except BaseException as exc:  # every waiting worker stops: nothing is sent unclaimed
                    for r in batch:
                        r.error = exc
                finally:
                    self._cond.acquire()
                    self._busy = False
                    for r in batch:
                        r.answered = True
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.job

    def _commit(self, batch: list[_Request]) -> None:
        cycle = self.cycle
        # The outcomes go in the claims' append (one fsync): a kill leaves both or neither.
        finished = [(r.done.attempt, r.done.when, r.done.result) for r in batch
                    if r.done is not None and r.done.attempt is not None]
        wanting = [r for r in batch if r.again is not None or not cycle.stop.is_set()]
        while wanting:
            offers = [(r, r.again or self._next()) for r in wanting]
            offers = [(r, job) for r, job in offers if job is not None]
            if not offers:
                break
            now = cycle.clock()
            with cycle.store.locked() as stamp:
                if stamp != self._stamp:
                    self._stopped, self._stamp = stops(cycle.store.snapshot(), self.today), stamp
                claims = [(r, job) for r, job in offers if not self._stopped(job.notice)]
                with cycle.log_lock:
                    ids = cycle.log.finish_and_start(finished, [
                        (j.message.date or now, j.message, j.fields, cycle.actor, j.message.payload,
                         j.message.meta["attempt_id"]) for _, j in claims])
            finished = []
            for (r, job), attempt in zip(claims, ids):
                r.job = replace(job, attempt=attempt)
            # A retry refused stays refused; a next message refused is replaced by the one after.
            wanting = [r for r, _ in offers if r.job is None and r.again is None]
        if finished:
            with cycle.log_lock:
                cycle.log.finish_many(finished)

    def _next(self) -> Job | None:
        """The next message of the plan, rendered and prepared, not yet claimed; None at the end."""
        while self.queue:
            notice = self.queue.pop()
            try:
                message = self.cycle._render(self.snap, notice, self.today)
            except Exception as exc:  # a broken template stops only the messages that need it
                self.blocked.append((notice, f"config:template.{notice.channel}/{notice.stage}",
                                     f"{type(exc).__name__}: {exc}"))
                continue
            # A channel that cannot prepare it (a missing credential) blocks it in the pool.
            # Composed now: the e-mail's Date: is the time its claim records (see _commit).
            message, channel = prepare(self.cycle._preparers, self.cycle.config, message, when=self.cycle.clock())
            fields = notice_fields(notice, message)
            if self.ledger.was_blocked(fields) and not isinstance(channel, ChannelError):
                result = channel.blocked(message)
                if result is not None:  # still blocked: its record is in the log already
                    self.blocked.append((notice, result.code, result.detail))
                    continue
            # A notice that failed in an earlier pass gets one try a pass (spaced by `next_try`);
            # past its tries (notice_tries lowered) it is tried once more, then failed.
            left = 1 if self.ledger.used(fields) else self.cycle.config.cycle.notice_tries
            return Job(notice, message, fields, "", left)
        return None


def stops(snap, today: date) -> Callable[[Notice], bool]:
    """Whether the store (`snap`) now stops a planned notice: one of its invoices paid, its account
    on hold, or its recipient no longer one of the account's on that channel (an opt-out).
    Made again each time a staff action changed the store during a pass (many times a second with
    ten people at work): it looks up the notice's own invoices and account instead of going
    over every invoice of the store."""
    holds = snap.holds()

    def stopped(n: Notice) -> bool:
        hold = holds.get(n.account)
        if hold is not None and hold.active_on(today):
            return True
        for invoice_id in n.invoices:
            invoice = snap.invoice(invoice_id)
            if invoice is not None and invoice.paid is not None and invoice.paid <= today:
                return True
        account = snap.account(n.account)
        return account is None or n.recipient not in rules.recipients(account, n.channel)
    return stopped


class _LedgerWriter:
    """Ledger rows waiting to be written, flushed every FLUSH_EVERY rows or FLUSH_SECONDS: a
    handful of store writes per cycle (each rewrites the state file). With them, the tries of the
    notices that failed temporarily and when each may be tried again (`meta` TRIES), and the
    notices logged as blocked (`meta` BLOCKED_NOTICES), read from `snap` (as the pass `started`)."""

    def __init__(self, store: Store, rows: list[LedgerEntry], snap, started: datetime):
        self._time = time.monotonic
        self.store = store
        self.started = started
        self.rows = list(rows)
        self.count = 0
        self.last = self._time()
        self.counts = dict((snap.meta(TRIES) or {}).get("counts", {}))
        self.logged_blocked = set((snap.meta(BLOCKED_NOTICES) or {}).get("notices", {}))
        self.new_tries: Counter = Counter()
        self.new_next: dict[str, str] = {}
        self.new_blocked: dict[str, str] = {}

    def used(self, fields: dict) -> int:
        """The tries a notice has used so far (the most of any timeline entry it covers)."""
        return max((self.counts.get(key, 0) for key in keys_of(fields)), default=0)

    def tried(self, fields: dict, tries: int) -> int:
        """Count `tries` more failed tries of a notice; returns how many it has used now."""
        for key in keys_of(fields):
            self.counts[key] = self.counts.get(key, 0) + tries
            self.new_tries[key] += tries
        return self.used(fields)

    def wait(self, fields: dict, until: datetime) -> None:
        """No pass tries the notice again before `until`."""
        self.new_next.update(dict.fromkeys(keys_of(fields), until.isoformat()))

    def was_blocked(self, fields: dict) -> bool:
        """Whether the log already has this notice blocked (every timeline entry it covers)."""
        return all(key in self.logged_blocked for key in keys_of(fields))

    def blocked(self, fields: dict, code: str) -> None:
        self.logged_blocked.update(keys_of(fields))
        self.new_blocked.update(dict.fromkeys(keys_of(fields), code))

    def add(self, rows: list[LedgerEntry]) -> None:
        self.rows += rows
        self.count += len(rows)

    def due(self) -> bool:
        return bool(self.rows) and (self.count >= FLUSH_EVERY or self._time() - self.last >= FLUSH_SECONDS)

    def flush(self) -> None:
        self.last, self.count = self._time(), 0
        if not self.rows and not self.new_tries and not self.new_blocked:
            return
        with self.store.transaction() as snap:
            if self.rows:
                snap.add_ledger(self.rows)
            handled = snap.raw["ledger"]  # a notice with its ledger row needs none of these any more

            def pending(stored: dict) -> dict:
                return {k: v for k, v in sorted(stored.items()) if k not in handled}
            tries = snap.meta(TRIES) or {}
            if tries or self.new_tries:
                snap.set_meta(TRIES, {"counts": pending(Counter(tries.get("counts", {})) + self.new_tries),
                                      "next": pending({**tries.get("next", {}), **self.new_next})})
            blocked = (snap.meta(BLOCKED_NOTICES) or {}).get("notices", {})
            if blocked or self.new_blocked:
                snap.set_meta(BLOCKED_NOTICES, {"notices": pending({**blocked, **self.new_blocked})})
        self.rows, self.new_tries, self.new_next, self.new_blocked = [], Counter(), {}, {}
