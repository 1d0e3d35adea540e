"""Each channel's status and why: what `notifier check` prints and the console's Configuração and
Painel show, from one function, so the two can never disagree."""
from __future__ import annotations

from typing import NamedTuple

from notifier.config import CHANNELS, Config


class ChannelStatus(NamedTuple):
    name: str
    live: bool | None  # messages leave the machine (True), go to the outbox (False), or unknown (None: broken)
    where: str  # the provider or folder, as the channel describes itself (no secrets)
    problems: tuple[str, ...]  # each starts with the channel's name
    warnings: tuple[str, ...] = ()  # what blocks no message of the ladder (a template only escalate needs)


def channel_statuses(config: Config, connect: bool = False) -> list[ChannelStatus]:
    """Every channel, built from `config` and checked (with `connect`, by reaching its provider)."""
    from notifier import channels
    found = []
    for name in CHANNELS:
        try:
            channel = channels.build(name, config)
        except channels.ChannelError as exc:
            found.append(ChannelStatus(name, None, "", (_named(name, str(exc)),)))
            continue
        try:
            problems = tuple(_named(name, p) for p in channel.check(connect=connect))
            warnings = tuple(_named(name, w) for w in channel.warnings())
            found.append(ChannelStatus(name, channel.live, channel.describe(), problems, warnings))
        finally:
            channel.close()
    return found


def _named(channel: str, problem: str) -> str:
    """`problem` prefixed with its channel, once: some channels' messages already name it."""
    return problem if problem.startswith(f"{channel}:") else f"{channel}: {problem}"
