"""The state file: accounts, invoices, delinquency histories and the ledger of handled notices.

One TinyDB database in one JSON file (default `state.json`), four tables, each document keyed by a
string id: `accounts` and `history` by account id, `invoices` by invoice id, `ledger` by
`ledger_key()` (invoice, notice date, channel, recipient). The id is the document's key, as TinyDB
keeps it, and is not repeated inside. TinyDB can open the file
(`TinyDB(path, storage=AtomicJSONStorage)`, with a `Table` whose `document_id_class` is `str`), but
the store does not go through TinyDB's `Table` API: every `Table` write re-reads the storage and
rebuilds the whole id map, so importing 50,000 accounts one upsert at a time would be quadratic.
A transaction reads the tables once, changes plain dicts, and writes once.

The store's ideas, one module each:
- `storefile`: the file's format and `AtomicJSONStorage` (new file, fsync, rename, fsync the
  directory: a crash leaves the old or the new file, never a torn one). A state file that cannot be
  read or is not a TinyDB store stops the command with `StoreError` and is never written over.
- `journal`: small changes appended beside a big state instead of a rewrite (`state.json.journal`),
  and what a crash leaves there; `basefile`: the state file read in place (one document found by
  its id) and folded with the journal into a new one.
- `archivefile`: the append-only archive of old paid invoices.
- here: `Store` (the lock, what this process has seen of the file and the journal, transactions and
  what they write) and `Snapshot` (the tables as models or raw documents, and their changes).

`Store.transaction()` holds an inter-process lock (`state.json.lock`) from its read to its write,
so the daemon and a staff command never lose each other's writes. Readers take no lock: the
rename gives them the old file or the new one, and a journal line is read only once complete.
The log's head is checked before every write (`refuse_a_cut_log`).

Scale: `plan` reads 50,000 accounts with their invoices and ledger. The file is written one document
per line (still plain JSON), so a read-only snapshot parses it a few thousand documents at a time and
keeps only the model objects, never the whole file or every raw dict at once (see `_read`).

Archive: paid invoices older than the retention window, and the ledger of paid invoices, leave the
state for an append-only JSON Lines file beside it (`state.archive.jsonl`), so the state grows with
the number of accounts, not with the years. See `Snapshot.archive()` and `Store._rewrite()`.
Archiving is idempotent: the `archived` table (per account, the ids of its archived invoices) is
written in the same atomic replace as the histories, so an invoice that an import brings again is
recognised, never archived twice and its lateness never counted twice. `read_archive()` reads the
file back, coping with what a crash can leave there (a torn last line, a block appended twice).
"""
from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import compress, groupby
from operator import attrgetter, not_
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

import orjson

from notifier.billing.calendar import add_months
from notifier.config import Config
from notifier.billing.models import Account, History, Hold, Invoice, LedgerEntry
from notifier.billing.rules import is_late
from notifier.state import journal
from notifier.state.archivefile import (  # noqa: F401 (archive_path_for, read_archive: public names of the store)
    _append_lines, _in_thread, _unappend, archive_path_for, read_archive,
)
from notifier.state.storefile import (  # noqa: F401 (public names of the store, kept importable from here)
    CHUNK, PRIVATE, AtomicJSONStorage, StoreError, _chunk_object, _discard, _keep_mode, _parse_object, _RawTables,
    _read, gc_paused,
)
from notifier.state.basefile import BaseFile, LazyTable, NotOurLayout, write_folded
from notifier.state.packed import PackedLedger, Packer, ledger_key  # noqa: F401 (ledger_key: a public name of the store)
from notifier.state.flock import FileLock, Timeout
from notifier.state.journal import (
    FOLD_AT, JOURNAL_FROM, MARKER_KEY, MARKER_TABLE, MAX_CHANGES, JournalError, Marker, head_marker, journal_path_for,
)
from notifier.state.fsync import fsync_dir as _fsync_dir
from notifier.log.attempts import disagreement, read_tail

if TYPE_CHECKING:
    from notifier.log.attempts import AttemptLog

logger = logging.getLogger(__name__)

# The tables a read-only snapshot turns into models; `archived` and `imports` (what the last import
# read, see `Snapshot.last_import`) only matter to a transaction.
MODEL_TABLES = ("accounts", "invoices", "ledger", "history")
TABLES = MODEL_TABLES + ("archived", "imports")
# The daily cycle's tables (staff holds; `meta`: heartbeat, last cycle, the log's head...): written
# only once used, so a store that never ran a cycle keeps the tables above.
CYCLE_TABLES = ("holds", "meta")
LOCK_TIMEOUT = 60.0  # seconds; waiting longer means a stuck process that a person must look at
# A snapshot's chunk of at least this many documents is decoded by msgspec (notifier/state/storedocs.py):
# below it, importing msgspec (5 ms) would cost more than it saves.
TYPED_MIN = 1000


class AlreadyPaid(StoreError):
    """`record_payment` of an invoice that has a payment date: changing one is a correction."""

    def __init__(self, invoice_id: str, paid: date):
        self.invoice_id, self.paid = invoice_id, paid
        super().__init__(f"{invoice_id}: already paid on {paid:%d/%m/%Y}")


def _iso_day(text) -> bool:
    """Whether `text` is a date as the log writes it (YYYY-MM-DD): a record edited by hand is
    verify-log's to report, not a payment to restore."""
    try:
        return date.fromisoformat(text).isoformat() == text
    except (TypeError, ValueError):
        return False


def retention_cutoff(today: date, retention_months: int) -> date:
    """The first payment date the state still keeps on `today`: an invoice paid before it belongs
    in the archive. Import and `archive()` both decide with this and `past_retention`, so they can
    never disagree at the boundary."""
    return add_months(today, -retention_months)


def past_retention(paid, cutoff) -> bool:
    """Paid before `cutoff`. Works on dates and on ISO strings alike (they sort the same way), so
    `archive()` can decide on the stored text without converting every document."""
    return paid is not None and paid < cutoff


