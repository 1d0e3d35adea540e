"""Every way of quietly shortening or rewriting the log, after every kind of command that writes it.

A folder is made once with real commands (import, a cycle that sends e-mails to the outbox, a
hold, a payment, a social task). Then each writing command runs on a copy of it, and each
tampering is applied to a copy of that: the last record cut, the command's records cut, the last
record edited, a torn tail, log and messages rolled back to before the command, the log deleted,
a record appended and chained on, garbage appended to a message pack, a flipped byte in a pack's
header. `verify-log` must exit 1 naming it, every time: the count of misses stays 0. The same
folder untouched must verify (else a check that always fails would pass this test).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from notifier.log.attempts import HeadFile, Kept, head_file_for, line_hash
from tests.conftest import Cli, clean_cli

DAY = "2026-11-24"
BILLING = {
    "accounts": [
        {"id": "acme", "company": "ACME Comércio Ltda", "contact_name": "Maria Souza",
         "document": "45.723.174/0001-10", "emails": ["financeiro@acme.com.br"],
         "whatsapp": "+5511987654321", "social": {"instagram": "@acme"}, "due_day": 20},
        {"id": "beta", "company": "Beta Serviços Ltda", "contact_name": "João Lima",
         "document": "11.222.333/0001-81", "emails": ["contas@beta.com.br"], "due_day": 20},
    ],
    "invoices": [
        {"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05"},
        {"id": "2026-11-beta", "account": "beta", "amount": "89.90", "issued": "2026-11-05"},
        {"id": "2026-10-beta", "account": "beta", "amount": "89.90", "issued": "2026-10-05"},
    ],
}

# Each kind of command that appends to the log (`pay` too: it may write a record or none).
COMMANDS = {
    "run-once": ("run-once", "--date", DAY),
    "send": ("send", "acme", "--channel", "email", "--stage", "overdue", "--date", DAY),
    "escalate": ("escalate", "acme", "--by", "ana", "--channel", "email", "--now", "--date", DAY),
    "contact": ("contact", "acme", "--by", "ana", "--channel", "phone", "--outcome", "reached", "--date", DAY),
    "hold": ("hold", "acme", "--by", "ana", "--reason", "disputed", "--until", "2026-12-01", "--date", DAY),
    "release": ("release", "beta", "--by", "ana", "--date", DAY),
    "opt-out": ("opt-out", "acme", "--channel", "whatsapp", "--by", "ana", "--date", DAY),
    "pay": ("pay", "2026-11-acme", "--date", "2026-11-23", "--by", "ana"),
    "pay --correct": ("pay", "2026-10-beta", "--date", "2026-10-21", "--correct", "--reason", "extrato", "--by", "ana"),
    "tasks done": ("tasks", "done", "{task}", "--by", "ana", "--date", DAY),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Cli:
    cli = clean_cli(tmp_path_factory.mktemp("base"))
    (cli.workdir / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-10")
    cli("run-once", "--date", "2026-11-17")  # reminder e-mails: records and a message pack
    cli("pay", "2026-10-beta", "--date", "2026-10-20", "--by", "ana")
    cli("hold", "beta", "--by", "ana", "--reason", "negotiating", "--until", "2026-12-10", "--date", "2026-11-18")
    cli("escalate", "acme", "--by", "ana", "--channel", "social", "--now", "--date", "2026-11-18")  # a staff task
    return cli


def copy_of(cli: Cli, to: Path) -> Cli:
    shutil.copytree(cli.workdir, to, ignore=shutil.ignore_patterns("*.lock"))
    return Cli(to, cli.env)


@pytest.fixture(scope="module")
def after(base, tmp_path_factory):
    """after(name): a copy of the base folder in which command `name` ran (made once each)."""
    made: dict[str, Cli] = {}

    def run(name: str) -> Cli:
        if name not in made:
            cli = copy_of(base, tmp_path_factory.mktemp("after") / "w")
            [task] = [t["id"] for t in cli.json("tasks") if t["kind"] == "social_manual"]
            cli(*(arg.format(task=task) for arg in COMMANDS[name]))
            made[name] = cli
        return made[name]
    return run


def lines_of(log: Path) -> list[bytes]:
    return log.read_bytes().splitlines(keepends=True)


def newest_pack(folder: Path) -> Path:
    return max((folder / "attempts.jsonl.messages").glob("*.pack"))


def cut_last(folder, base):
    log = folder / "attempts.jsonl"
    log.write_bytes(b"".join(lines_of(log)[:-1]))


def cut_the_commands_records(folder, base):
    log = folder / "attempts.jsonl"
    log.write_bytes(b"".join(lines_of(log)[:len(lines_of(base.workdir / "attempts.jsonl"))]))


def edit_last(folder, base):
    log = folder / "attempts.jsonl"
    lines = lines_of(log)
    lines[-1] = lines[-1].replace(b'"time":"20', b'"time":"19', 1)
    log.write_bytes(b"".join(lines))


def torn_tail(folder, base):
    log = folder / "attempts.jsonl"
    log.write_bytes(log.read_bytes()[:-40])


def rollback(folder, base):
    """Log and message store put back as they were before the command (a backup restored)."""
    shutil.copy2(base.workdir / "attempts.jsonl", folder / "attempts.jsonl")
    shutil.rmtree(folder / "attempts.jsonl.messages")
    shutil.copytree(base.workdir / "attempts.jsonl.messages", folder / "attempts.jsonl.messages")


def rm_log(folder, base):
    (folder / "attempts.jsonl").unlink()


def append_rechained(folder, base):
    """A record written by hand after the last one, chained on as the notifier would chain it."""
    log = folder / "attempts.jsonl"
    last = lines_of(log)[-1].rstrip(b"\n")
    record = {"seq": orjson.loads(last)["seq"] + 1, "id": "f" * 32, "event": "contact", "time": "2026-11-24T12:00:00.000Z",
              "actor": "ana", "account": "acme", "channel": "phone", "outcome": "reached", "note": "",
              "prev": line_hash(last)}
    with log.open("ab") as f:
        f.write(orjson.dumps(record) + b"\n")


def pack_garbage(folder, base):
    with newest_pack(folder).open("ab") as f:
        f.write(b"\x00garbage appended\n")


def pack_header_flip(folder, base):
    """One byte of the last entry's header line (its SHA-256 of the payload) changed."""
    pack = newest_pack(folder)
    data = bytearray(pack.read_bytes())
    at = data.rfind(b'{"id":"')
    at = data.index(b'"sha256":"', at) + len(b'"sha256":"')
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    pack.write_bytes(bytes(data))


