"""`notifier verify-log` against a real log, and against copies of it tampered in every way.

The log comes from real sends (the outbox channels) through the command line; then, in a copy of
the folder per case, a record is edited, deleted, inserted, swapped, the end cut off, or a stored
message changed, and `verify-log` must exit 1 naming what happened where.
"""
from __future__ import annotations

import hashlib
import json
import shutil

import orjson
import pytest

from tests.conftest import Cli, clean_cli

BILLING = {
    "accounts": [
        {"id": "acme", "company": "ACME Comércio Ltda", "contact_name": "Maria Souza",
         "document": "45.723.174/0001-10", "emails": ["financeiro@acme.com.br", "maria@acme.com.br"],
         "whatsapp": "+5511987654321", "due_day": 20},
    ],
    "invoices": [{"id": "2026-11-acme", "account": "acme", "amount": "149.90", "issued": "2026-11-05"}],
}


@pytest.fixture(scope="module")
def sent(tmp_path_factory):
    """A folder with a state and a log of 8 records (4 e-mails sent to the outbox), whose head
    every append moved. Made once: each test tampers with a copy."""
    cli = clean_cli(tmp_path_factory.mktemp("sent"))
    (cli.workdir / "billing.json").write_text(json.dumps(BILLING), encoding="utf-8")
    cli("import", "billing.json", "--date", "2026-11-10")
    for stage in ("reminder", "overdue"):
        cli("send", "acme", "--channel", "email", "--stage", stage, "--date", "2026-11-24")
    cli("import", "billing.json", "--date", "2026-11-24")  # a store write after them changes nothing of it
    return cli


def tampered(cli: Cli, tmp_path, name: str, change) -> Cli:
    """A copy of the folder with `change(lines)` applied to the log's lines; a Cli running there."""
    copy = tmp_path / name
    shutil.copytree(cli.workdir, copy, ignore=shutil.ignore_patterns("*.lock"))
    log = copy / "attempts.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(change(lines)))
    return Cli(copy, cli.env)