def _stamp(path: Path) -> tuple | None:
    """What tells one version of the state file from another (see `Store.snapshot`): its
    (device, inode, size, modification time) and the journal marker its first lines hold. The
    marker matters: a fold or a rewrite a few milliseconds after the last can get the inode just
    freed, the same size and the same clock tick; it cannot get the same marker."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(256)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, head_marker(head)


# The store


@dataclass
class _View:
    """What this process holds of the store: the base file it read (its stamp and marker), the
    journal entries after it up to `seq`, where it read the journal to; and, for snapshots, the
    models of it all with their per-account index (`Snapshot._select`), shared by the snapshots
    of one version."""
    stamp: tuple | None
    marker: Marker
    seq: int
    overlay: dict = field(default_factory=dict)  # the net effect of the entries after the base's marker (`journal.overlaid`)
    journal: tuple | None = None
    end: int = 0
    models: dict | None = None
    by_account: dict = field(default_factory=dict)


def _reindexed(index: dict, old: dict, new: dict, keys) -> dict | None:
    """The per-account index (`Snapshot._select`) of table `new`, made from `old`'s by changing
    only the accounts of `keys`: a staff action or a batch of the cycle changes a few documents,
    and building the index of every invoice again (a loop over all of them, while every other
    request of the console waits for the interpreter) was most of the console's slow answers at
    50,000 accounts. The index is shared with older snapshots: the lists changed are copied.

    The lists keep the order a whole build gives (the table's order), so a key may only be
    added at the end of the table or leave it; a document that moved to another account (none
    of our writes does that) gives None: built again whole when first asked."""
    index = dict(index)
    for key in keys:
        before, after = old.get(key), new.get(key)
        was = None if before is None else before.account
        now = None if after is None else after.account
        if before is not None and after is not None:
            if was != now:
                return None
            continue  # the same key of the same account: its place in the lists is unchanged
        if before is not None:
            index[was] = [k for k in index.get(was, ()) if k != key]
            if not index[was]:
                del index[was]
        if after is not None:
            index[now] = [*index.get(now, ()), key]
    return index


class _Moved(Exception):
    """The base file was replaced while a reader without the lock was reading it: read again."""


class Store:
    """The state file, its journal and its lock. Cheap to create; opens nothing until used.

    `retention_months` is the archive window of `Snapshot.archive()` (the CLI passes
    `config.retention_months`). `journal_from` and `fold_at` (bytes) say from which size of the
    state a small transaction goes to the journal, and past which size of the journal the
    writer folds it (notifier/state/journal.py); `fold=False` leaves folding to other processes
    (the console: a fold would double its memory for a moment).
    """

    def __init__(self, path: Path, retention_months: int = 3, lock_timeout: float = LOCK_TIMEOUT,
                 log: "AttemptLog | None" = None, keep_written: bool = False, journal_from: int = JOURNAL_FROM,
                 fold_at: int = FOLD_AT, fold: bool = True, max_changes: int = MAX_CHANGES,
                 packed_ledger: bool = False):
        self.path = Path(path)
        # The attempt log, whose head the state keeps (moved by every append: attempts.py): a
        # transaction writes nothing while the log does not end where that head says.
        self.log = log
        self.archive_path = archive_path_for(self.path)
        self.journal_path = journal_path_for(self.path)
        self.retention_months = retention_months
        self.journal_from, self.fold_at, self._folds, self.max_changes = journal_from, fold_at, fold, max_changes
        self._storage = AtomicJSONStorage(self.path)
        self._lock = FileLock(str(self.path) + ".lock", timeout=lock_timeout)
        self._fold_lock = FileLock(str(self.path) + ".fold.lock", timeout=0)
        self._lock_timeout = lock_timeout
        self._local = threading.local()  # the lock is per thread too: threads exclude each other
        self._mutex = threading.Lock()  # the view is shared by the threads of a process (the console)
        self._seen: _View | None = None
        self._base: BaseFile | None = None  # see `_open_base`
        # The last whole rewrite's snapshot and the stamp of the file it wrote: what the next
        # snapshot() reads is what it wrote (see `_keep`). Only when asked (the console): it keeps
        # the raw tables alive until the next snapshot, which a cycle or an import need not pay.
        self._keep_written = keep_written
        self._written: tuple[tuple, Snapshot] | None = None
        # The snapshots' ledger packed by account (notifier/state/packed.py): the console's, which
        # reads little of it and keeps it for hours; a cycle or a plan walks it whole, as models.
        self._packed = packed_ledger

    def forget(self) -> None:
        """Drop the last snapshot's models: a daemon idle between its passes need not hold the
        whole state in memory (the next snapshot parses the file again)."""
        self._seen = None
        self._written = None

    def rewritten(self) -> bool:
        """Whether the state file was rewritten whole (an import, an archive) since the version
        this store holds: the next snapshot parses it again. A fold of what it holds is not."""
        view = self._seen
        stamp = _stamp(self.path)
        if view is None or view.models is None or stamp is None or stamp == view.stamp:
            return False
        marker = _marker_of(self.path)
        return marker is None or not marker.id or marker.id != _line_of(view)

    def snapshot(self) -> Snapshot:
        """A read-only view of the store as it is now, every document already a model object; takes
        no lock. Its change methods raise: change the store through `transaction()`.

        The base file is parsed again only when it was rewritten whole since this store's last
        snapshot (an import, an archive): a journal entry written since is applied to the models
        kept (the tables it changed are copied, the others stay the same objects), and a fold
        of what was seen changes nothing. Every write replaces the file (a new inode), so an
        unchanged (device, inode, size, mtime) is unchanged content. The models are immutable and
        shared by the snapshots."""
        view = self._catch_up(models=True)
        return Snapshot(self.path, self.retention_months, models=view.models, by_account=view.by_account)

    def _catch_up(self, models: bool) -> _View:
        """The view brought to the store as it is now (see `_View`). Without the lock a fold may
        replace the base and cut the journal while they are read: then they are read again."""
        for _ in range(5):
            try:
                with self._mutex:
                    return self._catch_up_once(models)
            except _Moved:
                continue
        raise StoreError(f"{self.path}: the state file kept changing while it was read; try again")

    def _catch_up_once(self, models: bool) -> _View:
        stamp = _stamp(self.path)
        view = self._seen
        if stamp is None:  # no state file: an empty store (a journal without its base means nothing)
            view = _View(None, Marker(), 0, models={name: {} for name in MODEL_TABLES + CYCLE_TABLES} if models else None)
            self._seen = view if models else None
            return view
        if view is None or view.stamp != stamp or (models and view.models is None):
            view = self._read_base(stamp, view, models)
        try:
            tail = journal.read_after(self.journal_path, view.seq, view.journal, view.end)
        except JournalError as exc:
            if _stamp(self.path) != stamp:
                raise _Moved from None  # a fold cut the journal after we read the base
            raise StoreError(str(exc)) from None
        except OSError as exc:
            raise StoreError(f"{self.journal_path}: cannot read the journal: {exc.strerror or exc}") from None
        if tail.entries:
            if view.models is not None:
                view.models, view.by_account = self._applied(view, tail.entries)
            view.overlay = journal.overlaid(view.overlay, tail.entries)
            view.seq = tail.entries[-1][0]
        view.journal, view.end = tail.ident, tail.end
        self._seen = view
        return view

    def _read_base(self, stamp: tuple, view: _View | None, models: bool) -> _View:
        """The view of a base file not seen yet: nothing to read when it is a fold of what `view`
        holds (same line of versions, no entry beyond ours), else the file read (its models when
        `models`, or only its marker)."""
        written = self._written
        if models and written is not None and written[0] == stamp:
            snapshot = written[1]
            tables, by_account = snapshot.models_as_written(self._packed)
            self._written = None
            return _View(stamp, snapshot.marker, snapshot.marker.seq, models=tables, by_account=by_account)
        if not models:
            marker = _marker_of(self.path)
            if marker is None:  # not our layout: the transaction reads it whole anyway
                return _View(stamp, Marker(), 0)
        else:
            sink = _ModelTables(self.path, self._packed)
            _read(self.path, sink)
            sink.finish()
            try:
                marker = Marker.of(sink.tables.get(MARKER_TABLE, {}).get(MARKER_KEY))
            except JournalError as exc:
                raise StoreError(f"{self.path}: not a valid state file: {exc}") from None
        if _stamp(self.path) != stamp:
            raise _Moved
        if view is not None and marker.id and marker.id == _line_of(view) and marker.seq <= view.seq \
                and (view.models is not None or not models):
            # A fold of what we hold: the models stay. The journal was cut down (or deleted) to
            # the entries after the fold's marker, and the overlay is made again from those we
            # hold; the rest are read from the journal's start, ours skipped by number.
            overlay = self._overlay_between(marker.seq, view.seq, stamp)
            return _View(stamp, marker, view.seq, overlay, None, 0, view.models, view.by_account)
        tables = {name: sink.tables.get(name, {}) for name in MODEL_TABLES + CYCLE_TABLES} if models else None
        return _View(stamp, marker, marker.seq, models=tables)

    def _overlay_between(self, after: int, upto: int, stamp: tuple) -> dict:
        """The overlay of the journal's entries numbered after `after` up to `upto`."""
        if upto == after:
            return {}
        try:
            entries = [entry for entry in journal.read_after(self.journal_path, after).entries if entry[0] <= upto]
        except JournalError:
            raise _Moved from None  # cut again by another fold: the base changed too
        except OSError as exc:
            raise StoreError(f"{self.journal_path}: cannot read the journal: {exc.strerror or exc}") from None
        if not entries or entries[-1][0] != upto:
            if _stamp(self.path) != stamp:
                raise _Moved
            raise StoreError(f"{self.journal_path}: entries {after + 1} to {upto}, read before the journal was "
                             "folded, are no longer in it")
        return journal.overlaid({}, entries)

    def _applied(self, view: _View, entries: list) -> tuple[dict, dict]:
        """The view's models with journal `entries` applied: each table they change copied and
        changed, the others the same objects (a cache kept beside a table stays valid)."""
        changed = journal.overlay_of(entries)
        convert = _Converter(self.journal_path)
        models = dict(view.models)
        by_account = dict(view.by_account)
        with gc_paused():
            for name, docs in changed.items():
                if name not in models and name not in MODEL_TABLES + CYCLE_TABLES:
                    continue
                old = models.get(name, {})
                if isinstance(old, PackedLedger):
                    models[name] = old.changed(docs, convert)
                    continue
                table = dict(old)
                for key, doc in docs.items():
                    if doc is None:
                        table.pop(key, None)
                    else:
                        table[key] = convert.one(name, key, doc)
                models[name] = table
                if name in by_account:
                    by_account[name] = _reindexed(by_account[name], old, table, docs)
                    if by_account[name] is None:
                        del by_account[name]
        return models, by_account

    def stamp(self) -> tuple | None:
        """The state file's version as `snapshot()` tells them apart (every write replaces the
        file): an unchanged stamp is unchanged content. None when there is no file."""
        return _stamp(self.path)

    @contextmanager
    def transaction(self, accept_cut: bool = False) -> Iterator[Snapshot]:
        """Lock, read, yield a snapshot to change, and write it at the end.

        What it changes goes to the journal when the state is big and the change small (a staff
        action, a batch of ledger rows), else the whole state is rewritten (an import, an
        archive). Nothing is written when the block raises or changes nothing. Not re-entrant: a
        nested transaction would read before the outer one writes, and one of them would lose.
        """
        if getattr(self._local, "in_transaction", False):
            raise RuntimeError("Store.transaction() is not re-entrant")
        self._acquire()
        self._local.in_transaction = True
        base = None
        fold = False
        try:
            keep = self._keep_written and self._seen is not None  # not after `forget`
            view = self._catch_up(models=self._seen is not None and self._seen.models is not None)
            if not accept_cut:
                self.refuse_a_cut_log()
            base = self._open_base(view)
            if base is not None:
                snapshot = self._lazy_snapshot(view, base)
            else:
                sink = _RawTables(self.path)
                raw = sink.tables if _read(self.path, sink) else {}
                _apply(raw, view.overlay)
                snapshot = Snapshot(self.path, self.retention_months, raw=raw, models=self._models_of(raw, view),
                                    by_account=dict(view.by_account) if view.models is not None else None)
            snapshot.marker = view.marker
            yield snapshot
            if snapshot.changed:
                fold = self._commit(snapshot, view, lazy=base is not None, keep=keep)
        finally:
            self._local.in_transaction = False
            self._lock.release()
        if fold:
            self.fold()

    def _open_base(self, view: _View) -> BaseFile | None:
        """The base file mapped, for a transaction that reads documents where they lie; None when
        the state is small (read whole, rewritten whole) or not in our layout. Kept from one
        transaction to the next while the file is the same (finding its tables is a few
        searches of the whole file); only used and replaced under the lock."""
        if view.stamp is None or view.stamp[2] < self.journal_from:
            return None
        base = self._base
        if base is not None and base.stamp == view.stamp:
            return base
        self._close_base()
        try:
            base = BaseFile(self.path)
        except NotOurLayout:
            return None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read the state file: {exc.strerror or exc}") from None
        if base.stamp != view.stamp:  # cannot happen under the lock: a writer that ignored it
            base.close()
            raise StoreError(f"{self.path}: the state file changed under the store's lock")
        self._base = base
        return base

    def _close_base(self) -> None:
        if self._base is not None:
            self._base.close()
            self._base = None

    def _lazy_snapshot(self, view: _View, base: BaseFile) -> Snapshot:
        overlay = view.overlay
        names = dict.fromkeys([*base.tables, *overlay, *TABLES, *CYCLE_TABLES])
        names.pop(MARKER_TABLE, None)
        raw = {name: LazyTable(name, base, overlay.get(name, {})) for name in names}
        models = {name: view.models[name] for name in MODEL_TABLES + CYCLE_TABLES} if view.models is not None else None
        return Snapshot(self.path, self.retention_months, raw=raw, models=models,
                        by_account=dict(view.by_account) if models is not None else None)

    def _keep(self, snapshot: Snapshot, keep: bool) -> None:
        """After a whole rewrite, under the lock: the file now holds exactly `snapshot.raw`, so the
        next `snapshot()` takes its models from it (the tables the transaction did not change are
        the models it read; only the changed ones are converted, and only when asked) instead of
        parsing the whole file again. A console's action then draws its page without a second
        parse of the state. Only for a store made with `keep_written` (the console's), and not
        after `forget`."""
        stamp = _stamp(self.path)
        self._written = (stamp, snapshot) if keep and stamp is not None else None

    @contextmanager
    def locked(self) -> Iterator[tuple | None]:
        """Hold the store's lock without reading or writing; yields the stamp of the state file
        and of its journal, which no other writer can change meanwhile. The cycle writes its
        claims inside, after looking at what changed: every transaction that returned before is
        seen (issue 18)."""
        self._acquire()
        try:
            yield _stamp(self.path), _ident(self.journal_path), _size(self.journal_path)
        finally:
            self._lock.release()

    def _acquire(self) -> None:
        try:
            self._lock.acquire()
        except Timeout:
            raise StoreError(
                f"{self.path}: another notifier process has held {self._lock.lock_file} for more than "
                f"{self._lock_timeout:g} s; try again when it has finished"
            ) from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot take the lock {self._lock.lock_file}: {exc.strerror or exc}") from None

    def _models_of(self, raw: dict, view: _View) -> dict[str, dict[str, Any]]:
        """The validated models of what a transaction read whole. When this process keeps the
        models of the same state (a cycle plans, then claims), they are reused and only the
        tables a snapshot does not keep are checked: a cycle's transactions would otherwise
        convert the whole store again each time."""
        if view.models is None:
            return _validated(self.path, raw)
        rest = {name: raw[name] for name in TABLES if name in raw and name not in view.models}
        return {**view.models, **_validated(self.path, rest)}

    def accept_log_cut(self, by: str, when: str) -> dict | None:
        """Go on with the attempt log as it is now, after `refuse_a_cut_log` stopped every write
        (no backup to restore): the cut (or growth) is kept in `meta` "log_cuts" for good
        (verify-log shows it in every verdict), then the state keeps the log's present head.
        Returns the cut recorded, or None when the log and the state agree."""
        kept, _ = self.log.settled()
        head = read_tail(self.log.path).head
        if kept is None or disagreement(self.log.path, kept, head) is None:
            return None
        cut = {"at": when, "by": by, "seen": {"count": kept.count, "hash": kept.hash},
               "found": {"count": head.count, "hash": head.hash}}
        with self.transaction(accept_cut=True) as snapshot:
            cuts = (snapshot.meta("log_cuts") or {}).get("cuts", [])
            snapshot.set_meta("log_cuts", {"cuts": [*cuts, cut]})
        self.log.accept_head()  # after the cut is on record: a crash between leaves it refused still
        return cut

    def refuse_a_cut_log(self) -> None:
        """LogError when the attempt log does not end where the head the state keeps says: records
        cut off, replaced, the log deleted, or records appended by something else. Writing on
        would record the altered log's head over the evidence (verify-log could no longer see it),
        and what the cut records said was sent would be forgotten. Every transaction asks; a cycle
        or a send asks first, before its recovery appends to the log."""
        if self.log is not None:
            self.log.check_head()

    def _commit(self, snapshot: Snapshot, view: _View, lazy: bool, keep: bool) -> bool:
        """Write what the transaction changed: a journal entry when it is small and the state big,
        else the whole state (`_rewrite`). Returns whether the journal is now due for a fold."""
        changes = [(name, key, doc) for name, table in snapshot.raw.items() if isinstance(table, LazyTable)
                   for key, doc in table.changes.items()] if lazy else None
        if changes is None or snapshot.archive_lines or len(changes) > self.max_changes:
            self._rewrite(snapshot, view, checked=not lazy)
            self._keep(snapshot, keep)
            return False
        if not changes:
            return False
        seq = view.seq + 1
        try:
            end = journal.append(self.journal_path, journal.entry_line(seq, changes), _mode_of(self.path))
        except OSError as exc:
            raise StoreError(f"{self.journal_path}: cannot append to the journal: {exc.strerror or exc}") from None
        except TypeError as exc:  # a value JSON cannot hold: nothing was written
            raise StoreError(f"{self.journal_path}: cannot write the change: {exc}") from None
        # This process's view takes the entry at once: the next snapshot reads nothing of it.
        with self._mutex:
            if self._seen is view and view.seq == seq - 1:
                if view.models is not None:
                    view.models, view.by_account = self._applied(view, [(seq, changes)])
                view.overlay = journal.overlaid(view.overlay, [(seq, changes)])
                view.seq, view.journal, view.end = seq, _ident(self.journal_path), end
        return self._folds and end >= self.fold_at

    def _rewrite(self, snapshot: Snapshot, view: _View, checked: bool) -> None:
        """New state file written, then archive lines appended, then the state replaced, then the
        journal (all in the new file) deleted.

        A crash after the append and before the rename leaves the archived records in both files;
        the next archive run appends them again. Archive readers therefore dedupe by (kind, id),
        and no record is ever lost: it leaves the state only once it is safely in the archive.
        A crash after the rename and before the journal's deletion leaves entries the new file
        holds already: its marker says up to which number, and they are skipped.
        A transaction that read documents where they lie (`checked` False) checked only those:
        the whole state is checked before it is written whole, as a transaction that read it
        whole checked it first (a damaged document is refused, never rewritten).
        """
        tables = {name: table.whole() if isinstance(table, LazyTable) else table for name, table in snapshot.raw.items()
                  if not (isinstance(table, LazyTable) and not table.stored and name not in TABLES and not table)}
        tables.pop(MARKER_TABLE, None)
        if view.seq or view.marker.id or self.journal_path.exists():
            tables = {MARKER_TABLE: {MARKER_KEY: Marker(view.seq, journal.new_id()).doc()}, **tables}
        snapshot.marker = Marker.of(tables.get(MARKER_TABLE, {}).get(MARKER_KEY))
        if not checked:
            _validated(self.path, tables)
        if not snapshot.archive_lines:
            self._storage.replace(self._storage.write_new(tables))
        else:
            # The archive's lines are written and fsynced by a thread while this one writes the new
            # state file: system calls that let go of the interpreter lock, where one after the other
            # they were a sixth of a big first import. The state is replaced only once both are safe.
            before = self.archive_path.stat().st_size if self.archive_path.exists() else None
            appended = _in_thread(_append_lines, self.archive_path, snapshot.archive_lines)
            try:
                tmp = self._storage.write_new(tables)
            except BaseException:
                if appended() is None:
                    _unappend(self.archive_path, before)
                raise
            problem = appended()
            if problem is not None:
                _discard(tmp)
                raise problem
            self._storage.replace(tmp)
        _fault("rewrite:replaced")
        if self.journal_path.exists():
            self.journal_path.unlink()
            _fsync_dir(self.path.parent)
        with self._mutex:
            self._seen = None

    def fold(self) -> bool:
        """Fold the journal into a new base file, mostly outside the store's lock; returns whether
        it did (not when another process is folding, or the base is not in our layout).

        The new base (the old one's lines, changed documents in place, and a marker naming the
        last entry it holds) is written beside the state while writers go on appending to the
        journal; under the lock, only the rename and the journal cut down to the entries
        appended meanwhile. A crash at any point leaves the old base and the whole journal, or
        the new base and a journal whose first entries it holds (skipped by number)."""
        try:
            self._fold_lock.acquire()
        except (Timeout, OSError):
            return False
        tmp = self.path.with_name(self.path.name + ".fold")
        try:
            try:
                base = BaseFile(self.path)
            except (NotOurLayout, FileNotFoundError):
                return False
            with base:
                marker = base.marker()
                tail = journal.read_after(self.journal_path, marker.seq)
                if not tail.entries:
                    return False
                # A base without a marker is named by its stamp, as its readers name it (`_line_of`).
                folded = Marker(tail.entries[-1][0], marker.id or _stamp_id(base.stamp))
                with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE), "wb") as out:
                    write_folded(out, base, journal.overlay_of(tail.entries), folded)
                    out.flush()
                    os.fsync(out.fileno())
                _keep_mode(self.path, tmp)
            self._acquire()
            try:
                if _stamp(self.path) != base.stamp or _ident(self.journal_path) != tail.ident:
                    return False  # rewritten whole meanwhile: nothing to fold any more
                os.replace(tmp, self.path)
                _fsync_dir(self.path.parent)
                _fault("fold:renamed")
                with open(self.journal_path, "rb") as f:
                    f.seek(tail.end)
                    rest = f.read()
                cut = self.journal_path.with_name(self.journal_path.name + ".tmp")
                with os.fdopen(os.open(cut, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE), "wb") as out:
                    out.write(rest)
                    out.flush()
                    os.fsync(out.fileno())
                _keep_mode(self.journal_path, cut)
                os.replace(cut, self.journal_path)
                _fsync_dir(self.path.parent)
            finally:
                self._lock.release()
            return True
        except (OSError, JournalError) as exc:
            logger.warning("%s: the journal was not folded: %s", self.path, exc)
            return False
        finally:
            _discard(tmp)
            self._fold_lock.release()


