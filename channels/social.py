"""The social channel: a direct message on the customer's social network profile.

Contract with the caller: the account's handle comes in `message.meta["social_handle"]`, because
the recipient cannot always carry it (`notifier.rules.social_recipient`): for a handle that is an
apprise URL the recipient is the network's name alone, so the URL's secret stays out of the plan
and the logs. For a plain handle the recipient is "network:handle" and is used when meta has none.

- A handle that is an apprise URL (Telegram bot chat, Mastodon DM, ...) is sent through apprise,
  but only when the operator allows it: its scheme must be in `schemes`, and `send = true`.
- Any other handle (Instagram, Facebook, LinkedIn: no messaging API for businesses) becomes a
  task for support staff, sent on the staff channel, with the profile and the full text to send.

Options (`[channels.social]`):
- `send` (default false): URL handles reach the network only when true; otherwise they are written
  to the outbox like every channel with no provider configured. The handles come from billing data,
  not from the operator, so nothing set in the environment alone may make them live.
- `schemes` (default `DEFAULT_SCHEMES`): the apprise schemes a handle may use. Billing data must not
  be able to make the notifier post wherever it likes (`json://10.0.0.5/admin`), so the default
  holds only messaging services: Telegram and Discord post to their fixed API hosts, Mastodon to
  the fixed status API of the instance the handle names. A handle of any other scheme is a
  permanent failure that asks staff to fix the account's record.

How a staff task reads in the contact-attempt log: status `task` (channels.TASK), provider
`staff-task`, `provider_id` the staff channel's, and evidence naming the network, the profile and
the staff send. It means the notifier handed the message to staff, not that the customer received
it: the contact itself happens outside the notifier. It is not "failed" on purpose, because
retrying would only hand staff the same task again.
"""
from __future__ import annotations

import re
from dataclasses import replace

from . import FAILED, TASK, Channel, ChannelError, Message, Result, build, decode_payload, encode_payload, outbox, register
from ._apprise import invalid, known_scheme, parse, public_url, send_apprise

TASK_PROVIDER = "staff-task"
SCHEME_NOT_ALLOWED = "scheme_not_allowed"
# Messaging services whose apprise URL cannot name an arbitrary web address. Never json/xml/form,
# http(s) or any scheme that posts to a URL the handle chooses.
DEFAULT_SCHEMES = ("tgram", "discord", "mastodon", "mastodons", "toot", "toots")
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://")
# How staff read a network's name in a task; an unknown network is shown as written.
NETWORK_NAMES = {
    "instagram": "Instagram",
    "facebook": "Facebook",
    "linkedin": "LinkedIn",
    "x": "X (Twitter)",
    "twitter": "X (Twitter)",
    "tiktok": "TikTok",
    "telegram": "Telegram",
    "mastodon": "Mastodon",
}


