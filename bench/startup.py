"""The cost of one `notifier` process, beside a bare Python's: every command an operator runs, every
step the other benchmarks time in a fresh process, and each of the two-years simulation's ~3,000
processes (tests/test_simulation.py) pays it.

    python bench/startup.py [--repeat 5]

For each command, in a fresh process: the best of REPEAT wall times, the best of REPEAT CPU times
(user + system, the process's own: what the simulation's minutes are made of on a busy machine)
and the peak memory. Commands: `python -c pass`, `notifier --version`, `--help`, `plan --help`
(which loads the planning commands), `import` of examples/billing.json (into a new store, and
into the bundled example's, as every morning), `pay` of one invoice, and `run-once` of the
bundled example (`state.json.example` on 23/11/2026: six messages to the outbox, e-mails with
their Pix QR codes), each on a fresh copy of its files. The commands' own caches (compiled
modules, templates, QR images, holiday tables) are warm, as in the simulation and on a server
after its first day.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import emit, run_measured  # noqa: E402

AREA = "Start-up"
DAY = "2026-11-23"


def measured(args: list[str], cwd: Path, env: dict) -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of one fresh process: its CPU is the children's rusage delta, as
    run_measured waits for one child at a time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, rss, _ = run_measured(args, cwd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, rss


def best(args: list[str], cwd: Path, env: dict, repeat: int, fresh=lambda: None) -> tuple[float, float, float]:
    fresh()
    measured(args, cwd, env)  # warm: compiled modules and the commands' caches, as a server has them
    runs = []
    for _ in range(repeat):
        fresh()
        runs.append(measured(args, cwd, env))
    return min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        cwd = Path(tmp)
        # As installed (compiled modules kept), even where PYTHONDONTWRITEBYTECODE is set.
        env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(cwd / "pycache"),
               **{k: "" for k in os.environ if k.startswith(("EMAIL_", "TWILIO_", "STAFF_", "NOTIFIER_"))}}

        def example_state() -> None:
            for name in ("attempts.jsonl", "attempts.jsonl.messages", "attempts.jsonl.lock", "outbox"):
                path = cwd / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            shutil.copy(ROOT / "state.json.example", cwd / "state.json")

        def no_state() -> None:
            (cwd / "state.json").unlink(missing_ok=True)

        shutil.copy(ROOT / "examples" / "billing.json", cwd / "billing.json")
        run = [sys.executable, str(ROOT / "run.py")]
        bare = best([sys.executable, "-c", "pass"], cwd, env, args.repeat)
        emit("startup.bare.cpu", bare[1], "s", area=AREA, label="python -c pass, CPU", echo=True)
        commands = (
            ("version", ["--version"], lambda: None),
            ("help", ["--help"], lambda: None),
            ("plan_help", ["plan", "--help"], lambda: None),
            ("import", ["import", "billing.json", "--date", DAY], no_state),
            ("import_again", ["import", "billing.json", "--date", DAY], example_state),
            ("pay", ["pay", "2026-11-atelie-flor-de-lis", "--date", DAY, "--by", "bench"], example_state),
            ("run_once", ["run-once", "--date", DAY], example_state),
        )
        for key, cmd, fresh in commands:
            wall, cpu, rss = best(run + cmd, cwd, env, args.repeat, fresh)
            label = f"notifier {' '.join(cmd)}"
            emit(f"startup.{key}", wall, "s", bare[0], area=AREA, label=label,
                 baseline_label="python -c pass", note=f"{rss:.0f} MB peak", echo=True)
            emit(f"startup.{key}.cpu", cpu, "s", bare[1], area=AREA, label=f"{label}, CPU",
                 baseline_label="python -c pass", echo=True)


if __name__ == "__main__":
    main()
