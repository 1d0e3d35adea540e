"""Staff stepping in: holds, contacts made by hand, staff tasks, escalations.

Everything a person does is a record in the attempt log with that person as its actor, so the
audit shows who decided what, next to what the notifier did. Store changes (holds) go through a
transaction each, so any number of staff commands and the daemon run at once without losing a
write.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Callable, Iterable

from notifier.billing import hours
from notifier.log.attempts import AttemptLog, utc_iso
from notifier.config import Config
from notifier.run.delivery import DeliveryError, close_all, current_stage, notice_fields, prepare, split_do_not_contact
from notifier.run.dispatch import Job, Pool
from notifier.staff.actor import Actor, check_note
from notifier.staff.holds import deletions_during, unwarned_suspensions
from notifier.billing.models import Hold, Invoice, Notice
from notifier.billing.rules import recipients
from notifier.state.store import Store


def _account(snap, account_id: str):
    account = snap.account(account_id)
    if account is None:
        raise DeliveryError(f"no account {account_id!r} in the store")
    return account


# --- holds -----------------------------------------------------------------------------------------


class HoldExists(DeliveryError):
    """Another person's hold is active on the account: replacing it takes `replace`."""

    def __init__(self, hold: Hold):
        self.hold = hold
        super().__init__(f"account {hold.account!r} is already on hold ({hold.reason}, until {hold.until:%d/%m/%Y}) "
                         f"placed by {hold.by} on {hold.since:%d/%m/%Y}: pass --replace to replace it")


@dataclass(frozen=True)
class Placed:
    """What `place_hold` did: the hold, the one it replaced, and what staff must know of it."""
    hold: Hold
    replaced: Hold | None
    unwarned: list[tuple[Invoice, date]]  # suspensions the customer will not be warned of
    deletions: list[tuple[Invoice, date]]  # deletion dates (data deleted, protest) within the hold


def place_hold(store: Store, log: AttemptLog, config: Config, now: datetime, account_id: str, by: Actor,
               reason: str, until: date, note: str = "", replace: bool = False) -> Placed:
    """Pause the ladder of an account until `until` (exclusive: on that day it ends by itself).

    Another person's active hold is not replaced silently: HoldExists unless `replace` (the log's
    hold record then names the hold it replaced). Also says which suspensions the customer will
    not be warned of because of the hold (`holds.unwarned_suspensions`) and which invoices reach
    their deletion date during it; the log's hold record names them too."""
    today, note = now.date(), check_note(note)
    if until <= today:
        raise DeliveryError(f"--until {until:%d/%m/%Y} is not after today ({today:%d/%m/%Y})")
    with store.transaction() as snap:
        _account(snap, account_id)
        old = snap.holds().get(account_id)
        replaced = old if old is not None and old.until > today else None
        if replaced is not None and replaced.by != by.name and not replace:
            raise HoldExists(replaced)
        hold = Hold(account_id, reason, until, by.name, today, note)
        snap.put_hold(hold)
        invoices = snap.invoices(account_id)
        placed = Placed(hold, replaced, unwarned_suspensions(hold, invoices, config.calendar, config),
                        deletions_during(hold, invoices, config.calendar, config))
    data = {"account": account_id, "reason": reason, "until": until.isoformat(), "note": note}
    if replaced:
        data["replaces"] = {"by": replaced.by, "reason": replaced.reason, "since": replaced.since.isoformat(),
                            "until": replaced.until.isoformat(), "note": replaced.note}
    if placed.unwarned:
        data["unwarned_suspensions"] = {inv.id: day.isoformat() for inv, day in placed.unwarned}
    if placed.deletions:
        data["deletions"] = {inv.id: day.isoformat() for inv, day in placed.deletions}
    log.note(now, "hold", {**data, **by.fields()}, by.name)
    return placed


def release_hold(store: Store, log: AttemptLog, now: datetime, account_id: str, by: Actor) -> Hold:
    with store.transaction() as snap:
        _account(snap, account_id)
        hold = snap.drop_hold(account_id)
    if hold is None:
        raise DeliveryError(f"account {account_id!r} is not on hold")
    log.note(now, "release", {"account": account_id, "reason": hold.reason, "until": hold.until.isoformat(),
                              **by.fields()}, by.name)
    return hold


