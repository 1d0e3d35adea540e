"""Sending many messages at once, politely: a bounded pool of worker threads.

Providers are slow (an SMTP server may take seconds per message), so the cycle keeps `workers`
messages in flight. Each worker builds its own channel instances, so an SMTP connection is never
shared between threads and each worker reuses at most one per channel. A per-channel rate limit
(`[channels.NAME] rate`, messages per second) is shared by all workers: Twilio accepts about one
message per second per sender number unless raised.

A temporary failure (connection refused, timeout, SMTP 4xx, HTTP 429 or 5xx) is tried again after
an exponential back-off with jitter (at least the provider's Retry-After), at most `tries` times;
each try is its own claim in the attempt log, written before the provider is called. What is still
failing after that is left to the next pass of the cycle.

Claims: a caller that claims its jobs up front (`escalate`) `submit`s them. The cycle instead
gives a `feed` that the workers ask for their next job, handing in the outcome of their last one:
the feed writes both with one group commit (issue 18), so a message is claimed only when a worker
is free to send it, and a kill leaves at most one claim per worker without its outcome.

Stopping (`stop` set): a message already handed to a provider finishes; one not yet started is
answered with a temporary failure without calling anyone, so its claim gets an outcome at once and
the next run sends it.
"""
from __future__ import annotations

import logging
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable

from notifier import channels
from notifier.channels import FAILED, ChannelError, Message, Result

from notifier.log.attempts import AttemptLog
from notifier.config import Config
from notifier.run.delivery import prepare
from notifier.billing.models import Notice

logger = logging.getLogger("notifier.dispatch")

BLOCKED = getattr(channels, "BLOCKED", "blocked")
DEFAULT_RATES = {"whatsapp": 1.0, "sms": 1.0}  # Twilio: about 1 message/s per sender number
SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while the senders wait (bench/cycle.py)
MAX_BACKOFF = 120.0  # seconds; a provider asking for a longer wait is tried on the next pass


@dataclass
class Job:
    """A claimed message: the `sending` record `attempt` is already in the log."""
    notice: Notice
    message: Message
    fields: dict
    attempt: str
    budget: int | None = None  # tries left to the notice over its catch-up window ([cycle] notice_tries)


@dataclass
class Outcome:
    job: Job
    result: Result
    when: datetime
    # The attempt whose outcome is `result`; None when it is already in the log (a retry given up
    # while stopping), so that the caller writes each outcome exactly once.
    attempt: str | None
    tries: int = 1


# The cycle's feed: writes the outcome of a worker's last job (None: none, or already written), then
# claims the same job again when one is given (a retry), else the next one; None: nothing (more) to
# send. Either claim may be refused when a staff action stopped its notice meanwhile.
Feed = Callable[["Outcome | None", "Job | None"], "Job | None"]


def stopped_result(channel: str) -> Result:
    return Result(FAILED, provider=channel, code="stopped", permanent=False,
                  detail="not handed to the provider: the notifier was stopping; sent on its next pass")


class RateLimit:
    """At most `rate` messages per second, spaced evenly, across every thread that asks."""

    def __init__(self, rate: float | None):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> bool:
        """Wait for this caller's slot; False when `stop` was set meanwhile."""
        if not self.interval:
            return not stop.is_set()
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        return not stop.wait(slot - now) if slot > now else not stop.is_set()


def rate_of(config: Config, channel: str) -> float | None:
    """`[channels.NAME] rate` (messages per second; 0 = unlimited); ChannelError when invalid."""
    rate = config.channels.get(channel, {}).get("rate", DEFAULT_RATES.get(channel))
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
        raise ChannelError(f"channels.{channel}.rate: must be a number of messages per second, not {rate!r}")
    return float(rate) or None


def backoff(tries: int, result: Result, base: float) -> float:
    """Seconds to wait before try number `tries + 1`: base × 2^(tries-1) with ±50% jitter (so
    that workers do not hammer a recovering server in step), never less than Retry-After."""
    delay = base * 2 ** (tries - 1) * random.uniform(0.5, 1.5)
    retry_after = result.evidence.get("retry_after")
    try:
        return max(delay, float(retry_after)) if retry_after is not None else delay
    except (TypeError, ValueError):
        return delay


def retryable(result: Result) -> bool:
    return result.status == FAILED and not result.permanent


