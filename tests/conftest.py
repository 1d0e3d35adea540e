"""Shared helpers: run the real command line in a subprocess, with a frozen day and no .env."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# The console's fixtures (a real `notifier web`, one Chromium per test process), registered once:
# imported into each test module instead, the session's browser was started once per module and
# Playwright refuses a second sync API in one process.
pytest_plugins = ["tests.web_helpers"]

ROOT = Path(__file__).resolve().parent.parent
# Where the subprocesses keep their compiled modules. Some machines (this one, CI) set
# PYTHONDONTWRITEBYTECODE, and then every `python run.py` compiled the notifier's modules anew.
PYCACHE = Path(tempfile.gettempdir()) / f"notifier-tests-pycache-{os.getuid()}"
# ...and not only those started through `Cli`: every process a test starts inherits this
# environment (the argument fuzzer's hundreds of `run.py`, the console, the fault tests' writers,
# the xdist workers themselves). Without it each compiled the notifier's modules again: about
# twice the CPU of a `python run.py status` (0.50 s instead of 0.25 s here).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))


class Cli:
    """`python run.py ...` in a working folder of its own, as an operator would run it."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.env = env

    def __call__(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), *args],
            cwd=self.workdir, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def json(self, *args: str, env: dict | None = None):
        return json.loads(self(*args, "--json", env=env).stdout)


def clean_cli(workdir: Path) -> Cli:
    # Only what a clean machine has: no provider variables, so every channel uses the outbox.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return Cli(workdir, env)


@pytest.fixture
def cli(tmp_path) -> Cli:
    return clean_cli(tmp_path)


# The tests that take minutes, started first: in collection order the two-year simulation came
# among the last, and the suite's final minutes were one worker running it while the other idled.
LONGEST_FIRST = (
    "tests/test_simulation.py::test_two_years_every_day_keeps_every_promise",
    "tests/test_staff_during_cycle.py::",
    "tests/test_tamper.py::",  # its module fixture builds ten folders with real commands
)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable: the rest keep their order


def pytest_xdist_auto_num_workers(config):
    """`-n auto` starts two workers a core, not one: the suite waits more than it computes (a
    console or a daemon starting, servers answering, Chromium, fsyncs), measured on 07/12/2026 as
    17 minutes of CPU in 14½ minutes on 2 cores with one worker a core, the cores idle a third of
    the time."""
    return 2 * len(os.sched_getaffinity(0))
