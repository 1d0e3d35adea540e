"""From notices to delivered messages: render → channel → attempt log.

The one path every send takes, whether the plan decided it or a person asked for it (`send`,
`preview`): build the notices, render each into a `Message`, hand it to its channel by name and
record the attempt before and after. Channels are looked up in the registry; none is imported here.

A problem of our configuration (a broken template, a missing setting or credential, a WhatsApp
stage with no approved template) makes the messages that need it BLOCKED, never the customer's
failure: no "fix the customer's record" alert, and one staff alert per problem (`config_alerts`)
that says what to configure. The other channels go on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Callable, Iterable

from notifier import channels
from notifier.channels import BLOCKED, FAILED, UNKNOWN, ChannelError, Message, Result

from notifier.log.attempts import AttemptLog, LogError, new_id
from notifier.config import Config
from notifier.billing.documents import normalize_email, normalize_phone
from notifier.staff.holds import barred as is_barred, parse_do_not_contact
from notifier.billing.models import Account, Notice
from notifier.run.render import TemplateError
from notifier.billing.rules import (account_timeline, is_first_time, owed_on, plan_account, recipients, stage_channels,
                    wants_tutorial)

# The provider named in a Result that no channel produced: the notifier itself stopped the message.
NOTIFIER = "notifier"


class DeliveryError(Exception):
    """A request a person made that cannot be served (unknown account, nothing to send...)."""


@dataclass(frozen=True)
class Delivery:
    """One notice's outcome. `message` and `attempt` are None for a notice blocked before it
    could be rendered (its template is broken): nothing was attempted, so nothing was logged."""
    notice: Notice
    message: Message | None
    attempt: str | None
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
    so an operator can always test a channel against a real account. `to` means one message per
    channel to that recipient (not one per billing address), checked first (`checked_recipient`).
    """
    account = snapshot.account(account_id)
    if account is None:
        raise DeliveryError(f"no account {account_id!r} in the store")
    cal = config.calendar
    invoices = snapshot.invoices(account_id)
    history = snapshot.histories().get(account_id)
    open_invoices = [i for i in invoices if owed_on(i, today)]
    if not open_invoices:
        raise DeliveryError(f"account {account_id!r} has no open invoice on {today:%d/%m/%Y}: nothing to send")
    if stage is None:
        planned, _ = plan_account(today, account, invoices, history, snapshot.ledger(account_id), cal, config)
        planned = [n for n in planned if channel is None or n.channel == channel]
        if planned or channel is None:
            if to is None:
                return planned
            first = {n.channel: n for n in reversed(planned)}  # each channel's first notice
            return [replace(n, recipient=checked_recipient(n.channel, to)) for n in first.values()]
        stage = current_stage(account, invoices, history, today, config)
    ladder_stage = config.stage(stage)
    if ladder_stage is None:
        raise DeliveryError(f"stage {stage!r} is not in the configured ladder")
    first_time = any(is_first_time(account, i, invoices, history, cal, config) for i in open_invoices)
    channels, extra, first = stage_channels([ladder_stage], first_time)
    wanted = (channel,) if channel else channels
    notices = []
    for name in wanted:
        for recipient in (recipients(account, name) if to is None else (checked_recipient(name, to),)):
            notices.append(Notice(
                account=account.id, date=today, stage=stage, channel=name, recipient=recipient,
                invoices=tuple(sorted(i.id for i in open_invoices)), first_time=first,
                tutorial=wants_tutorial(name, extra, first, config.tutorial_in_first_overdue_email),
            ))
    if not notices:
        raise DeliveryError(f"account {account_id!r} has no recipient on channel {channel!r}: pass --to")
    return notices


def checked_recipient(channel: str, to: str) -> str:
    """`to` (a person's `--to`) in the form `channel` sends to, or `DeliveryError`. Checked before
    anything is sent, so a typo is never logged as a customer's failure, and an empty value (an
    unset shell variable) never falls back to the customer's real addresses."""
    text = to.strip()
    if not text:
        raise DeliveryError("--to is empty (an unset shell variable?): give a recipient, or leave --to "
                            "out to send to the account's own")
    try:
        if channel == "email":
            return normalize_email(text)
        if channel in ("whatsapp", "sms"):
            return normalize_phone(text)
    except ValueError as exc:
        raise DeliveryError(f"--to for {channel}: {exc}") from None
    if channel == "social":
        network, _, handle = text.partition(":")
        # A URL would put its secret in the attempt log, where the recipient is written.
        if not network or not handle.strip() or "://" in text:
            raise DeliveryError("--to for social: write network:handle, like instagram:@empresa")
        return text
    raise DeliveryError(f"--to: the {channel} channel has no recipient to choose (it sends to its configured URLs)")


