"""Each channel's status and why: what `notifier check` prints and the console's Configuração and
Painel show, from one function, so the two can never disagree."""
from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
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


def channel_statuses_apart(config: Config) -> list[ChannelStatus]:
    """`channel_statuses(config)` (without connecting) worked out by a short-lived child process:
    checking an apprise URL loads every apprise plugin (a hundred modules, 15 to 20 MB that a
    process never gives back), which the console, kept small for hours, does not need to hold
    for the lines of its Painel. The configuration goes to the child through a pipe (it holds
    the providers' secrets: never an argument); the child's own path is this process's.
    When the child fails, the check is made here: the statuses matter more than the memory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        proc = subprocess.run([sys.executable, "-c", "from notifier.run.checkup import _child; _child()"],
                              input=pickle.dumps(config), capture_output=True, env=env, timeout=120)
        if proc.returncode == 0:
            return pickle.loads(proc.stdout)
        reason = f"it exited with status {proc.returncode}"  # its stderr may quote a secret: not shown
    except (OSError, subprocess.SubprocessError, pickle.UnpicklingError, EOFError) as exc:
        reason = type(exc).__name__
    logging.getLogger(__name__).warning("the channels' check in a child process failed (%s); made in this one", reason)
    return channel_statuses(config)


def _child() -> None:
    """`channel_statuses_apart`'s child: a pickled Config on stdin, the pickled statuses on stdout."""
    config = pickle.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(channel_statuses(config)))


def _named(channel: str, problem: str) -> str:
    """`problem` prefixed with its channel, once: some channels' messages already name it."""
    return problem if problem.startswith(f"{channel}:") else f"{channel}: {problem}"
