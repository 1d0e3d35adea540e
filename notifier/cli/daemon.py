"""Running unattended (operations): one cycle (`run-once`), the `daemon`, and its `status`."""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta

import click

from .base import Context, cli, date_option, echo_json, json_option, print_table

TIME = click.DateTime(formats=["%H:%M"])


def setup_logging() -> None:
    """One line per event on stderr, as journald or `docker logs` reads it best (notifier/logformat.py)."""
    from ..logformat import formatter
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def clock_for(obj: Context, day, at):
    """The cycle's clock: the real time, or with `--date` that day at `--at` (default the
    configured cycle time), advancing in real time so the log's records stay in order."""
    if day is None:
        return obj.now
    start = datetime.combine(day, at or obj.config.cycle.at, obj.config.tz)
    t0 = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - t0)


REHEARSAL_HELP = ("A rehearsal on a copy of the state (README: Rehearsals): any --date is accepted, and every "
                  "channel must write to the local outbox (no provider variable set).")
DAYS_AHEAD = 7  # how far past the real today --date may go outside a rehearsal


def channel_modes(obj: Context) -> dict[str, tuple[bool | None, str]]:
    from notifier import channels
    from notifier.config import CHANNELS
    return channels.modes(obj.config, CHANNELS)


def mode_text(live: bool | None, where: str) -> str:
    return f"{'live' if live else 'outbox' if live is False else 'unusable'}: {where}"


def refuse_a_bad_start(obj: Context, day: date | None, rehearsal: bool) -> None:
    """Before a cycle writes anything: a --date outside a sane window (before the last cycle's day
    on this state, or more than a week after the real today: `--date 2062-11-24` was a typo for
    2026 and wrote 2062 into the log for good), a rehearsal that could reach real people, and
    (`live = true`) a channel the ladder or staff alerts use that would write to the outbox."""
    modes = channel_modes(obj) if rehearsal or obj.config.live else {}
    if rehearsal:
        live = [f"{name}: {where}" for name, (is_live, where) in modes.items() if is_live]
        if live:
            raise click.ClickException(
                f"--rehearsal: a rehearsal writes only to the local outbox, but these channels are live: "
                f"{'; '.join(live)} (unset their variables for the rehearsal copy)")
    elif day is not None:
        today = obj.now().date()
        last = (obj.store().snapshot().meta("last_cycle") or {}).get("day")
        if day > today + timedelta(days=DAYS_AHEAD):
            raise click.ClickException(f"--date {day}: more than {DAYS_AHEAD} days after today ({today}): a typo? "
                                       "(to rehearse days ahead, use --rehearsal on a copy of the state)")
        if last and day < date.fromisoformat(last):
            raise click.ClickException(f"--date {day}: before the last cycle's day on this state ({last}): days "
                                       "only move forward (to replay days, use --rehearsal on a copy of the state)")
    if obj.config.live:
        used = {c for s in obj.config.ladder for c in s.channels + s.first_time_channels} | {"staff"}
        idle = [f"{name}: {where}" for name, (is_live, where) in modes.items() if name in used and not is_live]
        if idle:
            raise click.ClickException(f"{obj.config.source}: live = true, but not every channel has its provider: "
                                       + "; ".join(idle))


