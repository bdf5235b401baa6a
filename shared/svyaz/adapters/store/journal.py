"""The memory store with a data directory (``svyaz serve --data-dir``): the graph survives a
restart, a crash or a ``kill -9``.

The memory store checks each commit's batch of document writes before it applies it, its
stripes held; here the checked batch is first appended to the journal as one JSON line and
synced (concurrent commits share an fsync), so a commit that returned is on disk. At start the
snapshot and the journal are replayed. When the journal passes ``compact_bytes`` a snapshot of
every document is written beside it (a temporary file renamed over the old snapshot) and a new
journal begun; the old one is then deleted. A crash at any point leaves a snapshot and the
journals after it, which replay to the same documents.

``<dir>/store/``: ``meta.json`` (the format, a fingerprint of the pepper: document ids are keyed
hashes, so data written under another pepper would never be found), ``snapshot.jsonl`` (a header
line ``{"generation": g}``, then ``[collection, id, document]`` lines), ``journal.<g>.jsonl`` (one
line per commit: ``[[collection, id, op, document], ...]``) and ``LOCK`` (one process at a time).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from svyaz.adapters.datadir import (
    AppendLog,
    DataDirError,
    DirectoryLock,
    read_lines,
    sync_directory,
    write_atomic,
)
from svyaz.adapters.store.base import StoreError, Write
from svyaz.adapters.store.memory import STRIPES, MemoryStore

log = logging.getLogger("svyaz.adapters.store.journal")

FORMAT = 1
COMPACT_BYTES = 64 * 1024**2  # a journal this long is folded into a new snapshot


def pepper_fingerprint(pepper: bytes) -> str:
    return hmac.new(pepper, b"svyaz data directory", hashlib.sha256).hexdigest()[:16]


class JournaledStore(MemoryStore):
    def __init__(
        self,
        pepper: bytes,
        directory: str | Path,
        *,
        compact_bytes: int = COMPACT_BYTES,
        sync: bool = True,
        stripes: int = STRIPES,
    ) -> None:
        super().__init__(pepper, stripes)
        self.path = Path(directory) / "store"
        self.compact_bytes = compact_bytes
        self.sync = sync
        self._dir_lock = DirectoryLock(self.path)
        self._compacting = threading.Lock()  # starting a compaction
        self._one_compaction = threading.Lock()  # running one
        self._compaction: threading.Thread | None = None
        self._rotated = {"commits": 0, "syncs": 0, "bytes": 0}  # of the journals before this one
        try:
            self._check_meta(pepper)
            self.generation, valid = self._load()
            self._journal = AppendLog(self._journal_path(self.generation), sync=sync, valid=valid)
        except BaseException:
            self._dir_lock.release()
            raise

    # --- opening ----------------------------------------------------------------------------
    def _check_meta(self, pepper: bytes) -> None:
        meta_path = self.path / "meta.json"
        fingerprint = pepper_fingerprint(pepper)
        if not meta_path.exists():
            write_atomic(meta_path, [{"format": FORMAT, "pepper": fingerprint}])
            return
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise DataDirError(f"{self.path} holds format {meta.get('format')}, this svyaz reads {FORMAT}")
        if meta.get("pepper") != fingerprint:
            raise DataDirError(
                f"{self.path} was written with another SVYAZ_PEPPER (its document ids are keyed by "
                "it): start with that pepper, or use another directory"
            )

    def _journal_path(self, generation: int) -> Path:
        return self.path / f"journal.{generation:06d}.jsonl"

    def _journals(self) -> dict[int, Path]:
        found = {}
        for path in self.path.glob("journal.*.jsonl"):
            try:
                found[int(path.name.split(".")[1])] = path
            except ValueError:
                continue
        return found

    def _load(self) -> tuple[int, int | None]:
        """Replay the snapshot, then each journal from its generation on; the generation to
        append to and the valid length of its journal (a torn last line is cut off)."""
        generation = 1
        snapshot = self.path / "snapshot.jsonl"
        if snapshot.exists():
            header: dict[str, Any] = {}

            def document(record: Any) -> None:
                if isinstance(record, dict):
                    header.update(record)
                else:
                    self._put(*record)

            read_lines(snapshot, document)
            generation = int(header["generation"])
        valid = None
        for number, path in sorted(self._journals().items()):
            if number < generation:  # folded into the snapshot; its deletion was interrupted
                path.unlink()
                continue
            valid = read_lines(path, self._replay)
            generation = number
        self._expire(datetime.now(UTC))
        return generation, valid

    def _replay(self, batch: list[list[Any]]) -> None:
        writes = []
        for collection, key, op, doc in batch:
            if op == "update" and key not in self.docs[collection]:
                # Only an expired record can be gone here (expiry is not journaled).
                continue
            writes.append(Write(collection, key, doc, op))
        self._apply(writes)

    # --- writing ----------------------------------------------------------------------------
    def journal_stats(self) -> dict[str, int]:
        """Commits journaled, fsyncs and bytes written since this store was opened (benchmarks)."""
        journal = self._journal
        return {
            "commits": self._rotated["commits"] + journal.lines,
            "syncs": self._rotated["syncs"] + journal.syncs,
            "bytes": self._rotated["bytes"] + journal.bytes,
        }

    def _log(self, writes: list[Write]) -> None:
        try:
            self._journal.append([[[w.collection, w.key, w.op, w.doc] for w in writes]])
        except (OSError, ValueError) as exc:  # ValueError: written after close()
            raise StoreError(f"the data directory refused the commit: {type(exc).__name__}") from exc

    def _commit_if(self, read: dict[Any, int | None], writes: list[Write]) -> bool:
        done = super()._commit_if(read, writes)
        if done and writes and self._journal.size > self.compact_bytes:
            self._compact_soon()
        return done

    def _compact_soon(self) -> None:
        with self._compacting:
            if self._compaction is not None and self._compaction.is_alive():
                return
            self._compaction = threading.Thread(target=self.compact, daemon=True, name="svyaz-compaction")
            self._compaction.start()

    def compact(self) -> None:
        """Write a snapshot of every document and start a new journal. Commits wait only
        while the documents' maps are copied (documents are replaced, never changed in place,
        so the copies stay as they were), not while the snapshot is written."""
        with self._one_compaction:
            self._compact()

    def _compact(self) -> None:
        for stripe in self._stripes:  # in order, as commits take them: no commit is between
            stripe.acquire()  # its journal line and its apply
        try:
            with self._latch:
                docs = {collection: dict(held) for collection, held in self.docs.items()}
            previous = self._journal
            counts = {"commits": previous.lines, "syncs": previous.syncs, "bytes": previous.bytes}
            for name, value in counts.items():
                self._rotated[name] += value
            self.generation += 1
            self._journal = AppendLog(self._journal_path(self.generation), sync=self.sync)
            previous.close()
        finally:
            for stripe in reversed(self._stripes):
                stripe.release()
        write_atomic(self.path / "snapshot.jsonl", self._snapshot_lines(docs, self.generation))
        for number, path in self._journals().items():
            if number < self.generation:
                path.unlink()
        sync_directory(self.path)
        log.info("data directory compacted: snapshot at journal generation %d", self.generation)

    @staticmethod
    def _snapshot_lines(docs: dict[str, dict[str, Any]], generation: int) -> Iterator[Any]:
        yield {"format": FORMAT, "generation": generation}
        for collection, held in docs.items():
            for key, doc in held.items():
                yield [collection, key, doc]

    def reopen(self) -> None:
        """Forget what memory holds and read it back from the directory: what a restart of
        the process does (tests check the contract on what was read back)."""
        with self._one_compaction:
            for stripe in self._stripes:
                stripe.acquire()
            try:
                self._journal.close()
                with self._latch:
                    self._empty()
                    self.generation, valid = self._load()
                self._journal = AppendLog(self._journal_path(self.generation), sync=self.sync, valid=valid)
            finally:
                for stripe in reversed(self._stripes):
                    stripe.release()

    def close(self) -> None:
        compaction = self._compaction
        if compaction is not None:
            compaction.join()
        self._journal.close()
        self._dir_lock.release()
