"""The embedded default store: the Firestore layout in dicts, indexed the way Firestore is.

Same documents, same keyed-hash ids; every query of an event path goes through an index
(identifier records by profile, tombstones by survivor, touchpoints by profile and by type and
time), so an operation costs what it costs on Firestore, whatever the store holds.

Transactions are optimistic, with Firestore's semantics (serializable; it passes the same
contract suite): the body reads without holding any lock, each document's revision is recorded,
and the commit checks under the stripe locks of what it read and writes that none of it changed,
else the body runs again. Events of different customers touch different documents, so they share
no lock but the latch, which is held only while documents and indexes change (microseconds),
never across the engine's work or a commit's ``before_apply`` hook (a journal may write there).
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from svyaz.adapters.store.base import (
    AUDIT,
    COLLECTIONS,
    IDENTIFIERS,
    LEDGER,
    PROCESSED,
    PROFILES,
    SPLITS,
    TOUCHPOINTS,
    Conflict,
    Contention,
    Duplicate,
    Found,
    Get,
    Reader,
    Ref,
    Store,
    Write,
    touchpoint_from_doc,
)
from svyaz.domain.model import Touchpoint

T = TypeVar("T")
# (collection, field) pairs kept in a secondary index: value -> set of document ids (a list
# field: each of its values).
INDEXED = {
    IDENTIFIERS: "profile_id",
    PROFILES: "merged_into",
    TOUCHPOINTS: "profile_id",
    AUDIT: "profile_ids",
    SPLITS: "profile_id",
    PROCESSED: "profile_ids",
}


# Collections with a TTL policy on ``expire_at`` (Firestore deletes a document once it passed).
EXPIRING = (PROCESSED, TOUCHPOINTS)
def _same_time(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    """Both versions of a touchpoint have the same entry in the time index (or neither has one)."""
    if old is None or new is None:
        return False
    return (old.get("type"), old.get("timestamp")) == (new.get("type"), new.get("timestamp"))


STRIPES = 256  # commit locks; two events share one only by a hash collision of their documents
MAX_ATTEMPTS = 100  # a transaction's tries before ``Contention`` (each costs microseconds)


class MemoryStore(Store):
    def __init__(self, pepper: bytes = b"svyaz-memory", stripes: int = STRIPES) -> None:
        super().__init__(pepper)
        # The latch makes each read round and each commit's changes atomic; the stripes keep a
        # commit's check and its changes together against commits of the same documents.
        self._latch = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(stripes)]
        # Called with a commit's writes once they are checked, its stripes held (tests; a journal).
        self.before_apply: Callable[[list[Write]], None] | None = None
        self.attempts = {"retries": 0, "contention": 0}
        self._empty()

    def _empty(self) -> None:
        self.docs: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in (*COLLECTIONS, LEDGER)}
        self._revisions: dict[Ref, int] = {}
        self._revision = 0
        self._written: dict[Ref, int] = {}  # when an event's record was last written (ms, up)
        self._index: dict[str, dict[Any, set[str]]] = {c: {} for c in INDEXED}
        # Touchpoints by type, each list sorted by (timestamp, id): reports read a time range.
        self._by_type: dict[str, list[tuple[datetime, str]]] = {}
        # Documents with a TTL (idempotency records, erased touchpoints' stubs) by expire_at.
        self._expiry: list[tuple[datetime, str, str]] = []

    # Back-compatible names for the collections (bench, audits).
    @property
    def identifiers(self) -> dict[str, dict[str, Any]]:
        return self.docs[IDENTIFIERS]

    @property
    def profiles(self) -> dict[str, dict[str, Any]]:
        return self.docs[PROFILES]

    @property
    def touchpoint_docs(self) -> dict[str, dict[str, Any]]:
        return self.docs[TOUCHPOINTS]

    # --- documents and indexes ----------------------------------------------------------------
    def _put(self, collection: str, key: str, doc: dict[str, Any] | None) -> None:
        old = self.docs[collection].pop(key, None)
        # A touchpoint changed in place (its credit, its owner) keeps its place in the time index:
        # taking it out of a list sorted by time and back costs a move of the whole list's tail.
        timed = collection == TOUCHPOINTS and not _same_time(old, doc)
        if old is not None:
            self._unindex(collection, key, old, timed)
        self._revision += 1
        self._revisions[(collection, key)] = self._revision
        if collection in EXPIRING:  # (under the latch: a read that starts later sees the write)
            self._written[(collection, key)] = time.time_ns() // 1_000_000 + 1
        if doc is None:
            self._revisions.pop((collection, key), None)
            self._written.pop((collection, key), None)
            return
        self.docs[collection][key] = doc
        self._reindex(collection, key, doc, timed)

    @staticmethod
    def _indexed_values(collection: str, doc: dict[str, Any]) -> list[Any]:
        field = INDEXED.get(collection)
        value = None if field is None else doc.get(field)
        return [] if value is None else list(value) if isinstance(value, list) else [value]

    def _reindex(self, collection: str, key: str, doc: dict[str, Any], timed: bool = True) -> None:
        for value in self._indexed_values(collection, doc):
            self._index[collection].setdefault(value, set()).add(key)
        if timed and collection == TOUCHPOINTS and "type" in doc:
            bisect.insort(self._by_type.setdefault(doc["type"], []), (doc["timestamp"], key))
        if collection in EXPIRING and doc.get("expire_at") is not None:
            heapq.heappush(self._expiry, (doc["expire_at"], collection, key))

    def _unindex(self, collection: str, key: str, doc: dict[str, Any], timed: bool = True) -> None:
        for value in self._indexed_values(collection, doc):
            keys = self._index[collection].get(value, set())
            keys.discard(key)
            if not keys:
                self._index[collection].pop(value, None)
        if timed and collection == TOUCHPOINTS and "type" in doc:
            entries = self._by_type.get(doc["type"], [])
            at = bisect.bisect_left(entries, (doc["timestamp"], key))
            if at < len(entries) and entries[at] == (doc["timestamp"], key):
                del entries[at]

    def _expire(self, now: datetime) -> None:
        """Documents expire by the same TTL policies as on Firestore (``infra/firestore.tf``)."""
        while self._expiry and self._expiry[0][0] <= now:
            _, collection, key = heapq.heappop(self._expiry)
            doc = self.docs[collection].get(key)
            if doc is not None and doc.get("expire_at") is not None and doc["expire_at"] <= now:
                self._put(collection, key, None)

    def _read(self, refs: list[Ref], fields: list[str] | None = None) -> dict[Ref, dict[str, Any]]:
        found = {}
        for collection, key in refs:
            doc = self.docs[collection].get(key)
            if doc is not None:
                # Documents are replaced, never changed in place: a shallow copy is enough.
                found[(collection, key)] = dict(doc)
        return found

    # --- primitives ---------------------------------------------------------------------------
    def _get(self, refs: list[Ref], fields: list[str] | None = None) -> dict[Ref, dict[str, Any]]:
        with self._latch:
            return self._read(refs, fields)

    def _get_found(self, ref: Ref) -> Found | None:
        with self._latch:
            found = self._found(ref[0], [ref[1]])
        return found[0] if found else None

    def _written_ms(self, get: Get, ref: Ref) -> int | None:
        return self._written.get(ref)

    def _reading(self) -> Reader:
        """A transaction's getter: one read round, each document's first revision recorded."""
        read: dict[Ref, int | None] = {}

        def get(refs: list[Ref], fields: list[str] | None = None) -> dict[Ref, dict[str, Any]]:
            with self._latch:
                for ref in refs:
                    read.setdefault(ref, self._revisions.get(ref))
                return self._read(refs, fields)

        return Reader(get, read)

    def _transaction(self, body: Callable[[Get], tuple[T, list[Write]]], reader: Reader | None = None) -> T:
        for _ in range(MAX_ATTEMPTS):
            reading, reader = reader or self._reading(), None  # a retry reads everything afresh
            read = reading.record  # the revision each document had when first read
            try:
                result, writes = body(reading)
            except Exception:
                if self._unchanged(read):
                    raise
                continue  # it read documents mid-change (across rounds): what it saw is gone
            if self._commit_if(read, writes):
                return result
            self.attempts["retries"] += 1
            time.sleep(0)  # let the transaction that won finish
        self.attempts["contention"] += 1
        raise Contention(f"transaction gave up after {MAX_ATTEMPTS} attempts")

    def _unchanged(self, read: dict[Ref, int | None]) -> bool:
        return all(self._revisions.get(ref) == revision for ref, revision in read.items())

    def _stripe(self, ref: Ref) -> int:
        return zlib.crc32(f"{ref[0]}/{ref[1]}".encode()) % len(self._stripes)

    def _commit_if(self, read: dict[Ref, int | None], writes: list[Write]) -> bool:
        """Write if nothing read changed meanwhile (False: run the transaction again)."""
        if not writes:
            with self._latch:
                return self._unchanged(read)
        stripes = sorted({self._stripe(ref) for ref in [*read, *(w.ref for w in writes)]})
        for n in stripes:  # always in the same order: no deadlock
            self._stripes[n].acquire()
        try:
            if not self._unchanged(read):
                return False
            self._check(writes)
            self._log(writes)
            if self.before_apply is not None:
                self.before_apply(writes)
            with self._latch:
                self._apply(writes)
            return True
        finally:
            for n in reversed(stripes):
                self._stripes[n].release()

    def _log(self, writes: list[Write]) -> None:
        """A checked batch, before it is applied, its stripes held (``journal.JournaledStore``)."""

    def _commit(self, writes: list[Write]) -> None:
        self._commit_if({}, writes)

    def _check(self, writes: list[Write]) -> None:
        """All preconditions first: then every write, atomic like a Firestore batch."""
        for write in writes:
            exists = write.key in self.docs[write.collection]
            if write.op == "create" and exists:
                raise Duplicate(write.key)
            if write.op == "update" and not exists:
                raise Conflict(f"{write.collection} document gone")
            if write.revision is not None and self._revisions.get(write.ref) != write.revision:
                raise Conflict(f"{write.collection} document changed")

    def _apply(self, writes: list[Write]) -> None:
        for write in writes:
            if write.op == "update":
                self._put(
                    write.collection,
                    write.key,
                    {**self.docs[write.collection][write.key], **(write.doc or {})},
                )
            else:
                self._put(
                    write.collection, write.key, None if write.op == "delete" else dict(write.doc or {})
                )
        if self._expiry and any(w.collection in EXPIRING for w in writes):
            self._expire(datetime.now(UTC))

    def _found(self, collection: str, keys: set[str] | list[str]) -> list[Found]:
        docs = self.docs[collection]
        return [Found(k, dict(docs[k]), self._revisions.get((collection, k))) for k in keys if k in docs]

    def _by(self, collection: str, values: list[str]) -> list[str]:
        index = self._index[collection]
        return sorted({key for value in values for key in index.get(value, ())})

    def _where_in(
        self,
        collection: str,
        field: str,
        values: list[str],
        limit: int | None = None,
        *,
        contains: bool = False,
    ) -> list[Found]:
        assert INDEXED.get(collection) == field, f"{collection}.{field} has no index"
        with self._latch:
            return self._found(collection, self._by(collection, values)[:limit])

    def _touchpoints_of(
        self,
        profile_ids: list[str],
        limit: int | None = None,
        before: datetime | None = None,
        *,
        type_: str | None = None,
        attributed: bool = False,
        fields: list[str] | None = None,
    ) -> list[Found]:
        with self._latch:
            found = self._found(TOUCHPOINTS, self._by(TOUCHPOINTS, profile_ids))
        found = [
            f
            for f in found
            if (before is None or f.doc["timestamp"] < before)
            and (type_ is None or f.doc["type"] == type_)
            and (not attributed or f.doc.get("attributed"))
        ]
        found.sort(key=lambda f: (f.doc["timestamp"], f.key), reverse=True)
        return found[:limit]

    def touchpoints_between(self, type_: str, start: datetime, end: datetime) -> Iterator[Touchpoint]:
        with self._latch:
            entries = self._by_type.get(type_, [])
            low = bisect.bisect_left(entries, (start, ""))
            high = bisect.bisect_left(entries, (end, ""))
            docs = [dict(self.docs[TOUCHPOINTS][key]) for _, key in entries[low:high]]
        return (touchpoint_from_doc(d) for d in docs)

    def _scan(self, collection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._latch:
            docs = [(key, dict(doc)) for key, doc in self.docs[collection].items()]
        return iter(docs)