@contextmanager
def progress_reporter(enabled: bool):
    """A rich progress bar on a terminal; plain lines (one per tenth) otherwise."""
    if not enabled:
        yield lambda done, total: None
        return
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task("sending", total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    shown = [0]

    def plain(done: int, total: int) -> None:
        step = max(total // 10, 1)
        if done // step > shown[0] or done == total:
            shown[0] = done // step
            click.echo(f"progress: {done}/{total} messages", err=True)
    yield plain


def print_summary(summary, dry_run: bool) -> None:
    from notifier.run.cycle import COLUMNS
    headers = ["channel", *(("would send" if c == "sent" and dry_run else c) for c in COLUMNS)]
    rows = summary.table()
    if rows:
        print_table(headers, rows)
    else:
        click.echo("nothing to send")
    if summary.waiting_until:
        click.echo(f"waiting for contact hours: until {summary.waiting_until:%d/%m/%Y %H:%M}")
    for code, detail in sorted(summary.problems.items()):
        click.echo(f"blocked: {code}: {detail}", err=True)
    if summary.stopped:
        click.echo("stopped before the end: the rest goes on the next run", err=True)


@cli.command("run-once")
@date_option("Run the cycle as of this day (YYYY-MM-DD) at the configured cycle time; default: now.")
@click.option("--at", type=TIME, callback=lambda c, p, v: v.time() if v else None,
              help="With --date: the time of day (HH:MM) the cycle runs at, for contact hours.")
@click.option("--dry-run", is_flag=True, help="Plan and render everything, send and write nothing.")
@click.option("--limit", type=click.IntRange(min=0), help="Send at most N messages.")
@click.option("--rehearsal", is_flag=True, help=REHEARSAL_HELP)
@json_option
@click.pass_obj
def run_once(obj: Context, day, at, dry_run, limit, rehearsal, as_json):
    """Run one cycle and exit (for cron, tests and manual runs): plan the day, record superseded
    notices as skipped, send, log every attempt and mark what was handled in the ledger."""
    import signal
    import threading
    from notifier.run.cycle import Cycle, reconcile, record_cycle
    from notifier.run.daemon import AlreadyRunning, PidLock, run_niced
    from notifier.run.render import Renderer
    from notifier.staff.actions import send_waiting
    if at and not day:
        raise click.UsageError("--at needs --date")
    if not dry_run:  # a dry run writes nothing: any day may be previewed
        refuse_a_bad_start(obj, day, rehearsal)
    setup_logging()
    run_niced(obj.config.cycle.nice)
    clock = clock_for(obj, day, at)
    today = clock().date()
    store, log = obj.store(), obj.log()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    renderer = Renderer(obj.config)
    with progress_reporter(not as_json) as progress:
        cycle = Cycle(store, obj.config, log, renderer, clock, stop, progress, actor="run-once")
        if dry_run:
            summary = cycle.run(today, dry_run=True, limit=limit)
        else:
            try:
                with PidLock(obj.config.state):
                    reconcile(store, log, clock())
                    summary = cycle.run(today, limit=limit)
                    record_cycle(store, today, clock(), summary)
                    if not stop.is_set():  # escalations that waited for contact hours
                        send_waiting(store, obj.config, log, renderer, clock)
            except AlreadyRunning as exc:
                raise click.ClickException(str(exc)) from None
    if as_json:
        echo_json({"day": today.isoformat(), "dry_run": dry_run, "counts": summary.to_json(),
                   "problems": summary.problems, "stopped": summary.stopped})
    else:
        print_summary(summary, dry_run)


@cli.command()
@date_option("Run as of this day (frozen, for tests): the clock starts at the cycle time and advances.")
@click.option("--rehearsal", is_flag=True, help=REHEARSAL_HELP)
@click.pass_obj
def daemon(obj: Context, day, rehearsal):
    """Run unattended: the daily cycle at the configured time (a catch-up cycle at start), what
    waited for contact hours and temporary failures in between, a daily staff summary. Stops
    cleanly on SIGTERM/SIGINT; refuses to start when another one runs on the same state."""
    from notifier.run.daemon import AlreadyRunning, Daemon, PidLock, run_niced
    from notifier.run.render import Renderer
    from notifier.staff.actions import send_daily_summary
    refuse_a_bad_start(obj, day, rehearsal)
    setup_logging()
    # Where each channel's messages go, before anything is sent: a typo in a variable must not
    # turn sending into a local folder unnoticed.
    logging.getLogger("notifier.daemon").info("channels: %s", "; ".join(
        f"{name} {mode_text(*mode)}" for name, mode in channel_modes(obj).items()))
    niceness = run_niced(obj.config.cycle.nice)
    logging.getLogger("notifier.daemon").info("CPU priority: nice %d ([cycle] nice = %d)", niceness,
                                              obj.config.cycle.nice)
    clock = clock_for(obj, day, None)
    store, log = obj.store(), obj.log()
    renderer = Renderer(obj.config)
    for problem in renderer.check():
        # One channel's problem is that channel's alone: the cycle blocks only the messages that need it.
        logging.getLogger("notifier.daemon").warning("template problem (see `notifier check`): %s", problem)
    try:
        with PidLock(obj.config.state):
            d = Daemon(obj.config, store, log, renderer, clock,
                       summary=lambda today: send_daily_summary(store, obj.config, log, clock, today))
            d.install_signals()
            d.run()
    except AlreadyRunning as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@date_option("As of this day (YYYY-MM-DD), at the current time of day; default: now.")
@json_option
@click.pass_obj
def status(obj: Context, day, as_json):
    """The daemon's health: last cycle and heartbeat, next run, what waits for contact hours, open
    staff tasks and holds. Exits 1 when the last cycle is older than expected (for monitoring)."""
    from notifier.staff.actions import health, whatsapp_cost_line
    from notifier.staff.actor import neutralise
    now = obj.now() if day is None else datetime.combine(day, obj.now().time(), obj.config.tz)
    report = health(obj.store(), obj.config, obj.log(), now)
    report["channels"] = {name: "live" if live else "outbox" if live is False else f"unusable: {where}"
                          for name, (live, where) in channel_modes(obj).items()}
    if as_json:
        echo_json(report)
    else:
        for key in ("state", "last_cycle", "heartbeat", "next_cycle", "waiting_until"):
            click.echo(f"{key:>14}: {report[key] or '-'}")
        click.echo(f"{'last counts':>14}:" + ("" if report["counts"] else " -"))
        if report["counts"]:
            _counts_table(report["counts"])
        for n, (name, mode) in enumerate(channel_modes(obj).items()):
            click.echo(f"{'channels' if n == 0 else '':>14}{':' if n == 0 else ' '} {name}: {mode_text(*mode)}")
        click.echo(f"{'open tasks':>14}: {len(report['open_tasks'])}")
        for t in report["open_tasks"]:
            click.echo(neutralise(f"{'':>16}{t['id']} {t['kind']} {t['account']} {t['channel']} {t['recipient']}"))
        click.echo(f"{'escalations':>14}: {len(report['waiting_escalations'])} waiting for contact hours")
        for t in report["waiting_escalations"]:
            click.echo(neutralise(f"{'':>16}{t['id']} {t['account']} {t['channel']} until "
                                  f"{datetime.fromisoformat(t['until']):%d/%m/%Y %H:%M}"))
        click.echo(f"{'holds':>14}: {len(report['holds'])}")
        for h in report["holds"]:
            click.echo(neutralise(f"{'':>16}{h['account']} {h['reason']} until {h['until']} (by {h['by']})"))
        cost = whatsapp_cost_line(report["whatsapp"]["first_time_without_whatsapp"], now.date())
        for line in report["whatsapp"]["problems"] + ([cost] if cost else []):
            click.echo(f"{'whatsapp':>14}: {line}")
    if report["stale"]:
        click.echo(f"STALE: {report['stale']}", err=True)
        sys.exit(1)


def _counts_table(counts: dict) -> None:
    """The heartbeat's {channel: {status: n}} as a table under `last counts`, in the cycle's order."""
    from notifier.run.cycle import COLUMNS
    statuses = [c for c in COLUMNS if any(c in by for by in counts.values())]
    statuses += sorted({s for by in counts.values() for s in by} - set(statuses))
    print_table(["channel", *statuses], [[channel, *(by.get(s, 0) for s in statuses)]
                                         for channel, by in sorted(counts.items())], indent=" " * 16)
