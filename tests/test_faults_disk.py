"""Disk and files failing under the notifier (issue 10, Faults).

The state's folder or the log's folder read-only, or full (ENOSPC), made real by the kernel: the
command runs in a mount namespace of its own (`unshare --mount`; CI runs as root, as here), where
the folder is a read-only bind mount of itself (read-only is nothing to root otherwise), or a
small tmpfs filled to the last block. Nothing outside the namespace sees either. The command must
fail with one clear line naming the file, exit non-zero, and damage nothing already recorded: the
state still reads, the log is what it was plus whole records, and `verify-log` passes.

Then the files themselves damaged: a truncated or corrupt state, attempt log and message store
give a clear error (verify-log names what is wrong), and no command writes over them.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from email import message_from_bytes
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.cycle_helpers import CONFIG, account, setup
from tests.fault_helpers import log_records, verify_log_ok

DAY = "2026-11-24"
ACCOUNTS = 12
LAYOUT = 'state = "state/state.json"\nattempt_log = "log/attempts.jsonl"\noutbox = "outbox"\n'
# In the namespace: make $1 read-only ("readonly") or a full tmpfs holding what it held ("full"),
# run the command, then (full) free the filler and check the log there, where the files live.
SCRIPT = r"""
set -e
dir=$1; how=$2; free=$3; py=$4; run=$5; shift 5
if [ "$how" = readonly ]; then
  mount --bind "$dir" "$dir"; mount -o remount,bind,ro "$dir"
else
  cp -a "$dir" "$dir.copy"; mount -t tmpfs -o size=512k tmpfs "$dir"; cp -a "$dir.copy/." "$dir"
  dd if=/dev/zero of="$dir/reserve" bs=1k count="$free" 2>/dev/null
  dd if=/dev/zero of="$dir/filler" bs=1k 2>/dev/null || true
  rm "$dir/reserve"
fi
set +e
"$py" "$run" "$@"; rc=$?
if [ "$how" = full ]; then  # what the full folder holds, kept on the real disk for the test to read
  rm -f "$dir/filler"; mkdir "$dir.after"; cp -a "$dir/." "$dir.after"
