"""The console's check of the log's chain: the whole chain once, then only what was appended.

An audit report states that the log's chain was verified. At 1,000,000 records the whole chain
takes seconds to check (README, "Speed"), too long for every report a person opens in the
console. So the console verifies the whole chain at start and again when that check is an hour
old (in the background), remembers what it proved (the log's first `size` bytes hold records 1 to
N, the last hashing to H), and for a report checks only the records appended since: that they
chain on from H, one to the next, up to the head the state keeps (`verify.verify_range`).

Before it relies on what it remembers it checks that the file is still the one it verified: the
same file (inode), no shorter, its first line where it was, and the last verified line still
hashing to H. A log that fails any of these, or whose new records do not chain on, is verified
whole again at once, so a problem is always named by the same full check the CLI runs.

What the shortcut cannot see is an old record changed after the last whole check without its
length changing. The report therefore says exactly what was checked and when (`Scope`): the
whole chain at that time, the records appended after it at the report's issue; never more.
"""
from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from notifier.log.attempts import AttemptLog, Head
from notifier.log.verify import Verdict, verify, verify_range

RECHECK_AFTER = timedelta(hours=1)  # a whole check older than this is done again, in the background


@dataclass(frozen=True)
class Scope:
    """What a verdict covers: the whole chain as it was at `whole_at` (`whole_count` records), and
    the records after it up to `head`, checked at the report's issue."""
    whole_at: datetime
    whole_count: int
    head: Head

    @property
    def appended(self) -> int:
        return self.head.count - self.whole_count


@dataclass(frozen=True)
class _Proven:
    """The log's first `size` bytes were proven to hold records 1 to head.count, ending at head."""
    size: int
    head: Head
    inode: int
    first: bytes  # the log's first line, newline included
    last_at: int  # where the last proven line starts


class ChainCheck:
    """The chain verdict of one log for the console, remembered between reports (thread-safe)."""

    def __init__(self, log: AttemptLog, clock: Callable[[], datetime]):
        self.log = log
        self.clock = clock
        self._lock = threading.Lock()
        self._proven: _Proven | None = None
        self._whole: tuple[datetime, int] | None = None  # (when, records) of the last whole check
        self._rechecking = False

    def verdict(self) -> tuple[Verdict, Scope | None]:
        """The chain and the head checked now, as far as needed, and what that covers: None when
        the whole chain was checked for this very call."""
        with self._lock:
            kept, size = self.log.settled()
            verdict = self._appended(kept, size)
            if verdict is None:
                at = self.clock()
                verdict = verify(self.log.path, self.log.messages, kept, False, size=size)
                self._remember(verdict, size, at)
                return verdict, None
            whole_at, whole_count = self._whole
            stale = self.clock() - whole_at > RECHECK_AFTER and not self._rechecking
            self._rechecking = self._rechecking or stale
        if stale:
            threading.Thread(target=self._recheck, name="chain-recheck", daemon=True).start()
        return verdict, Scope(whole_at, whole_count, verdict.head)

    def _appended(self, kept, size: int) -> Verdict | None:
        """The verdict from what was proven before and the records appended since; None when that
        does not hold (then the whole chain is checked)."""
        proven = self._proven
        if proven is None or size < proven.size or not self._still_there(proven):
            return None
        if size == proven.size:
            head = proven.head
        else:
            found = verify_range(self.log.path, proven.size, size)
            if found is None or found[0] != proven.head:
                return None
            head = found[1]
            self._proven = _Proven(size, head, proven.inode, proven.first, _last_line_start(self.log.path, size))
        if kept is not None and (kept.count, kept.hash) != tuple(head):
            return None  # the state's head is elsewhere: the whole check says why
        return Verdict(records=head.count, head=head)

    def _remember(self, verdict: Verdict, size: int, at: datetime) -> None:
        """Build on a whole check (`verify` as `notifier audit` runs it: chain and head, no stored
        message) that found the log intact; a torn line or a stopped writer's records: not."""
        if not verdict.ok or verdict.notes or size == 0:
            self._proven = None
            return
        try:
            with open(self.log.path, "rb") as f:
                first = f.readline()
                inode = os.fstat(f.fileno()).st_ino
        except OSError:
            return
        proven = _Proven(size, verdict.head, inode, first, _last_line_start(self.log.path, size))
        if self._proven is None or self._proven.size <= size or not self._still_there(self._proven):
            self._proven = proven
        self._whole = (at, verdict.head.count)

    def _still_there(self, proven: _Proven) -> bool:
        """Whether the file is still the one proven: same inode, first line, and last proven line
        (hashing to the proven head)."""
        try:
            with open(self.log.path, "rb") as f:
                if os.fstat(f.fileno()).st_ino != proven.inode or f.read(len(proven.first)) != proven.first:
                    return False
                f.seek(proven.last_at)
                last = f.read(proven.size - proven.last_at)
        except OSError:
            return False
        return last.endswith(b"\n") and hashlib.sha256(last[:-1]).hexdigest() == proven.head.hash

    def _recheck(self) -> None:
        """The whole chain again, in the background: what was proven gets a new date."""
        try:
            kept, size = self.log.settled()
            at = self.clock()
            verdict = verify(self.log.path, self.log.messages, kept, False, size=size)
            with self._lock:
                if verdict.ok:
                    self._remember(verdict, size, at)
                else:
                    self._proven = None  # the next report runs the whole check and names the problem
        finally:
            self._rechecking = False


def _last_line_start(path, size: int) -> int:
    """The offset of the line that ends at byte `size` (its newline is byte size - 1)."""
    with open(path, "rb") as f:
        end, step = size - 1, 1 << 16
        while True:
            start = max(0, end - step)
            f.seek(start)
            cut = f.read(end - start).rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            if start == 0:
                return 0
            step *= 4