def current_stage(account: Account, invoices, history, today: date, config: Config) -> str:
    """The most advanced stage the account's open invoices have reached by `today` (the first
    stage of the ladder when none has been reached yet). A stage that only makes a task for staff
    (`deletion_due`) is passed over: what a customer is sent is the last stage written for them."""
    staff_only = {s.name for s in config.ladder if set(s.channels) <= {"staff"}}
    timeline = [e for e in account_timeline(account, invoices, history, config.calendar, config)
                if e.stage not in staff_only]
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


def render_or_block(snapshot, renderer, notices: Iterable[Notice], today: date,
                    ) -> tuple[list[tuple[Notice, Message]], list[Delivery]]:
    """`render_all` for sending: a notice whose channel and stage have a template problem
    (`renderer.problems_for`), or that fails to render, is not rendered but comes back as a
    BLOCKED delivery naming the problem; every other notice is rendered as usual."""
    rendered, blocked = [], []
    for notice in notices:
        problems = renderer.problems_for(notice.channel, notice.stage)
        if not problems:
            try:
                rendered += render_all(snapshot, renderer, [notice], today)
                continue
            except TemplateError as exc:
                problems = [str(exc)]
        result = Result(BLOCKED, NOTIFIER, code=f"config:templates.{notice.channel}.{notice.stage}",
                        detail="; ".join(problems))
        blocked.append(Delivery(notice, None, None, result))
    return rendered, blocked


def deliver(
    rendered: Iterable[tuple[Notice, Message]],
    config: Config,
    log: AttemptLog,
    now: Callable[[], datetime],
    actor: str = "daemon",
    attempt_of: Callable[[Notice], int] = lambda notice: 1,
) -> list[Delivery]:
    """Send each message on its channel: prepare its bytes, log them (`sending`, fsynced), hand
    exactly those bytes to the provider, log the answer.

    The attempt id is chosen before the message is prepared, because the payload carries it (the
    e-mail's VERP Return-Path and X-Notifier-Attempt-Id header). A channel that cannot be built or
    cannot prepare the message (say, a missing credential) blocks its own messages with the
    problem named; the other channels go on. Without the log nothing may be sent: a log that
    cannot be written stops the run with `DeliveryError`. `attempt_of` numbers the tries of a
    notice (1 for the first), for the cycle that retries temporary failures.
    """
    built: dict[str, channels.Channel | ChannelError] = {}
    deliveries = []
    try:
        for notice, message in rendered:
            when = now()
            message, channel = prepare(built, config, message, when=when)
            attempt_id = message.meta["attempt_id"]
            fields = {**notice_fields(notice, message), "attempt": attempt_of(notice)}
            _logged(log, "nothing more was sent", log.start, when, message, fields, actor, message.payload, attempt_id)
            result = _send(channel, notice.channel, message)
            _logged(log, f"the {notice.channel} message to {notice.recipient} went out ({result.status}) but "
                         "its outcome is not recorded", log.finish, attempt_id, now(), result)
            deliveries.append(Delivery(notice, message, attempt_id, result))
    finally:
        close_all(built)
    return deliveries


def do_not_contact(config: Config) -> frozenset[str]:
    """The numbers of the do-not-contact file (`do_not_contact` in the configuration), which get
    no WhatsApp or SMS from the cycle or from staff; ChannelError when it cannot be read."""
    path = config.do_not_contact
    if path is None:
        return frozenset()
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return parse_do_not_contact(fh)
    except OSError as exc:
        # Sending to a number that asked not to be called is worse than not sending today.
        raise ChannelError(f"do_not_contact: cannot read {path}: {exc.strerror or exc}") from None


def split_do_not_contact(config: Config, notices: Iterable[Notice]) -> tuple[list[Notice], list[Notice]]:
    """(the notices that may go, those whose WhatsApp or SMS number is on the do-not-contact
    list): a number that asked not to be called is not called by staff either."""
    numbers = do_not_contact(config)
    refused = [n for n in notices if is_barred(n, numbers)]
    return [n for n in notices if n not in refused], refused


def close_all(built: dict) -> None:
    """Close every channel of a `prepare` cache (their connections) and empty it."""
    for channel in built.values():
        if not isinstance(channel, ChannelError):
            channel.close()
    built.clear()


def prepare(built: dict, config: Config, message: Message, attempt_id: str | None = None,
            when: datetime | None = None) -> tuple[Message, channels.Channel | ChannelError]:
    """`message` with a new attempt id and the exact bytes its channel will hand the provider
    (`Channel.prepare`), and the channel, built once per `built` cache. The id comes first: the
    payload carries it (the e-mail's VERP Return-Path); so does `when`, the time the log records
    for the attempt (the e-mail's Date:, so the message and the log tell one time). A channel that cannot be built or cannot
    prepare the message comes back as its `ChannelError`, and the message without a payload."""
    name = message.channel
    if name not in built:
        try:
            built[name] = channels.build(name, config)
        except ChannelError as exc:
            built[name] = exc
    channel = built[name]
    message = replace(message, payload=None, meta={**message.meta, "attempt_id": attempt_id or new_id()}, date=when)
    if isinstance(channel, ChannelError):
        return message, channel
    try:
        return channel.prepare(message), channel
    except ChannelError as exc:
        return message, exc


