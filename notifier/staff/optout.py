"""Opt-outs the providers report: a customer who replied STOP to our SMS number (Twilio 21610)
is opted out of that channel as if staff had recorded it with `notifier opt-out`.

The hook is called after a batch of deliveries, outside any provider call (the store is locked
only to write the opt-outs): today by `notifier send` (cli/operations.py); the daily cycle calls it
the same way after each batch. A "SAIR" reply (what our WhatsApp and SMS texts tell the customer
to send) arrives as an inbound message, not as an error code: `serve-webhooks` hands it to
`record_stop_message`, which opts the number out of the channel it came on.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Iterable

from notifier.staff.actor import Actor
from notifier.staff.holds import normalize

UNSUBSCRIBED = "21610"  # Twilio: "Attempt to send to unsubscribed recipient" (the customer said STOP)
RECORDED_BY = "twilio:21610"
STOP_WORDS = frozenset({"SAIR", "PARAR", "STOP", "CANCELAR"})  # a whole reply of one of these words
REPLY_ACTOR = "customer:reply"


def stop_replies(deliveries: Iterable) -> list[tuple[str, str]]:
    """(account, channel) for each delivery refused because the recipient said STOP; the channel
    is SMS when it was WhatsApp's SMS fallback that was refused."""
    found = []
    for d in deliveries:
        if d.result.code == UNSUBSCRIBED:
            channel = "sms" if d.result.evidence.get("fallback") == "sms" else d.notice.channel
            found.append((d.notice.account, channel))
    return list(dict.fromkeys(found))


def record_stop_replies(store, deliveries: Iterable, today: date) -> list[tuple[str, str]]:
    """Write the opt-outs of `stop_replies` to the store, in one transaction; returns them."""
    stops = stop_replies(deliveries)
    if stops:
        with store.transaction() as snap:
            for account, channel in stops:
                snap.record_opt_out(account, channel, RECORDED_BY, today)
    return stops


def is_stop(body: str) -> bool:
    """A reply that asks to stop: one of `STOP_WORDS` alone, in any case, punctuation aside
    ("Sair.", " sair!"). A sentence that merely contains the word is left to staff."""
    return body.strip().strip(".!").strip().upper() in STOP_WORDS


def record_stop_message(store, log, sender: str, body: str, now: datetime) -> list[tuple[str, str]]:
    """An inbound message (Twilio's `From`, `Body`): when it asks to stop, the accounts whose
    number sent it are opted out of the channel it came on (WhatsApp for `whatsapp:+55...`,
    else SMS), in one transaction, and the log records each as the customer's; returns them."""
    if not is_stop(body):
        return []
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    number = normalize(sender.removeprefix("whatsapp:"))
    today = now.date()
    with store.transaction() as snap:
        found = [(a.id, channel) for a in snap.accounts() if a.whatsapp and normalize(a.whatsapp) == number]
        for account, _ in found:
            snap.record_opt_out(account, channel, REPLY_ACTOR, today)
    log.note_many([(now, "opt_out", {"account": account, "channel": channel, "date": today.isoformat(),
                                      "reply": body.strip()}, REPLY_ACTOR) for account, _ in found])
    return found


def opt_out(store, log, now: datetime, account_id: str, channels: Iterable[str], day: date, by: Actor):
    """The customer asked on `day` not to be contacted on `channels` (staff record it): kept in
    the store apart from the imported record, and logged with who recorded it. Returns the account."""
    channels = list(channels)
    with store.transaction() as snap:
        for channel in channels:
            account = snap.record_opt_out(account_id, channel, by.name, day)
    log.note_many([(now, "opt_out", {"account": account_id, "channel": channel, "date": day.isoformat(), **by.fields()},
                    by.name) for channel in channels])
    return account
