"""The social channel: a direct message on the customer's social network profile.

Contract with the caller: the account's handle comes in `message.meta["social_handle"]`, because
the recipient cannot always carry it (`notifier.rules.social_recipient`): for a handle that is an
apprise URL the recipient is the network's name alone, so the URL's secret stays out of the plan
and the logs. For a plain handle the recipient is "network:handle" and is used when meta has none.

- A handle that is an apprise URL (Telegram bot chat, Mastodon DM, ...) is sent through apprise.
- Any other handle (Instagram, Facebook, LinkedIn: no messaging API for businesses) becomes a
  task for support staff, sent on the staff channel, with the profile and the full text to send.

How a staff task reads in the contact-attempt log: status `sent`, provider `staff-task`,
`provider_id` the staff channel's, and evidence naming the network, the profile and the staff
send. "sent" means the notifier handed the message to staff, not that the customer received it:
the contact itself happens outside the notifier and is not tracked. It is not "failed" on
purpose, because retrying would only hand staff the same task again.
"""
from __future__ import annotations

from dataclasses import replace

from . import Channel, Message, Result, build, decode_payload, encode_payload, register
from ._apprise import public_url, send_apprise

TASK_PROVIDER = "staff-task"
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

    def send(self, message: Message) -> Result:
        network, handle = _handle(message)
        if message.payload is None:
            message = self.prepare(message)
        sent = decode_payload(message)
        if "://" in handle:
            result = send_apprise(handle, sent["title"], sent["body"])
            return replace(result, evidence={**result.evidence, "network": network})
        return self._staff_task(network, handle, replace(self._task(network, handle, message),
                                                         subject=sent["title"], text=sent["body"]))

    def _task(self, network: str, profile: str, message: Message) -> Message:
        """The staff message asking a person to send `message` by hand on `network`."""
        shown = NETWORK_NAMES.get(network.lower(), network)
        lines = [f"Enviar manualmente pela rede {shown} ao perfil {profile} o texto abaixo:"]
        if message.meta.get("account"):
            lines.append(f"(cliente: {message.meta['account']})")
        text = "\n".join(lines) + "\n\n" + message.text
        meta = {k: v for k, v in message.meta.items() if k != "social_handle"}
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
        else:
            detail = f"could not hand the task for {network} {profile} to support staff: {staff.detail}"
        return replace(staff, provider=TASK_PROVIDER, detail=detail, evidence=evidence)

    @property
    def staff(self):
        # Built on first use: an account with only URL handles never needs it.
        if self._staff is None:
            self._staff = build("staff", self.config)
        return self._staff

    def describe(self) -> str:
        return "social: apprise for URL handles, other networks as tasks on the staff channel"

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
