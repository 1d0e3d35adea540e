"""The attempt log at scale, on cached fixtures: append at 1k/100k/1M records, then verify-log,
attempts --account and audit on the largest (time and peak memory; the fixture read once before,
so that all find it in the page cache; best of two runs each), each beside a baseline.

    python bench/log_scale.py [--sizes 1000,100000,1000000]

The logs are grown by bench/attempts.py's own generator (real rendered e-mails as payloads, real
compression and fsyncs, group commits of 250 attempts) once per size and kept under
$BENCH_CACHE (default /tmp/notifier-bench), keyed by the size and by the source of the generator
and of the log's code: growing 1,000,000 records takes minutes, and a rerun reuses it. Appending
to measure changes a fixture, so the files are cut back to their exact previous length
afterwards (a `dirty` marker, removed after, makes a fixture that a killed run left half-restored
be rebuilt instead of trusted).

Baselines, measured in the same run on the same files: append against the same append on the
smallest log (flat means the same cost) and against the bare write+fsync it is made of;
verify-log's records/s against a plain Python loop that reads every line and SHA-256es it (what
the chain check cannot go below); attempts/audit against reading every line; the peak memory of
each command on the largest log against the same command on the smallest (flat in the log's size).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import cache_dir, emit, run_measured  # noqa: E402
from bench.attempts import BATCH, Messages, append_cost, grow  # noqa: E402
from notifier.log.attempts import AttemptLog, head_file_for  # noqa: E402

AREA = "Attempt log"
MEMORY = "Memory (peak RSS)"
GENERATOR = ("bench/attempts.py", "notifier/log/attempts.py", "notifier/log/messagestore.py")
ACCOUNT = "acc-00123"


def fixture(size: int, messages: Messages) -> Path:
    """The folder of a log of `size` records, grown once and cached."""
    folder = cache_dir("attempt-log", {"records": size, "batch": BATCH}, GENERATOR)
    if (folder / "done").exists() and not (folder / "dirty").exists():
        print(f"{size:,} records: cached in {folder}", flush=True)
        return folder
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    t = time.perf_counter()
    log = AttemptLog(folder / "attempts.jsonl")
    grow(log, messages, size)
    log.close()
    # the commands need a state file; the example's, without its log head (it names an empty log)
    state = json.loads((ROOT / "state.json.example").read_text(encoding="utf-8"))
    state.pop("meta", None)
    (folder / "state.json").write_text(json.dumps(state), encoding="utf-8")
    (folder / "done").write_text(f"{size}\n")
    print(f"{size:,} records: grown in {time.perf_counter() - t:.0f} s into {folder}", flush=True)
    return folder


def files_of(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name not in ("done", "dirty")}


def append_on(folder: Path, messages: Messages) -> tuple[float, float]:
    """Median and p95 ms of one attempt appended alone to the fixture, which is then cut back."""
    before = files_of(folder)
    head = head_file_for(folder / "attempts.jsonl")  # rewritten in place: put back whole
    kept = head.read_bytes() if head.exists() else None
    (folder / "dirty").write_text("appending\n")
    log = AttemptLog(folder / "attempts.jsonl")
    try:
        return append_cost(log, messages)
    finally:
        log.close()
        for path, size in files_of(folder).items():
            if path not in before:
                path.unlink()
            elif size != before[path]:
                os.truncate(path, before[path])
        if kept is not None:
            head.write_bytes(kept)
        (folder / "dirty").unlink()


def bare_fsync(folder: Path, rounds: int = 200) -> float:
    """Median ms of what an appended attempt is made of at the OS: three writes of a record's size,
    each followed by fsync, on the same disk."""
    path = folder.parent / f"fsync-probe-{os.getpid()}"
    record = b"x" * 2000 + b"\n"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(rounds):
            t = time.perf_counter()
            for _ in range(3):
                os.write(fd, record)
                os.fsync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times)


def read_lines(path: Path, hashing: bool) -> float:
    """Seconds a plain Python loop takes to read every line (and SHA-256 each, if `hashing`)."""
    t = time.perf_counter()
    with open(path, "rb") as f:
        if hashing:
            for line in f:
                hashlib.sha256(line).digest()
        else:
            for _ in f:
                pass
    return time.perf_counter() - t


def count_records(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


COMMANDS = {  # figure key -> (label, arguments of `notifier`)
    "verify": ("verify-log (chain, head and every stored message)", ["verify-log"]),
    "verify_chain": ("verify-log --chain-only", ["verify-log", "--chain-only"]),
    "attempts_account": (f"attempts --account {ACCOUNT}", ["attempts", "--account", ACCOUNT, "--format", "json"]),
    "audit": (f"audit {ACCOUNT} --html", ["audit", ACCOUNT, "--html", "AUDIT"]),
}


def warm(folder: Path) -> None:
    """Read every file of the fixture once, so that each command and each baseline finds it in the
    page cache: the first to run would otherwise pay for the disk (the packs are 1.4 GB, and this
    machine's kernel evicts what was not read for a while), and the figure would say which ran first."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def commands(folder: Path, scratch: Path, repeat: int = 2) -> dict[str, tuple[float, float]]:
    """Each command on the fixture in a fresh process, best of `repeat` runs (the least disturbed
    by the rest of the machine, as the other benches): {key: (seconds, largest peak RSS MB)}."""
    warm(folder)
    out = {}
    for key, (_, args) in COMMANDS.items():
        args = [str(scratch / "audit.html") if a == "AUDIT" else a for a in args]
        runs = [run_measured([sys.executable, str(ROOT / "run.py"), *args], cwd=folder)[:2] for _ in range(repeat)]
        out[key] = (min(seconds for seconds, _ in runs), max(rss for _, rss in runs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,100000,1000000")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    messages = Messages()
    folders = {size: fixture(size, messages) for size in sizes}

    fsync_ms = bare_fsync(folders[sizes[0]])
    first = None
    for size in sizes:
        median, p95 = append_on(folders[size], messages)
        first = first or median
        emit(f"log.append.{size}", median, "ms", first, area=AREA, label=f"append one attempt, {size:,} records (median)",
             baseline_label=f"the same at {sizes[0]:,}", note=f"p95 {p95:.2f} ms", echo=True)
        emit(f"log.append_vs_fsync.{size}", median, "ms", fsync_ms, area=AREA,
             label=f"append one attempt, {size:,} records", baseline_label="3 bare write+fsync", echo=True)

    small, large = folders[sizes[0]], folders[sizes[-1]]
    log = large / "attempts.jsonl"
    records = count_records(log)
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        on_large = commands(large, Path(tmp))
        on_small = commands(small, Path(tmp)) if small != large else on_large
    plain_read = read_lines(log, hashing=False)
    plain_hash = read_lines(log, hashing=True)
    n = f"{records:,} records"
    seconds = on_large["verify"][0]
    emit("log.verify.rate", records / seconds, "records/s", records / plain_hash, area=AREA,
         label=f"verify-log, {n} ({seconds:.1f} s)", baseline_label="plain loop: read + SHA-256 each line", echo=True)
    seconds = on_large["verify_chain"][0]
    emit("log.verify_chain.rate", records / seconds, "records/s", records / plain_hash, area=AREA,
         label=f"verify-log --chain-only, {n} ({seconds:.1f} s)", baseline_label="plain loop: read + SHA-256 each line",
         echo=True)
    for key in ("attempts_account", "audit"):
        emit(f"log.{key}", on_large[key][0], "s", plain_read, area=AREA, label=f"{COMMANDS[key][0]}, {n}",
             baseline_label="plain loop: read every line", echo=True)
    for key, (label, _) in COMMANDS.items():
        emit(f"memory.log.{key}", on_large[key][1], "MB", on_small[key][1], area=MEMORY, label=f"{label}, {n}",
             baseline_label=f"the same on {sizes[0]:,} records", echo=True)
    size_mb = log.stat().st_size / 1e6
    store_mb = sum(p.stat().st_size for p in (large / "attempts.jsonl.messages").rglob("*") if p.is_file()) / 1e6
    print(f"the {n} log: {size_mb:,.0f} MB, its message store {store_mb:,.0f} MB")


if __name__ == "__main__":
    main()