def _apply(raw: dict, overlay: dict) -> None:
    """The journal's documents (`overlay`) over tables read whole."""
    for name, docs in overlay.items():
        table = raw.setdefault(name, {})
        for key, doc in docs.items():
            if doc is None:
                table.pop(key, None)
            else:
                table[key] = journal.document(doc)


def _marker_of(path: Path) -> Marker | None:
    """The marker of a base in our layout, read from its first lines; None for another layout."""
    try:
        base = BaseFile(path)
    except NotOurLayout:
        return None
    except FileNotFoundError:
        return Marker()
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the state file: {exc.strerror or exc}") from None
    with base:
        try:
            return base.marker()
        except (NotOurLayout, JournalError) as exc:
            raise StoreError(f"{path}: not a valid state file: the journal marker: {exc}") from None


def _stamp_id(stamp: tuple) -> str:
    return "file:" + ":".join(map(str, stamp[:4]))


def _line_of(view: _View) -> str:
    """The id of the line of versions a view's base belongs to: its marker's, or for a base that
    has none yet (never folded), its stamp's, the id its first fold gives the new base."""
    return view.marker.id or (_stamp_id(view.stamp) if view.stamp else "")


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _mode_of(path: Path) -> int:
    """The journal's mode: the state's (an operator's chmod 600 holds for both)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return PRIVATE


def _fault(point: str) -> None:
    """A crash on purpose, for the tests that kill a real process at a chosen point of a fold:
    `NOTIFIER_STORE_FAULT=fold:renamed` (the new base in place, the journal not cut yet) or
    `rewrite:replaced` (a whole rewrite in place, the journal not deleted yet) ends the process
    there as a SIGKILL would."""
    if os.environ.get("NOTIFIER_STORE_FAULT") == point:
        os._exit(137)


class Snapshot:
    """The store in memory.

    From `Store.transaction()`: the raw tables, turned into model objects only when asked (`pay`
    converts one invoice, not 200,000); the change methods edit the raw tables and set `changed`.
    From `Store.snapshot()`: model objects only, read-only. Lists come in stored order.
    """

    def __init__(self, path: Path, retention_months: int = 3, raw: dict | None = None, models: dict | None = None,
                 by_account: dict | None = None):
        self.changed = False
        self.marker = Marker()  # of the base file read (see notifier/state/journal.py)
        # Archive records waiting for the commit, already as JSON Lines: a million archived invoices
        # take 300 MB this way, three times less than as dicts.
        self.archive_lines = bytearray()
        self._path = path
        self._retention_months = retention_months
        self._raw = raw
        if raw is not None:
            for name in TABLES:
                raw.setdefault(name, {})
        # Fully converted tables, by name; a read-only snapshot has all of them.
        self._models: dict[str, dict[str, Any]] = dict(models or {})
        # table -> account -> keys; a read-only snapshot's is shared with the others of its version
        self._by_account: dict[str, dict[str, list[str]]] = {} if by_account is None else by_account
        self._archived: set[str] | None = None  # see _archived_ids
        self._convert = _Converter(path)

    def models_as_written(self, packed: bool = False) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list[str]]]]:
        """A transaction's tables as models, once committed (`Store._keep`): what a read-only
        snapshot of the file it wrote would hold, and the per-account index of the tables kept.
        A table's models read before are kept only when the transaction left the table alone
        (and, as a check, with as many documents as stored); the others are converted from the
        documents written (the ledger packed when `packed`: notifier/state/packed.py)."""
        out, index = {}, {}
        with gc_paused():
            for name in MODEL_TABLES + CYCLE_TABLES:
                models, docs = self._models.get(name), self.raw.get(name, {})
                if models is not None and len(models) == len(docs):
                    out[name] = models
                    if name in self._by_account:
                        index[name] = self._by_account[name]
                elif packed and name == "ledger":
                    out[name] = PackedLedger.of(self._convert.many(name, docs), self._convert.date)
                else:
                    out[name] = self._convert.many(name, docs)
        return out, index

    @property
    def raw(self) -> dict[str, dict[str, Any]]:
        """The tables as stored (what a commit writes)."""
        if self._raw is None:
            raise RuntimeError("read-only snapshot: change the store through Store.transaction()")
        return self._raw

    # Reading

    def account(self, account_id: str) -> Account | None:
        return self._get("accounts", account_id)

    def accounts(self) -> list[Account]:
        return list(self._all("accounts").values())

    def accounts_table(self) -> Mapping[str, Account]:
        """The accounts by id, not to be changed: the same object for every read-only snapshot of
        one version of the file, so a cache of something derived from them (the search index)
        can be kept beside it and known stale when another object comes."""
        return self._all("accounts")

    def tables(self, *names: str) -> tuple:
        """The model tables `names`, not to be changed: like `accounts_table`, the same objects for
        every read-only snapshot of one version of the file (a table a write left alone stays the
        same object after it), for a cache of something derived from them."""
        return tuple(self._all(name) for name in names)

    def invoice(self, invoice_id: str) -> Invoice | None:
        return self._get("invoices", invoice_id)

    def invoices(self, account_id: str | None = None) -> list[Invoice]:
        """Every invoice kept in the store (open and recently paid), or one account's."""
        return self._select("invoices", account_id)

    def ledger(self, account_id: str | None = None) -> list[LedgerEntry]:
        return self._select("ledger", account_id)

    def ledger_by_account(self) -> Mapping[str, list[LedgerEntry]]:
        """Account id -> its ledger rows, what `rules.plan_day` takes as its ledger: a packed
        ledger (the console's) is unpacked one account at a time, never whole at once."""
        table = self._all("ledger")
        if isinstance(table, PackedLedger):
            return table.by_account()
        return _group_by_account(table.values())

    def payments(self) -> dict[str, date]:
        """The stored payment dates by invoice id (for the importer to report a file that differs)."""
        return {i.id: i.paid for i in self._all("invoices").values() if i.paid is not None}

    def histories(self) -> dict[str, History]:
        """Per account id, what is remembered of its archived invoices (absent: nothing archived)."""
        return dict(self._all("history"))

    # The daily cycle's tables (h8): staff holds per account, and `meta`, small documents by key
    # (heartbeat, last_cycle, ...) that the daemon and `status` share.

    def holds(self) -> dict[str, Hold]:
        return dict(self._all("holds"))

    def meta(self, key: str) -> dict | None:
        return self._get("meta", key)

    def put_hold(self, hold: Hold) -> None:
        self.raw.setdefault("holds", {})[hold.account] = {k: v.isoformat() if isinstance(v, date) else v
                                           for k, v in hold._asdict().items() if k != "account"}
        self._touched("holds")

    def drop_hold(self, account_id: str) -> Hold | None:
        hold = self._get("holds", account_id)
        if hold is not None:
            del self.raw["holds"][account_id]
            self._touched("holds")
        return hold

    def set_meta(self, key: str, value: dict) -> None:
        self.raw.setdefault("meta", {})[key] = value
        self._touched("meta")

    # Changing: only from Store.transaction(), written when its block ends

    def upsert_accounts(self, accounts: Iterable[Account]) -> None:
        """Insert or replace accounts by id. An account imported again unchanged changes nothing,
        so importing the same file twice writes nothing the second time."""
        table = self.raw["accounts"]
        changed = False
        with gc_paused():
            for account in accounts:
                doc = _account_doc(account)
                # A customer's own opt-out (STAFF_OPT_OUT) is not billing data: an import keeps it.
                kept = table.get(account.id, _NO_DOC).get(STAFF_OPT_OUT)
                if kept:
                    doc[STAFF_OPT_OUT] = kept
                if table.get(account.id) != doc:
                    table[account.id] = doc
                    changed = True
        if changed:
            self._touched("accounts")

    def record_opt_out(self, account_id: str, channel: str, by: str, day: date) -> Account:
        """The customer asked not to be contacted on `channel` (a SAIR reply, Twilio's 21610):
        kept beside the imported record, so no import brings the channel back."""
        doc = self.raw["accounts"].get(account_id)
        if doc is None:
            raise StoreError(f"unknown account {account_id!r} (not in {self._path})")
        staff = {**doc.get(STAFF_OPT_OUT, {}), channel: {"by": by, "date": day.isoformat()}}
        doc = self.raw["accounts"][account_id] = {**doc, STAFF_OPT_OUT: staff}
        self._touched("accounts")
        return self._convert.one("accounts", account_id, doc)

    def upsert_invoices(self, invoices: Iterable[Invoice]) -> None:
        """Insert or replace invoices by id, keeping a stored payment date and its corrections:
        payments only move forward, and billing data that does not know of a payment recorded
        with `pay` must not undo it (`correct_payment` is the one way to change a payment date).

        StoreError for an invoice of an account the store does not hold: a bug upstream (the
        importer checks this first). Let it end the transaction, which then writes nothing; the
        invoices before it are already in this snapshot (keeping them all aside to undo would cost
        the memory an import of a million invoices cannot spare)."""
        table, accounts = self.raw["invoices"], self.raw["accounts"]
        changed = False
        iso = _IsoDays()
        try:
            with gc_paused():
                for invoice in invoices:
                    if invoice.account not in accounts:
                        raise StoreError(f"invoice {invoice.id!r}: unknown account {invoice.account!r}")
                    old = table.get(invoice.id)
                    doc = _invoice_doc(invoice, iso) if old is None else _over_stored(old, _invoice_doc(invoice, iso))
                    if doc != old:
                        table[invoice.id] = doc
                        changed = True
        finally:
            if changed:
                self._touched("invoices")

    def record_payment(self, invoice_id: str, paid: date) -> Invoice:
        """Set the payment date of an open invoice. StoreError when the store does not hold the
        invoice; `AlreadyPaid` when it has a payment date (change one with `correct_payment`)."""
        doc = self._stored_invoice(invoice_id)
        if "paid" in doc:
            raise AlreadyPaid(invoice_id, self._convert.date(doc["paid"]))
        return self._set_paid(invoice_id, {**doc, "paid": paid.isoformat()})

    def correct_payment(self, invoice_id: str, paid: date, on: date, by: str) -> tuple[Invoice, date | None]:
        """Change the payment date of an invoice, keeping the previous one in the document's
        `corrections` (with the day and who corrected it): finance must be able to show what was
        recorded before. Returns the invoice and the previous payment date (None if it was open)."""
        doc = self._stored_invoice(invoice_id)
        previous = doc.get("paid")
        corrections = [*doc.get("corrections", ()), {"paid": previous, "on": on.isoformat(), "by": by}]
        invoice = self._set_paid(invoice_id, {**doc, "paid": paid.isoformat(), "corrections": corrections})
        return invoice, None if previous is None else self._convert.date(previous)

    def restore_payments(self, paid: Mapping[str, str]) -> tuple[list[str], list[tuple[str, str, str]]]:
        """Give back payments the attempt log holds ({invoice: ISO date}, from `pay`) to a state
        that lost them, e.g. one rebuilt from a re-import: an open invoice gets the date. Returns
        (invoices restored, [(invoice, stored date, logged date)] paid on another date, which
        keep their date: the caller reports them). Invoices the store does not hold are passed."""
        restored, conflicts = [], []
        for invoice_id, day in paid.items():
            doc = self.raw["invoices"].get(invoice_id)
            if doc is None or not _iso_day(day):
                continue
            if "paid" not in doc:
                self._set_paid(invoice_id, {**doc, "paid": day})
                restored.append(invoice_id)
            elif doc["paid"] != day:
                conflicts.append((invoice_id, doc["paid"], day))
        return restored, conflicts

    def add_ledger(self, entries: Iterable[LedgerEntry]) -> None:
        """Record handled notices; an entry with the key of an existing one replaces it."""
        table = self.raw["ledger"]
        with gc_paused():
            for entry in entries:
                table[ledger_key(entry)] = _ledger_doc(entry)
        self._touched("ledger")

    def archive(self, today: date, config: Config) -> tuple[int, int]:
        """Move what the rules no longer need to the archive; returns (invoices, ledger rows) moved.

        - Invoices paid before `retention_cutoff(today)`. Before one leaves, its account's History
          learns whether it was late, so that first-time delinquency is still told right.
        - Ledger rows of invoices paid on or before `today` (the store keeps the ledger of open
          invoices only), or of invoices the store no longer holds.
        The records reach the archive file only when the transaction commits (`Store._commit`).
        """
        invoices, ledger = self.raw["invoices"], self.raw["ledger"]
        # ISO dates compare as strings: no need to convert every invoice to find the old ones.
        cutoff = retention_cutoff(today, self._retention_months).isoformat()
        done = today.isoformat()
        old = [key for key, doc in invoices.items() if past_retention(doc.get("paid"), cutoff)]
        closed = {key for key, doc in invoices.items() if doc.get("paid") is not None and doc["paid"] <= done}
        rows = [key for key, doc in ledger.items() if doc.get("invoice") in closed or doc.get("invoice") not in invoices]
        if not old and not rows:
            return 0, 0
        with gc_paused():
            self._archive_stored(old, today, config)
            for key in rows:
                self._append_archive({"kind": "ledger", "archived": done, "id": key, **ledger.pop(key)})
        self._touched("ledger")
        return len(old), len(rows)

    def import_invoices(self, invoices: Iterable[Invoice], today: date, config: Config) -> tuple[int, int]:
        """Upsert imported invoices; returns (archived now, already archived before).

        An invoice already past the retention window goes straight to the archive (its account's
        History updated as `archive()` would), so that importing two years of history never puts
        most of it into the state only to take it out again. One the archive already holds is left
        alone: an import is repeated every morning, and must neither archive an invoice twice nor
        count its lateness twice. A stored payment date wins over the file's (`upsert_invoices`),
        also when deciding the retention.

        A first import brings a million invoices: each step goes over all of them at once with
        `map`s and `compress` (C loops) rather than a Python loop per invoice.
        """
        cutoff = retention_cutoff(today, self._retention_months)
        table, accounts = self.raw["invoices"], self.raw["accounts"]
        archived = self._archived_ids()
        invoices = list(invoices)
        count = len(invoices)
        if archived:
            invoices = list(compress(invoices, map(not_, map(archived.__contains__, map(_ID, invoices)))))
        known = count - len(invoices)
        unknown = set(map(_ACCOUNT, invoices)) - accounts.keys()
        if unknown:  # a bug upstream (the importer checks this first): nothing is changed
            invoice = next(i for i in invoices if i.account in unknown)
            raise StoreError(f"invoice {invoice.id!r}: unknown account {invoice.account!r}")
        with gc_paused():
            stored = list(map(table.__contains__, map(_ID, invoices))) if table else None
            if stored is not None and any(stored):
                dates = self._convert.date
                for k in compress(range(len(invoices)), stored):
                    doc = table[invoices[k].id]
                    if "paid" in doc:
                        invoices[k] = invoices[k]._replace(paid=dates(doc["paid"]))
            # A few hundred distinct payment dates: each is decided once.
            past = {paid: past_retention(paid, cutoff) for paid in set(map(_PAID, invoices))}
            is_past = list(map(past.__getitem__, map(_PAID, invoices)))
            if stored is None or not any(stored):
                old, kept, leaving = list(compress(invoices, is_past)), list(compress(invoices, map(not_, is_past))), []
            else:
                old, kept, leaving = [], [], []
                for invoice, was_stored, is_old in zip(invoices, stored, is_past):
                    if was_stored or not is_old:
                        kept.append(invoice)
                        if is_old:
                            leaving.append(invoice.id)
                    else:
                        old.append(invoice)
            del invoices, is_past, stored
            from notifier.state.archived import archive_records  # msgspec, only on a day something leaves
            self._archive_invoices(old, archive_records(old, today.isoformat()), config)
        self.upsert_invoices(kept)
        with gc_paused():
            self._archive_stored(leaving, today, config)
        return len(old) + len(leaving), known

    def _archive_stored(self, keys: list[str], today: date, config: Config) -> None:
        """Archive these invoices of the state, each record made from its document as stored, so
        that what only the document holds (a payment's corrections) goes with it."""
        table, done = self.raw["invoices"], today.isoformat()
        docs = [(key, table.pop(key)) for key in keys]
        lines = b"".join([orjson.dumps({"kind": "invoice", "archived": done, "id": key, **doc},
                                       option=orjson.OPT_APPEND_NEWLINE) for key, doc in docs])
        self._archive_invoices([self._convert.one("invoices", key, doc) for key, doc in docs], lines, config)

    def _archive_invoices(self, invoices: list[Invoice], lines: bytes | bytearray, config: Config) -> None:
        """Append the archive records `lines` of `invoices` to the archive, note their ids as
        archived, and first teach each account's History whether they were late, so that
        first-time delinquency is still told right without them."""
        if not invoices:
            return
        cal = config.calendar
        # Lateness depends on (due, paid) only: decided once per pair, on an invoice that has it.
        late = {(due, paid): is_late(Invoice("", "", _ZERO, due, due, paid), cal, config)
                for due, paid in set(zip(map(_DUE, invoices), map(_PAID, invoices)))}
        newly_late: dict[str, list] = {}  # account -> [earliest due, count] of its late archived invoices
        for invoice in compress(invoices, map(late.__getitem__, zip(map(_DUE, invoices), map(_PAID, invoices)))):
            seen = newly_late.get(invoice.account)
            if seen is None:
                newly_late[invoice.account] = [invoice.due, 1]
            else:
                seen[0] = min(seen[0], invoice.due)
                seen[1] += 1
        if self.archive_lines:
            self.archive_lines += lines
        else:  # the usual case, and a big one: no copy
            self.archive_lines = bytearray(lines) if lines.__class__ is not bytearray else lines
        # The set of archived ids is made again from the table when next asked for (an import
        # would otherwise add a million ids to it for nothing).
        self._archived = None
        archived = self.raw["archived"]
        for account, group in groupby(invoices, _ACCOUNT):  # an account's invoices come together
            doc = archived.get(account)
            if doc is None:
                doc = archived[account] = {"invoices": []}
            doc["invoices"].extend(map(_ID, group))
        histories = self.histories()
        for account, (due, count) in newly_late.items():
            past = histories.get(account) or History(account)
            first = due if past.first_late_due is None else min(past.first_late_due, due)
            histories[account] = now = History(account, first, past.late_count + count)
            self.raw["history"][account] = _history_doc(now)
        for name in ("invoices", "history", "archived"):
            self._touched(name)
        self._models["history"] = histories  # up to date: an import archiving batch by batch reuses it

    def last_import(self) -> tuple[str, date] | None:
        """(SHA-256 of what the last import read, its day), or None before the first import."""
        doc = self.raw["imports"].get("last")
        return None if doc is None else (doc["sha256"], self._convert.date(doc["day"]))

    def record_import(self, digest: str, day: date) -> None:
        doc = {"sha256": digest, "day": day.isoformat()}
        if self.raw["imports"].get("last") != doc:
            self.raw["imports"]["last"] = doc
            self._touched("imports")

    def _archived_ids(self) -> set[str]:
        """The ids of every archived invoice, from the `archived` table (kept up to date as
        invoices leave)."""
        if self._archived is None:
            self._archived = {i for doc in self.raw["archived"].values() for i in doc["invoices"]}
        return self._archived

    def _stored_invoice(self, invoice_id: str) -> dict:
        doc = self.raw["invoices"].get(invoice_id)
        if doc is None:
            where = "archived" if invoice_id in self._archived_ids() else "never imported"
            raise StoreError(f"unknown invoice {invoice_id!r} (not in {self._path}: {where})")
        return doc

    def _set_paid(self, invoice_id: str, doc: dict) -> Invoice:
        self.raw["invoices"][invoice_id] = doc
        self._touched("invoices")
        return self._convert.one("invoices", invoice_id, doc)

    def _append_archive(self, record: dict) -> None:
        self.archive_lines += orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)

    # Internals

    def _touched(self, table: str) -> None:
        self.changed = True
        self._models.pop(table, None)
        self._by_account.pop(table, None)

    def _get(self, table: str, key: str):
        models = self._models.get(table)
        if models is not None:
            return models.get(key)
        doc = self._raw.get(table, {}).get(key)
        return None if doc is None else self._convert.one(table, key, doc)

    def _all(self, table: str) -> dict:
        models = self._models.get(table)
        if models is None:
            models = self._models[table] = self._convert.many(table, self._raw.get(table, {}))
        return models

    def _select(self, table: str, account_id: str | None) -> list:
        if account_id is None:
            return list(self._all(table).values())
        models = self._models.get(table)
        if isinstance(models, PackedLedger):
            return models.rows(account_id)
        index = self._by_account.get(table)
        if index is None:
            index = {}  # built whole, then shared: another thread never sees it half done
            with gc_paused():
                self._index(table, models, index)
            self._by_account[table] = index
        keys = index.get(account_id, ())
        if models is not None:
            return [models[key] for key in keys]
        return [self._convert.one(table, key, self._raw[table][key]) for key in keys]

    def _index(self, table: str, models: dict | None, index: dict) -> None:
        """Fill `index` (account -> keys of `table`), from the models or else the documents."""
        if models is not None:
            for key, obj in models.items():
                index.setdefault(obj.account, []).append(key)
        else:
            for key, doc in self._raw[table].items():
                index.setdefault(doc.get("account"), []).append(key)


