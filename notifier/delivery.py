"""From notices to delivered messages: render → channel → attempt log.

The one path every send takes, whether the plan decided it or a person asked for it (`send`,
`preview`): build the notices, render each into a `Message`, hand it to its channel by name and
record the attempt before and after. Channels are looked up in the registry; none is imported here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Callable, Iterable

import channels
from channels import FAILED, ChannelError, Message, Result

from .attempts import AttemptLog
from .config import Config
from .models import Account, Notice
from .rules import account_timeline, is_first_time, plan_account, recipients, stage_channels, wants_tutorial


class DeliveryError(Exception):
    """A request a person made that cannot be served (unknown account, nothing to send...)."""


@dataclass(frozen=True)
class Delivery:
    notice: Notice
    message: Message
    attempt: str
    result: Result


def notices_for_account(
    snapshot,
    config: Config,
    account_id: str,
    today: date,
    stage: str | None = None,
    channel: str | None = None,
    to: str | None = None,
) -> list[Notice]:
    """The notices a person asks for: what the plan sends the account today, or, with `stage`,
    that stage on its configured channels (or on `channel`), to the account's recipients (or `to`).

    Without `stage`, a channel the plan has nothing for today gets the account's current stage,
    so an operator can always test a channel against a real account.
    """
    account = snapshot.account(account_id)
    if account is None:
        raise DeliveryError(f"no account {account_id!r} in the store")
    cal = config.calendar
    invoices = snapshot.invoices(account_id)
    history = snapshot.histories().get(account_id)
    open_invoices = [i for i in invoices if i.unpaid_on(today)]
    if not open_invoices:
        raise DeliveryError(f"account {account_id!r} has no open invoice on {today:%d/%m/%Y}: nothing to send")
    if stage is None:
        planned, _ = plan_account(today, account, invoices, history, snapshot.ledger(account_id), cal, config)
        planned = [n for n in planned if channel is None or n.channel == channel]
        if planned or channel is None:
            return [replace(n, recipient=to) if to else n for n in planned]
        stage = current_stage(account, invoices, history, today, config)
    ladder_stage = config.stage(stage)
    if ladder_stage is None:
        raise DeliveryError(f"stage {stage!r} is not in the configured ladder")
    first_time = any(is_first_time(account, i, invoices, history, cal, config) for i in open_invoices)
    channels, extra, first = stage_channels([ladder_stage], first_time)
    wanted = (channel,) if channel else channels
    notices = []
    for name in wanted:
        for recipient in ((to,) if to else recipients(account, name)):
            notices.append(Notice(
                account=account.id, date=today, stage=stage, channel=name, recipient=recipient,
                invoices=tuple(sorted(i.id for i in open_invoices)), first_time=first,
                tutorial=wants_tutorial(name, extra, first, config.tutorial_in_first_overdue_email),
            ))
    if not notices:
        raise DeliveryError(f"account {account_id!r} has no recipient on channel {channel!r}: pass --to")
    return notices


def current_stage(account: Account, invoices, history, today: date, config: Config) -> str:
    """The most advanced stage the account's open invoices have reached by `today` (the first
    stage of the ladder when none has been reached yet)."""
    timeline = account_timeline(account, invoices, history, config.calendar, config)
    reached = [e for e in timeline if e.date <= today]
    if reached:
        return reached[-1].stage
    return timeline[0].stage if timeline else config.ladder[0].name


def render_all(snapshot, renderer, notices: Iterable[Notice], today: date) -> list[tuple[Notice, Message]]:
    """Render each notice for its account, listing every invoice of the account open `today`."""
    out = []
    for notice in notices:
        account = snapshot.account(notice.account)
        open_invoices = [i for i in snapshot.invoices(notice.account) if i.unpaid_on(today)]
        out.append((notice, renderer.render(notice, account, open_invoices, today)))
    return out


def deliver(
    rendered: Iterable[tuple[Notice, Message]],
    config: Config,
    log: AttemptLog,
    now: Callable[[], datetime],
) -> list[Delivery]:
    """Send each message on its channel, logging the attempt before and the answer after.

    A channel that cannot be built (say, a missing credential) fails its own messages with a
    permanent error that names what to fix; the other channels go on.
    """
    built: dict[str, channels.Channel | ChannelError] = {}
    deliveries = []
    try:
        for notice, message in rendered:
            if notice.channel not in built:
                try:
                    built[notice.channel] = channels.build(notice.channel, config)
                except ChannelError as exc:
                    built[notice.channel] = exc
            attempt = log.start(now(), message, _notice_fields(notice))
            channel = built[notice.channel]
            if isinstance(channel, ChannelError):
                result = Result(FAILED, provider=notice.channel, detail=str(channel), permanent=True)
            else:
                try:
                    result = channel.send(message)
                except ChannelError as exc:
                    result = Result(FAILED, provider=notice.channel, detail=str(exc), permanent=True)
            log.finish(attempt, now(), result)
            deliveries.append(Delivery(notice, message, attempt, result))
    finally:
        for channel in built.values():
            if not isinstance(channel, ChannelError):
                channel.close()
    return deliveries


def failure_alerts(snapshot, renderer, deliveries: Iterable[Delivery], today: date) -> list[tuple[Notice, Message]]:
    """A staff alert for each customer message that failed permanently (the notifier will not try
    it again, so a person must fix the contact). Staff failures raise no alert about themselves."""
    alerts = []
    for d in deliveries:
        if d.result.ok or not d.result.permanent or d.notice.channel == "staff":
            continue
        account = snapshot.account(d.notice.account)
        open_invoices = [i for i in snapshot.invoices(account.id) if i.unpaid_on(today)]
        message = renderer.render_failure_alert(d.notice, account, open_invoices, today, d.result)
        alerts.append((replace(d.notice, channel="staff", recipient="staff", tutorial=False), message))
    return alerts


def _notice_fields(notice: Notice) -> dict:
    return {
        "account": notice.account,
        "notice_date": notice.date.isoformat(),
        "stage": notice.stage,
        "invoices": list(notice.invoices),
        "first_time": notice.first_time,
        "tutorial": notice.tutorial,
    }