fi
exit $rc
"""


def in_namespace(cli, folder: Path, how: str, *args: str, free_kib: int = 0) -> subprocess.CompletedProcess:
    """`notifier ARGS` with `folder` read-only (`how="readonly"`) or a tmpfs holding its files with
    `free_kib` KiB left (`how="full"`); for "full", what the folder held afterwards is in
    `<folder>.after` (the tmpfs goes away with the namespace)."""
    return subprocess.run(
        [shutil.which("unshare"), "--mount", "sh", "-c", SCRIPT, "sh", str(folder), how, str(free_kib),
         sys.executable, str(ROOT / "run.py"), *args], cwd=cli.workdir, env=cli.env, capture_output=True,
        text=True, timeout=120)


@pytest.fixture
def history(cli):
    """Billing data imported and one day's cycle already recorded (the reminders of 17/11), the
    state and the log in folders of their own, the outbox in a third."""
    (cli.workdir / "state").mkdir()
    (cli.workdir / "log").mkdir()
    setup(cli, [account(f"c{i:02}") for i in range(ACCOUNTS)], config=LAYOUT + CONFIG)
    cli("run-once", "--date", "2026-11-17")
    return cli


def outbox_attempts(workdir: Path) -> Counter:
    """The attempt id in each e-mail the outbox holds: what left the machine."""
    return Counter(message_from_bytes(p.read_bytes())["X-Notifier-Attempt-Id"]
                   for p in (workdir / "outbox" / "email").glob("*.eml"))


@pytest.mark.parametrize("folder, how, says", [
    ("state", "readonly", "Error: state/state.json.pid: cannot create the lock file: Read-only file system"),
    ("log", "readonly", "Error: log/attempts.jsonl.lock: cannot open for writing: Read-only file system"),
    ("state", "full", "Error: state/state.json: cannot write the state file: No space left on device"),
    ("log", "full", "Error: log/attempts.jsonl: cannot append to the attempt log: No space left on device"),
])
def test_a_read_only_or_full_folder_stops_the_cycle_in_one_line_and_damages_nothing(history, folder, how, says):
    cli = history
    state, log = cli.workdir / "state" / "state.json", cli.workdir / "log" / "attempts.jsonl"
    before_state, before_log, sent = state.read_bytes(), log.read_bytes(), outbox_attempts(cli.workdir)
    proc = in_namespace(cli, cli.workdir / folder, how, "run-once", "--date", DAY)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [says], proc.stderr
    assert outbox_attempts(cli.workdir) == sent  # nothing left the machine
    if how == "full":  # what the full folder held: the state as it was, the log with whole records added
        shutil.rmtree(cli.workdir / folder)
        (cli.workdir / f"{folder}.after").rename(cli.workdir / folder)
    if folder == "state":
        assert state.read_bytes() == before_state
    else:  # the state, on its own disk, took the head of what the log did take; it lost nothing
        old, new = json.loads(before_state), json.loads(state.read_bytes())
        assert all(new[table].items() >= old[table].items() for table in ("accounts", "invoices", "ledger"))
    assert log.read_bytes().startswith(before_log)
    verify_log_ok(cli)
    # Room again: the same day's cycle runs as if nothing had happened.
    cli("run-once", "--date", DAY)
    assert len(outbox_attempts(cli.workdir)) == len(sent) + ACCOUNTS
    verify_log_ok(cli)


def room_for_the_claims(cli, tmp_path) -> int:
    """KiB of disk that take the day's claims (their log records and stored messages) but not their
    outcomes: measured by running the same cycle on a copy."""
    copy = tmp_path / "measure"
    shutil.copytree(cli.workdir, copy, ignore=shutil.ignore_patterns("outbox"))
    log, pack = copy / "log" / "attempts.jsonl", copy / "log" / "attempts.jsonl.messages" / "2026-11.pack"
    sizes = log.stat().st_size, pack.stat().st_size
    clean_copy = type(cli)(copy, cli.env)
    clean_copy("run-once", "--date", DAY)
    lines = log.read_bytes()[sizes[0]:].splitlines(keepends=True)
    last_claim = max(i for i, line in enumerate(lines) if b'"event":"sending"' in line)
    claims = sum(len(line) for line in lines[:last_claim + 1])
    def pages(size: int) -> int:  # what a file of `size` bytes takes on a tmpfs
        return -(-size // 4096)
    return 4 * (pages(sizes[0] + claims) - pages(sizes[0]) + pages(pack.stat().st_size) - pages(sizes[1]))


def test_a_log_folder_that_fills_up_between_send_and_outcome_loses_no_record_of_what_left(history, tmp_path):
    cli = history
    before_log, sent = (cli.workdir / "log" / "attempts.jsonl").read_bytes(), outbox_attempts(cli.workdir)
    free = room_for_the_claims(cli, tmp_path)
    proc = in_namespace(cli, cli.workdir / "log", "full", "run-once", "--date", DAY, free_kib=free)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(": No space left on device"), proc.stderr
    went = outbox_attempts(cli.workdir)
    assert len(went) == len(sent) + ACCOUNTS, proc.stderr  # the claims fitted: everything went
    shutil.rmtree(cli.workdir / "log")
    (cli.workdir / "log.after").rename(cli.workdir / "log")
    assert (cli.workdir / "log" / "attempts.jsonl").read_bytes().startswith(before_log)
    verify_log_ok(cli)
    cli("run-once", "--date", DAY)  # room again: the rest of the day goes, nothing twice
    recs = log_records(cli.workdir / "log")
    claims = {r["id"]: r for r in recs if r["event"] == "sending"}
    outcome = {r["ref"]: r["event"] for r in recs if r.get("ref") in claims}
    went = outbox_attempts(cli.workdir)
    assert set(went) <= set(claims) and max(went.values()) == 1  # whatever left has its claim
    assert all(outcome.get(a) in ("outbox", "unknown") for a in went)  # the outbox: nothing was "sent"
    overdue = Counter(c["recipient"] for a, c in claims.items() if c.get("stage") == "overdue")
    assert set(overdue) == {f"financeiro@c{i:02}.com.br" for i in range(ACCOUNTS)} and max(overdue.values()) == 1
    assert set(claims) == set(outcome)  # every claim answered (outbox, or unknown at the restart)
    verify_log_ok(cli)


# --- damaged files ----------------------------------------------------------------------------------


@pytest.fixture
def recorded(cli):
    """Three accounts imported and the reminders of 17/11 sent (to the outbox) and logged."""
    setup(cli, [account(f"c{i}") for i in range(3)])
    cli("run-once", "--date", "2026-11-17")
    return cli


def test_a_truncated_state_stops_every_command_in_one_line_and_is_never_overwritten(recorded):
    cli = recorded
    state = cli.workdir / "state.json"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    cut, log = state.read_bytes(), (cli.workdir / "attempts.jsonl").read_bytes()
    for args in (["run-once", "--date", DAY], ["daemon", "--date", DAY], ["verify-log"],
                 ["hold", "c0", "--by", "ana", "--reason", "other", "--until", "2026-12-01", "--date", DAY]):
        proc = cli(*args, check=False)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.startswith("Error: state.json: not a valid state file: not JSON") and "Traceback" not in proc.stderr
    assert state.read_bytes() == cut and (cli.workdir / "attempts.jsonl").read_bytes() == log


def damage_log_middle(path: Path) -> None:
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + b"\x00garbage\xff" + data[middle + 10:])


def damage_pack(path: Path) -> None:
    pack = path.with_name(path.name + ".messages") / "2026-11.pack"
    data = pack.read_bytes()
    start = data.index(b"}\n") + 2 + 10  # inside the first entry's compressed bytes, past its header line
    pack.write_bytes(data[:start] + b"X" * 20 + data[start + 20:])


@pytest.mark.parametrize("damage, says", [
    (damage_log_middle, "PROBLEM: record 2 removed: missing before line 3"),
    (damage_pack, "the stored message (2026-11.pack at 220) no longer matches the SHA-256 in the record: changed"),
])
def test_a_damaged_log_or_message_store_is_named_by_verify_log_and_never_rewritten(recorded, damage, says):
    cli = recorded
    log = cli.workdir / "attempts.jsonl"
    pack = cli.workdir / "attempts.jsonl.messages" / "2026-11.pack"
    damage(log)
    damaged = log.read_bytes(), pack.read_bytes()
    for _ in range(2):  # before the next cycle, and after it: the evidence stays
        proc = cli("verify-log", check=False)
        assert proc.returncode == 1 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        cli("run-once", "--date", DAY)  # the cycle goes on, appending only
        assert log.read_bytes().startswith(damaged[0]) and pack.read_bytes().startswith(damaged[1])


def test_a_log_cut_in_the_middle_of_its_last_record_stops_every_write_until_a_person_accepts_it(recorded):
    cli = recorded
    log, state = cli.workdir / "attempts.jsonl", cli.workdir / "state.json"
    log.write_bytes(log.read_bytes()[:-100])  # the last outcome (a `sent`) torn
    cut, before = log.read_bytes(), state.read_bytes()
    proc = cli("verify-log", check=False)
    assert proc.returncode == 1 and "records 6 to 6 were cut off the end" in proc.stderr, proc.stderr
    emails = len(list((cli.workdir / "outbox" / "email").glob("*.eml")))
    # Going on would write the shorter head over the evidence: refused, nothing written, nothing sent.
    for command in (("run-once", "--date", "2026-11-17"),
                    ("hold", "c0", "--by", "ana", "--reason", "other", "--until", "2026-12-01", "--date", DAY)):
        proc = cli(*command, check=False)
        assert proc.returncode == 1 and "the attempt log has 5 records and the state saw 6" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and log.read_bytes() == cut and state.read_bytes() == before
    assert cli("verify-log", check=False).returncode == 1  # the evidence stays
    # A person decides to go on without a backup: the cut stays on record in every verdict.
    assert "--by NAME" in cli("verify-log", "--accept-cut", check=False).stderr
    cli("verify-log", "--accept-cut", "--by", "ana")
    cli("run-once", "--date", "2026-11-17")  # the same day again: the torn answer's claim is unknown, not re-sent
    assert len(list((cli.workdir / "outbox" / "email").glob("*.eml"))) == emails
    assert log.read_bytes().startswith(cut)
    assert [t["kind"] for t in cli.json("tasks", "--open")] == ["unknown"]
    verdict = cli("verify-log")
    assert "ana accepted a cut log: the state had seen 6 records" in verdict.stdout

def test_audit_says_on_the_console_when_an_accounts_stored_message_is_damaged(recorded, tmp_path):
    # The HTML said "NÃO CONFERE" while the console said "log verified" (found by the fault suite).
    cli = recorded
    pack = cli.workdir / "attempts.jsonl.messages" / "2026-11.pack"
    data = pack.read_bytes()
    pack.write_bytes(data[:-60] + bytes(b ^ 0xFF for b in data[-60:-40]) + data[-40:])  # inside the last message
    lines = {}
    for acc in ("c0", "c1", "c2"):
        html = tmp_path / f"{acc}.html"
        lines[acc] = cli("audit", acc, "--html", str(html)).stdout
        damaged = "NÃO CONFERE" in html.read_text(encoding="utf-8")
        assert ("stored message(s) do NOT match their hash" in lines[acc]) == damaged, lines[acc]
        assert lines[acc].rstrip().endswith("log verified") == (not damaged), lines[acc]
    assert any("do NOT match" in line for line in lines.values()), lines
