"""Delivery channels: one module per channel, one small class each, registered by name.

The core knows channels only through `get(name)`: it never imports a concrete channel. A channel
takes a rendered `Message` and returns a `Result` that says what the provider answered, which is
what the contact-attempt log records for an audit.

Adding a channel: write `channels/<name>.py` with a `Channel` subclass decorated `@register`, and
add its name to `notifier.config.CHANNELS`.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Mapping

# What happened to a message (`Result.status`). Only SENT means a provider took it; OUTBOX that it
# stayed on this machine; the others say why not, and who must act: the customer's contact
# (FAILED), a person (TASK) or we ourselves (BLOCKED).
SENT = "sent"  # the provider accepted it
OUTBOX = "outbox"  # written to the local outbox (no provider configured): handled, but nobody got it
FAILED = "failed"  # the provider or the contact refused it; `permanent` says whether to retry
TASK = "task"  # handed to a person (staff contact the customer by hand): not "the customer received it"
BLOCKED = "blocked"  # our configuration stops it (`code` names the setting): nothing went to a provider
# The provider may have it: the connection was lost after the message was handed over. Never sent
# again automatically (the customer could get it twice): a staff task to check with the provider.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Message:
    """A rendered message for one recipient on one channel; the channel picks the parts it uses.

    `text` is the plain-text body (every channel has one). E-mail adds `subject` and `html`;
    WhatsApp may add an approved template (`content_sid` + `content_variables`) for use outside a
    customer-service window, and `parts`: the free-form bodies to send one after the other (`text`
    is them joined, for logs and previews). `images` are the HTML e-mail's inline images, each
    (Content-ID, data, MIME type), which the HTML shows as `cid:` links. `meta` carries what the log needs to tie the message to its notice
    (account, stage, invoices...), never secrets.

    `payload` is set by `Channel.prepare`: the exact bytes the channel will hand its provider,
    which the attempt log stores before the provider is called.
    """
    channel: str
    recipient: str
    text: str
    subject: str | None = None
    html: str | None = None
    reply_to: str | None = None
    content_sid: str | None = None
    content_variables: Mapping[str, str] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    parts: tuple[str, ...] = ()
    images: tuple[tuple[str, bytes, str], ...] = ()
    payload: bytes | None = None
    # When the attempt log records the attempt (a frozen clock under --date): the e-mail's Date:.
    date: datetime | None = None


def encode_payload(data: Mapping[str, Any]) -> bytes:
    """A JSON payload in one fixed form (sorted keys, UTF-8), so the same request is the same bytes."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_payload(message: Message) -> dict:
    return json.loads(message.payload)


@dataclass(frozen=True)
class Result:
    """What happened to one send. `permanent` matters only on failure: a permanent failure (an
    invalid number) is not tried again, a temporary one (timeout, 429, 5xx) is. A BLOCKED result's
    `code` names the setting to fix (`config:whatsapp.templates.overdue`) and `detail` says how."""
    status: str
    provider: str
    provider_id: str | None = None
    code: str | None = None
    detail: str = ""
    permanent: bool = False
    evidence: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The channel did its part: the provider took it, or (no provider) the outbox has it."""
        return self.status in (SENT, OUTBOX)


class ChannelError(Exception):
    """A channel that cannot work as configured (e.g. a missing variable); names what to fix."""


class Channel:
    """Base of every channel. Subclasses set `name` and implement `send`.

    `config` is the notifier's `Config` (plain object); `options` is the channel's own
    `[channels.NAME]` table. A channel is built once per command or cycle and may keep a
    connection open between sends; `close()` releases it.
    """
    name: ClassVar[str]

    def __init__(self, config, options: Mapping[str, Any] | None = None):
        self.config = config
        self.options = dict(options or {})

    def prepare(self, message: Message) -> Message:
        """`message` with its `payload`: the exact bytes `send` will hand the provider (the whole
        .eml, the request fields as JSON), composed now so that the attempt log stores them before
        the provider is called. `send` given a prepared message sends exactly those bytes."""
        raise NotImplementedError

    def send(self, message: Message) -> Result:
        raise NotImplementedError

    def blocked(self, message: Message) -> Result | None:
        """The BLOCKED result `send` would give this prepared message because of our configuration
        (a WhatsApp stage without a template), found without calling the provider; None when it may
        go. The cycle asks it before claiming a notice again that was already recorded blocked."""
        return None

    def check(self, connect: bool = False) -> list[str]:
        """Problems with this channel's configuration, as sentences; `connect` also reaches the
        provider without sending anything. An empty list means ready."""
        return []

    def warnings(self) -> list[str]:
        """What `notifier check` should say about this channel but that blocks no message of the
        ladder (e.g. a template only a staff escalation needs)."""
        return []

    @property
    def live(self) -> bool:
        """True when messages leave the machine; False when they go to the outbox (the sandbox
        every channel falls back to until the operator configures it)."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where messages go, with secrets masked, for logs and `notifier check`."""
        return self.name

    def close(self) -> None:
        pass


_REGISTRY: dict[str, type[Channel]] = {}


def register(cls: type[Channel]) -> type[Channel]:
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Channel]:
    """The channel class registered as `name`, importing `channels.<name>` on first use."""
    if name not in _REGISTRY:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        if name not in _REGISTRY:
            raise ChannelError(f"no channel named {name!r}")
    return _REGISTRY[name]


def build(name: str, config) -> Channel:
    """An instance of channel `name` configured from `config` (its `[channels.NAME]` table)."""
    return get(name)(config, config.channels.get(name, {}))


def modes(config, names) -> dict[str, tuple[bool | None, str]]:
    """Per channel name: (live, where its messages go), as `notifier check` says it; live is None
    when the channel cannot be built as configured (then `where` is why)."""
    found = {}
    for name in names:
        try:
            channel = build(name, config)
        except ChannelError as exc:
            found[name] = (None, str(exc))
            continue
        try:
            found[name] = (channel.live, channel.describe())
        finally:
            channel.close()
    return found


def public_url(url: str) -> str:
    """An apprise URL (a social handle, a staff target) with its secrets masked, for showing it:
    the core asks here rather than import a channel's helper."""
    from ._apprise import public_url as masked
    return masked(url)
