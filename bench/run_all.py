"""Run every benchmark of the project in one go and write BENCHMARKS.md.

    python bench/run_all.py            # the full pass (<= 20 min on the quiet 2-core machine)
    python bench/run_all.py --quick    # everything small, a couple of minutes: a smoke test
    python bench/run_all.py --only cycle,apprise      # some steps (the others are left out)
    python bench/run_all.py --render bench/out/run_all/figures.jsonl   # re-render (after editing notes)

Each bench script runs as a subprocess with BENCH_JSON naming a JSON-lines file; every figure it
hands over through `bench._common.emit` is collected, judged against its goal (bench/_common.py's
GOALS, from the issues) and written into BENCHMARKS.md, one table per area, beside its baseline
measured in the same run, after a description of the machine and its load. A figure that misses
its goal gets a "What bounds it" paragraph from bench/notes.toml (keyed by figure name or a
prefix of it), written by hand so that explanations survive reruns.

Generated fixtures (the 1,000,000-record log, the import files) are cached under $BENCH_CACHE
(default /tmp/notifier-bench), keyed by their generator's parameters and code, so a second run
is faster. Each script's own output goes to bench/out/run_all/STEP.log.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import cache_root, fmt, goal_met, ratio  # noqa: E402

NOTES = ROOT / "bench" / "notes.toml"
AREAS = ("Start-up", "Import and plan", "Cycle", "Staff actions", "Attempt log", "Memory (peak RSS)", "Idle daemon",
         "Disk per month", "Console under load")
LIBRARIES = ("apprise", "jinja2", "orjson", "tinydb", "click", "schedule", "twilio", "aiosmtpd", "filelock")


@dataclass(frozen=True)
class Step:
    name: str
    area: str  # the default area of figures that do not name one
    full: tuple[str, ...]  # the script and its arguments
    quick: tuple[str, ...] | None  # None: left out of a quick pass


STEPS = (
    Step("startup", "Start-up", ("bench/startup.py", "--repeat", "5"), ("bench/startup.py", "--repeat", "3")),
    Step("plan-small", "Import and plan", ("bench/plan.py", "5000"), ("bench/plan.py", "300")),
    Step("plan-medium", "Import and plan", ("bench/plan.py", "20000"), None),
    Step("plan-large", "Import and plan", ("bench/plan.py", "50000"), ("bench/plan.py", "2000")),
    # first import and the same file again, in fresh processes, rounds interleaved with json.load
    Step("imports", "Import and plan", ("bench/imports.py", "--rounds", "3"), ("bench/imports.py", "--quick")),
    # cycle.py also starts the real daemon on the state the cycle left (nothing due) and measures it idle
    Step("cycle", "Cycle", ("bench/cycle.py", "10000", "--idle", "30"), ("bench/cycle.py", "500", "--idle", "10")),
    Step("apprise", "Cycle", ("bench/apprise_cycle.py", "10000", "--sample", "300"),
         ("bench/apprise_cycle.py", "200", "--sample", "30")),
    Step("log", "Attempt log", ("bench/log_scale.py", "--sizes", "1000,100000,1000000"),
         ("bench/log_scale.py", "--sizes", "1000,20000")),
    # staff actions at 50,000 accounts: alone, 10 at once, and 10 sessions during a 10,000-e-mail cycle
    Step("actions", "Staff actions", ("bench/actions.py",), ("bench/actions.py", "--accounts", "2000", "--emails", "300")),
    Step("disk", "Disk per month", ("bench/disk.py", "--accounts", "5000"), ("bench/disk.py", "--accounts", "300")),
    # a SIGKILL in mid-cycle: the claims left unknown, and the cycle's speed beside plain smtplib
    Step("kill-cycle", "Cycle", ("bench/kill_cycle.py", "2000", "--kills", "12"),
         ("bench/kill_cycle.py", "300", "--kills", "3")),
    # the console at 50,000 accounts and 1,000,000 records: 10 sessions during a 10,000-e-mail cycle
    Step("load", "Console under load", ("bench/load.py",),
         ("bench/load.py", "--accounts", "2000", "--records", "40000", "--emails", "500", "--quiet", "10")),
)


# --- the machine -----------------------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "?"


def mount_of(path: Path) -> tuple[str, str, str]:
    """(device, filesystem, mount point) holding `path`: the longest mount point above it."""
    best = ("?", "?", "")
    path = str(path.resolve())
    for line in _read("/proc/mounts").splitlines():
        dev, mnt, fs = line.split()[:3]
        if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[2]):
            best = (dev, fs, mnt)
    return best


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal")), 0)
    os_name = next((line.split("=", 1)[1].strip('"') for line in _read("/etc/os-release").splitlines()
                    if line.startswith("PRETTY_NAME=")), platform.system())
    virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True).stdout.strip() \
        if Path("/usr/bin/systemd-detect-virt").exists() else ""
    disks = {}
    for label, path in (("bench/out", ROOT / "bench"), ("cache", cache_root()), ("/tmp", Path("/tmp"))):
        path.mkdir(parents=True, exist_ok=True)
        dev, fs, mnt = mount_of(path)
        st = os.statvfs(path)
        disks[label] = f"{dev} ({fs}, mounted on {mnt}; {st.f_bavail * st.f_frsize / 1e9:,.0f} GB free)"
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = "not installed"
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": mem / 1024 / 1024, "os": f"{os_name}, Linux {platform.release()}"
            + (f", {virt} guest" if virt and virt != "none" else ""),
            "python": f"{platform.python_implementation()} {platform.python_version()}", "libraries": versions,
            "disks": disks, "commit": _git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if status else ""),
            "branch": _git("rev-parse", "--abbrev-ref", "HEAD")}


# --- running -------------------------------------------------------------------------------------

def run_steps(steps: list[Step], quick: bool, figures: Path, logs: Path) -> list[dict]:
    """Run each step's script in a fresh process; a step that fails is reported, the rest go on."""
    logs.mkdir(parents=True, exist_ok=True)
    done = []
    for step in steps:
        args = step.quick if quick else step.full
        log = logs / f"{step.name}.log"
        print(f"[run_all] {step.name}: python {' '.join(args)}", flush=True)
        began = time.monotonic()
        with open(log, "wb") as out:
            proc = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "BENCH_JSON": str(figures), "BENCH_AREA": step.area,
                                       "PYTHONPATH": str(ROOT)})
        seconds = time.monotonic() - began
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if proc.returncode else []
        print(f"[run_all] {step.name}: {'ok' if proc.returncode == 0 else 'FAILED'} in {seconds:.0f} s", flush=True)
        done.append({"name": step.name, "command": "python " + " ".join(args), "seconds": seconds,
                     "returncode": proc.returncode, "log": str(log.relative_to(ROOT)), "tail": tail})
    return done


