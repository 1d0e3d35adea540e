"""The staff channel: tasks and alerts for the company's own people, through apprise.

`STAFF_URLS` (config.env) lists apprise URLs (Slack, Teams via `workflows://`, Discord, Telegram,
e-mail...) separated by spaces or commas; every message goes to all of them. Without it the
message goes to the outbox, so a newcomer still sees the tasks.
"""
from __future__ import annotations

import json
from dataclasses import replace

from . import FAILED, SENT, Channel, Message, Result, decode_payload, encode_payload, register
from . import outbox
from ._apprise import NO_PROVIDER_ID, PROVIDER, parse, public_url, send_apprise


def staff_urls(config) -> list[str]:
    # apprise's own splitter: a comma inside a URL's query (mailto://...?to=a@x,b@y) stays put.
    urls = config.env.get("STAFF_URLS", "")
    if not urls.strip():
        return []  # the outbox: no need to import apprise (0.1–0.15 s at each start)
    from apprise.utils.parse import parse_urls
    return parse_urls(urls)


@register
class StaffChannel(Channel):
    """Sends each message to every URL of `STAFF_URLS`, one apprise send per URL.

    The message counts as sent when at least one URL took it: staff have the task, and sending
    again would duplicate it where it arrived. The evidence lists every URL's outcome, so a
    broken one shows in the audit (and `notifier check` names it). When none took it, the failure
    is permanent only if every URL is invalid, since only a configuration change can fix that.
    """
    name = "staff"

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.urls = staff_urls(config)

    def prepare(self, message: Message) -> Message:
        """The title and body every staff URL gets, and the URLs (masked), as JSON."""
        return replace(message, payload=encode_payload({
            "targets": [public_url(url) for url in self.urls], "title": message.subject or "",
            "body": message.text}))

    def send(self, message: Message) -> Result:
        if message.payload is None:
            message = self.prepare(message)
        sent = decode_payload(message)
        if not self.urls:
            return outbox.write_json(self.config.outbox, self.name, message.recipient, _payload(message))
        results = [send_apprise(url, sent["title"], sent["body"]) for url in self.urls]
        delivered = sum(r.ok for r in results)
        failures = [f"{r.evidence['url']}: {r.detail}" for r in results if not r.ok]
        detail = f"delivered to {delivered} of {len(results)} staff URLs"
        if failures:
            detail += "; failed: " + " | ".join(failures)
        return Result(
            status=SENT if delivered else FAILED,
            provider=PROVIDER,
            code=None if delivered else next(r.code for r in results if not r.ok),
            detail=detail,
            permanent=not delivered and all(r.permanent for r in results),
            evidence={
                "targets": [
                    {"url": r.evidence["url"], "status": r.status, "detail": r.detail,
                     "log": list(r.evidence.get("log", ()))}
                    for r in results
                ],
                "note": NO_PROVIDER_ID,
            },
        )

    @property
    def live(self) -> bool:
        return bool(self.urls)

    def check(self, connect: bool = False) -> list[str]:
        """Every URL must parse in apprise. apprise has no way to reach a service without
        sending, so `connect` checks nothing more."""
        return [
            f"STAFF_URLS: item {i} ({public_url(url)}) is not a URL apprise can send to"
            for i, url in enumerate(self.urls, 1)
            if parse(url) is None
        ]

    def describe(self) -> str:
        if not self.urls:
            return f"{self.config.outbox / self.name} (STAFF_URLS not set)"
        return ", ".join(public_url(url) for url in self.urls)


def _payload(message: Message) -> dict:
    return {
        "channel": message.channel,
        "recipient": message.recipient,
        "subject": message.subject,
        "text": message.text,
        # meta may hold dates; the outbox is for reading, so their text form is enough.
        "meta": json.loads(json.dumps(dict(message.meta), default=str)),
    }
