"""The attempt log itself: records, hash chain, message store, torn lines, group commit, recovery.

Real files in a temporary folder; two `AttemptLog` objects on one file stand for two processes
(flock locks belong to open files, so they exclude each other exactly as two processes would).
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from notifier.channels import Message, Result
from notifier.log.attempts import GENESIS, AttemptLog, Mark, new_id, read_tail
from notifier.log.verify import verify

T0 = datetime(2026, 11, 24, 11, 0, tzinfo=timezone.utc)
FIELDS = {"account": "acme", "invoices": ["2026-11-acme"], "stage": "overdue", "notice_date": "2026-11-24",
          "first_time": True, "tutorial": False, "covers": [["2026-11-acme", "2026-11-24", "overdue"]],
          "template": "email/overdue", "attempt": 1}


def email(recipient="financeiro@acme.com.br") -> Message:
    return Message(channel="email", recipient=recipient, subject="Fatura em atraso", text="Olá, Maria.\n")


def lines(log: AttemptLog) -> list[bytes]:
    return log.path.read_bytes().splitlines()


def test_a_sending_and_its_outcome_carry_every_field_and_chain(tmp_path):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    attempt = log.start(T0, email(), FIELDS, actor="maria", payload=b"From: x\r\n\r\nbody\r\n")
    log.finish(attempt, T0 + timedelta(seconds=1), Result("sent", "smtp", provider_id="ABC1", code="250",
                                                          detail="250 2.0.0 Ok: queued as ABC1"))
    sending, sent = log.records()
    assert sending["id"] == attempt and sending["event"] == "sending" and sending["actor"] == "maria"
    assert sending["time"] == "2026-11-24T11:00:00.000Z"
    assert {k: sending[k] for k in FIELDS} == FIELDS
    assert sending["recipient"] == "financeiro@acme.com.br" and sending["channel"] == "email"
    assert sending["content"] == {"subject": "Fatura em atraso", "text": "Olá, Maria.\n"}
    assert sending["message"]["sha256"] == hashlib.sha256(b"From: x\r\n\r\nbody\r\n").hexdigest()
    assert (sent["event"], sent["ref"], sent["provider_id"], sent["actor"], sent["account"]) == \
           ("sent", attempt, "ABC1", "maria", "acme")
    raw = lines(log)
    assert [json.loads(r)["seq"] for r in raw] == [1, 2]
    assert json.loads(raw[0])["prev"] == GENESIS
    assert json.loads(raw[1])["prev"] == hashlib.sha256(raw[0]).hexdigest()
    assert log.head() == (2, hashlib.sha256(raw[1]).hexdigest())
    assert verify(log.path, log.messages).ok


def test_the_stored_message_is_the_exact_bytes(tmp_path):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    payloads = [os.urandom(3000) + "ção".encode() for _ in range(3)]
    ids = log.start_many([(T0, email(), FIELDS, "daemon", p) for p in payloads])
    from notifier.log.attempts import stored_message
    by_id = {r["id"]: r for r in log.records()}
    assert [log.messages.get(stored_message(by_id[i])) for i in ids] == payloads
    assert [i for i, _ in log.messages.entries("2026-11.pack")] == ids  # a pack reads on its own too


@pytest.mark.parametrize("kept", ["7", "header+40"])
def test_an_entry_torn_by_a_crash_is_cut_before_the_next_append(tmp_path, kept):
    """A kill mid-append leaves the start of an entry at the end of its pack. The restarted
    process's first append must not leave it between whole entries: the pack would no longer read
    on its own, and verify would call the crash's bytes an edit."""
    log = AttemptLog(tmp_path / "attempts.jsonl")
    before = log.start_many([(T0, email(), FIELDS, "daemon", os.urandom(2000)) for _ in range(2)])
    pack = log.messages.folder / "2026-11.pack"
    whole = pack.read_bytes()
    other = AttemptLog(tmp_path / "elsewhere" / "attempts.jsonl")  # the entry the crash was writing
    other.start(T0, email(), FIELDS, payload=os.urandom(2000))
    entry = (other.messages.folder / "2026-11.pack").read_bytes()
    cut = 7 if kept == "7" else entry.index(b"\n") + 40
    with open(pack, "ab") as f:
        f.write(entry[:cut])
    restarted = AttemptLog(tmp_path / "attempts.jsonl")
    after = restarted.start_many([(T0, email(), FIELDS, "daemon", os.urandom(2000)) for _ in range(2)])
    assert pack.read_bytes().startswith(whole)
    assert [i for i, _ in restarted.messages.entries("2026-11.pack")] == before + after
    result = verify(restarted.path, restarted.messages)
    assert result.ok, result.problems


