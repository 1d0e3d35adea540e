"""Checking the attempt log: the hash chain, every stored message, and the head the state keeps.

What each kind of tampering looks like (see attempts.py for the chain):
- a record **changed**: its bytes no longer hash to the next record's `prev` (the last record's
  to the head kept in the state);
- a record **removed**: `seq` jumps (3 is followed by 5);
- a record **inserted**: a `seq` appears twice, or a line is a JSON object that is not a record;
- records **reordered**: a `seq` that was missing turns up later;
- the end **cut off**, the last record **replaced**, the log **deleted**: the log holds fewer
  records than the head the state keeps (attempts.py: every append moves it), or another last one;
- records **appended** by something else: the log holds more records than that head, and no
  writer announced them (a writer stopped between its append and the head's move did);
- an **outside head** (`--head COUNT:HASH`, from a summary e-mail or an audit report) no longer
  in the log: the log was rewritten, state and all, since that head was taken;
- a stored message **changed**: its bytes no longer match the SHA-256 in its `sending` record, or
  its header in the pack no longer is the one written for it;
- bytes **added** to a pack: every byte of a pack is an entry a record points at, or a whole
  entry no record points at (a send stopped before its record), or a torn last entry (a crash).

A line that is not JSON at all is what a crash mid-write leaves (attempts.py): it is reported as
a note, not a failure, because the records around it still chain (nothing was lost with it).

The check streams the log once, holding only the numbers it needs (memory flat in its size).

Speed: a log that is intact (the common case, and the one whose cost matters: a million records
must check in seconds) is proven by a fast pass that reads the file in blocks, takes each
record's `seq` and `prev` from its bytes in the log's own layout, hashes every line, and checks
every stored message on its compressed bytes; it is split into byte ranges checked by parallel
processes (one per core), joined where the ranges meet. It proves the very same things, with
stricter rules: the first line it cannot accept (any problem, a torn line, a record in another
layout) sends the whole check to the precise pass below, which names what was done where.
"""
from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import msgspec
import orjson

from notifier.log.attempts import (GENESIS, Head, Kept, LogError, grown_by_a_stopped_writer, is_sending, line_hash,
                                   parse_line, raw_lines, stored_message, unreadable)
from notifier.log.messagestore import MessageStore, MessageStoreError, Stored, entry_header, folder_for

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


def parse_head(text: str) -> Head | None:
    """A head kept off the machine as a person pastes it: `COUNT:HASH` (the audit report's), or
    the staff summary's line ("Registro de tentativas: 1.234 registros, último hash <hash>");
    None when it is neither (`verify-log --head` and the console's Verificar registro)."""
    import re
    found = re.fullmatch(r"\s*(?:Registro de tentativas:\s*)?(\d[\d.,]*)(?::|\s+registros,\s+último hash\s+)"
                         r"([0-9a-fA-F]{64})\s*", text)
    return Head(int(re.sub(r"[.,]", "", found[1])), found[2].lower()) if found else None


def cut_notes(meta: dict | None) -> list[str]:
    """The cuts of the log someone accepted (`verify-log --accept-cut`), as every verdict names them."""
    return [f"on {cut['at']} {cut['by']} accepted a cut log: the state had seen {cut['seen']['count']:,} records "
            f"(last {cut['seen']['hash']}), the log held {cut['found']['count']:,} (last {cut['found']['hash']})"
            for cut in (meta or {}).get("cuts", [])]


def verify(log_path, messages: MessageStore, expected: Kept | None = None, check_messages: bool = True,
           workers: int | None = None, size: int | None = None, outside: Head | None = None,
           progress=None) -> Verdict:
    """Check the log at `log_path` and its messages; `expected` is the head the state keeps, or
    None when there is none yet; `outside` a head kept elsewhere (`verify-log --head`), which the
    log must still hold. `size`: check the log's first `size` bytes (`AttemptLog.settled()`:
    what was there when the head was read; writers append on meanwhile). `workers`: processes
    for the fast pass (default: one per core for a large log, else none)."""
    log_path = Path(log_path)
    if log_path.is_dir():
        raise unreadable(log_path, IsADirectoryError())
    if messages.folder.exists() and not messages.folder.is_dir():
        raise LogError(f"{messages.folder}: is a file, not the folder of the stored messages")
    if size is None:
        size = log_path.stat().st_size if log_path.exists() else 0
    fast = _fast(log_path, messages.folder, expected, check_messages, workers, size, outside, progress)
    verdict = fast if fast is not None else _precise(log_path, messages, expected, check_messages, size, outside)
    if progress is not None:
        progress(size, size)
    return verdict


