"""The log query library (notifier/log/query.py) over the log index (notifier/log/index.py): what
`notifier attempts` and the console's Registro page both call. Real logs written by AttemptLog,
real files; the expected rows come from reading the whole log with `history.attempts`, the
reader `notifier attempts` used before the index."""
from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ROOT

SP = ZoneInfo("America/Sao_Paulo")
T0 = datetime(2026, 10, 30, 12, tzinfo=timezone.utc)
CHANNELS = ("email", "whatsapp", "sms", "social")
STAGES = ("reminder", "overdue", "suspended")


def _grow(path, n: int, start: int = 0) -> None:
    """`n` attempts: accounts, channels, stages, actors, days and outcomes in turn; some later statuses.
    Times cross São Paulo's midnight (UTC 02:00 is 23:00 the day before)."""
    from notifier.channels import Message, Result
    from notifier.log.attempts import AttemptLog
    log = AttemptLog(path)
    for i in range(start, start + n):
        when = T0 + timedelta(hours=7 * i)
        channel = CHANNELS[i % 4]
        message = Message(channel=channel, recipient=f"r{i}", text=f"Olá {i}")
        attempt = log.start(when, message, {"account": f"acc-{i % 3}", "stage": STAGES[i % 3],
                                            "invoices": [f"inv-{i % 5}"]}, actor="daemon" if i % 4 else "caio")
        provider = "smtp" if channel == "email" else "twilio"
        log.finish(attempt, when, Result("failed" if i % 7 == 0 else "sent", provider, provider_id=f"P{i}"))
        if i % 5 == 1:
            log.note(when + timedelta(minutes=5), "delivered", {"ref": attempt, "provider": provider})
    log.close()


def _saved_index(path, n: int):
    """A log of `n` attempts (`_grow`) and its index, built and written to its file."""
    from notifier.log.index import LogIndex
    _grow(path, n)
    built = LogIndex(path, SP)
    built.refresh()
    built.save()
    return built


def _expected(path, keep) -> list[str]:
    """Ids of the attempts `keep(attempt, local_day)` selects, newest first, from the whole log."""
    from notifier.log.attempts import AttemptLog
    from notifier.log.history import Filters, attempts, local_time
    found = [a for a in attempts(AttemptLog(path), Filters())
             if keep(a, local_time(a.sending["time"], SP).date())]
    return [a.id for a in reversed(found)]


@pytest.mark.parametrize("clock", ["in order", "set back"])
def test_filters_and_pages_give_what_reading_the_whole_log_gives(tmp_path, clock):
    """In order, a period is a run of rows found by bisection; after the machine's clock went
    back (later lines with earlier days), every row's day is tested."""
    from notifier.log.index import LogIndex
    from notifier.log.query import Query, page, stream
    path = tmp_path / "attempts.jsonl"
    if clock == "in order":
        _grow(path, 60)
    else:
        _grow(path, 40)
        _grow(path, 20, start=10)
    index = LogIndex(path, SP)
    cases = [
        (Query(), lambda a, d: True),
        (Query(channel="whatsapp"), lambda a, d: a.sending["channel"] == "whatsapp"),
        (Query(stage="overdue", actor="daemon"), lambda a, d: a.sending["stage"] == "overdue" and a.sending["actor"] == "daemon"),
        (Query(status="delivered"), lambda a, d: a.status == "delivered"),
        (Query(status="failed", provider="smtp"), lambda a, d: a.status == "failed" and a.outcome["provider"] == "smtp"),
        (Query(account="acc-1", since=date(2026, 11, 3)), lambda a, d: a.sending["account"] == "acc-1" and d >= date(2026, 11, 3)),
        (Query(since=date(2026, 11, 2), until=date(2026, 11, 5)), lambda a, d: date(2026, 11, 2) <= d <= date(2026, 11, 5)),
        (Query(until=date(2026, 10, 31), channel="email"), lambda a, d: d <= date(2026, 10, 31) and a.sending["channel"] == "email"),
        (Query(account="acc-2", invoice="inv-3"), lambda a, d: a.sending["account"] == "acc-2" and "inv-3" in a.sending["invoices"]),
        (Query(channel="fax"), lambda a, d: False),
        (Query(account="nobody"), lambda a, d: False),
    ]
    for query, keep in cases:
        expected = _expected(path, keep)
        assert [a.id for a in stream(index, query)] == expected, query
        assert [a.id for a in stream(index, query, newest_first=False)] == expected[::-1], query
        first, second = page(index, query, 1, size=4), page(index, query, 2, size=4)
        assert first.total == second.total == len(expected), query
        assert [a.id for a in first.attempts + second.attempts] == expected[:8], query
    # A day is São Paulo's: 02:00 UTC on 31 October is 23:00 on the 30th.
    assert any(a.sending["time"].startswith("2026-10-31T02") for a in
               stream(index, Query(since=date(2026, 10, 30), until=date(2026, 10, 30))))
    # An attempt comes back with its outcome and its later status, the chain's link left out.
    delivered = page(index, Query(status="delivered"), 1, size=1).attempts[0]
    assert [u["event"] for u in delivered.updates][1:] == ["delivered"] and "prev" not in delivered.updates[0]
    assert page(index, Query(), 99, size=50).attempts == []