class _ModelTables:
    """Sink of `_read` for a read-only snapshot: each chunk becomes model objects at once, so the
    raw dicts of only one chunk are alive at a time. Tables other than ours are not kept."""

    def __init__(self, path: Path, packed: bool = False) -> None:
        self._convert = _Converter(path)
        self.tables: dict[str, dict[str, Any]] = {}
        self._packer = Packer() if packed else None  # the ledger's rows, packed at the end (`finish`)
        self._names: dict[str, str] = {}  # the accounts' ids, one string each for the invoices read after them

    def reset(self) -> None:
        self.tables = {}
        self._names = {}
        if self._packer is not None:
            self._packer = Packer()

    def finish(self) -> None:
        """After the whole file was read: the ledger packed (when asked), what was read of it checked."""
        self._names = {}
        if self._packer is not None:
            self.tables["ledger"] = self._packer.packed(self._convert.date)

    def wants(self, name: str) -> bool:
        return name in MODEL_TABLES + CYCLE_TABLES or name == MARKER_TABLE

    def add_chunk(self, name: str, lines: list[bytes], last: bool) -> None:
        blob = _chunk_object(lines, last)
        models = None
        if name == "ledger" and self._packer is not None and len(lines) >= TYPED_MIN:
            from notifier.state import storedocs
            docs = storedocs.ledger_docs(blob, self._convert.dates)
            if docs is not None:
                self._packer.add_docs(docs)
                return
        if len(lines) >= TYPED_MIN:
            from notifier.state import storedocs
            models = storedocs.decode(name, blob, self._convert.dates, self._convert.amounts, self._names)
        if models is None:
            models = self._convert.many(name, _parse_object(blob))
        if name == "accounts":
            self._names.update(zip(models, models))
        self._keep(name, models)

    def add(self, name: str, docs: dict) -> None:
        if self.wants(name):
            self._keep(name, self._convert.many(name, docs))

    def _keep(self, name: str, models: dict) -> None:
        if name == "ledger" and self._packer is not None:
            self._packer.add(models)  # the chunk's models were the check; its rows are kept packed
        else:
            self.tables.setdefault(name, {}).update(models)


