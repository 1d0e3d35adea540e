"""Checking the attempt log: the hash chain, every stored message, and the head the state keeps.

What each kind of tampering looks like (see attempts.py for the chain):
- a record **changed**: its bytes no longer hash to the next record's `prev` (the last record's
  to the head kept in the state);
- a record **removed**: `seq` jumps (3 is followed by 5);
- a record **inserted**: a `seq` appears twice, or a line is a JSON object that is not a record;
- records **reordered**: a `seq` that was missing turns up later;
- the end **cut off**: the log holds fewer records than the head the state recorded;
- a stored message **changed**: its bytes no longer match the SHA-256 in its `sending` record.

A line that is not JSON at all is what a crash mid-write leaves (attempts.py): it is reported as
a note, not a failure, because the records around it still chain (nothing was lost with it).

The check streams the log once, holding only the numbers it needs (memory flat in its size).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping

import orjson

from .attempts import GENESIS, Head, is_sending, line_hash, parse_line, raw_lines, stored_message
from .messagestore import MessageStore, MessageStoreError

MAX_PROBLEMS = 20  # beyond the first few, more lines say nothing a person can act on


@dataclass
class Verdict:
    records: int = 0
    messages: int = 0
    head: Head = Head(0, GENESIS)
    problems: list[str] = field(default_factory=list)  # the first names the first tampered record
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"ok": self.ok, "records": self.records, "messages": self.messages,
                "head": {"count": self.head.count, "hash": self.head.hash},
                "problems": self.problems, "notes": self.notes}


def verify(log_path, messages: MessageStore, expected: Mapping | None = None, check_messages: bool = True) -> Verdict:
    """Check the log at `log_path` and its messages; `expected` is the head the state recorded
    ({"count", "hash"}) or None when there is none yet."""
    v = Verdict()
    expect_seq, last_hash, last_line = 1, GENESIS, 0
    missing: dict[int, tuple[int, int | None]] = {}  # seq not where expected -> (line, index of its problem)
    chain_broken = False
    want = int(expected["count"]) if expected else None
    # The hash of the record numbered `want`; a head of 0 records is the genesis hash.
    seen_hash_at: str | None = GENESIS if want == 0 else None

    def problem(text: str) -> None:
        if len(v.problems) < MAX_PROBLEMS:
            v.problems.append(text)

    for number, raw, terminated in raw_lines(log_path):
        link = _link(raw)
        rec = None
        if link is None or (check_messages and is_sending(raw)):
            rec = parse_line(raw)
            link = (rec["seq"], rec["prev"]) if rec is not None else None
        if link is None:
            if _is_json_object(raw):
                problem(f"line {number}: a JSON object that is not a record of this log (no seq/prev): inserted")
                chain_broken = True
            elif not terminated:
                v.notes.append(f"line {number}: an incomplete last line (a write interrupted by a crash), ignored")
            else:
                v.notes.append(f"line {number}: an incomplete line (a write interrupted by a crash), ignored")
            continue
        seq, prev = link
        digest = line_hash(raw)
        if seq == expect_seq:
            if prev != last_hash and not chain_broken:
                if seq == 1:
                    problem(f"{_name(seq, number, raw, rec)}: its link to the start of the log is wrong: changed")
                else:
                    problem(f"record {seq - 1} (line {last_line}) was changed: its bytes no longer hash to "
                            f"the `prev` of record {seq} (line {number})")
                chain_broken = True
        elif seq > expect_seq:
            index = None
            if not chain_broken:
                gap = f"record {expect_seq}" if seq == expect_seq + 1 else f"records {expect_seq} to {seq - 1}"
                index = len(v.problems)
                problem(f"{gap} removed: missing before line {number}")
            for gone in range(expect_seq, seq):
                missing[gone] = (number, index)
            chain_broken = True
        elif seq in missing:
            expected_at, index = missing.pop(seq)
            text = f"records reordered: {_name(seq, number, raw, rec)} belongs before line {expected_at}"
            if index is not None and index < len(v.problems):
                v.problems[index] = text  # what looked like a removal was a move
            else:
                problem(text)
        else:
            problem(f"line {number}: record {seq} appears a second time: {expect_seq - seq} record(s) "
                    f"inserted before line {number}")
            chain_broken = True
        if seq >= expect_seq:
            expect_seq = seq + 1
        last_hash, last_line = digest, number
        v.records += 1
        if want and seq == want:
            seen_hash_at = digest
        if check_messages and rec is not None and rec.get("event") == "sending":
            where = stored_message(rec)
            if where is not None:
                v.messages += 1
                _check_message(messages, where, _name(seq, number, raw, rec), problem)
    v.head = Head(expect_seq - 1, last_hash)
    if expected:
        if v.head.count < want:
            problem(f"the log ends at record {v.head.count} but the state recorded {want} records "
                    f"(last hash {expected['hash']}): records {v.head.count + 1} to {want} were cut off the end")
        elif seen_hash_at != expected["hash"] and not chain_broken:
            problem(f"record {want} was changed or replaced since the state recorded the log's head "
                    f"(hash {expected['hash']}, now {seen_hash_at})")
    return v


_HEAD, _TAIL = b'{"seq":', b'"}'


def _link(raw: bytes) -> tuple[int, str] | None:
    """(seq, prev) from a line's bytes in the log's own layout, without parsing the JSON: the
    hash of the line covers every other byte, so the chain needs nothing else. None for a line in
    any other form (it is then parsed, and judged, as JSON)."""
    if not (raw.startswith(_HEAD) and raw.endswith(_TAIL) and raw[-76:-66] == b',"prev":"'):
        return None
    comma = raw.find(b",", 7, 30)
    digits = raw[7:comma]
    if comma < 0 or not digits.isdigit():
        return None
    return int(digits), raw[-66:-2].decode("ascii", "replace")


def _name(seq: int, number: int, raw: bytes, rec: dict | None) -> str:
    rec = rec if rec is not None else parse_line(raw) or {}
    return f"record {seq} (line {number}, {rec.get('event')} {rec.get('id')})"


def _check_message(messages: MessageStore, where, name: str, problem) -> None:
    try:
        data = messages.read(where)
    except MessageStoreError as exc:
        problem(f"{name}: stored message: {exc}")
        return
    if len(data) != where.size or hashlib.sha256(data).hexdigest() != where.sha256:
        problem(f"{name}: the stored message ({where.pack} at {where.offset}) no longer matches the "
                "SHA-256 in the record: changed")


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False