def test_the_index_sees_another_process_append_at_once_and_starts_over_when_the_log_is_replaced(tmp_path):
    from notifier.log.index import LogIndex
    from notifier.log.query import Query, attempt, page
    path = tmp_path / "attempts.jsonl"
    _grow(path, 6)
    index = LogIndex(path, SP)
    assert page(index, Query()).total == 6 and index.rebuilds == 0
    # Another process appends (the daemon beside the console): the next question sees it.
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.test_log_query "
                    f"import _grow; from pathlib import Path; _grow(Path({str(path)!r}), 2, start=100)"],
                   check=True, timeout=120)
    newest = page(index, Query(), 1, size=2)
    assert newest.total == 8 and [a.sending["recipient"] for a in newest.attempts] == ["r101", "r100"]
    assert index.rebuilds == 0  # read from where it stopped
    assert attempt(index, newest.attempts[0].id).updates[0]["event"] == "sent"
    # Another log in its place (a restore: the log with its head and messages).
    for old in tmp_path.glob("attempts.jsonl*"):
        shutil.rmtree(old) if old.is_dir() else old.unlink()
    _grow(path, 3, start=200)
    assert [a.sending["recipient"] for a in page(index, Query()).attempts] == ["r202", "r201", "r200"]
    assert index.rebuilds == 1 and attempt(index, newest.attempts[0].id) is None


def test_the_index_file_is_read_by_a_new_process_and_ignored_when_the_log_is_not_the_one_it_indexed(tmp_path):
    from notifier.log.index import LogIndex
    from notifier.log.query import Query, page
    path = tmp_path / "attempts.jsonl"
    built = _saved_index(path, 20)
    _grow(path, 2, start=50)  # appended after the file was written
    again = LogIndex(path, SP)
    assert [a.id for a in page(again, Query(channel="email")).attempts] == \
        [a.id for a in page(LogIndex(path, SP, persist=False), Query(channel="email")).attempts]
    assert again.loaded and page(again, Query()).total == 22
    assert LogIndex(path, ZoneInfo("America/Manaus")).account_records("acc-1") and \
        not LogIndex(path, ZoneInfo("America/Manaus")).loaded  # built for another zone: read the log
    # The log rewritten (a byte of the last line the file indexed changed): the file is not trusted.
    data = bytearray(path.read_bytes())
    data[built.line_off[-1] + 30] ^= 1
    path.write_bytes(bytes(data))
    fresh = LogIndex(path, SP)
    assert page(fresh, Query()).total == 22 and not fresh.loaded
    # A damaged file is ignored too.
    built.file.write_bytes(built.file.read_bytes()[:100])
    damaged = LogIndex(path, SP)
    assert page(damaged, Query()).total == 22 and not damaged.loaded