def active_holds(snap, today: date) -> list[Hold]:
    return sorted((h for h in snap.holds().values() if h.active_on(today)), key=lambda h: h.account)


# --- contacts made by hand ---------------------------------------------------------------------------


def record_contact(store: Store, log: AttemptLog, now: datetime, account_id: str, by: Actor, channel: str,
                   outcome: str, note: str = "") -> str:
    note = check_note(note)
    _account(store.snapshot(), account_id)
    return log.note(now, "contact", {"account": account_id, "channel": channel, "outcome": outcome, "note": note,
                                     **by.fields()}, by.name)


# --- staff tasks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    id: str  # the id of the record that made it a task; `tasks done ID` refers to it
    kind: str  # social_manual, deletion_due, unknown, bounced; escalation_waiting (from the store)
    time: str
    account: str
    channel: str
    recipient: str
    detail: str
    done: dict | None = None  # the closing `task_done` record
    assigned: str = ""  # who took it (`assign_task`), the last to take it
    until: str = ""  # an escalation waiting for contact hours: when it goes out (ISO, local time)
    ref: str = ""  # the attempt it is about (its sending: the text a DM by hand sends)

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "time": self.time, "account": self.account, "channel": self.channel,
                "recipient": self.recipient, "detail": self.detail, "open": self.done is None,
                "done_by": self.done.get("actor") if self.done else None,
                "outcome": self.done.get("outcome") if self.done else None,
                **({"until": self.until} if self.until else {})}


def tasks(records: Iterable[dict]) -> list[Task]:
    """Staff tasks, from the log alone (CONTRACTS.md): a `task` outcome (a message handed to staff,
    e.g. a social network to contact by hand; also a staff-task `sent`, as channels reported it
    before the `task` status), `unknown` (a crash between claim and answer), a hard `bounced`, and
    a `deletion_due` notice on the staff channel. Closed by a `task_done` whose `ref` is its id;
    taken by a person with a `task_assigned`."""
    book = TaskBook()
    book.add(records)
    return book.tasks()


_SENDING_FIELDS = ("account", "channel", "recipient", "subject", "stage")  # what `TaskBook` reads of a sending


class TaskBook:
    """The staff tasks of the records given so far, kept between batches of appended records (the
    log index feeds it what the log gained: `LogIndex.task_list`), so that a long queue is not
    parsed again at every question. A batch holds the sendings its task records refer to."""

    def __init__(self):
        self.found: list[tuple[dict, str, dict]] = []  # (record, kind, its sending's fields)
        self.closed: dict[str, dict] = {}
        self.assigned: dict[str, str] = {}

    def add(self, records: Iterable[dict]) -> None:
        """Take a batch of records (an iterable read as it goes: at a million records the
        console's first batch is 17,000 records, which held 55 MB at once as a list): all of it,
        or nothing when reading it fails part way. Of a sending only what a task shows is kept."""
        sendings: dict[str, dict] = {}
        found: list[tuple[dict, str, dict]] = []
        closed: dict[str, dict] = {}
        assigned: dict[str, str] = {}
        for r in records:
            event = r.get("event")
            if event == "sending":
                sendings[r.get("id") or r.get("attempt")] = {k: r[k] for k in _SENDING_FIELDS if k in r}
                continue
            if event == "task_done":
                closed[r.get("ref")] = r
                continue
            if event == "task_assigned":
                assigned[r.get("ref")] = r.get("actor", "")
                continue
            sending = sendings.get(r.get("ref") or r.get("attempt"), {})
            if event == "task" or (r.get("provider") == "staff-task" and event in ("sent", "result")):
                kind = "social_manual"
            elif event == "unknown":
                kind = "unknown"
            elif event == "bounced" and r.get("hard"):
                kind, sending = "bounced", sending or r
            elif event in ("sent", "outbox", "result") and sending.get("stage") == "deletion_due" and \
                    sending.get("channel") == "staff":
                kind = "deletion_due"
            else:
                continue
            if r.get("id"):
                # Only what a Task shows is kept of its records: a sending's content is read when shown.
                found.append(({"id": r["id"], "time": r.get("time", ""), "detail": r.get("detail", ""),
                               "ref": r.get("ref") or r.get("attempt") or ""}, kind,
                              {k: sending[k] for k in ("account", "channel", "recipient", "subject") if k in sending}))
        self.found += found
        self.closed.update(closed)
        self.assigned.update(assigned)

    def tasks(self) -> list[Task]:
        """Every task so far, in log order."""
        return [Task(r["id"], kind, r["time"], s.get("account", ""), s.get("channel", ""),
                     s.get("recipient", ""), s.get("subject") or r["detail"], self.closed.get(r["id"]),
                     self.assigned.get(r["id"], ""), ref=r["ref"])
                for r, kind, s in self.found]