def _bounded(log_path, size: int):
    """`raw_lines` of the log's first `size` bytes: a line a writer appends meanwhile is not read."""
    at = 0
    for number, raw, terminated in raw_lines(log_path):
        at += len(raw) + terminated
        if at > size:
            return
        yield number, raw, terminated


def _precise(log_path, messages: MessageStore, expected: Kept | None, check_messages: bool, size: int,
             outside: Head | None = None) -> Verdict:
    """The check line by line, naming the first record changed, removed, inserted or moved."""
    v = Verdict()
    expect_seq, last_hash, last_line = 1, GENESIS, 0
    missing: dict[int, tuple[int, int | None]] = {}  # seq not where expected -> (line, index of its problem)
    chain_broken = False
    # The hash of the record each head names; a head of 0 records is the genesis hash.
    wants = {head.count: GENESIS if head.count == 0 else None for head in (expected, outside) if head}
    covered: dict[str, list[tuple[int, int]]] = {}  # pack -> (start, end) of the entries records point at

    def problem(text: str) -> None:
        if len(v.problems) < MAX_PROBLEMS:
            v.problems.append(text)

    for number, raw, terminated in _bounded(log_path, size):
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
        if seq in wants:
            wants[seq] = digest
        if check_messages and rec is not None and rec.get("event") == "sending":
            where = stored_message(rec)
            if where is not None:
                v.messages += 1
                header = _check_message(messages, where, rec["id"], _name(seq, number, raw, rec), problem)
                if header:
                    covered.setdefault(where.pack, []).append((where.offset - header, where.offset + where.zsize + 1))
    v.head = Head(expect_seq - 1, last_hash)
    if expected:
        _against_the_state(v, log_path, expected, wants.get(expected.count), chain_broken, problem)
    if outside and v.head.count < outside.count:
        problem(f"the log ends at record {v.head.count} but the head given (--head) names record {outside.count}: "
                "records were cut off or the log was replaced since that head was taken")
    elif outside and wants.get(outside.count) != outside.hash:
        problem(f"record {outside.count} does not hash to the head given (--head {outside.count}:{outside.hash}, "
                f"now {wants.get(outside.count)}): the log was rewritten since that head was taken")
    if check_messages:
        gaps, notes = _pack_gaps(messages.folder, covered)
        v.notes += notes
        for text in gaps:
            problem(text)
    return v


def _against_the_state(v: Verdict, log_path: Path, expected: Kept, at_count: str | None, chain_broken: bool,
                       problem) -> None:
    """The problems of a log that does not end where the head the state keeps says."""
    want, seen = expected.count, f"(last hash {expected.hash})"
    if not log_path.exists() and want:
        problem(f"the log is missing, but the state recorded {want} records {seen}: it was deleted or moved")
    elif v.head.count < want:
        problem(f"the log ends at record {v.head.count} but the state recorded {want} records "
                f"{seen}: records {v.head.count + 1} to {want} were cut off the end")
    elif at_count != expected.hash and not chain_broken:
        problem(f"record {want} was changed or replaced since the state recorded the log's head "
                f"(hash {expected.hash}, now {at_count})")
    if v.head.count > want:
        if grown_by_a_stopped_writer(log_path, expected, v.head):
            v.notes.append(f"records {want + 1} to {v.head.count} were appended by a notifier process that stopped "
                           "before it recorded the new head (it had announced them): the next write adopts them")
        else:
            problem(f"records {want + 1} to {v.head.count} were appended after the head the state recorded at its "
                    f"last write ({want} records {seen}): only the notifier appends to this log, and it records "
                    "the head every time: something else wrote them")