def test_bytes_that_are_no_entry_are_not_cut(tmp_path):
    """Only what can be nothing but an entry cut short is cut: other bytes in a pack (an edit, a
    damaged disk) stay for verify to report."""
    log = AttemptLog(tmp_path / "attempts.jsonl")
    log.start(T0, email(), FIELDS, payload=b"first")
    pack = log.messages.folder / "2026-11.pack"
    with open(pack, "ab") as f:
        f.write(b"not an entry")
    size = pack.stat().st_size
    AttemptLog(tmp_path / "attempts.jsonl").start(T0, email(), FIELDS, payload=b"second")
    assert pack.read_bytes()[size - len(b"not an entry"):size] == b"not an entry"
    assert not verify(log.path, log.messages).ok


def test_an_append_cut_short_by_a_full_disk_takes_back_what_it_wrote(tmp_path):
    """A write stopped part-way (here by a file size limit, as a full disk would) must not leave
    a torn entry: the append fails whole, and the pack is as it was."""
    script = """
import os, resource, signal, sys
from notifier.log.messagestore import MessageStore
store = MessageStore(sys.argv[1])
store.put_many("2026-11", [("a", b"first")])
size = os.path.getsize(os.path.join(sys.argv[1], "2026-11.pack"))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 300, size + 300))
try:
    store.put_many("2026-11", [("b", os.urandom(5000))])
except OSError as exc:
    print("refused", exc.errno, os.path.getsize(os.path.join(sys.argv[1], "2026-11.pack")) - size)
"""
    import errno
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "packs")], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["refused", str(errno.EFBIG), "0"]


def test_whatsapp_template_is_recorded_as_sid_and_variables(tmp_path):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    message = Message(channel="whatsapp", recipient="+5511987654321", text="preview only",
                      content_sid="HX0123", content_variables={"1": "Maria", "2": "R$ 1.234,56"})
    log.start(T0, message, FIELDS)
    [sending] = log.records()
    assert sending["content"] == {"content_sid": "HX0123", "content_variables": {"1": "Maria", "2": "R$ 1.234,56"}}


def test_group_commit_is_one_fsync_of_the_log_and_one_of_the_messages(tmp_path, monkeypatch):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    log.start(T0, email(), FIELDS, payload=b"warm-up")  # creating the files fsyncs their folder too
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    ids = log.start_many([(T0, email(f"r{i}@acme.com.br"), FIELDS, "daemon", b"x" * i) for i in range(50)])
    # ...and one of the head kept for it: the intent, before (attempts.py's order of writes).
    assert [os.path.basename(p) for p in synced] == ["attempts.jsonl.head", "2026-11.pack", "attempts.jsonl"]
    synced.clear()
    log.finish_many([(i, T0, Result("sent", "smtp")) for i in ids])
    assert [os.path.basename(p) for p in synced] == ["attempts.jsonl.head", "attempts.jsonl"]
    assert verify(log.path, log.messages).ok and log.head().count == 101


def test_a_torn_last_line_is_skipped_and_the_next_record_starts_a_new_line(tmp_path):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    first = log.start(T0, email(), FIELDS)
    log.close()
    with open(log.path, "ab") as f:
        f.write(b'{"seq":2,"id":"torn","event":"sen')  # the process died mid-write
    again = AttemptLog(log.path)
    assert [r["id"] for r in again.records()] == [first]
    assert again.head().count == 1
    second = again.start(T0, email(), FIELDS)
    raw = lines(again)
    assert raw[1] == b'{"seq":2,"id":"torn","event":"sen' and json.loads(raw[2])["id"] == second
    assert [r["id"] for r in again.records()] == [first, second]
    verdict = verify(again.path, again.messages)
    assert verdict.ok and verdict.records == 2 and "line 2" in verdict.notes[0]


def test_a_record_that_lost_only_its_newline_is_kept(tmp_path):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    log.start(T0, email(), FIELDS)
    log.start(T0, email(), FIELDS)
    log.close()
    os.truncate(log.path, log.path.stat().st_size - 1)  # the newline never reached the disk
    again = AttemptLog(log.path)
    assert again.head().count == 2
    again.start(T0, email(), FIELDS)
    assert [r["seq"] for r in again.records()] == [1, 2, 3] and verify(again.path, again.messages).ok