TAMPERINGS = [cut_last, cut_the_commands_records, edit_last, torn_tail, rollback, rm_log, append_rechained,
              pack_garbage, pack_header_flip]
# What verify-log says for each (one of these, in its problems).
SAID = {
    "cut_last": ("cut off the end",),
    "cut_the_commands_records": ("cut off the end",),
    "edit_last": ("was changed or replaced",),
    "torn_tail": ("cut off the end",),
    "rollback": ("cut off the end",),
    "rm_log": ("the log is missing",),
    "append_rechained": ("were appended after the head the state recorded",),
    "pack_garbage": ("not entries written by the notifier",),
    "pack_header_flip": ("the header of its stored message", "not entries written by the notifier"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_log_after_each_command_verifies_untouched(after, command):
    cli = after(command)
    proc = cli("verify-log", check=False)
    assert proc.returncode == 0 and "chain and messages: ok" in proc.stdout, proc.stdout + proc.stderr


def verify_log_here(cli: Cli) -> subprocess.CompletedProcess:
    """`notifier verify-log` in this process (click's runner): the same command without a Python
    start-up for each of the matrix's 90 cases. The matrix is about what verify-log finds, not about
    processes; the untouched folders above are verified by the real program."""
    from click.testing import CliRunner

    from notifier.cli import cli as group
    env = {k: None for k in os.environ if k.startswith(("NOTIFIER_", "EMAIL_", "TWILIO_", "STAFF_"))}
    env.update({k: v for k, v in cli.env.items() if k.startswith("NOTIFIER_")})
    cwd = os.getcwd()
    os.chdir(cli.workdir)
    try:
        result = CliRunner().invoke(group, ["verify-log"], env=env)
    finally:
        os.chdir(cwd)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return subprocess.CompletedProcess(["verify-log"], result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_tampering_after_every_command_is_found(after, base, tmp_path, command, tamper):
    cli = copy_of(after(command), tmp_path / "t")
    # Every writing command leaves records (pay too), so each has something to cut or roll back.
    assert (cli.workdir / "attempts.jsonl").read_bytes() != (base.workdir / "attempts.jsonl").read_bytes(), command
    tamper(cli.workdir, base)
    proc = verify_log_here(cli)
    assert proc.returncode == 1, f"MISSED: {tamper.__name__} after {command}\n{proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert any(text in proc.stderr for text in SAID[tamper.__name__]), proc.stderr


@pytest.mark.parametrize("tamper", [cut_last, edit_last, rm_log, append_rechained], ids=lambda f: f.__name__)
def test_the_next_command_that_writes_refuses_an_altered_log_and_writes_nothing(after, base, tmp_path, tamper):
    """Not only verify-log: a command that would append (or change the state) stops first, so the
    altered log's head never replaces the one the state kept."""
    cli = copy_of(after("contact"), tmp_path / "t")
    tamper(cli.workdir, base)
    files = {p: p.read_bytes() for p in cli.workdir.rglob("*") if p.is_file() and not p.name.endswith(".lock")}
    for command in (COMMANDS["contact"], ("import", "billing.json", "--date", DAY)):
        proc = cli(*command, check=False)
        assert proc.returncode == 1 and "verify-log" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in files if p.exists()} == files


def test_a_writer_stopped_between_its_append_and_the_heads_move_is_not_taken_for_tampering(after, tmp_path):
    """The state as a kill leaves it between step 3 (records appended) and step 4 (head moved) of
    attempts.py's order: the head kept with its intent (`upto`), the records after it. verify-log
    notes them, and the next command adopts them and moves the head on."""
    cli = copy_of(after("contact"), tmp_path / "t")
    heads = HeadFile(head_file_for(cli.workdir / "attempts.jsonl"))
    kept = heads.read()
    assert kept is not None and kept.upto is None
    heads.write(Kept(kept.count, kept.hash, kept.size, kept.count + 1))  # step 2: the intent
    append_rechained(cli.workdir, None)  # step 3, and no step 4
    proc = cli("verify-log", check=False)
    assert proc.returncode == 0 and "stopped before it recorded the new head" in proc.stdout, proc.stdout + proc.stderr
    cli(*COMMANDS["contact"])
    assert heads.read().count == kept.count + 2 and heads.read().upto is None
    assert cli("verify-log").returncode == 0

    # Records past the announced count are not the stopped writer's: reported.
    kept = heads.read()
    heads.write(Kept(kept.count, kept.hash, kept.size, kept.count + 1))
    append_rechained(cli.workdir, None)
    append_rechained(cli.workdir, None)
    proc = cli("verify-log", check=False)
    assert proc.returncode == 1 and "were appended after the head the state recorded" in proc.stderr


def test_an_outside_head_proves_the_prefix_even_when_log_and_state_were_rewritten_together(after, tmp_path):
    """`verify-log --head COUNT:HASH` with the head of the staff summary: the log still holds it;
    after the log and the state's head are both rewritten (a consistent forgery), it no longer does."""
    cli = copy_of(after("contact"), tmp_path / "t")
    heads = HeadFile(head_file_for(cli.workdir / "attempts.jsonl"))
    outside = heads.read()
    head = f"{outside.count}:{outside.hash}"
    cli(*COMMANDS["hold"])  # the log goes on after the head was taken
    out = cli("verify-log", "--head", head).stdout
    assert f"the head given, {head}, is in the log" in out

    # Rewrite a record before that head and chain everything again, the state's head included.
    log = cli.workdir / "attempts.jsonl"
    lines, prev, out_lines = lines_of(log), "0" * 64, []
    for i, line in enumerate(lines):
        record = orjson.loads(line)
        if i == 2:
            record["time"] = "2026-11-01T00:00:00.000Z"
        record["prev"] = prev
        raw = orjson.dumps(record)
        prev = line_hash(raw)
        out_lines.append(raw + b"\n")
    log.write_bytes(b"".join(out_lines))
    heads.read()
    heads.write(Kept(len(out_lines), prev, log.stat().st_size))
    assert cli("verify-log", "--chain-only").returncode == 0  # the forgery is consistent...
    proc = cli("verify-log", "--head", head, check=False)  # ...but not with the head kept elsewhere
    assert proc.returncode == 1 and f"record {outside.count} does not hash to the head given" in proc.stderr
    proc = cli("verify-log", "--head", f"{outside.count + 100}:{outside.hash}", check=False)
    assert proc.returncode == 1 and "names record" in proc.stderr
    proc = cli("verify-log", "--head", "12:xyz", check=False)
    assert proc.returncode == 2 and "COUNT:HASH" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command, wrong, said", [
    (("verify-log",), "log a folder", "attempts.jsonl: is a folder, not the attempt log"),
    (("audit", "acme", "--html", "audit.html"), "log a folder", "attempts.jsonl: is a folder, not the attempt log"),
    (("run-once", "--date", DAY), "messages a file", "attempts.jsonl.messages: is a file, not the folder"),
    (COMMANDS["escalate"], "messages a file", "attempts.jsonl.messages: is a file, not the folder"),
])
def test_the_logs_files_in_the_wrong_form_are_one_clear_error_and_nothing_is_sent(base, tmp_path, command, wrong, said):
    cli = copy_of(base, tmp_path / "t")
    if wrong == "log a folder":
        (cli.workdir / "attempts.jsonl").unlink()
        (cli.workdir / "attempts.jsonl").mkdir()
    else:
        shutil.rmtree(cli.workdir / "attempts.jsonl.messages")
        (cli.workdir / "attempts.jsonl.messages").write_text("x")
    outbox = sorted((cli.workdir / "outbox").rglob("*"))
    proc = cli(*command, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"Error: {said}"), proc.stderr
    assert sorted((cli.workdir / "outbox").rglob("*")) == outbox and not (cli.workdir / "audit.html").exists()


