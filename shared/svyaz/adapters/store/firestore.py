"""The Firestore store (official ``google-cloud-firestore`` client): the primitives of
``base.Store`` on Firestore. Layout and behaviour: ``base``.

A graph change is one optimistic transaction, every read before any write: the reads take no
lock (every round at the first round's read time: one consistent snapshot), and the writes are
one atomic commit in which every document the body read carries the precondition "unchanged
since read" (``update_time``, or ``exists: false`` for a document read as missing); a document
read but not written is verified by a write that changes nothing (an update with an empty mask,
or a delete of a missing document) under the same precondition. A commit that finds any of them
changed writes nothing and the body runs again (jittered exponential backoff,
``adapters.retry``); when the retries run out ``Contention`` is raised. A body that writes
nothing commits nothing (a duplicate is one read round).

Why not the client's read-write transaction: its reads hold shared locks until the commit, and
the events of one customer read and write the same profile document. Two of them in flight
each wait at commit for the other's shared lock; production resolves that by failing or
delaying one of them, the emulator only by its 2 s lock timeout, which fails all of them
(8 workers on 3 hub chains: 209 commits failed after exactly 2 s, 207 of them against another
one blocked in its own commit). Here no lock is held across the client's round trips: a
conflict costs one failed commit. (This is how Firestore's mobile and web SDKs run their
transactions, optimistically.) The Python client also opens each transaction with a
BeginTransaction of its own; this opens none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.types import common
from google.cloud.firestore_v1.types import write as write_pb

from svyaz.adapters.retry import Backoff, retrying
from svyaz.adapters.store.base import (
    TOUCHPOINTS,
    Conflict,
    Contention,
    Duplicate,
    Found,
    Get,
    Reader,
    Ref,
    Store,
    StoreError,
    Unstorable,
    Write,
    touchpoint_from_doc,
)
from svyaz.domain.model import Touchpoint, to_ms

log = logging.getLogger("svyaz.adapters.store.firestore")
T = TypeVar("T")

# Errors after which the same transaction may succeed if tried again.
RETRYABLE = (gexc.Aborted, gexc.ServiceUnavailable, gexc.DeadlineExceeded)
# A commit that found a document it read changed (or created, or gone) since the read.
CHANGED = (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.NotFound)
IN_QUERY_LIMIT = 30  # Firestore's cap on values in an "in" filter


SNAPSHOT = "read_time"  # a transaction's snapshot time, kept with its reads


def _unchanged(update_time: Any) -> common.Precondition:
    if update_time is None:
        return common.Precondition(exists=False)
    return common.Precondition(update_time=update_time)


def classified(what: str, exc: Exception) -> StoreError:
    """Any other API error, decided once: an argument Firestore refuses (a document over 1 MiB,
    a field it cannot hold) never succeeds on retry (``Unstorable``: poison); anything else
    (permissions, internal errors, quota) may, so it is a transient ``StoreError``."""
    if isinstance(exc, gexc.InvalidArgument):
        return Unstorable(f"{what}: Firestore cannot hold it ({type(exc).__name__})")
    return StoreError(f"{what}: {type(exc).__name__}")


class FirestoreStore(Store):
    def __init__(
        self,
        pepper: bytes,
        client: firestore.Client | None = None,
        *,
        project: str | None = None,
        database: str = "(default)",
        max_attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> None:
        super().__init__(pepper)
        self.client = client or firestore.Client(project=project, database=database)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.attempts = {"retries": 0, "contention": 0}
        # Called as each transaction attempt starts; what it returns, if the attempt fails (bench).
        self.on_attempt: Callable[[], Callable[[], None]] | None = None

    def _ref(self, ref: Ref) -> Any:
        return self.client.collection(ref[0]).document(ref[1])

    # --- primitives ---------------------------------------------------------------------------
    def _get(
        self, refs: list[Ref], fields: list[str] | None = None, seen: dict[Ref, Any] | None = None
    ) -> dict[Ref, dict[str, Any]]:
        """One BatchGetDocuments. ``seen``: a transaction's reads, each document's ``update_time``
        (None: missing) as first read; its first round fixes the snapshot the next ones read."""
        if not refs:
            return {}
        wanted = {self._ref(ref): ref for ref in refs}
        by_path = {doc_ref.path: ref for doc_ref, ref in wanted.items()}
        at = None if seen is None else seen.get(SNAPSHOT)
        docs = list(self.client.get_all(list(wanted), field_paths=fields, read_time=at))
        if seen is not None:
            if docs and at is None:
                seen[SNAPSHOT] = docs[0].read_time
            for d in docs:
                seen.setdefault(by_path[d.reference.path], d.update_time if d.exists else None)
        # The snapshot's own data, not ``to_dict()``: the client deep-copied it into the snapshot
        # already, and nothing else holds that snapshot (a second deep copy per document read).
        return {by_path[d.reference.path]: d._data for d in docs if d.exists}

    def _get_found(self, ref: Ref) -> Found | None:
        doc = self._ref(ref).get()
        return Found(doc.id, doc.to_dict(), doc.update_time) if doc.exists else None

    def _written_ms(self, get: Get, ref: Ref) -> int | None:
        # A transaction's read keeps each document's update_time: its commit time, on the server.
        update_time = get.record.get(ref) if isinstance(get, Reader) else None
        return None if update_time is None else to_ms(update_time) + 1

    def _backoff(self) -> Backoff:
        return Backoff(self.max_attempts, self.base_delay, self.max_delay)

    def _reading(self) -> Reader:
        seen: dict[Any, Any] = {}
        return Reader(lambda refs, fields=None: self._get(refs, fields, seen), seen)

    def _transaction(self, body: Callable[[Get], tuple[T, list[Write]]], reader: Reader | None = None) -> T:
        earlier = [] if reader is None else [reader]  # the first attempt's rounds read before

        def once() -> T:
            failed = self.on_attempt() if self.on_attempt is not None else None
            reading = earlier.pop() if earlier else self._reading()
            seen = reading.record
            try:
                result, writes = body(reading)
                if writes:
                    batch = self.client.batch()
                    for write in writes:
                        self._stage(batch, write)
                    self._guard(batch, seen)
                    batch.commit()
            except BaseException:
                if failed is not None:
                    failed()
                raise
            return result

        def retried(_: BaseException) -> None:
            self.attempts["retries"] += 1

        try:
            return retrying(once, RETRYABLE + CHANGED, self._backoff(), on_retry=retried)
        except (*RETRYABLE, *CHANGED) as exc:
            self.attempts["contention"] += 1
            name = type(exc).__name__
            raise Contention(f"transaction gave up after {self.max_attempts} attempts ({name})") from exc
        except gexc.GoogleAPICallError as exc:
            raise classified("transaction", exc) from exc

    def _guard(self, batch: Any, seen: dict[Any, Any]) -> None:
        """Make the commit conditional on everything read being unchanged: a precondition on
        each write of a document read (unless the write has its own), a verifying write that
        changes nothing for each document read and not written."""
        seen.pop(SNAPSHOT, None)
        by_path = {self._ref(ref)._document_path: ref for ref in seen}
        written = set()
        for pb in batch._write_pbs:
            path = pb.update.name or pb.delete
            written.add(path)
            # An update's own "exists" is weaker than unchanged; a revision of its own stays.
            if path in by_path and "update_time" not in pb.current_document:
                pb.current_document = _unchanged(seen[by_path[path]])
        for path, ref in by_path.items():
            if path in written:
                continue
            if seen[ref] is None:  # still missing: deleting a missing document changes nothing
                pb = write_pb.Write(delete=path, current_document=common.Precondition(exists=False))
            else:  # an update of no field changes nothing, not even update_time
                pb = write_pb.Write(
                    update={"name": path},
                    update_mask=common.DocumentMask(field_paths=[]),
                    current_document=common.Precondition(update_time=seen[ref]),
                )
            batch._add_write_pbs([pb])

    def _stage(self, target: Any, write: Write) -> None:
        """Add one write to a transaction or a batch (same API)."""
        ref = self._ref(write.ref)
        option = None
        if write.revision is not None:
            option = self.client.write_option(last_update_time=write.revision)
        if write.op == "create":
            target.create(ref, write.doc)
        elif write.op == "update":
            target.update(ref, write.doc, option=option)
        elif write.op == "delete":
            target.delete(ref, option=option)
        else:
            target.set(ref, write.doc)

    def _commit(self, writes: list[Write]) -> None:
        for start in range(0, len(writes), 500):  # Firestore's cap on writes per batch
            batch = self.client.batch()
            for write in writes[start : start + 500]:
                self._stage(batch, write)
            try:
                batch.commit()
            except gexc.AlreadyExists as exc:
                raise Duplicate(str(exc)) from exc
            except (gexc.NotFound, gexc.FailedPrecondition) as exc:
                raise Conflict(str(exc)) from exc
            except (*RETRYABLE, gexc.ResourceExhausted) as exc:
                raise StoreError(f"write failed: {type(exc).__name__}") from exc
            except gexc.GoogleAPICallError as exc:
                raise classified("write", exc) from exc

    def _in_chunks(self, collection: str, field: str, values: list[str], op: str = "in") -> Iterator[Any]:
        for start in range(0, len(values), IN_QUERY_LIMIT):
            chunk = values[start : start + IN_QUERY_LIMIT]
            yield self.client.collection(collection).where(filter=FieldFilter(field, op, chunk))

    def _where_in(
        self,
        collection: str,
        field: str,
        values: list[str],
        limit: int | None = None,
        *,
        contains: bool = False,
    ) -> list[Found]:
        found: dict[str, Found] = {}  # a document may match two chunks (array-contains-any)
        for query in self._in_chunks(collection, field, values, "array_contains_any" if contains else "in"):
            query = query.limit(limit - len(found)) if limit is not None else query
            found |= {d.id: Found(d.id, d.to_dict(), d.update_time) for d in query.stream()}
            if limit is not None and len(found) >= limit:
                break
        return list(found.values())

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
        found: list[Found] = []
        for query in self._in_chunks(TOUCHPOINTS, "profile_id", profile_ids):
            if type_ is not None:
                query = query.where(filter=FieldFilter("type", "==", type_))
            if attributed:
                query = query.where(filter=FieldFilter("attributed", "==", True))
            if before is not None:
                query = query.where(filter=FieldFilter("timestamp", "<", before))
            if limit is not None:
                query = query.order_by("timestamp", direction=firestore.Query.DESCENDING).limit(limit)
            if fields is not None:
                query = query.select(fields)
            found += [Found(d.id, d.to_dict(), d.update_time) for d in query.stream()]
        if limit is not None:  # newest first across the chunks
            found.sort(key=lambda f: (f.doc.get("timestamp"), f.key), reverse=True)
        return found[:limit]

    def touchpoints_between(self, type_: str, start: datetime, end: datetime) -> Iterator[Touchpoint]:
        query = (
            self.client.collection(TOUCHPOINTS)
            .where(filter=FieldFilter("type", "==", type_))
            .where(filter=FieldFilter("timestamp", ">=", start))
            .where(filter=FieldFilter("timestamp", "<", end))
        )
        return (touchpoint_from_doc(d.to_dict()) for d in query.stream())

    def _scan(self, collection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        return ((d.id, d.to_dict()) for d in self.client.collection(collection).stream())
