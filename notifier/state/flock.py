"""An inter-process lock on a file, with a timeout: the state's `state.json.lock` (notifier/state/store.py).

The same `flock(2)` the attempt log, the message store and the daemon's pid file take: held by
an open file, gone with the process however it ends (even SIGKILL), so a stale lock file never
blocks anyone, and the file is left in place (deleting it would let two holders lock two
different files). It is the lock `filelock.FileLock` takes on Unix, so the two exclude each
other; the `filelock` package itself took 20-40 ms to import in every command, for these lines.

Each thread opens the file on its own: two threads of one process exclude each other as two
processes do (and a thread does not take the lock twice: the store is not re-entrant anyway).
"""
from __future__ import annotations

import fcntl
import os
import threading
import time

POLL_SECONDS = 0.05  # between two tries while another holder has it


class Timeout(Exception):
    """The lock was not free within the timeout."""

    def __init__(self, lock_file: str):
        super().__init__(f"the lock {lock_file} could not be acquired")
        self.lock_file = lock_file


class FileLock:
    def __init__(self, lock_file: str, timeout: float = -1):
        self.lock_file = lock_file
        self.timeout = timeout  # seconds; negative waits for ever
        self._held = threading.local()

    def acquire(self) -> None:
        """Take the lock, waiting up to `timeout`; `Timeout` then, OSError when the lock file
        cannot be opened (a read-only folder)."""
        if getattr(self._held, "fd", None) is not None:
            raise RuntimeError(f"{self.lock_file}: already held by this thread")
        # The folder too, as the store creates it on its first write (the CLI refuses a missing one first).
        os.makedirs(os.path.dirname(self.lock_file) or ".", exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if 0 <= self.timeout and deadline <= time.monotonic():
                        raise Timeout(self.lock_file) from None
                    time.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        self._held.fd = fd

    def release(self) -> None:
        fd, self._held.fd = getattr(self._held, "fd", None), None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