@pytest.mark.parametrize("low,high", [(0, 0), (255, 256), (256, 511), (300, 65000)])
def test_the_day_masks_compare_both_bytes(low, high):
    """The range filter works on the two byte planes of the day column: days on each side of a
    256 boundary."""
    from array import array
    from notifier.log.query import _at_least, _at_most, _equal
    days = array("H", [0, 1, 255, 256, 257, 511, 512, 300, 65000, 65535])
    mask = (_at_least(days, low, 0, len(days)) & _at_most(days, high, 0, len(days))).to_bytes(len(days), "little")
    assert [d for d, m in zip(days, mask) if m] == [d for d in days if low <= d <= high]
    part = _at_least(days, low, 3, 8).to_bytes(5, "little")  # rows 3 to 7 only
    assert [d for d, m in zip(days[3:8], part) if m] == [d for d in days[3:8] if d >= low]
    for value in (low, high):
        same = _equal(days, value, 0, len(days)).to_bytes(len(days), "little")
        assert [d for d, m in zip(days, same) if m] == [d for d in days if d == value]
    # A column of at most 256 codes has only zeros in its high bytes, which are then not read.
    codes = array("H", [0, 3, 255, 3, 1])
    assert _equal(codes, 3, 0, 5, wide=False).to_bytes(5, "little") == bytes([0, 1, 0, 1, 0])
    assert _equal(codes, 256 + 3, 0, 5, wide=False) == 0


def _answers(index) -> tuple:
    """What the index answers: every attempt with its statuses, one account's records, the tasks."""
    from notifier.log.query import Query, stream
    return ([(a.id, a.status, [u["event"] for u in a.updates]) for a in stream(index, Query())],
            [(r["event"], r.get("id")) for r in index.account_records("acc-1")],
            [a.id for a in stream(index, Query(status="delivered", channel="whatsapp"))])


def test_the_mapped_index_file_takes_appended_lines_and_updates_without_changing_the_file(tmp_path):
    """Lines appended after the file was written go to the index's memory; a new status of an
    attempt in the file changes the mapped copy only (the file is another process's too); written
    again, the file holds both, and a new process reads them from it."""
    from notifier.log.attempts import AttemptLog
    from notifier.log.index import LogIndex
    path = tmp_path / "attempts.jsonl"
    _grow(path, 20)
    index = LogIndex(path, SP)
    index.refresh()
    index.save()
    written = index.file.read_bytes()
    old = [a for a in _answers(LogIndex(path, SP, persist=False))[0] if a[1] == "sent"][0][0]
    _grow(path, 3, start=50)
    log = AttemptLog(path)
    log.note(T0 + timedelta(days=30), "delivered", {"ref": old, "provider": "twilio"})
    log.close()
    assert _answers(index) == _answers(LogIndex(path, SP, persist=False))
    assert index.line_off.size == 20 * 2 + 4 and len(index.line_off) == index.line_off.size + 3 * 2 + 1 + 1
    assert index.file.read_bytes() == written  # the new status of a row in the file stayed in this process
    fresh = LogIndex(path, SP)
    assert _answers(fresh) == _answers(index) and fresh.loaded
    index.save()
    again = LogIndex(path, SP)
    again.refresh()
    assert again.loaded and again.line_off.size == len(again.line_off)  # all of it from the file
    assert _answers(again) == _answers(LogIndex(path, SP, persist=False))
    assert [a[1] for a in _answers(again)[0] if a[0] == old] == ["delivered"]


def test_an_index_file_damaged_in_its_arrays_or_naming_a_longer_log_is_not_used(tmp_path):
    from notifier.log.index import LogIndex
    path = tmp_path / "attempts.jsonl"
    built = _saved_index(path, 30)
    expected = _answers(LogIndex(path, SP, persist=False))
    # One byte of the arrays changed (an offset, a row's line...): the file's SHA-256 no longer matches.
    data = bytearray(built.file.read_bytes())
    data[200] ^= 0x40
    built.file.write_bytes(bytes(data))
    damaged = LogIndex(path, SP)
    assert _answers(damaged) == expected and not damaged.loaded
    damaged.save()
    # The log cut short (its last attempts gone, as by a restore of an older copy): a new process
    # does not trust the file, and the index in memory starts over.
    assert LogIndex(path, SP).account_records("acc-1") and built.account_records("acc-1")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-5]))
    cut = LogIndex(path, SP)
    assert _answers(cut) == _answers(LogIndex(path, SP, persist=False)) != expected and not cut.loaded
    assert _answers(built) == _answers(cut) and built.rebuilds == 1