def _validated(path: Path, raw: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every document of our tables as a model, or StoreError naming the first that does not fit.

    A transaction checks what it read exactly as a read-only snapshot does: a state that `plan`
    refuses must not be rewritten by `pay`. The models are kept, so the transaction's own reads
    cost nothing more."""
    convert = _Converter(path)
    with gc_paused():
        return {name: convert.many(name, raw[name]) for name in TABLES + CYCLE_TABLES if name in raw}


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")


class _Dates(dict):
    """ISO string -> date, one shared object per distinct string (a store of 200,000 invoices has a
    few hundred distinct dates: this saves both time and memory). None stays None."""

    def __init__(self) -> None:
        super().__init__({None: None})

    def __missing__(self, text: str) -> date:
        if text.__class__ is not str or not _ISO_DATE.fullmatch(text):
            raise TypeError(f"a date must be text YYYY-MM-DD, not {_shown(text)}")
        value = self[text] = date.fromisoformat(text)
        return value


class _Amounts(dict):
    """Decimal string -> Decimal, shared like `_Dates`. A JSON number is refused: it may already
    have been rounded as a float."""

    def __missing__(self, text: str) -> Decimal:
        if text.__class__ is not str or not _AMOUNT.fullmatch(text):
            raise TypeError(f'amount must be a string such as "149.90", not {_shown(text)}')
        value = self[text] = Decimal(text)
        return value


class _Converter:
    """Documents -> model objects, naming the bad document in a StoreError when one does not fit."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.dates = _Dates()
        self.amounts = _Amounts()

    def one(self, table: str, key: str, doc: dict):
        try:
            return _FROM_DOC[table](key, doc, self.dates, self.amounts)
        except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
            raise StoreError(
                f"{self._path}: not a valid state file: {table} {key!r}: {type(exc).__name__}: {exc}"
            ) from None

    def date(self, text: str) -> date:
        return self.dates[text]

    def many(self, table: str, docs: dict) -> dict:
        convert, dates, amounts = _FROM_DOC[table], self.dates, self.amounts
        try:
            return {key: convert(key, doc, dates, amounts) for key, doc in docs.items()}
        except Exception:
            for key, doc in docs.items():
                self.one(table, key, doc)  # raises, naming the document
            raise


# Documents keep only what differs from the models' defaults. `due_day` is always written: it is
# billing data, and a changed default in the code must not silently move anyone's due date.
# The converters take positional arguments and shared caches because they run 350,000 times a plan.


def _account_doc(a: Account) -> dict:
    doc: dict = {"company": a.company, "document": a.document, "emails": list(a.emails)}
    if a.contact_name:
        doc["contact_name"] = a.contact_name
    if a.domain:
        doc["domain"] = a.domain
    if a.portal_email is not None:
        doc["portal_email"] = a.portal_email
    if a.whatsapp is not None:
        doc["whatsapp"] = a.whatsapp
    if a.social:
        doc["social"] = dict(a.social)
    doc["due_day"] = a.due_day
    if a.past_delinquencies:
        doc["past_delinquencies"] = a.past_delinquencies
    if a.opt_out:
        doc["opt_out"] = sorted(a.opt_out)
    return doc


STAFF_OPT_OUT = "staff_opt_out"  # {channel: {"by": name, "date": ISO}}, set by `notifier opt-out`
_NO_DOC: dict = {}


def _account(key: str, doc: dict, dates: _Dates, amounts: _Amounts) -> Account:
    get = doc.get
    _check_texts(doc, ("company", "document"), ("contact_name", "domain", "portal_email", "whatsapp"))
    social = get("social", {})
    if social.__class__ is not dict or not all(h.__class__ is str for h in social.values()):
        raise TypeError(f"social must be an object of network: handle, not {_shown(social)}")
    opt_out = frozenset(_text_list(doc, "opt_out", ()))
    if STAFF_OPT_OUT in doc:
        if doc[STAFF_OPT_OUT].__class__ is not dict:
            raise TypeError(f"{STAFF_OPT_OUT} must be an object of channel: who and when, not {_shown(doc[STAFF_OPT_OUT])}")
        opt_out |= frozenset(doc[STAFF_OPT_OUT])
    return Account(
        key,
        doc["company"],
        doc["document"],
        _text_list(doc, "emails"),
        get("contact_name", ""),
        get("domain", ""),
        get("portal_email"),
        get("whatsapp"),
        tuple(social.items()),
        _whole(doc, "due_day", 1, 31),
        _whole(doc, "past_delinquencies", 0, None, 0),
        opt_out,
    )


def _shown(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _check_texts(doc: dict, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    """TypeError unless the `required` fields are text and the `optional` ones text or absent."""
    for name in required:
        if doc[name].__class__ is not str:
            raise TypeError(f"{name} must be text, not {_shown(doc[name])}")
    for name in optional:
        value = doc.get(name)
        if value is not None and value.__class__ is not str:
            raise TypeError(f"{name} must be text, not {_shown(value)}")


def _text_list(doc: dict, name: str, default=None) -> tuple[str, ...]:
    """A list of text (`"emails": "ab@x.com"` would otherwise become one address per character)."""
    value = doc[name] if default is None else doc.get(name, default)
    if value.__class__ not in (list, tuple) or not all(item.__class__ is str for item in value):
        raise TypeError(f"{name} must be a list of text, not {_shown(value)}")
    return tuple(value)


def _whole(doc: dict, name: str, low: int, high: int | None, default: int | None = None) -> int:
    value = doc[name] if default is None else doc.get(name, default)
    if value.__class__ is not int:
        raise TypeError(f"{name} must be a whole number, not {_shown(value)}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} out of range: {value}")
    return value


class _IsoDays(dict):
    """date -> its ISO text, each made once (a few hundred distinct dates among 200,000 invoices)."""

    def __missing__(self, day: date) -> str:
        text = self[day] = day.isoformat()
        return text


def _invoice_doc(i: Invoice, iso: Mapping[date, str] | None = None) -> dict:
    iso = _IsoDays() if iso is None else iso
    doc = {"account": i.account, "amount": str(i.amount), "issued": iso[i.issued], "due": iso[i.due]}
    if i.paid is not None:
        doc["paid"] = iso[i.paid]
    if i.payment_url is not None:
        doc["payment_url"] = i.payment_url
    if i.pix_code is not None:
        doc["pix_code"] = i.pix_code
    return doc


def _over_stored(old: dict, new: dict) -> dict:
    """`new` as it replaces the stored `old`: the stored payment date and its corrections stay."""
    for key in ("paid", "corrections"):
        if key in old:
            new[key] = old[key]
    return new


_ID, _ACCOUNT, _DUE, _PAID = attrgetter("id"), attrgetter("account"), attrgetter("due"), attrgetter("paid")
_ZERO = Decimal(0)


def _invoice(key: str, doc: dict, dates: _Dates, amounts: _Amounts) -> Invoice:
    get = doc.get
    _check_texts(doc, ("account",), ("payment_url", "pix_code"))
    issued, due = dates[doc["issued"]], dates[doc["due"]]
    if issued is None or due is None:
        raise TypeError("issued and due must be dates (YYYY-MM-DD)")
    return Invoice(
        key,
        doc["account"],
        amounts[doc["amount"]],
        issued,
        due,
        dates[get("paid")],
        get("payment_url"),
        get("pix_code"),
    )


def _ledger_doc(e: LedgerEntry) -> dict:
    doc = {
        "invoice": e.invoice,
        "account": e.account,
        "notice_date": e.notice_date.isoformat(),
        "stage": e.stage,
        "channel": e.channel,
        "recipient": e.recipient,
        "status": e.status,
    }
    if e.tutorial:
        doc["tutorial"] = True
    if e.attempt_id is not None:
        doc["attempt_id"] = e.attempt_id
    return doc


def _ledger(key: str, doc: dict, dates: _Dates, amounts: _Amounts) -> LedgerEntry:
    get = doc.get
    _check_texts(doc, ("invoice", "account", "stage", "channel", "recipient", "status"), ("attempt_id",))
    tutorial = get("tutorial", False)
    if tutorial.__class__ is not bool:
        raise TypeError(f"tutorial must be true or false, not {_shown(tutorial)}")
    notice_date = dates[doc["notice_date"]]
    if notice_date is None:
        raise TypeError("notice_date must be a date (YYYY-MM-DD)")
    return LedgerEntry(
        doc["invoice"],
        doc["account"],
        notice_date,
        doc["stage"],
        doc["channel"],
        doc["recipient"],
        doc["status"],
        tutorial,
        get("attempt_id"),
    )


def _history_doc(h: History) -> dict:
    doc: dict = {}
    if h.first_late_due is not None:
        doc["first_late_due"] = h.first_late_due.isoformat()
    if h.late_count:
        doc["late_count"] = h.late_count
    return doc


def _history(key: str, doc: dict, dates: _Dates, amounts: _Amounts) -> History:
    return History(key, dates[doc.get("first_late_due")], _whole(doc, "late_count", 0, None, 0))


def _archived(key: str, doc: dict, dates: _Dates, amounts: _Amounts) -> tuple[str, ...]:
    return _text_list(doc, "invoices")


def _import(key: str, doc: dict, dates: _Dates, amounts: _Amounts) -> tuple[str, date]:
    _check_texts(doc, ("sha256",), ())
    day = dates[doc["day"]]
    if day is None:
        raise TypeError("day must be a date (YYYY-MM-DD)")
    return doc["sha256"], day


def _hold(key: str, doc: dict, dates: _Dates, amounts: _Amounts) -> Hold:
    return Hold(key, doc["reason"], dates[doc["until"]], doc["by"], dates[doc["since"]], doc.get("note", ""))


_FROM_DOC: dict[str, Callable[[str, dict, _Dates, _Amounts], Any]] = {
    "accounts": _account,
    "invoices": _invoice,
    "ledger": _ledger,
    "history": _history,
    "holds": _hold,
    "meta": lambda key, doc, dates, amounts: doc,
    MARKER_TABLE: lambda key, doc, dates, amounts: doc,
    "archived": _archived,
    "imports": _import,
}


def _group_by_account(entries: Iterable[LedgerEntry]) -> dict[str, list[LedgerEntry]]:
    groups: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.account, []).append(entry)
    return groups