def test_the_tail_read_finds_the_head_past_long_records_and_torn_lines(tmp_path):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    big = Message(channel="email", recipient="a@b.com.br", subject="s", text="x" * 200_000)
    log.start(T0, big, FIELDS)
    log.close()
    with open(log.path, "ab") as f:
        f.write(b"\x00\x00garbage\n{\"seq\":")
    assert read_tail(log.path).head == AttemptLog(log.path).head() and read_tail(log.path).head.count == 1
    assert read_tail(log.path).needs_newline


def test_two_writers_keep_one_chain(tmp_path):
    daemon, staff = AttemptLog(tmp_path / "attempts.jsonl"), AttemptLog(tmp_path / "attempts.jsonl")
    for i in range(5):
        (daemon if i % 2 else staff).note(T0, "contact", {"account": "acme", "n": i}, actor="x")
    assert [r["seq"] for r in daemon.records()] == [1, 2, 3, 4, 5]
    assert verify(daemon.path, daemon.messages).ok


def test_recover_marks_an_unanswered_sending_unknown_once(tmp_path):
    crashed = AttemptLog(tmp_path / "attempts.jsonl")
    done = crashed.start(T0, email(), FIELDS)
    crashed.finish(done, T0, Result("sent", "smtp"))
    lost = crashed.start(T0, email("maria@acme.com.br"), FIELDS)
    crashed.close()  # the process died here: no outcome for `lost`
    restarted = AttemptLog(tmp_path / "attempts.jsonl")
    [sending] = restarted.recover(T0 + timedelta(minutes=5))
    assert sending["id"] == lost
    unknown = list(restarted.records())[-1]
    assert (unknown["event"], unknown["ref"], unknown["recipient"]) == ("unknown", lost, "maria@acme.com.br")
    assert unknown["task"] == "check_with_provider"
    assert restarted.recover(T0 + timedelta(minutes=6)) == []  # appended once, never rewritten
    assert sum(r["event"] == "sending" for r in restarted.records()) == 2  # and never sent again


def test_recover_reads_after_its_mark_only_when_the_mark_still_fits_the_log(tmp_path):
    """A run-once a day gives recover the mark of the last recovery, so it reads only the day's
    records; a mark that no longer falls between two records (a log restored or rewritten, a
    hand-edited state) is no reason to miss an unanswered sending: the whole log is read."""
    path = tmp_path / "attempts.jsonl"
    first = AttemptLog(path)
    first.finish(first.start(T0, email(), FIELDS), T0, Result("sent", "smtp"))
    first.close()
    day1 = AttemptLog(path)
    assert day1.recover(T0) == []
    mark = day1.answered
    assert mark == (2, path.stat().st_size)  # the sending and its outcome, and where they end
    day1.close()
    crashed = AttemptLog(path)
    lost = crashed.start(T0, email("maria@acme.com.br"), FIELDS)
    crashed.close()  # died: no outcome
    [found] = AttemptLog(path).recover(T0, since=mark)
    assert found["id"] == lost
    # The same unanswered sending again (a fresh copy of the log), with marks that do not fit:
    for bad in ((1, mark.offset), (3, mark.offset), (2, mark.offset - 1), (2, mark.offset + 1),
                (2, path.stat().st_size + 10)):
        copy = tmp_path / f"copy-{bad[0]}-{bad[1]}.jsonl"
        copy.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:3]))
        [again] = AttemptLog(copy).recover(T0, since=Mark(*bad))
        assert again["id"] == lost, bad


def test_recover_leaves_alone_what_another_live_writer_may_be_sending(tmp_path):
    daemon = AttemptLog(tmp_path / "attempts.jsonl")
    daemon.start(T0, email(), FIELDS)  # in flight: the daemon is waiting for the SMTP server
    command = AttemptLog(tmp_path / "attempts.jsonl")
    assert command.recover(T0) == []
    assert [r["event"] for r in command.records()] == ["sending"]


def test_recover_of_the_same_process_skips_its_own_sendings_in_flight(tmp_path):
    log = AttemptLog(tmp_path / "attempts.jsonl")
    log.start(T0, email(), FIELDS)
    assert log.recover(T0) == []


def test_a_sending_record_is_never_written_by_note(tmp_path):
    with pytest.raises(ValueError):
        AttemptLog(tmp_path / "a.jsonl").note(T0, "sending", {}, "x")


def test_record_ids_are_random_version_4_uuids_in_32_hex_digits():
    import uuid

    ids = [new_id() for _ in range(600)]  # more than one 4 KB draw of random bytes
    assert len(set(ids)) == len(ids)
    for i in ids:
        u = uuid.UUID(hex=i)
        assert (u.hex, u.version, u.variant) == (i, 4, uuid.RFC_4122)