def _pack_gaps(folder: Path, covered: dict[str, list[tuple[int, int]]]) -> tuple[list[str], list[str]]:
    """(problems, notes) about the bytes of every pack that no record points at: whole entries
    (a send stopped before its record was written) and a torn last entry (a crash) are notes,
    anything else was put there by something other than this program."""
    problems, notes = [], []
    for path in sorted(folder.glob("*.pack")) if folder.is_dir() else []:
        size, at, gaps = path.stat().st_size, 0, []
        for start, end in sorted(covered.get(path.name, ())) + [(size, size)]:
            if start > at:
                gaps.append((at, start))
            at = max(at, end)
        for start, end in gaps:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start)
            whole, torn = _unpointed(data, end == size)
            if whole is None:
                problems.append(f"{path.name}: bytes {start} to {end} are not entries written by the notifier: "
                                "added or changed")
            else:
                notes.append(f"{path.name}: bytes {start} to {end} hold {whole} whole entr(ies) no record points at"
                             + (" and a torn last one" if torn else "")
                             + " (a send stopped before its record was written)")
    return problems, notes


def _unpointed(data: bytes, at_end: bool) -> tuple[int | None, bool]:
    """(whole entries, whether a torn one ends them) in bytes of a pack no record points at;
    (None, False) when they are not entries as `put_many` writes them."""
    whole, pos = 0, 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            return (whole, True) if at_end and data.startswith(b'{"id":"', pos) else (None, False)
        try:
            head = orjson.loads(data[pos:nl])
            where = Stored("", nl + 1, int(head["zsize"]), int(head["size"]), head["sha256"], head.get("zsha256"))
            framed = data[pos:nl + 1] == entry_header(head["id"], where)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None, False
        end = nl + 1 + where.zsize
        if not framed:
            return None, False
        if end >= len(data):
            return (whole, True) if at_end else (None, False)
        if data[end:end + 1] != b"\n" or (
                where.zsha256 is not None and hashlib.sha256(data[nl + 1:end]).hexdigest() != where.zsha256):
            return None, False
        whole, pos = whole + 1, end + 1
    return whole, False


_HEAD, _TAIL = b'{"seq":', b'"}'


def _link(raw: bytes) -> tuple[int, str] | None:
    """(seq, prev) from a line's bytes in the log's own layout, without parsing the JSON: the
    hash of the line covers every other byte, so the chain needs nothing else. None for a line in
    any other form (it is then parsed, and judged, as JSON)."""
    if not (raw.startswith(_HEAD) and raw.endswith(_TAIL) and raw[-75:-66] == b',"prev":"'):
        return None
    comma = raw.find(b",", 7, 30)
    digits = raw[7:comma]
    if comma < 0 or not digits.isdigit():
        return None
    return int(digits), raw[-66:-2].decode("ascii", "replace")


def _name(seq: int, number: int, raw: bytes, rec: dict | None) -> str:
    rec = rec if rec is not None else parse_line(raw) or {}
    return f"record {seq} (line {number}, {rec.get('event')} {rec.get('id')})"


def _check_message(messages: MessageStore, where, attempt_id: str, name: str, problem) -> int | None:
    """The size of the header of a record's stored message when the message is intact, header
    included; else None, and a problem."""
    try:
        same, header = messages.matches(where), messages.header_size(attempt_id, where)
    except MessageStoreError as exc:
        problem(f"{name}: stored message: {exc}")
        return None
    if not same:
        problem(f"{name}: the stored message ({where.pack} at {where.offset}) no longer matches the "
                "SHA-256 in the record: changed")
    elif header is None:
        problem(f"{name}: the header of its stored message in {where.pack} (before {where.offset}) is not the one "
                "written for it: changed")
    return header if same else None


# --- the fast pass -------------------------------------------------------------------------------

