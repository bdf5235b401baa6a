"""The Firestore store (official ``google-cloud-firestore`` client): the primitives of
``base.Store`` on Firestore. Layout and behaviour: ``base``.

A graph change is one read-write transaction, every read before any write. Contention (ABORTED,
lock timeouts) is retried with jittered exponential backoff (``adapters.retry``); when the
retries run out ``Contention`` is raised and the transaction has been rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from svyaz.adapters.retry import Backoff, retrying
from svyaz.adapters.store.base import (
    TOUCHPOINTS,
    Conflict,
    Contention,
    Duplicate,
    Found,
    Get,
    Ref,
    Store,
    StoreError,
    Unstorable,
    Write,
    touchpoint_from_doc,
)
from svyaz.domain.model import Touchpoint

log = logging.getLogger("svyaz.adapters.store.firestore")
T = TypeVar("T")

# Errors after which the same transaction may succeed if tried again.
RETRYABLE = (gexc.Aborted, gexc.ServiceUnavailable, gexc.DeadlineExceeded)
IN_QUERY_LIMIT = 30  # Firestore's cap on values in an "in" filter


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

    def _ref(self, ref: Ref) -> Any:
        return self.client.collection(ref[0]).document(ref[1])

    # --- primitives ---------------------------------------------------------------------------
    def _get(
        self, refs: list[Ref], fields: list[str] | None = None, transaction: Any = None
    ) -> dict[Ref, dict[str, Any]]:
        if not refs:
            return {}
        by_path = {self._ref(ref).path: ref for ref in refs}
        wanted = [self.client.document(path) for path in by_path]
        docs = self.client.get_all(wanted, field_paths=fields, transaction=transaction)
        return {by_path[d.reference.path]: d.to_dict() for d in docs if d.exists}

    def _get_found(self, ref: Ref) -> Found | None:
        doc = self._ref(ref).get()
        return Found(doc.id, doc.to_dict(), doc.update_time) if doc.exists else None

    def _backoff(self) -> Backoff:
        return Backoff(self.max_attempts, self.base_delay, self.max_delay)

    def _transaction(self, body: Callable[[Get], tuple[T, list[Write]]]) -> T:
        @firestore.transactional
        def run(transaction: firestore.Transaction) -> T:
            result, writes = body(lambda refs, fields=None: self._get(refs, fields, transaction))
            for write in writes:
                self._stage(transaction, write)
            return result

        def once() -> T:
            try:
                return run(self.client.transaction(max_attempts=1))
            except ValueError as exc:
                # The client wraps a commit that was ABORTED on its last attempt in ValueError.
                if isinstance(exc.__cause__, RETRYABLE):
                    raise exc.__cause__ from exc
                raise

        def retried(_: BaseException) -> None:
            self.attempts["retries"] += 1

        try:
            return retrying(once, RETRYABLE + (gexc.AlreadyExists,), self._backoff(), on_retry=retried)
        except (*RETRYABLE, gexc.AlreadyExists) as exc:
            self.attempts["contention"] += 1
            name = type(exc).__name__
            raise Contention(f"transaction gave up after {self.max_attempts} attempts ({name})") from exc
        except gexc.GoogleAPICallError as exc:
            raise classified("transaction", exc) from exc

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