@register
class SocialChannel(Channel):
    name = "social"

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.send_enabled = self.options.get("send", False)
        if not isinstance(self.send_enabled, bool):
            raise ChannelError(f"channels.social.send: must be true or false, not {self.send_enabled!r}")
        schemes = self.options.get("schemes", list(DEFAULT_SCHEMES))
        if not isinstance(schemes, list) or not all(isinstance(s, str) and s.strip() for s in schemes):
            raise ChannelError("channels.social.schemes: must be an array of apprise scheme names, "
                               f"like {list(DEFAULT_SCHEMES)!r}")
        self.schemes = tuple(s.strip().lower() for s in schemes)
        self._staff = None

    def prepare(self, message: Message) -> Message:
        """As JSON: for a URL handle, the title and body apprise gets (the URL masked); for any
        other, the task handed to staff, with the profile and the text to send by hand."""
        network, handle = _handle(message)
        if "://" in handle:
            payload = {"service": public_url(handle), "network": network, "title": message.subject or "",
                       "body": message.text}
        else:
            task = self._task(network, handle, message)
            payload = {"task": "social_manual", "network": network, "profile": handle,
                       "title": task.subject, "body": task.text}
        return replace(message, payload=encode_payload(payload))

    @property
    def live(self) -> bool:
        return self.send_enabled

    def _to_outbox(self, network: str, handle: str, sent: dict) -> Result:
        """What a live send would post, written to the outbox instead, the URL's secrets masked;
        a URL apprise cannot parse fails here as it would live."""
        service = parse(handle)
        if service is None:
            return invalid(handle)
        payload = {"channel": self.name, "network": network, "url": service.url(privacy=True),
                   "title": sent["title"], "text": sent["body"]}
        return outbox.write_json(self.config.outbox, self.name, network, payload)

    def _refuse_scheme(self, network: str, handle: str) -> Result | None:
        """A permanent failure when the handle's scheme is not one the operator allows: the
        handle comes from billing data, so only a fix of the record (or of `schemes`) helps."""
        found = _SCHEME.match(handle)
        scheme = found[1].lower() if found else ""
        if scheme in self.schemes:
            return None
        return Result(FAILED, self.name, code=SCHEME_NOT_ALLOWED, permanent=True, detail=(
            f"the {network} handle is a {scheme or 'malformed'}:// URL, a scheme channels.social.schemes "
            f"does not allow (allowed: {', '.join(self.schemes) or 'none'}): nothing sent; fix the "
            "account's handle"))

    def check(self, connect: bool = False) -> list[str]:
        return [f"channels.social.schemes: {scheme!r} is not a scheme apprise knows (like tgram, discord, mastodon)"
                for scheme in self.schemes if not known_scheme(scheme)]

    def send(self, message: Message) -> Result:
        network, handle = _handle(message)
        if message.payload is None:
            message = self.prepare(message)
        sent = decode_payload(message)
        if "://" not in handle:
            return self._staff_task(network, handle, replace(self._task(network, handle, message),
                                                             subject=sent["title"], text=sent["body"]))
        refused = self._refuse_scheme(network, handle)
        if refused:
            return refused
        if not self.send_enabled:
            return self._to_outbox(network, handle, sent)
        result = send_apprise(handle, sent["title"], sent["body"])
        return replace(result, evidence={**result.evidence, "network": network})

    def _task(self, network: str, profile: str, message: Message) -> Message:
        """The staff message asking a person to send `message` by hand on `network`."""
        shown = NETWORK_NAMES.get(network.lower(), network)
        lines = [f"Enviar manualmente pela rede {shown} ao perfil {profile} o texto abaixo:"]
        if message.meta.get("account"):
            lines.append(f"(cliente: {message.meta['account']})")
        text = "\n".join(lines) + "\n\n" + message.text
        if message.meta.get("tutorial_text"):  # no TUTORIAL_URL to link: the text itself, second
            text += "\n\nDepois, envie também este segundo texto (como funciona a nossa cobrança):\n\n" + message.meta["tutorial_text"]
        meta = {k: v for k, v in message.meta.items() if k not in ("social_handle", "tutorial_text")}
        return Message(
            channel="staff",
            recipient="staff",
            subject=f"Tarefa: mensagem manual no {shown} para {profile}",
            text=text,
            meta={**meta, "task": "social_manual", "social_network": network, "social_profile": profile},
        )

    def _staff_task(self, network: str, profile: str, task: Message) -> Result:
        staff = self.staff.send(task)
        evidence = {"network": network, "profile": profile, "staff_provider": staff.provider,
                    "staff_evidence": dict(staff.evidence)}
        if staff.ok:
            detail = (f"not sent to the customer: task for support staff to send by hand on "
                      f"{network} to {profile} ({staff.detail})")
            return replace(staff, status=TASK, provider=TASK_PROVIDER, detail=detail, evidence=evidence)
        detail = f"could not hand the task for {network} {profile} to support staff: {staff.detail}"
        return replace(staff, provider=TASK_PROVIDER, detail=detail, evidence=evidence)

    @property
    def staff(self):
        # Built on first use: an account with only URL handles never needs it.
        if self._staff is None:
            self._staff = build("staff", self.config)
        return self._staff

    def describe(self) -> str:
        schemes = ", ".join(self.schemes) or "none"
        if self.send_enabled:
            urls = f"URL handles ({schemes}) through apprise"
        else:
            urls = f"URL handles ({schemes}) to {self.config.outbox / self.name} ([channels.social] send = false)"
        return f"{urls}; other networks as tasks on the staff channel"

    def close(self) -> None:
        if self._staff is not None:
            self._staff.close()


def _handle(message: Message) -> tuple[str, str]:
    """(network, handle) of a social message; the handle comes in meta (see the module's doc)."""
    network, _, recipient_handle = message.recipient.partition(":")
    handle = message.meta.get("social_handle") or recipient_handle
    if not handle:
        raise ValueError(
            f"social message to {message.recipient!r} has no handle: the caller must put the "
            "account's handle in meta['social_handle']"
        )
    return network, handle