PARALLEL_FROM = 64 << 20  # bytes of log from which the fast pass forks one process per core
BLOCK = 512 << 10  # read in blocks that stay in the CPU's cache: hashed while still there
LONGEST_LINE = 64 << 20  # a line longer than a block gets a larger buffer, up to this
WINDOW = 256 << 10  # of a pack, likewise
RANGES_PER_WORKER = 4
_PREV_AT, _MESSAGE = b',"prev":"', b',"message":{"pack":'
_EVENT, _SENDING = b'","event":"', b'","event":"sending"'
_HEADER = b'{"id":"%s","sha256":"%s","size":%d,"zsize":%d,"zsha256":"%s"}\n'  # messagestore.entry_header's bytes
POINTER_MAX = 320  # bytes from `,"message":` to the end of a line: 247 for a 1 TB pack, + `,"prev":...`


class _Range(NamedTuple):
    """What the fast pass proved about one byte range of the log: its records chain from
    (first_seq, first_prev) to (last_seq, last_hash); `at` holds the hash of each record a head
    names (the state's, an outside one) that is in the range; `runs` the (pack, start, end) of the
    pack bytes its messages take, entries that follow each other merged."""
    first_seq: int
    first_prev: str
    last_seq: int
    last_hash: str
    messages: int
    at: dict
    runs: list


def _fast(path: Path, folder: Path, expected: Kept | None, check_messages: bool, workers: int | None, size: int,
          outside: Head | None, progress=None):
    """The verdict of an intact log, or None when anything needs the precise pass."""
    if size == 0:
        return None
    heads = [head for head in (expected, outside) if head]
    wants = frozenset(head.count for head in heads)
    if workers is None:
        workers = (os.cpu_count() or 1) if size >= PARALLEL_FROM else 1
    workers = max(1, workers)
    # A few ranges per process: on a shared machine a process that gets less CPU takes fewer.
    bounds = _split(path, size, workers * RANGES_PER_WORKER if workers > 1 else 1)
    jobs = [(str(path), start, end, str(folder), check_messages, wants) for start, end in bounds]
    if len(jobs) == 1:
        ranges = [_check_range(*jobs[0])]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        # fork: the workers need nothing but the arguments, and start in milliseconds.
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
            ranges = []
            for (start, end), found in zip(bounds, pool.map(_check_range_star, jobs)):
                ranges.append(found)
                if progress is not None:
                    progress(end, size)
    if any(r is None for r in ranges) or ranges[0].first_seq != 1 or ranges[0].first_prev != GENESIS:
        return None
    for before, after in zip(ranges, ranges[1:]):
        if after.first_seq != before.last_seq + 1 or after.first_prev != before.last_hash:
            return None
    head = Head(ranges[-1].last_seq, ranges[-1].last_hash)
    at = {0: GENESIS}
    for r in ranges:
        at.update(r.at)
    # The state's head is the log's own end (growth is for the precise pass to judge); an outside
    # one, any record of it.
    if (expected and head.count != expected.count) or any(at.get(h.count) != h.hash for h in heads):
        return None
    notes = []
    if check_messages:
        covered: dict[str, list[tuple[int, int]]] = {}
        for r in ranges:
            for pack, start, end in r.runs:
                covered.setdefault(pack, []).append((start, end))
        gaps, notes = _pack_gaps(folder, covered)
        if gaps:
            return None
    return Verdict(records=head.count, messages=sum(r.messages for r in ranges), head=head, notes=notes)


