"""Speed and memory of `import` against a plain `json.load` of the same file (issue 6, point 21).

    python bench/imports.py                 # 5,000, 20,000 and 50,000 accounts, best of 5 rounds
    python bench/imports.py 20000 --rounds 3
    python bench/imports.py --quick         # 2,000 accounts, 2 rounds (a smoke run)

For each size, the generated portfolio of bench/plan.py (24 monthly invoices per account) is
measured in rounds; each round runs, each in a fresh process: the baseline (`json.load` of the
import file), a first import into an empty store, and the same file imported again (the everyday
case: nothing new, and nothing may be added to the archive). The rounds are
interleaved so that the three steps see the same load of a shared machine; each figure is the best
of its rounds, and each ratio divides two figures of the same run. Peak memory is the largest max
RSS of the rounds. Goals: first import <= 3x, re-import <= 1.5x. Files go to bench/out/ (ignored).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.plan import TODAY, cli, generate, measure  # noqa: E402

def emit(*args, **kwargs) -> None:
    """Hand a figure to bench/run_all.py when its helper module is there (the bench contract)."""
    try:
        from bench._common import emit as real_emit
    except ImportError:
        return
    real_emit(*args, **kwargs)


def bench(n: int, rounds: int) -> dict:
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    billing, state = out / f"billing-{n}.json", out / f"imports-state-{n}.json"
    archive = state.with_suffix(".archive.jsonl")
    if not billing.exists():  # the generator is deterministic: a file of this size is reused
        t = time.perf_counter()
        generate(n, billing)
        print(f"generated {billing.name} in {time.perf_counter() - t:.0f} s", flush=True)
    # As in `python run.py import` (notifier.cli.main): the process ends with the command, so the
    # import's records are left to the exit instead of being freed one by one (leave_to_exit).
    first = ("import notifier.cli.base\nnotifier.cli.base.PROCESS_ENDS_WITH_COMMAND = True\n"
             + cli(["--state", str(state), "import", str(billing), "--date", TODAY.isoformat()], quiet=True))
    # The same file again (as bench/plan.py, the same day: a day later, invoices paid on the
    # retention boundary would rightly leave for the archive, and "adds nothing" could not be checked).
    again = first
    fresh = "import pathlib\n" + "".join(f"pathlib.Path({str(p)!r}).unlink(missing_ok=True)\n"
                                         for p in (state, archive, Path(f"{state}.lock")))
    runs: dict[str, list[dict]] = {"json.load": [], "first import": [], "re-import": []}
    for _ in range(rounds):
        runs["json.load"].append(measure(f"import json\njson.load(open({str(billing)!r}, encoding='utf-8'))", repeat=1))
        runs["first import"].append(measure(first, setup=fresh, repeat=1))
        archived = archive.stat().st_size
        runs["re-import"].append(measure(again, repeat=1))
        if archive.stat().st_size != archived:
            raise SystemExit("the re-import added to the archive")
    best = {step: {"seconds": min(r["seconds"] for r in rs), "max_rss_mb": max(r["max_rss_mb"] for r in rs)}
            for step, rs in runs.items()}
    best["size_mb"] = billing.stat().st_size / 1e6
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, help="accounts (default: 5000 20000 50000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size; the best of them counts")
    parser.add_argument("--quick", action="store_true", help="2,000 accounts, 2 rounds")
    args = parser.parse_args()
    sizes = args.sizes or ([2000] if args.quick else [5000, 20000, 50000])
    rounds = 2 if args.quick else args.rounds
    print(f"{'accounts':>9} {'file MB':>8} {'json.load':>10} {'first import':>20} {'re-import':>18}  peak MB (json / first / re)")
    for n in sizes:
        r = bench(n, rounds)
        base = r["json.load"]["seconds"]
        cells = [f"{r[s]['seconds']:.2f} s ({r[s]['seconds'] / base:.2f}x)" for s in ("first import", "re-import")]
        print(f"{n:>9,} {r['size_mb']:>8.0f} {base:>8.2f} s {cells[0]:>20} {cells[1]:>18}  "
              f"{r['json.load']['max_rss_mb']:.0f} / {r['first import']['max_rss_mb']:.0f} / {r['re-import']['max_rss_mb']:.0f}",
              flush=True)
        size = f"json.load ({r['size_mb']:.0f} MB)"
        for step, key in (("first import", "import.first"), ("re-import", "import.again")):
            label = f"{step}, {n:,} accounts"
            emit(f"{key}.{n}", r[step]["seconds"], "s", baseline=base, area="Import and plan", label=label,
                 baseline_label=size)
            emit(f"memory.{key}.{n}", r[step]["max_rss_mb"], "MB", baseline=r["json.load"]["max_rss_mb"],
                 area="Memory (peak RSS)", label=label, baseline_label="json.load")

if __name__ == "__main__":
    main()