def test_the_head_on_an_audit_report_and_in_the_staff_summarys_words_is_one_verify_log_takes(after, tmp_path):
    """Every audit report carries the log's head and its date; that head, or the staff summary's
    line with it (notifier/staff/actions.py prints "Registro de tentativas: N registros, último
    hash H"), given to `verify-log --head`, proves the log still holds that prefix."""
    import re
    cli = copy_of(after("contact"), tmp_path / "t")
    cli("audit", "acme", "--html", "audit.html")
    html = (cli.workdir / "audit.html").read_text(encoding="utf-8")
    [(when, head)] = re.findall(r"<dt>Cabeça do registro em (\d\d/\d\d/\d{4} \d\d:\d\d)</dt><dd><code data-head>(\d+:[0-9a-f]{64})<", html)
    count, digest = head.split(":")
    kept = HeadFile(head_file_for(cli.workdir / "attempts.jsonl")).read()
    assert (int(count), digest) == (kept.count, kept.hash)
    cli(*COMMANDS["hold"])
    assert cli("verify-log", "--head", head).returncode == 0
    assert cli("verify-log", "--head", f"Registro de tentativas: {count} registros, último hash {digest}").returncode == 0
    edit_last_before = lines_of(cli.workdir / "attempts.jsonl")
    edit_last_before[int(count) - 1] = edit_last_before[int(count) - 1].replace(b'"time":"20', b'"time":"19', 1)
    (cli.workdir / "attempts.jsonl").write_bytes(b"".join(edit_last_before))
    proc = cli("verify-log", "--head", head, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_a_deleted_log_is_found_even_when_no_cycle_ever_ran(tmp_path):
    """Before, only a cycle recorded the head: with staff commands alone, `rm attempts.jsonl`
    verified as an empty log. A missing log where the state saw records is a problem."""
    cli = clean_cli(tmp_path)
    (cli.workdir / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-10")
    cli(*COMMANDS["contact"])
    (cli.workdir / "attempts.jsonl").unlink()
    proc = cli("verify-log", check=False)
    assert proc.returncode == 1 and "the log is missing, but the state recorded 1 records" in proc.stderr, proc.stderr
    proc = cli(*COMMANDS["hold"], check=False)
    assert proc.returncode == 1 and "the attempt log is missing" in proc.stderr
    assert not (cli.workdir / "attempts.jsonl").exists()


def test_a_log_growing_under_verify_log_and_other_commands_is_never_taken_for_tampering(after, tmp_path):
    """A writer appending all the time (as the daemon does) while verify-log and commands that
    read the head run: the head and the log's size are read together under the log's flock, so
    the records appended meanwhile are never reported as appended by something else."""
    import sys
    cli = copy_of(after("contact"), tmp_path / "t")
    # The writer appends until the checks are done (the file `stop` appears), not for a fixed time:
    # it kept a core busy for 20 s whatever the checks took.
    writer = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        "from datetime import datetime, timezone\n"
        "from notifier.log.attempts import AttemptLog\n"
        "log = AttemptLog('attempts.jsonl')\n"
        "end = time.monotonic() + float(sys.argv[1])\n"
        "print('writing', flush=True)\n"
        "while time.monotonic() < end and not os.path.exists('stop'):\n"
        "    log.note(datetime.now(timezone.utc), 'contact', {'account': 'acme', 'note': 'x' * 3000}, 'ana')\n"
    ), "120"], cwd=cli.workdir, env=cli.env, stdout=subprocess.PIPE, text=True)
    try:
        before = HeadFile(head_file_for(cli.workdir / "attempts.jsonl")).read().count
        assert writer.stdout.readline() == "writing\n"
        for _ in range(4):
            proc = cli("verify-log", check=False)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            cli("import", "billing.json", "--date", DAY)  # a store write: it checks the head first
    finally:
        (cli.workdir / "stop").touch()
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert HeadFile(head_file_for(cli.workdir / "attempts.jsonl")).read().count > before
    assert cli("verify-log").returncode == 0


