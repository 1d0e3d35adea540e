"""What every bench script shares: handing figures to bench/run_all.py, goals, caches, and
measuring a fresh process.

The bench contract: a script keeps printing its human-readable figures and also calls `emit()` for
each one. When the environment names a JSON-lines file in BENCH_JSON (run_all does), `emit()`
appends one record per figure to it; otherwise it does nothing (or prints, with `echo=True`).

    emit("import.first.50000", 44.3, "s", baseline=8.81, goal="<= 3x", area="Import and plan",
         label="import, 50,000 accounts", baseline_label="json.load of the same file",
         source="issue 6 #21")

A goal is a comparison, `OP NUMBER[x]` with OP one of <=, <, >=, >: with the `x` it applies to
value / baseline (a ratio measured in the same run, which survives a noisy machine), without it
to the value itself in its unit ("< 1" for an idle daemon's percent of a core).
"""
from __future__ import annotations

import hashlib
import json
import operator
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The goals the issues set, by figure name (the longest dotted prefix of a name wins), so that
# every script's figures are judged against one list: (goal, where it is asked for).
GOALS = {
    "import.first": ("<= 3x", "issue 6 #21"),
    "import.again": ("<= 1.5x", "issue 6 #21"),
    "plan.day": ("<= 0.5x", "README, Speed"),
    "memory.import.first": ("<= 2000", "README, Speed"),
    "memory.plan.day": ("<= 400", "README, Speed"),
    "cycle.throughput": (">= 0.5x", "issue 8"),
    "cycle.latency": ("<= 1.3x", "issue 8"),
    "daemon.idle.cpu": ("< 1", "issue 8"),
    "daemon.idle.rss": ("< 100", "issue 8"),
    "log.append": ("<= 1.5x", "issue 7 (flat)"),
    "log.verify.rate": (">= 200000", "issue 7"),
    "memory.log": ("<= 1.5x", "issue 7 (streams: flat)"),
    # the console at 50,000 accounts and 1,000,000 records, 10 sessions (bench/load.py): ms, MB
    "load.search": ("<= 50", "issue 21"),
    "load.customer": ("<= 200", "issue 21"),
    "load.history": ("<= 200", "issue 21"),
    "load.registro": ("<= 300", "issue 21"),
    "load.audit": ("<= 1000", "issue 21"),
    "load.action": ("<= 1000", "issue 21"),
    "load.memory.peak": ("<= 300", "issue 21"),
    "load.memory.end": ("<= 300", "issue 21"),
}


def goal_for(name: str) -> tuple[str | None, str]:
    """The goal the issues set for figure `name`, and its source; (None, "") when none."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        found = GOALS.get(".".join(parts[:i]))
        if found:
            return found
    return None, ""


_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_GOAL = re.compile(r"^\s*(<=|>=|<|>)\s*([0-9][0-9_,.]*)\s*(x?)\s*$")


def parse_goal(goal: str) -> tuple[str, float, bool]:
    """`"<= 1.3x"` -> ("<=", 1.3, True): the operator, the bound, whether it bounds a ratio."""
    m = _GOAL.match(goal)
    if not m:
        raise ValueError(f"goal {goal!r}: expected e.g. '<= 3x', '>= 200000' or '< 1'")
    return m.group(1), float(m.group(2).replace("_", "").replace(",", "")), bool(m.group(3))


def ratio(value: float, baseline: float | None) -> float | None:
    if baseline is None or baseline == 0:
        return None
    return value / baseline


def goal_met(goal: str | None, value: float, baseline: float | None) -> bool | None:
    """True or False when the figure answers its goal; None when there is no goal, or the goal
    is a ratio and there is no baseline to take it against."""
    if not goal:
        return None
    op, bound, is_ratio = parse_goal(goal)
    subject = ratio(value, baseline) if is_ratio else value
    if subject is None:
        return None
    return _OPS[op](subject, bound)


def emit(name: str, value: float, unit: str, baseline: float | None = None, goal: str | None = None,
         note: str = "", *, area: str | None = None, label: str | None = None, baseline_label: str = "",
         source: str = "", echo: bool = False) -> dict:
    """Hand one figure to run_all (a JSON line appended to $BENCH_JSON, when set).

    name: a stable key (notes in bench/notes.toml are keyed by it), e.g. "verify_log.rate";
    value, unit: the figure ("s", "MB", "msg/s", "records/s", "%", "ms");
    baseline: the same quantity of the reference measured in the same run (same unit);
    goal: see the module's docstring (default: GOALS, by name); source: which issue asks for it; note: a short remark.
    """
    if goal is None:
        goal, source = goal_for(name)[0], source or goal_for(name)[1]
    if goal:
        parse_goal(goal)  # a typo in a goal fails here, in the script that wrote it
    record = {"name": name, "value": float(value), "unit": unit,
              "baseline": None if baseline is None else float(baseline), "baseline_label": baseline_label,
              "goal": goal, "source": source, "note": note, "area": area or os.environ.get("BENCH_AREA", "Other"),
              "label": label or name, "script": Path(sys.argv[0]).name, "time": time.time()}
    path = os.environ.get("BENCH_JSON")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    if echo:
        print(describe(record), flush=True)
    return record


def describe(record: dict) -> str:
    """One line for a terminal: `label: value unit (baseline ..., 0.42x; goal >= 0.5x: not met)`."""
    text = f"{record['label']}: {fmt(record['value'])} {record['unit']}"
    extra = []
    if record.get("baseline") is not None:
        r = ratio(record["value"], record["baseline"])
        extra.append(f"baseline {fmt(record['baseline'])} {record['unit']}"
                     + (f" ({record['baseline_label']})" if record.get("baseline_label") else "")
                     + (f", {r:.2f}x" if r is not None else ""))
    met = goal_met(record.get("goal"), record["value"], record.get("baseline"))
    if record.get("goal"):
        extra.append(f"goal {record['goal']}: " + {True: "met", False: "NOT met", None: "no baseline"}[met])
    return text + (f" ({'; '.join(extra)})" if extra else "")


def fmt(value: float) -> str:
    """Three significant figures, thousands separated: 0.0312, 1.24, 58.4, 17,000."""
    if value == 0:
        return "0"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


# --- caches of generated fixtures -----------------------------------------------------------------

def cache_root() -> Path:
    """$BENCH_CACHE, else /tmp/notifier-bench: survives between runs, not between reboots."""
    return Path(os.environ.get("BENCH_CACHE") or "/tmp/notifier-bench")


def cache_dir(kind: str, params: dict, code: tuple[str, ...] = ()) -> Path:
    """The folder for one fixture, keyed by the generator's parameters and the source of the files
    (paths relative to the repository) that shape what it generates: when either changes, a new
    folder, never a stale fixture. The caller writes a `done` file into it when it is complete."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for rel in code:
        digest.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes())
    folder = cache_root() / f"{kind}-{digest.hexdigest()[:16]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- one command in a fresh process ------------------------------------------------------------------