ID_PREFIX = 6  # the fewest first characters of a task id that name it (ids are 32 random hex digits)


def find_task(found: Iterable[Task], wanted: str) -> Task:
    """The task whose id is `wanted`, or starts with it when that is at least 6 characters and
    no other id does; DeliveryError otherwise, saying which."""
    found = list(found)
    exact = [t for t in found if t.id == wanted]
    matches = exact or [t for t in found if len(wanted) >= ID_PREFIX and t.id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise DeliveryError(f"{wanted!r} starts {len(matches)} task ids ({', '.join(t.id for t in matches[:3])}"
                            f"{', ...' if len(matches) > 3 else ''}): give more of the id")
    short = f" (give the id, or at least its first {ID_PREFIX} characters)" if len(wanted) < ID_PREFIX else ""
    raise DeliveryError(f"no staff task {wanted!r}{short}; see `notifier tasks`")


def close_task(log: AttemptLog, now: datetime, task_id: str, by: Actor, outcome: str = "",
               found: Iterable[Task] | None = None) -> Task:
    """Close the task `task_id` names (its id or a unique prefix, `find_task`) as done by `by`.
    `found`: the tasks as the caller has them (read under its lock), else the log index's."""
    outcome = check_note(outcome, "outcome")
    task = find_task(_log_tasks(log) if found is None else found, task_id)
    task_id = task.id
    if task.done is not None:
        raise DeliveryError(f"task {task_id} was already closed by {task.done.get('actor')}")
    log.note(now, "task_done", {"ref": task_id, "account": task.account, "kind": task.kind, "outcome": outcome,
                                **by.fields()}, by.name)
    return task


def assign_task(log: AttemptLog, now: datetime, task_id: str, by: Actor, found: Iterable[Task] | None = None) -> Task:
    """`by` takes the open task `task_id` (as `close_task` names it): recorded, so the others see
    whose it is. Taking it again from someone else is allowed (they may be away); the log keeps both."""
    task = find_task(_log_tasks(log) if found is None else found, task_id)
    if task.done is not None:
        raise DeliveryError(f"task {task.id} was already closed by {task.done.get('actor')}")
    log.note(now, "task_assigned", {"ref": task.id, "account": task.account, "kind": task.kind, **by.fields()}, by.name)
    return task


def _log_tasks(log: AttemptLog) -> list[Task]:
    """The log's tasks through its index (`LogIndex.task_list`: kept, and what was appended read)."""
    from notifier.log.index import index_for
    return index_for(log.path).task_list()


# --- escalation ----------------------------------------------------------------------------------------


def escalation_notices(snap, config: Config, account_id: str, today: date, wanted: Iterable[str]) -> list[Notice]:
    """The extra-effort sequence now: the account's current stage, with the tutorial, on each
    wanted channel the account has not opted out of (`rules.recipients` honours opt-outs)."""
    account = _account(snap, account_id)
    invoices = snap.invoices(account_id)
    open_ids = tuple(sorted(i.id for i in invoices if i.unpaid_on(today)))
    if not open_ids:
        raise DeliveryError(f"account {account_id!r} has no open invoice on {today:%d/%m/%Y}: nothing to escalate")
    stage = current_stage(account, invoices, snap.histories().get(account_id), today, config)
    return [Notice(account_id, today, stage, channel, recipient, open_ids, True, True)
            for channel in wanted for recipient in recipients(account, channel)]


WAITING = "waiting_escalations"  # the store's `meta` document of escalations waiting for contact hours


def escalate(store: Store, config: Config, log: AttemptLog, renderer, clock: Callable[[], datetime],
             account_id: str, by: Actor, wanted: Iterable[str], note: str = "", override_hours: bool = False):
    """Send the escalation now; returns (outcomes, [(notice, next allowed time)] that must wait,
    [notices refused: their number is on the do-not-contact list]).

    Outside contact hours the WhatsApp/SMS/social messages wait, unless `override_hours` (logged
    with the escalation): they are queued in the store under the escalation record's id, and the
    daemon's (or run-once's) next pass at or after that time sends them (`send_waiting`). A channel
    with no allowed time within two weeks (next allowed time None) is not queued."""
    now, note = clock(), check_note(note)
    snap = store.snapshot()
    notices = escalation_notices(snap, config, account_id, now.date(), wanted)
    if not notices:
        raise DeliveryError(f"account {account_id!r} has no reachable recipient on {', '.join(wanted)} (opt-outs?)")
    notices, refused = split_do_not_contact(config, notices)
    waiting = [(n, hours.next_allowed(n.channel, now, config.contact_hours)) for n in notices
               if not override_hours and not hours.allowed(n.channel, now, config.contact_hours)]
    sendable = [n for n in notices if all(n is not w for w, _ in waiting)]
    queued = {n.channel: at.isoformat(timespec="minutes") for n, at in waiting if at is not None}
    escalation = log.note(now, "escalation", {
        "account": account_id, "channels": sorted(set(wanted)), "note": note, "override_hours": override_hours,
        "waiting": [n.channel for n, _ in waiting], **({"waiting_until": queued} if queued else {}), **by.fields(),
    }, by.name)
    sending = {n.channel for n in sendable}
    if queued or any(entry["account"] == account_id for entry in (snap.meta(WAITING) or {}).values()):
        with store.transaction() as tx:
            # An escalation sent now on a channel ends one that waited on it: it is not sent twice.
            queue = tx.meta(WAITING) or {}
            new = _drop(queue, lambda key, entry: sending if entry["account"] == account_id else ())
            if queued:
                new[escalation] = {"account": account_id, "channels": queued, "actor": by.name, **by.fields(),
                                   "time": utc_iso(now)}
            if new != queue:
                tx.set_meta(WAITING, new)
    _skip_refused(log, now, refused, by)
    outcomes = _send(config, log, renderer, clock, snap, sendable, by, {"override_hours": override_hours})
    return outcomes, waiting, refused


def send_waiting(store: Store, config: Config, log: AttemptLog, renderer, clock: Callable[[], datetime]) -> list:
    """Send the queued escalations whose channels are now within contact hours; returns the outcomes.

    Each is taken off the queue before its messages are claimed in the log (at most once: a crash
    in between loses it rather than sending it twice), then built as `escalate` builds them, as of
    now: an account paid meanwhile, on hold, or opted out gets a `skipped` record instead."""
    now = clock()
    if not store.snapshot().meta(WAITING):  # the usual pass: nothing waits, no store write
        return []
    with store.transaction() as snap:
        queue = snap.meta(WAITING) or {}
        due = {key: [ch for ch, until in entry["channels"].items()
                     if datetime.fromisoformat(until) <= now and hours.allowed(ch, now, config.contact_hours)]
               for key, entry in queue.items()}
        due = {key: channels for key, channels in due.items() if channels}
        if due:
            snap.set_meta(WAITING, _drop(queue, lambda key, entry: due.get(key, ())))
    outcomes = []
    for key, channels in due.items():
        entry = queue[key]
        by = Actor(entry["actor"], entry.get("role", ""), entry.get("client", ""))
        fields = {"account": entry["account"], "channels": channels, "escalation_of": key, **by.fields()}
        snap = store.snapshot()
        hold = snap.holds().get(entry["account"])
        try:
            if hold is not None and hold.active_on(now.date()):
                raise DeliveryError(f"hold: {hold.reason}")
            notices = escalation_notices(snap, config, entry["account"], now.date(), channels)
            if not notices:
                raise DeliveryError(f"no reachable recipient on {', '.join(channels)} (opted out meanwhile?)")
        except DeliveryError as exc:  # nothing left to escalate: say so in the log, once
            log.skip(now, fields, str(exc), actor=by.name)
            continue
        notices, refused = split_do_not_contact(config, notices)
        _skip_refused(log, now, refused, by, key)
        outcomes += _send(config, log, renderer, clock, snap, notices, by, {"escalation_of": key})
    return outcomes


def _drop(queue: dict, pick: Callable[[str, dict], Iterable[str]]) -> dict:
    """The queue without the channels `pick(key, entry)` names; an entry left with none goes."""
    left = {key: {ch: until for ch, until in entry["channels"].items() if ch not in pick(key, entry)}
            for key, entry in queue.items()}
    return {key: {**queue[key], "channels": channels} for key, channels in left.items() if channels}


def task_list(log: AttemptLog, snap) -> list[Task]:
    """Every staff task: the log's (`tasks`, kept by the log index) and the escalations waiting for
    contact hours (the daemon sends them; nobody closes them). `notifier tasks`, the Tarefas page
    and `GET /api/tasks`."""
    return _log_tasks(log) + waiting_escalations(snap)


def waiting_escalations(snap) -> list[Task]:
    """The queued escalations, one per channel, as open staff tasks (`tasks`, `status`)."""
    return [Task(key, "escalation_waiting", entry.get("time", ""), entry["account"], channel, "",
                 "waits for contact hours", until=until)
            for key, entry in (snap.meta(WAITING) or {}).items() for channel, until in entry["channels"].items()]


def _skip_refused(log: AttemptLog, now: datetime, refused: list[Notice], by: Actor, escalation: str = "") -> None:
    extra = {"escalation_of": escalation} if escalation else {}
    for n in refused:
        log.skip(now, {**notice_fields(n), "escalation": True, **extra, **by.fields()}, "do-not-contact",
                 actor=by.name)


def _send(config: Config, log: AttemptLog, renderer, clock, snap, notices: list[Notice], by: Actor,
          extra: dict) -> list:
    """Send an escalation's `notices` as `by`, logged before each provider call; the outcomes."""
    if not notices:
        return []
    now = clock()
    today = now.date()
    account = snap.account(notices[0].account)
    invoices = [i for i in snap.invoices(account.id) if i.unpaid_on(today)]
    batch, built = [], {}
    for n in notices:
        # Prepared as the cycle prepares its messages: the attempt id in the message (the e-mail's
        # X-Notifier-Attempt-Id and VERP address) and its exact bytes in the message store.
        message, _ = prepare(built, config, renderer.render(n, account, invoices, today), when=now)
        fields = {**notice_fields(n, message), "covers": [], "escalation": True, **extra, **by.fields()}
        batch.append((n, message, fields))
    ids = log.start_many([(now, m, f, by.name, m.payload, m.meta["attempt_id"]) for _, m, f in batch])
    pool = Pool(config, log, clock, threading.Event(), workers=max(1, len(batch)), actor=by.name)
    try:
        for (n, m, f), attempt in zip(batch, ids):
            pool.submit(Job(n, m, f, attempt))
        outcomes = []
        while pool.outstanding:
            outcomes += pool.take()
    finally:
        pool.close()
        close_all(built)
    log.finish_many([(o.attempt, o.when, o.result) for o in outcomes if o.attempt is not None])
    return outcomes


# --- health and the daily staff summary ------------------------------------------------------------


def health(store: Store, config: Config, log: AttemptLog, now: datetime) -> dict:
    """What `notifier status` and the Painel show; `stale` says why the last cycle is older than
    expected."""
    from notifier.run.daemon import next_daily
    snap = store.snapshot()
    beat = snap.meta("heartbeat") or {}
    last = snap.meta("last_cycle") or {}
    today_run = datetime.combine(now.date(), config.cycle.at, now.tzinfo)
    # Today's cycle is expected once its time has passed (with an hour for a long cycle).
    expected = now.date() if now >= today_run + timedelta(hours=1) else now.date() - timedelta(days=1)
    stale = None
    if not last:
        stale = "no cycle has completed on this state yet"
    elif last["day"] < expected.isoformat():
        stale = f"the last completed cycle was for {last['day']}; expected {expected.isoformat()}"
    return {
        "state": str(config.state),
        "last_cycle": last.get("day") and f"{last['day']} (at {last['time']})",
        "heartbeat": beat.get("time"),
        "counts": beat.get("counts"),
        "next_cycle": next_daily(config, now).isoformat(timespec="minutes"),
        "waiting_until": beat.get("waiting_until"),
        "waiting": {ch: c.get("waiting") for ch, c in (beat.get("counts") or {}).items() if c.get("waiting")},
        "open_tasks": [t.to_json() for t in _log_tasks(log) if t.done is None],
        "waiting_escalations": [t.to_json() for t in waiting_escalations(snap)],
        "holds": [{"account": h.account, "reason": h.reason, "until": h.until.isoformat(), "by": h.by, "note": h.note}
                  for h in active_holds(snap, now.date())],
        "stale": stale,
        "whatsapp": whatsapp_cost(config, whatsapp_records(log.path, now.date(), config.tz), now.date()),
    }


def without_whatsapp(records: Iterable[dict], today: date, tz) -> list[str]:
    """The accounts that, in `today`'s month up to `today`, had a first-time delinquent's WhatsApp
    blocked by our configuration (a missing template) and got no WhatsApp at all: the tutorial
    the ladder meant for them never went on that channel."""
    sendings: dict[str, dict] = {}
    blocked, reached = set(), set()
    for r in records:
        if r.get("event") == "sending":
            sendings[r.get("id")] = r
            continue
        s = sendings.get(r.get("ref"))
        if s is None or s.get("channel") != "whatsapp" or r.get("event") not in ("blocked", "sent"):
            continue
        when = datetime.fromisoformat(r["time"]).astimezone(tz).date()
        if when.replace(day=1) != today.replace(day=1) or when > today:
            continue
        if r["event"] == "sent":
            reached.add(s.get("account"))
        elif s.get("first_time"):
            blocked.add(s.get("account"))
    return sorted(blocked - reached)


def whatsapp_records(path, today: date, tz) -> list[dict]:
    """The records `without_whatsapp` reads, from the log at `path` through its index
    (`LogIndex.whatsapp_records`): the `sent` and `blocked` outcomes of WhatsApp sendings around
    `today`'s month, and their sendings. The Painel asks at every view; a pass over the bytes of a
    log of a million records took 20 s."""
    from notifier.log.index import index_for
    return index_for(path, tz).whatsapp_records(today.replace(day=1), today)


def whatsapp_cost(config: Config, records: Iterable[dict], today: date) -> dict:
    """What WhatsApp out of the box costs, for `check` and `status`: the channel's problems (the
    ladder's stages without an approved template) and `without_whatsapp` this month."""
    from notifier import channels
    try:
        channel = channels.build("whatsapp", config)
    except channels.ChannelError as exc:
        problems = [str(exc)]
    else:
        try:
            problems = channel.check()
        finally:
            channel.close()
    return {"problems": problems, "first_time_without_whatsapp": without_whatsapp(records, today, config.tz)}


def whatsapp_cost_line(accounts: list[str], today: date) -> str | None:
    """The sentence `check` and `status` print about `without_whatsapp`, or None when it cost nothing."""
    if not accounts:
        return None
    return (f"{len(accounts)} first-time delinquent(s) this month ({today:%m/%Y}) got no WhatsApp, blocked by "
            f"our configuration: {', '.join(accounts)}")


def day_counts(records: Iterable[dict], day: date, tz) -> dict:
    """Yesterday's work from the log: outcomes per stage and channel, failures, bounces."""
    from collections import Counter
    sendings: dict[str, dict] = {}
    per: Counter = Counter()
    failures, bounces = [], 0
    for r in records:
        event = r.get("event")
        if event == "sending":
            sendings[r.get("id") or r.get("attempt")] = r
            continue
        try:
            when = datetime.fromisoformat(r["time"]).astimezone(tz).date()
        except (KeyError, ValueError):
            continue
        if when != day:
            continue
        if event == "bounced":
            bounces += 1
        s = sendings.get(r.get("ref") or r.get("attempt"))
        if s is None or s.get("channel") == "staff" and s.get("stage") != "deletion_due":
            continue
        status = r.get("status", event) if event == "result" else event
        per[(s.get("stage", "?"), s.get("channel", "?"), status)] += 1
        if status == "failed":
            failures.append(f"{s.get('account')} {s.get('channel')} {s.get('recipient')}: {r.get('code') or ''} "
                            f"{r.get('detail', '')[:120]}")
    return {"counts": per, "failures": failures, "bounces": bounces}


def summary_text(records: list[dict], yesterday: date, tz, head: tuple[int, str] | None) -> str:
    """The staff summary of `yesterday`, in the words staff read everywhere else (the console's and
    the CSV's labels: "Lembrete / E-mail: 7 enviado"), not the log's codes. The head line keeps
    its wording: `verify-log --head` accepts it pasted as it is."""
    from notifier.reports.exports import CHANNEL_LABELS, STAGE_LABELS, STATUS_LABELS, TASK_KINDS
    day = day_counts(records, yesterday, tz)
    open_tasks = [t for t in tasks(records) if t.done is None]
    lines = [f"Resumo da cobrança de {yesterday:%d/%m/%Y}", ""]
    lines += [f"- {STAGE_LABELS.get(stage, stage)} / {CHANNEL_LABELS.get(channel, channel)}: {n} "
              f"{STATUS_LABELS.get(status, status)}" for (stage, channel, status), n in sorted(day["counts"].items())] \
        or ["- nenhuma mensagem"]
    lines += ["", f"Falhas: {len(day['failures'])}"] + [f"- {f}" for f in day["failures"][:50]]
    blocked = sum(n for (_, _, status), n in day["counts"].items() if status == "blocked")
    lines.append(f"Avisos bloqueados pela nossa configuração (nada enviado ao cliente): {blocked}")
    missed = without_whatsapp(records, yesterday, tz)
    if missed:
        lines.append(f"Primeira inadimplência sem WhatsApp neste mês (modelo não aprovado): {len(missed)} "
                     f"({', '.join(missed[:50])})")
    lines += [f"Devoluções (bounces): {day['bounces']}", f"Tarefas abertas: {len(open_tasks)}"]
    lines += [f"- {TASK_KINDS.get(t.kind, t.kind)}: {t.account} {t.recipient} ({t.id})" for t in open_tasks[:50]]
    due = [t for t in open_tasks if t.kind == "deletion_due"]
    lines.append(f"Exclusões e protestos a fazer: {len(due)}")
    if head is not None:
        lines.append(f"Registro de tentativas: {head[0]} registros, último hash {head[1]}")
    return "\n".join(lines) + "\n"


def send_daily_summary(store: Store, config: Config, log: AttemptLog, clock, today: date) -> None:
    """The staff summary of yesterday on the staff channel (pt-BR: staff read Portuguese), once a
    day even when the daemon restarts or runs a catch-up cycle before the daily one."""
    from notifier import channels
    with store.transaction() as snap:
        if (snap.meta("daily_summary") or {}).get("day") == today.isoformat():
            return
        snap.set_meta("daily_summary", {"day": today.isoformat()})
    from datetime import timedelta
    from notifier.channels import Message
    yesterday = today - timedelta(days=1)
    head = log.head() if hasattr(log, "head") else None
    text = summary_text(list(log.records()), yesterday, config.tz, head)
    message = Message(channel="staff", recipient="staff", subject=f"Resumo da cobrança de {yesterday:%d/%m/%Y}",
                      text=text, meta={"alert": "daily_summary", "day": yesterday.isoformat()})
    staff = channels.build("staff", config)
    try:
        [attempt] = log.start_many([(clock(), message, {"channel": "staff", "recipient": "staff",
                                                        "alert": "daily_summary"}, "daemon", None)])
        log.finish_many([(attempt, clock(), staff.send(message))])
    finally:
        staff.close()
