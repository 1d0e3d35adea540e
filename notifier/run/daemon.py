"""The long-running notifier: the daily cycle on a schedule, and what it does between cycles.

Built like healthchecks' `sendalerts` loop over dbader/schedule: small step functions, each job
wrapped so that one raising is logged and the loop goes on, and signals that only set a flag.
`schedule` never runs a job it missed (the machine was off at 09:00), so the day of the last
completed cycle is kept in the store (`meta.last_cycle`) and a catch-up cycle runs at start when
today's has not run yet. Jobs:
- the daily cycle at `[cycle] at` (default 09:00) in the configured zone;
- every `[cycle] every_minutes`: the same cycle again, which sends only what is still pending
  (what waited for contact hours, temporary failures to retry) and beats the heartbeat;
- once a day, after the cycle: the staff summary;
- delivery-status polling and bounces when that module exists (issue 7, `notifier.bounces.poll`).
SIGTERM/SIGINT set the stop event: messages in flight finish, their outcomes and the ledger are
written, and `run()` returns (exit 0) within seconds.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable

from notifier.log.attempts import AttemptLog
from notifier.config import Config
from notifier.run.cycle import Cycle, reconcile, record_cycle
from notifier.staff.actions import send_waiting
from notifier.state.store import Store, StoreError

logger = logging.getLogger("notifier.daemon")


class AlreadyRunning(Exception):
    """Another notifier cycle or daemon holds the state's pid lock."""


def run_niced(level: int) -> int:
    """Run this process at CPU niceness `level` at least, and return the niceness in effect.

    A cycle is batch work: its messages may leave a little later, but a person searching for a
    customer in the console on the same machine should not wait behind it. On a 2-core machine
    at 50,000 accounts, the console's search answered in 56 ms (p95) beside a cycle at the same
    priority, and in 36 ms beside one at nice 10 (README, "The console at a large company's size").
    A niceness set higher by the operator (systemd's Nice=) is kept."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if level > current:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, level)
        except OSError as exc:  # a sandbox that filters the call: the cycle runs as it is
            logging.getLogger("notifier.daemon").warning("cannot lower the CPU priority to nice %d: %s",
                                                         level, exc.strerror or exc)
    return os.getpriority(os.PRIO_PROCESS, 0)


class PidLock:
    """`state.json.pid`, locked with flock for as long as this process runs a cycle.

    flock goes away with the process however it ends (even SIGKILL), so a stale file never blocks
    a restart; the pid written inside names the holder in the refusal."""

    def __init__(self, state: Path):
        self.path = Path(str(state) + ".pid")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or full state folder: say so, not a traceback
            raise StoreError(f"{self.path}: cannot create the lock file: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(f"another notifier (pid {holder}) is running on this state "
                                 f"({self.path}); stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "PidLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def poll_hook() -> Callable[[], object] | None:
    """Issue 7's delivery-status and bounce polling, when that module is installed; else None."""
    try:
        from notifier.log import bounces  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(bounces, "poll", None)


class Daemon:
    """The loop. `clock()` is the current time in the configured zone (a frozen day in tests)."""

    def __init__(self, config: Config, store: Store, log: AttemptLog, renderer, clock: Callable[[], datetime],
                 summary: Callable[[date], None] | None = None):
        self.config, self.store, self.log, self.renderer = config, store, log, renderer
        self.clock = clock
        self.stop = threading.Event()
        self.staff_summary = summary
        import schedule  # only the daemon's loop needs it, not `run-once`'s pid lock
        self.scheduler = schedule.Scheduler()

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: self.request_stop(signum))

    def request_stop(self, signum: int | None = None) -> None:
        if not self.stop.is_set():
            logger.info("stop requested%s: finishing the messages in flight",
                        f" (signal {signal.Signals(signum).name})" if signum else "")
        self.stop.set()

    def run(self) -> None:
        """Reconcile, catch up, then run the scheduled jobs until asked to stop."""
        reconcile(self.store, self.log, self.clock())
        self.job(self.catch_up)
        at = self.config.cycle.at.strftime("%H:%M")
        self.scheduler.every().day.at(at, self.config.timezone).do(self.job, self.daily)
        self.scheduler.every(self.config.cycle.every_minutes).minutes.do(self.job, self.between)
        logger.info("daemon started (pid %d): daily cycle at %s %s, pending messages every %d min",
                    os.getpid(), at, self.config.timezone, self.config.cycle.every_minutes)
        while not self.stop.is_set():
            self.scheduler.run_pending()
            self.stop.wait(min(max(self.scheduler.idle_seconds or 1.0, 0.0), 1.0))
        logger.info("daemon stopped")

    def job(self, step: Callable[[], None]) -> None:
        """Run one step; an exception is logged and the loop goes on (the next run retries)."""
        if self.stop.is_set():
            return
        try:
            step()
        except Exception:
            logger.exception("%s failed; the daemon goes on", step.__name__)
        finally:
            self.store.forget()

    def catch_up(self) -> None:
        """At start: today's cycle if it has not completed yet, else a pass for what is pending."""
        today = self.clock().date()
        last = (self.store.snapshot().meta("last_cycle") or {}).get("day")
        if last != today.isoformat():
            logger.info("catch-up cycle for %s (last completed cycle: %s)", today, last or "never")
            self.daily()
        else:
            self.between()

    def daily(self) -> None:
        summary = self.cycle(self.clock().date())
        if self.staff_summary is not None and not summary.stopped:
            self.job(lambda: self.staff_summary(self.clock().date()))

    def between(self) -> None:
        self.cycle(self.clock().date())
        hook = poll_hook()
        if hook is not None and not self.stop.is_set():
            hook()

    def cycle(self, today: date):
        started = time.monotonic()
        summary = Cycle(self.store, self.config, self.log, self.renderer, self.clock, self.stop).run(today)
        record_cycle(self.store, today, self.clock(), summary, os.getpid())
        if not self.stop.is_set():  # escalations that waited for contact hours (notifier/staff/actions.py)
            send_waiting(self.store, self.config, self.log, self.renderer, self.clock)
        logger.info("cycle %s done in %.1f s: %s%s", today, time.monotonic() - started,
                    summary.to_json() or "nothing to send", " (stopped)" if summary.stopped else "")
        return summary


def next_daily(config: Config, now: datetime) -> datetime:
    """When the next daily cycle is due after `now` (for `notifier status`)."""
    at = datetime.combine(now.date(), config.cycle.at, now.tzinfo)
    return at if at > now else at + timedelta(days=1)