# A child's ru_maxrss (from wait4, or its own getrusage) is not its own peak on Linux: exec keeps
# the high-water mark of the memory it replaced, so a child forked from a 60 MB bench script
# reports at least 60 MB whatever it does. VmHWM in /proc/self/status belongs to the process's
# memory after exec: the child writes it at exit, through a sitecustomize put on its path.
_HWM_HOOK = """
import atexit, os
def _bench_write_hwm(path=os.environ.get("BENCH_HWM_FILE")):
    if path:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
        with open(path, "w") as out:
            out.write(str(kb))
atexit.register(_bench_write_hwm)
"""


def run_measured(args: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float, str]:
    """Run `args` (a Python program) in a fresh process: (wall seconds, its own peak RSS in MB,
    stdout). Fails loudly. The peak is the child's VmHWM, written by it at exit (see _HWM_HOOK)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="bench-hwm-") as tmp, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        Path(tmp, "sitecustomize.py").write_text(_HWM_HOOK)
        hwm = Path(tmp, "hwm")
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              env={**os.environ, **(env or {}), "PYTHONPATH": f"{tmp}{os.pathsep}{ROOT}",
                                   "BENCH_HWM_FILE": str(hwm)})
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, args))} failed ({proc.returncode}): "
                             f"{err.read().decode(errors='replace')[-2000:]}")
        peak = int(hwm.read_text()) / 1024 if hwm.exists() else float("nan")
        return seconds, peak, out.read().decode(errors="replace")


BENCH_PASSWORD = "senha-do-bench-123"  # the bench users' password (their fixtures add them with it)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Console:
    """A real `notifier web` of `tree` (a checkout: this one, or a baseline) on the state in `work`,
    logged in as `user`: `.client` (httpx, Origin set for the POSTs), `.base`, `.csrf`, `.server`."""

    def __init__(self, tree: Path, work: Path, day: str, timeout: float, user: str = "bench", stderr=subprocess.DEVNULL):
        import httpx
        self.server = subprocess.Popen(
            [sys.executable, str(tree / "run.py"), "web", "--port", str(port := free_port()), "--date", day],
            cwd=work, env={**os.environ, "PYTHONPATH": str(tree)}, stdout=subprocess.DEVNULL, stderr=stderr)
        self.base = f"http://127.0.0.1:{port}"
        try:
            self.client = httpx.Client(base_url=self.base, timeout=timeout, headers={"Origin": self.base})
            deadline = time.monotonic() + timeout
            while True:  # a big state or log: the console answers once it has read them
                try:
                    token = re.search(r'name="csrf" value="([^"]+)"', self.client.get("/login").text).group(1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or self.server.poll() is not None:
                        raise
                    time.sleep(0.1)
            self.client.post("/login", data={"csrf": token, "nome": user, "senha": BENCH_PASSWORD})
            self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', self.client.get("/clientes").text).group(1)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=60)

    def __enter__(self) -> "Console":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def fresh_copy(source: Path, work: Path, names: tuple[str, ...]) -> Path:
    """`work` emptied, then the files `names` of `source` that exist copied into it, their times
    kept: a bench's own copy of a cached fixture, which its run may change."""
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in names:
        if (source / name).exists():
            shutil.copy2(source / name, work / name)
    return work


class Chain:
    """Writes records to `out` as the attempt log's own lines (a bench's log, written straight):
    each numbered (`seq`) and carrying the SHA-256 of the line before it (`prev`)."""

    def __init__(self, out, seq: int = 0, prev: str = "0" * 64):
        self.out, self.seq, self.prev = out, seq, prev

    def put(self, fields: dict) -> None:
        self.seq += 1
        raw = json.dumps({"seq": self.seq, **fields, "prev": self.prev}, ensure_ascii=False,
                         separators=(",", ":")).encode()
        self.prev = hashlib.sha256(raw).hexdigest()
        self.out.write(raw + b"\n")