def _send(channel: channels.Channel | ChannelError, name: str, message: Message) -> Result:
    """The channel's answer; a channel that cannot work as configured blocks the message."""
    try:
        if isinstance(channel, ChannelError):
            raise channel
        return channel.send(message)
    except ChannelError as exc:
        return Result(BLOCKED, provider=name, code=f"config:{name}", detail=str(exc))


def _logged(log: AttemptLog, consequence: str, write, *args):
    """`write(*args)` on the attempt log; an OSError (full disk, a log that is a folder, no
    permission) becomes one sentence that says where and what it means for the run."""
    try:
        return write(*args)
    except LogError as exc:  # already names the file and the reason
        raise DeliveryError(f"{exc}: {consequence}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DeliveryError(f"cannot write the attempt log {log.path}: {reason}: {consequence}") from None


def failure_alerts(snapshot, renderer, deliveries: Iterable[Delivery], today: date) -> list[tuple[Notice, Message]]:
    """A staff alert for each customer message that failed permanently or may have arrived
    (`unknown`): the notifier will not try it again, so a person must fix the contact or check
    with the provider. Staff failures raise no alert about themselves."""
    alerts = []
    for d in deliveries:
        given_up = d.result.status == UNKNOWN or (d.result.status == FAILED and d.result.permanent)
        if not given_up or d.notice.channel == "staff":
            continue
        account = snapshot.account(d.notice.account)
        open_invoices = [i for i in snapshot.invoices(account.id) if i.unpaid_on(today)]
        message = renderer.render_failure_alert(d.notice, account, open_invoices, today, d.result)
        alerts.append((replace(d.notice, channel="staff", recipient="staff", tutorial=False), message))
    return alerts


def config_alerts(deliveries: Iterable[Delivery], today: date, already: Iterable[str] = ()) -> list[tuple[Notice, Message]]:
    """One staff alert per distinct configuration problem (`code` of a BLOCKED result) among
    `deliveries`, saying what to configure and which accounts wait for it: a problem is told once,
    not once per message. `already` holds the codes alerted earlier that day (the daily cycle
    reads them from the log), so that a problem is told once a day."""
    waiting: dict[str, list[Delivery]] = {}
    skip = set(already)
    for d in deliveries:
        if d.result.status == BLOCKED and d.result.code not in skip:
            waiting.setdefault(d.result.code or "config", []).append(d)
    return [_config_alert(code, blocked, today) for code, blocked in waiting.items()]


def _config_alert(code: str, blocked: list[Delivery], today: date) -> tuple[Notice, Message]:
    first = blocked[0]
    many = len(blocked) > 1
    what = f"{len(blocked)} mensage{'ns' if many else 'm'} de {first.notice.channel}"
    accounts = ", ".join(dict.fromkeys(d.notice.account for d in blocked))
    text = (
        f"O notificador não enviou {what} em {today:%d/%m/%Y} por um problema da nossa "
        "configuração, não do cadastro do cliente:\n\n"
        f"{first.result.detail}\n\n"
        f"Contas que aguardam: {accounts}.\n"
        "Depois de corrigir, confira com `notifier check`: os avisos pendentes saem no próximo envio, "
        "dentro da janela de recuperação de cada um.\n"
    )
    notice = Notice(account="", date=today, stage=first.notice.stage, channel="staff", recipient="staff",
                    invoices=(), first_time=False, tutorial=False)
    message = Message(channel="staff", recipient="staff", text=text,
                      subject=f"Configuração: {what} bloqueada{'s' if many else ''} ({code})",
                      meta={"alert": "config_problem", "code": code, "notice_date": today.isoformat()})
    return notice, message


def notice_fields(notice: Notice, message: Message | None = None) -> dict:
    """What the attempt log records of a notice: enough to rebuild the ledger from the log
    (`covers`) and to tell finance which template was used. Without a message (a notice recorded
    as skipped) the template is the stage's own."""
    template = (message.meta.get("template") or message.content_sid) if message is not None else None
    return {
        "account": notice.account,
        "invoices": list(notice.invoices),
        "stage": notice.stage,
        "channel": notice.channel,
        "recipient": notice.recipient,
        "notice_date": notice.date.isoformat(),
        "first_time": notice.first_time,
        "tutorial": notice.tutorial,
        "covers": [[invoice, day.isoformat(), stage] for invoice, day, stage in notice.covers],
        "template": template or f"{notice.channel}/{notice.stage}",
        "attempt": 1,
    }