def read_figures(path: Path) -> list[dict]:
    """The figures of a JSON-lines file; a figure emitted twice (a script rerun) keeps its last value."""
    by_name: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                by_name[record["name"]] = record
    return list(by_name.values())


def load_notes(path: Path = NOTES) -> dict[str, str]:
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        return {k: str(v).strip() for k, v in tomllib.load(f).items()}


def note_for(name: str, notes: dict[str, str]) -> str | None:
    """The note of the figure or of the longest dotted prefix of its name ("import.first" covers
    "import.first.50000")."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in notes:
            return notes[".".join(parts[:i])]
    return None


# --- rendering -------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(figures: list[dict], notes: dict[str, str], info: dict | None = None, steps: list[dict] | None = None,
           quick: bool = False) -> str:
    """BENCHMARKS.md: the run and the machine, then a table per area and what bounds each miss."""
    out = ["# Benchmarks", ""]
    if quick:
        out += ["> **QUICK RUN (`bench/run_all.py --quick`): small sizes, on a machine shared with other jobs.**",
                "> These figures only prove that the machinery works end to end; they are noisy and NOT the",
                "> project's figures. Run `python bench/run_all.py` on a quiet machine for those.", ""]
    out += ["Written by `python bench/run_all.py" + (" --quick" if quick else "") + "`; every figure sits beside "
            "its baseline, measured in the same run (ratios survive a noisy machine better than times do). "
            "Goals are the issues'; the explanation of a missed goal comes from `bench/notes.toml`.", ""]
    if info:
        out += ["## The run and the machine", "",
                "| | |", "| --- | --- |",
                f"| date (UTC) | {info['started']} → {info['finished']} ({info['seconds'] / 60:.1f} min) |",
                f"| pass | {'quick' if quick else 'full'}; fixture cache {info['cache']} ({info['cache_state']}) |",
                f"| git commit | {info['commit']} on {info['branch']} |",
                f"| CPU | {info['cpu']}, {info['cores']} cores |",
                f"| RAM | {info['ram_gb']:.1f} GB |",
                f"| OS | {info['os']} |",
                f"| Python | {info['python']} |",
                f"| libraries | {', '.join(f'{k} {v}' for k, v in info['libraries'].items())} |",
                *[f"| disk of {label} | {_cell(v)} |" for label, v in info["disks"].items()],
                f"| load average (1, 5, 15 min) at start | {info['load_start']} |",
                f"| load average at end | {info['load_end']} |", ""]
    met = [f for f in figures if goal_met(f.get("goal"), f["value"], f.get("baseline")) is True]
    missed = [f for f in figures if goal_met(f.get("goal"), f["value"], f.get("baseline")) is False]
    out += [f"**{len(figures)} figures; {len(met) + len(missed)} with a goal: {len(met)} met, {len(missed)} missed.**", ""]
    areas = list(AREAS) + sorted({f["area"] for f in figures} - set(AREAS))
    for area in areas:
        rows = [f for f in figures if f["area"] == area]
        if not rows:
            continue
        out += [f"## {area}", "", "| figure | value | baseline (same run) | ratio | goal | met? |",
                "| --- | --- | --- | --- | --- | --- |"]
        for f in rows:
            r = ratio(f["value"], f.get("baseline"))
            verdict = goal_met(f.get("goal"), f["value"], f.get("baseline"))
            base = "" if f.get("baseline") is None else f"{fmt(f['baseline'])} {f['unit']}" + (
                f" ({f['baseline_label']})" if f.get("baseline_label") else "")
            goal = f"{f['goal']}" + (f" ({f['source']})" if f.get("source") else "") if f.get("goal") else ""
            label = f["label"] + (f" — {f['note']}" if f.get("note") else "")
            shown = {True: "met", False: "**missed**", None: ""}[verdict]
            out.append(f"| {_cell(label)} | {fmt(f['value'])} {f['unit']} | {_cell(base)} | "
                       f"{'' if r is None else f'{r:.2f}×'} | {_cell(goal)} | {shown} |")
        out.append("")
        for f in rows:
            if goal_met(f.get("goal"), f["value"], f.get("baseline")) is False:
                text = note_for(f["name"], notes) or (
                    f"_Not explained yet: add an entry `\"{f['name']}\"` to bench/notes.toml._")
                out += [f"**What bounds it — {f['label']}** (`{f['name']}`): {text}", ""]
    if steps:
        out += ["## Steps", "", "| step | command | time | result |", "| --- | --- | --- | --- |"]
        for s in steps:
            result = "ok" if s["returncode"] == 0 else f"**failed** (exit {s['returncode']}, see `{s['log']}`): " + \
                _cell(" / ".join(s["tail"]))
            out.append(f"| {s['name']} | `{s['command']}` | {s['seconds']:.0f} s | {result} |")
        out.append("")
    return "\n".join(out)


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _cache_state() -> str:
    root = cache_root()
    complete = [d for d in root.glob("*") if (d / "done").exists()] if root.exists() else []
    return f"{len(complete)} complete fixture(s) at start" if complete else "cold: empty at start"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test in a couple of minutes")
    parser.add_argument("--only", help="comma-separated step names: " + ", ".join(s.name for s in STEPS))
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--render", type=Path, metavar="JSONL", help="only render this file of figures")
    args = parser.parse_args(argv)
    if args.render:  # the run's machine and steps too, when the run left them beside its figures
        run = args.render.with_name("run.json")
        saved = json.loads(run.read_text(encoding="utf-8")) if run.exists() else {}
        args.out.write_text(render(read_figures(args.render), load_notes(), saved.get("info"), saved.get("steps"),
                                   args.quick or saved.get("quick", False)), encoding="utf-8")
        print(f"wrote {args.out}")
        return 0
    steps = [s for s in STEPS if s.quick or not args.quick]
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {s.name for s in steps}
        if unknown:
            parser.error(f"unknown step(s): {', '.join(sorted(unknown))}")
        steps = [s for s in steps if s.name in wanted]
    out_dir = ROOT / "bench" / "out" / "run_all"
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = out_dir / "figures.jsonl"
    figures.unlink(missing_ok=True)
    info = machine()
    info.update(started=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"), load_start=_load(),
                cache=str(cache_root()), cache_state=_cache_state())
    began = time.monotonic()
    done = run_steps(steps, args.quick, figures, out_dir)
    info.update(finished=datetime.now(timezone.utc).strftime("%H:%M"), load_end=_load(),
                seconds=time.monotonic() - began)
    (out_dir / "run.json").write_text(json.dumps({"info": info, "steps": done, "quick": args.quick}), encoding="utf-8")
    # the notes are read now, not at the start: one edited during a long run counts
    args.out.write_text(render(read_figures(figures), load_notes(), info, done, args.quick), encoding="utf-8")
    print(f"[run_all] wrote {args.out} ({len(read_figures(figures))} figures) in {info['seconds'] / 60:.1f} min; "
          f"figures in {figures.relative_to(ROOT)}")
    return 0 if all(s["returncode"] == 0 for s in done) else 1


if __name__ == "__main__":
    sys.exit(main())
