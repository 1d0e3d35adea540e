"""The start-up of a `notifier` process, beside a bare Python's: every command an operator runs, and
every step the other benchmarks time in a fresh process, pays it once.

    python bench/startup.py [--repeat 5]

Best of REPEAT wall times (and the peak memory) of `python -c pass`, `notifier --version` and
`notifier plan --help` (which loads the planning commands), each in a fresh process.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import emit, run_measured  # noqa: E402

AREA = "Start-up"


def best(args: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    runs = [run_measured(args, cwd)[:2] for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        cwd = Path(tmp)
        bare = best([sys.executable, "-c", "pass"], cwd, args.repeat)
        for key, cmd in (("version", ["--version"]), ("plan_help", ["plan", "--help"])):
            seconds, rss = best([sys.executable, str(ROOT / "run.py"), *cmd], cwd, args.repeat)
            emit(f"startup.{key}", seconds, "s", bare[0], area=AREA, label=f"notifier {' '.join(cmd)}",
                 baseline_label="python -c pass", note=f"{rss:.0f} MB peak", echo=True)


if __name__ == "__main__":
    main()