def test_a_head_write_torn_by_a_crash_leaves_the_head_before_it(tmp_path):
    """The kept head has two slots written in turn: a torn write (here, half a slot) spoils only
    the newer one, and the head read is the one before; a file with no valid slot is an error."""
    from notifier.log.attempts import SLOT, LogError
    heads = HeadFile(tmp_path / "attempts.jsonl.head")
    assert heads.read() is None
    heads.write(Kept(1, "a" * 64, 100))
    heads.write(Kept(2, "b" * 64, 200, 3))
    assert heads.read() == Kept(2, "b" * 64, 200, 3)
    data = bytearray((tmp_path / "attempts.jsonl.head").read_bytes())
    newer = 0 if data[:SLOT].find(b'"count":2') >= 0 else SLOT
    for torn in (data[:newer] + data[newer:newer + SLOT // 2] + b"\0" * (SLOT - SLOT // 2) + data[newer + SLOT:],
                 data.replace(b'"count":2', b'"count":7')):  # cut mid-write; one byte wrong, still JSON
        (tmp_path / "attempts.jsonl.head").write_bytes(bytes(torn))
        assert HeadFile(tmp_path / "attempts.jsonl.head").read() == Kept(1, "a" * 64, 100)
    (tmp_path / "attempts.jsonl.head").write_bytes(b"\0" * (2 * SLOT))
    with pytest.raises(LogError, match="damaged"):
        HeadFile(tmp_path / "attempts.jsonl.head").read()