def check_fails(cli: Cli, *expected: str) -> str:
    proc = cli("verify-log", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in proc.stderr, proc.stderr
    return proc.stderr


def test_an_untouched_log_verifies(sent):
    out = sent("verify-log").stdout
    assert "8 records, 4 stored messages" in out and "chain and messages: ok" in out
    verdict = sent.json("verify-log")
    assert verdict["ok"] and verdict["head"]["count"] == 8


def test_an_edited_record_is_named(sent, tmp_path):
    def edit(lines):
        lines[2] = lines[2].replace(b"maria@acme.com.br", b"maria@acme.com.bx")
        return lines
    check_fails(tampered(sent, tmp_path, "edit", edit), "record 3 (line 3) was changed")


def test_an_edited_last_record_is_caught_by_the_head_in_the_state(sent, tmp_path):
    def edit(lines):
        lines[-1] = lines[-1].replace(b'"outbox"', b'"failed"')
        return lines
    check_fails(tampered(sent, tmp_path, "last", edit), "record 8 was changed or replaced since the state recorded")


def test_a_deleted_record_is_named(sent, tmp_path):
    check_fails(tampered(sent, tmp_path, "delete", lambda lines: lines[:3] + lines[4:]),
                "record 4 removed: missing before line 4")


def test_an_inserted_record_is_named_even_with_a_valid_link(sent, tmp_path):
    def insert(lines):
        forged = json.loads(lines[2])
        forged.update(seq=3, id="forged", prev=hashlib.sha256(lines[1].rstrip(b"\n")).hexdigest())
        return lines[:2] + [orjson.dumps(forged) + b"\n"] + lines[2:]
    check_fails(tampered(sent, tmp_path, "insert", insert), "line 4: record 3 appears a second time",
                "inserted before line 4")


def test_a_foreign_line_is_an_insertion(sent, tmp_path):
    check_fails(tampered(sent, tmp_path, "foreign", lambda lines: lines[:5] + [b'{"event":"sent"}\n'] + lines[5:]),
                "line 6: a JSON object that is not a record of this log")


def test_swapped_records_are_named(sent, tmp_path):
    def swap(lines):
        lines[4], lines[5] = lines[5], lines[4]
        return lines
    stderr = check_fails(tampered(sent, tmp_path, "swap", swap), "records reordered: record 5 (line 6")
    assert "removed" not in stderr


def test_records_cut_off_the_end_are_caught_by_the_head_in_the_state(sent, tmp_path):
    check_fails(tampered(sent, tmp_path, "truncate", lambda lines: lines[:6]),
                "the log ends at record 6 but the state recorded 8 records", "records 7 to 8 were cut off the end")


def test_a_changed_stored_message_is_named(sent, tmp_path):
    copy = tampered(sent, tmp_path, "message", lambda lines: lines)
    [pack] = (copy.workdir / "attempts.jsonl.messages").glob("*.pack")
    sending = json.loads((copy.workdir / "attempts.jsonl").read_bytes().splitlines()[2])
    where = sending["message"]
    # Replace the third message by another one, validly compressed: only the hash can tell.
    import zlib
    other = zlib.compress(b"Subject: nothing to see\r\n\r\nhello\r\n", 9)
    data = bytearray(pack.read_bytes())
    data[where["offset"]:where["offset"] + where["zsize"]] = other
    pack.write_bytes(bytes(data))
    fixed = json.loads((copy.workdir / "attempts.jsonl").read_bytes().splitlines()[2])
    assert fixed == sending  # the log itself is untouched
    check_fails(copy, f"record 3 (line 3, sending {sending['id']})", "stored message")
    assert copy("verify-log", "--chain-only").returncode == 0  # the records themselves are intact


# --- the fast pass: parallel ranges, and logs written before `zsha256` ---------------------------

from notifier.log.attempts import HeadFile, head_file_for, line_hash  # noqa: E402
from notifier.log.messagestore import MessageStore  # noqa: E402
from notifier.log.verify import _fast, _precise, verify  # noqa: E402


def state_head(cli: Cli):
    """The head the state keeps, as the commands wrote it."""
    return HeadFile(head_file_for(cli.workdir / "attempts.jsonl")).read()


def size(log) -> int:
    return log.stat().st_size


def verdicts(cli: Cli, head) -> list[dict]:
    """The verdict of the log in `cli`'s folder by the fast pass in 1, 2 and 3 processes, and by
    the precise pass alone: all four must agree."""
    log, store = cli.workdir / "attempts.jsonl", MessageStore(cli.workdir / "attempts.jsonl.messages")
    out = [verify(log, store, head, workers=n).to_json() for n in (1, 2, 3)]
    return out + [_precise(log, store, head, True, size(log)).to_json()]


def test_the_fast_pass_in_parallel_ranges_agrees_with_the_precise_one(sent, tmp_path):
    head = state_head(sent)
    good = verdicts(sent, head)
    assert good[0]["ok"] and good[0]["records"] == 8 and good[0]["messages"] == 4
    # ...and an intact log is proven by the fast pass itself, not handed on to the precise one.
    log = sent.workdir / "attempts.jsonl"
    for workers in (1, 2):
        fast = _fast(log, log.with_name(log.name + ".messages"), head, True, workers, size(log), None)
        assert fast is not None and fast.to_json() == good[0], workers
    assert all(v == good[0] for v in good)
    cases = {
        "edit": lambda lines: lines[:2] + [lines[2].replace(b"maria@", b"mario@")] + lines[3:],
        "delete": lambda lines: lines[:3] + lines[4:],
        "swap": lambda lines: lines[:4] + [lines[5], lines[4]] + lines[6:],
        "truncate": lambda lines: lines[:6],
        "edit_last": lambda lines: lines[:-1] + [lines[-1].replace(b'"outbox"', b'"failed"')],
        "torn": lambda lines: lines + [b'{"seq":9,"id":"'],
    }
    for name, change in cases.items():
        found = verdicts(tampered(sent, tmp_path, name, change), head)
        assert all(v == found[-1] for v in found), name
        assert found[-1]["ok"] == (name == "torn"), name


def rechained(edit):
    """A change for `tampered`: `edit(i, record)` on each record (in place), then the chain made
    again over the edited lines, as the writer would have made it: a log that is intact."""
    def change(lines):
        out, prev = [], "0" * 64
        for i, line in enumerate(lines):
            record = orjson.loads(line)
            edit(i, record)
            record["prev"] = prev
            raw = orjson.dumps(record)
            prev = line_hash(raw)
            out.append(raw + b"\n")
        return out
    return change


def test_a_log_written_before_zsha256_still_verifies_and_its_messages_are_checked(sent, tmp_path):
    """Message pointers without `zsha256` (every log written before it) are inflated and their
    payload hashed: still verified, and a changed message still found."""
    old = tampered(sent, tmp_path, "old", rechained(lambda i, record: record.get("message", {}).pop("zsha256", None)))
    assert b"zsha256" not in (old.workdir / "attempts.jsonl").read_bytes()
    good = verdicts(old, None)
    assert good[0]["ok"] and good[0]["messages"] == 4 and all(v == good[0] for v in good)

    [pack] = (old.workdir / "attempts.jsonl.messages").glob("*.pack")
    sending = json.loads((old.workdir / "attempts.jsonl").read_bytes().splitlines()[4])
    where = sending["message"]
    data = bytearray(pack.read_bytes())
    import zlib
    other = zlib.compress(b"Subject: nothing to see\r\n\r\nhello\r\n", 9)
    data[where["offset"]:where["offset"] + where["zsize"]] = other.ljust(where["zsize"], b"\0")
    pack.write_bytes(bytes(data))
    found = verdicts(old, None)
    assert all(v == found[-1] for v in found)
    assert not found[0]["ok"] and f"record 5 (line 5, sending {sending['id']})" in found[0]["problems"][0]


def test_a_record_longer_than_the_fast_pass_block_is_still_proven_by_it(sent, tmp_path):
    """A record larger than the fast pass's block (a long message's text) gets a larger buffer:
    the log is still proven by the fast pass, not handed to the slow precise one."""
    from notifier.log.verify import BLOCK

    def long_answer(i, record):
        if i == 3:  # the outcome of the second send: a provider's very long answer
            record["detail"] = "x" * (3 * BLOCK)
    long = tampered(sent, tmp_path, "long", rechained(long_answer))
    log = long.workdir / "attempts.jsonl"
    assert max(map(len, log.read_bytes().splitlines())) > 3 * BLOCK
    store = MessageStore(long.workdir / "attempts.jsonl.messages")
    fast = _fast(log, store.folder, None, True, 1, size(log), None)
    assert fast is not None and fast.to_json() == _precise(log, store, None, True, size(log)).to_json()
    assert fast.records == 8 and fast.messages == 4


def test_the_fast_pass_reads_each_message_from_the_block_of_its_pack_in_any_order(tmp_path):
    """The fast pass hashes messages from a block of the pack read ahead; wherever it moves the
    block (before, past, larger than a block, past the end of the file), the block holds exactly
    the file's bytes from there."""
    import random

    from notifier.log.verify import _Window
    data = random.Random(5).randbytes(10_000)
    pack = tmp_path / "2026-11.pack"
    pack.write_bytes(data)
    window = _Window(str(pack), block=1_000)
    asks = [(0, 10), (10, 500), (900, 200), (100, 50), (1_000, 101), (2_500, 1_500), (9_990, 40), (4_000, 999)]
    asks += [(random.Random(i).randrange(10_000), random.Random(-i).randrange(1, 1_200)) for i in range(200)]
    try:
        for offset, size in asks:
            window.move(offset, size)
            assert bytes(window.view[:window.end - window.start]) == data[offset:offset + len(window.buf)]
    finally:
        window.close()
