"""How a log line looks on stderr: for journald when systemd runs us, for `docker logs` elsewhere.

journald stamps every line with the time, the host and `notifier[pid]` itself, and reads a leading
`<N>` as the line's syslog priority (SyslogLevelPrefix=, on by default): under systemd a line is
`<6>notifier.daemon: ...`, so `journalctl -p warning` finds the warnings and no time is printed
twice. `docker logs` and a terminal add nothing: there the line starts with its own time.
"""
from __future__ import annotations

import logging
import os

TIMESTAMPED = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S%z"
# syslog priorities (RFC 5424): err, warning, info, debug.
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        level = max((lvl for lvl in PRIORITY if lvl <= record.levelno), default=logging.DEBUG)
        # One event, one journal entry: a traceback's lines stay in it, not as entries of their own.
        return f"<{PRIORITY[level]}>" + super().format(record).replace("\n", "\n  ")


def stderr_is_journal() -> bool:
    """True when stderr is the journal stream systemd gave us. JOURNAL_STREAM names it as
    device:inode; a child whose stderr was redirected inherits the variable but not the stream."""
    try:
        device, inode = (int(x) for x in os.environ["JOURNAL_STREAM"].split(":"))
        st = os.fstat(2)
    except (KeyError, ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (device, inode)


def formatter() -> logging.Formatter:
    return JournalFormatter() if stderr_is_journal() else logging.Formatter(TIMESTAMPED, DATEFMT)


class ErrorsForJournal:
    """A text stream that writes each line to `stream` with the `<3>` (err) prefix: what a refused
    command says on stderr (click's `Error: ...`), which is no log record of ours."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write("".join(f"<{PRIORITY[logging.ERROR]}>{line}" for line in text.splitlines(keepends=True)))

    def flush(self) -> None:
        self.stream.flush()