def _split(path: Path, size: int, parts: int) -> list[tuple[int, int]]:
    """`parts` byte ranges of about the same size, each cut just after a newline."""
    cuts = [0]
    with open(path, "rb") as f:
        for i in range(1, parts):
            f.seek(max(size * i // parts, cuts[-1]))
            f.readline()
            at = f.tell()
            if cuts[-1] < at < size:
                cuts.append(at)
    cuts.append(size)
    return list(zip(cuts, cuts[1:]))


def _check_range_star(job):
    return _check_range(*job)


def _check_range(path: str, start: int, end: int, folder: str, check_messages: bool, wants: frozenset):
    """Prove the lines in [start, end) chain and their stored messages match; None at the first
    line that is not an intact record in the log's own layout. Read into one reused buffer and
    hashed through memoryviews: no line is copied, and memory stays flat."""
    store = MessageStore(Path(folder))
    sha256, pointer = hashlib.sha256, msgspec.json.Decoder(_Pointer).decode
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    packs: dict[str, _Window] = {}  # pack name -> the block of it last read
    window_of, window = None, None  # the pack the last message was in, and its window
    first_seq = first_prev = None
    seq, last, tail, messages, at = 0, "", b"", 0, {}
    runs, run_pack, run_start, run_end = [], None, 0, 0  # the pack bytes the messages take, so far
    # Each line makes memoryviews, which the cyclic collector tracks: it would run every few
    # hundred lines, for nothing (nothing here makes a cycle), a fortieth of the check.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with open(path, "rb", buffering=0) as f:
            f.seek(start)
            left, kept = end - start, 0
            while left > 0:
                got = f.readinto(view[kept:kept + min(len(buf) - kept, left)])
                if not got:
                    return None  # the file shrank under us
                left -= got
                filled, pos = kept + got, 0
                while True:
                    nl = buf.find(b"\n", pos, filled)
                    if nl < 0:
                        break
                    if first_seq is None:  # the range's first record: where it joins the one before
                        comma = buf.find(b",", pos + 7, pos + 30)
                        digits = bytes(buf[pos + 7:comma])
                        if comma < 0 or not digits.isdigit() or buf[nl - 75:nl - 66] != _PREV_AT:
                            return None
                        seq, first_prev = int(digits) - 1, buf[nl - 66:nl - 2].decode("ascii", "replace")
                        first_seq, tail = seq + 1, _PREV_AT + buf[nl - 66:nl - 2] + b'"}'
                    seq += 1
                    # `{"seq":N,` first, `,"prev":"<hash of the line before>"}` last: every other
                    # byte is covered by this line's hash, which the next line (or the head) holds.
                    head = b'{"seq":%d,"id":"' % seq
                    if not buf.startswith(head, pos) or not buf.endswith(tail, pos, nl):
                        return None
                    last = sha256(view[pos:nl]).hexdigest()
                    tail = b',"prev":"%s"}' % last.encode()
                    if seq in wants:
                        at[seq] = last
                    # Every record of this log starts `{"seq":N,"id":"<32 hex digits>","event":"`:
                    # the event is read where it is (a search for it cost a twentieth of the check).
                    if check_messages:
                        event = pos + len(head) + 32
                        if buf.startswith(_SENDING, event):
                            # The pointer is the record's last field but `prev`, and never longer
                            # than POINTER_MAX: a narrow search (a wide one cost a fifth of the check).
                            found = buf.rfind(_MESSAGE, nl - POINTER_MAX if nl - POINTER_MAX > pos else pos, nl - 75)
                            if found < 0:
                                if buf.find(b'"message":', pos, nl) >= 0:
                                    return None  # a pointer somewhere else: the precise pass reads it
                            else:
                                where = pointer(view[found + 11:nl - 75])
                                zsha, zsize = where.zsha256, where.zsize
                                attempt_id = buf[event - 32:event]
                                if zsha is not None:  # inline, and the window too: half a million of them
                                    if where.pack != window_of:
                                        window_of, window = where.pack, packs.get(where.pack)
                                        if window is None:
                                            window = packs[where.pack] = _Window(os.path.join(folder, where.pack))
                                    # The entry as put_many wrote it: header, compressed bytes, newline.
                                    header = _HEADER % (attempt_id, where.sha256.encode(), where.size, zsize,
                                                        zsha.encode())
                                    hsize = len(header)
                                    span = where.offset - hsize
                                    found = span - window.start
                                    if not (0 <= found and found + hsize + zsize < window.end - window.start):
                                        window.move(span, hsize + zsize + 1)  # the rare case: not read yet
                                        found = 0
                                        if hsize + zsize >= window.end - window.start:
                                            return None  # past the pack's end
                                    data, found = window.buf, found + hsize
                                    if (not data.startswith(header, found - hsize) or data[found + zsize] != 10
                                            or sha256(window.view[found:found + zsize]).hexdigest() != zsha):
                                        return None
                                else:
                                    stored = Stored(where.pack, where.offset, zsize, where.size, where.sha256)
                                    header = store.header_size(attempt_id.decode(), stored)
                                    if header is None or not store.matches(stored):
                                        return None
                                    span = where.offset - header
                                if where.pack == run_pack and span == run_end:
                                    run_end = where.offset + zsize + 1
                                else:
                                    if run_pack is not None:
                                        runs.append((run_pack, run_start, run_end))
                                    run_pack, run_start, run_end = where.pack, span, where.offset + zsize + 1
                                messages += 1
                        elif not buf.startswith(_EVENT, event):
                            return None  # another layout: the precise pass reads it
                    pos = nl + 1
                kept = filled - pos
                if kept == len(buf):  # one line fills the buffer (a long message): a larger one
                    if len(buf) >= LONGEST_LINE:
                        return None  # not one this log writes: the precise pass says what it is
                    view.release()
                    buf += bytes(len(buf))
                    view = memoryview(buf)
                    continue
                view[:kept] = view[pos:filled]
            if kept or first_seq is None:
                return None  # a last line without its newline (torn, or whole): the precise pass
    except (OSError, ValueError, KeyError, TypeError, IndexError, MessageStoreError):  # msgspec's: ValueErrors
        return None
    finally:
        if collecting:
            gc.enable()
        view.release()
        store.close()
        for pack in packs.values():
            pack.close()
    if run_pack is not None:
        runs.append((run_pack, run_start, run_end))
    return _Range(first_seq, first_prev, seq, last, messages, at, runs)


class _Pointer(msgspec.Struct, gc=False):
    """A `sending` record's "message" (messagestore.Stored.to_json), decoded in C: the fast pass
    reads half a million of them in a big log, in half the time it took to decode them into dicts."""
    pack: str
    offset: int
    zsize: int
    size: int
    sha256: str
    zsha256: str | None = None


class _Window:
    """A pack read in blocks, as the log is: messages lie in it in the order the log names
    them, so each is hashed from the block already read, where reading it alone (a system call and
    a copy per message, half a million of them) cost a fifth of the whole check. A message that is
    not in the block (another order, or larger than a block) moves the block to it."""

    def __init__(self, path: str, block: int = WINDOW):
        self.fd = os.open(path, os.O_RDONLY)
        self.buf = bytearray(block)
        self.view = memoryview(self.buf)
        self.start = self.end = 0  # the file's bytes [start, end) are in the buffer

    def move(self, offset: int, size: int) -> None:
        """Read the block from `offset`, grown to `size` bytes first if it is smaller; at the
        pack's end it holds less (`end` says where the file's bytes stop)."""
        if size > len(self.buf):
            self.view.release()
            self.buf = bytearray(size)
            self.view = memoryview(self.buf)
        got = os.preadv(self.fd, [self.view], offset)
        self.start, self.end = offset, offset + got

    def close(self) -> None:
        self.view.release()
        os.close(self.fd)


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


def verify_range(log_path, start: int, end: int) -> tuple[Head, Head] | None:
    """(the link, the head) of the records in the log's bytes [start, end): they are intact records
    of this log in its own layout, each chaining to the one before, the first to the record `link`
    names (Head(its seq - 1, its prev)) and the last hashing to `head`. None when any line is not
    (then only the whole check, `verify`, says what is wrong). The chain alone: no stored message.
    For a reader that proved the bytes before `start` earlier (`notifier/log/verified.py`)."""
    folder = folder_for(Path(log_path))
    found = _check_range(str(log_path), start, end, str(folder), False, frozenset())
    if found is None:
        return None
    return Head(found.first_seq - 1, found.first_prev), Head(found.last_seq, found.last_hash)
