"""The state's lock (notifier/state/flock.py): another process or another thread holding it makes a
writer wait, then give up at its timeout; its release lets the next one in at once."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from notifier.state.flock import FileLock, Timeout


def test_a_lock_held_by_another_process_times_out_and_its_end_frees_it(tmp_path):
    path = tmp_path / "state.json.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys\nf = open(sys.argv[1], 'w')\n"
                               "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.read()",
                               str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        lock = FileLock(str(path), timeout=0.2)
        began = time.monotonic()
        with pytest.raises(Timeout):
            lock.acquire()
        assert 0.2 <= time.monotonic() - began < 2
    finally:
        holder.communicate("")  # the holder ends: its lock goes with it
    with FileLock(str(path), timeout=0.2):
        pass
    assert path.exists()  # left in place for the next holder


def test_two_threads_exclude_each_other(tmp_path):
    lock = FileLock(str(tmp_path / "deep" / "state.json.lock"), timeout=5)
    inside, overlaps = [], []

    def work():
        for _ in range(20):
            with lock:
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