class Pool:
    """`workers` threads sending `Job`s; `submit` queues one, `take` collects finished ones."""

    def __init__(self, config: Config, log: AttemptLog, clock: Callable[[], datetime], stop: threading.Event,
                 workers: int | None = None, log_lock: threading.Lock | None = None, actor: str = "daemon",
                 feed: Feed | None = None):
        self.config = config
        self.feed = feed
        self.error: BaseException | None = None  # the feed's, which stopped the workers (an unwritable log)
        self.log = log
        self.clock = clock
        self.stop = stop
        self.tries = config.cycle.tries
        self.base = config.cycle.backoff
        self.log_lock = log_lock or threading.Lock()
        self.actor = actor
        self._limits: dict[str, RateLimit] = {}
        self._jobs: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self.outstanding = 0
        self.workers = workers or config.cycle.workers
        # A worker woken by its server's reply waits for the GIL while another thread renders or
        # composes; Python makes the holder let go only every 5 ms by default, and a message takes
        # several such wake-ups: with 50 ms servers that was a fifth more time. Restored at close.
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._threads = [threading.Thread(target=self._work, name=f"sender-{i}", daemon=True)
                         for i in range(self.workers)]
        for t in self._threads:
            t.start()

    def limit(self, channel: str) -> RateLimit:
        if channel not in self._limits:
            self._limits[channel] = RateLimit(rate_of(self.config, channel))
        return self._limits[channel]

    def submit(self, job: Job) -> None:
        self.outstanding += 1
        self._jobs.put(job)

    def take(self, timeout: float = 0.2) -> list[Outcome]:
        """The outcomes finished so far, waiting up to `timeout` for the first."""
        out = []
        try:
            out.append(self._done.get(timeout=timeout))
            while True:
                out.append(self._done.get_nowait())
        except queue.Empty:
            pass
        self.outstanding -= len(out)
        return out

    def busy(self) -> bool:
        """With a feed: whether a worker still runs or an outcome waits to be taken."""
        return any(t.is_alive() for t in self._threads) or not self._done.empty()

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()
        sys.setswitchinterval(self._switch)

    # --- in the worker threads ------------------------------------------------------------------

    def _work(self) -> None:
        built: dict[str, channels.Channel | ChannelError] = {}
        done = None
        try:
            while (job := self._next(done)) is not None:
                try:
                    done = self._deliver(job, built)
                except BaseException as exc:  # never lose an outcome: the claim must be answered
                    logger.exception("sender crashed on %s", job.notice.channel)
                    done = Outcome(job, Result(FAILED, job.notice.channel, code="error", permanent=True,
                                               detail=f"{type(exc).__name__}: {exc}"), self.clock(), job.attempt)
        finally:
            for channel in built.values():
                if not isinstance(channel, ChannelError):
                    try:
                        channel.close()
                    except Exception:
                        logger.exception("closing a channel")

    def _next(self, done: Outcome | None) -> Job | None:
        """Hand in `done` and get the next claimed job (None: no more). Through the feed, the
        outcome is written before it is handed in, and a feed that fails stops this worker."""
        if self.feed is None:
            if done is not None:
                self._done.put(done)
            return self._jobs.get()
        try:
            return self.feed(done, None)
        except BaseException as exc:
            self.error = self.error or exc
            return None
        finally:
            if done is not None:
                self._done.put(done)

    def _deliver(self, job: Job, built: dict) -> Outcome:
        """Send with retries; each retry finishes the previous try and claims a new attempt."""
        attempt, tries, message = job.attempt, 1, job.message
        while True:
            result = self._send_once(job, built, message)
            if not retryable(result) or tries >= min(self.tries, job.budget or self.tries) or self.stop.is_set():
                return Outcome(job, result, self.clock(), attempt, tries)
            delay = backoff(tries, result, self.base)
            with self.log_lock:
                self.log.finish_many([(attempt, self.clock(), result)])
            if delay > MAX_BACKOFF or self.stop.wait(delay):
                return Outcome(job, result, self.clock(), None, tries)
            tries += 1
            when = self.clock()
            message, _ = prepare(built, self.config, job.message, when=when)
            again = replace(job, message=message, fields={**job.fields, "attempt": tries}, attempt="")
            if self.feed is not None:
                claimed = self.feed(None, again)  # refused when a staff action stopped the notice meanwhile
                if claimed is None:
                    return Outcome(job, result, self.clock(), None, tries)
                attempt = claimed.attempt
                continue
            with self.log_lock:
                [attempt] = self.log.start_many([(when, message, again.fields,
                                                  self.actor, message.payload, message.meta["attempt_id"])])

    def _send_once(self, job: Job, built: dict, message: Message) -> Result:
        name = job.notice.channel
        if not self.limit(name).wait(self.stop):
            return stopped_result(name)
        channel = built.get(name)
        if channel is None:
            try:
                channel = built[name] = channels.build(name, self.config)
            except ChannelError as exc:
                channel = built[name] = exc
        if isinstance(channel, ChannelError):
            return Result(BLOCKED, name, code=f"config:channel.{name}", detail=str(channel))
        try:
            return channel.send(message)
        except ChannelError as exc:
            return Result(FAILED, name, detail=str(exc), permanent=True)
        except Exception as exc:  # one bad message never stops the others
            logger.exception("%s: sending to %s failed", name, job.notice.recipient)
            return Result(FAILED, name, code="error", permanent=True, detail=f"{type(exc).__name__}: {exc}")
