"""The raw limit: the least work a store must do for an event, with no engine at all.

* a no-change event: read its identifier documents, write one touchpoint document;
* a linking event: one transaction that reads and writes as many documents as svyaz's
  transaction for that event did. It reads and writes *mirrors* of the very documents svyaz
  touched (``bench_raw/{collection}-{id}``), so two events of one customer contend in the raw
  run exactly as they did in svyaz's run, while the real graph stays untouched;
* a duplicate delivery: read its identifier documents.

Each backend works on the store's own client: the dicts and lock of ``MemoryStore``, the
``firestore.Client`` of ``FirestoreStore`` (with the same attempt and backoff settings).
"""

from __future__ import annotations

import random
import time
from typing import Any, Protocol

RAW_COLLECTION = "bench_raw"


class RawGaveUp(RuntimeError):
    """The raw transaction kept aborting (the same signal as ``store.base.Contention``)."""


class RawBackend(Protocol):
    retries: int
    lock_timeouts: int

    def no_change(self, identifier_keys: list[str], touchpoint_id: str, doc: dict[str, Any]) -> float: ...

    def linking(self, read_paths: list[str], writes: list[tuple[str, dict[str, Any]]]) -> float:
        """Run the transaction; return the seconds lost in failed attempts and backoff."""

    def duplicate(self, identifier_keys: list[str]) -> float: ...

    def fast_path(self, identifier_keys: list[str], touchpoint_id: str, doc: dict[str, Any]) -> float:
        """svyaz's own fast-path round trips with no engine: one read round (the records, the
        idempotency record, the touchpoint) and the touchpoint's create: what the fast path
        sends when its read and write take less than the grace period (``FAST_GRACE_MS``; a
        slower one also reads its owner's state, seen in the class's ``rpcs_by_method_mean``)."""


class MemoryRaw:
    """Plain dict reads and writes under the store's latch (what its read rounds and commits hold)."""

    def __init__(self, store: Any) -> None:
        self.lock = store._latch
        self.identifiers: dict[str, dict[str, Any]] = store.identifiers
        self.mirror: dict[str, dict[str, Any]] = {}
        self.retries = self.lock_timeouts = 0

    def no_change(self, identifier_keys: list[str], touchpoint_id: str, doc: dict[str, Any]) -> float:
        with self.lock:
            for key in identifier_keys:
                self.identifiers.get(key)
            self.mirror[f"touchpoints/{touchpoint_id}"] = doc
        return 0.0

    def linking(self, read_paths: list[str], writes: list[tuple[str, dict[str, Any]]]) -> float:
        with self.lock:
            for path in read_paths:
                self.mirror.get(path)
            for path, doc in writes:
                self.mirror[path] = doc
        return 0.0

    def duplicate(self, identifier_keys: list[str]) -> float:
        with self.lock:
            for key in identifier_keys:
                self.identifiers.get(key)
        return 0.0

    def fast_path(self, identifier_keys: list[str], touchpoint_id: str, doc: dict[str, Any]) -> float:
        with self.lock:
            for key in identifier_keys:
                self.identifiers.get(key)
            self.mirror.get(f"touchpoints/{touchpoint_id}")
        with self.lock:
            self.mirror[f"touchpoints/{touchpoint_id}"] = doc
        return 0.0


class FirestoreRaw:
    def __init__(
        self,
        client: Any,
        *,
        max_attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        lock_timeout_s: float = 1.5,
    ) -> None:
        from google.api_core import exceptions as gexc
        from google.cloud import firestore

        self.client = client
        self.firestore = firestore
        self.retryable = (gexc.Aborted, gexc.ServiceUnavailable, gexc.DeadlineExceeded)
        self.max_attempts, self.base_delay, self.max_delay = max_attempts, base_delay, max_delay
        self.lock_timeout_s = lock_timeout_s
        self.retries = self.lock_timeouts = 0
        self._identifiers = client.collection("identifiers")
        self._mirror = client.collection(RAW_COLLECTION)

    def _mirrored(self, path: str) -> Any:
        return self._mirror.document(path.replace("/", "-"))

    def no_change(self, identifier_keys: list[str], touchpoint_id: str, doc: dict[str, Any]) -> float:
        refs = [self._identifiers.document(key) for key in identifier_keys]
        list(self.client.get_all(refs))
        self._mirrored(f"touchpoints/{touchpoint_id}").set(doc)
        return 0.0

    def linking(self, read_paths: list[str], writes: list[tuple[str, dict[str, Any]]]) -> float:
        reads = [self._mirrored(path) for path in read_paths]
        targets = [(self._mirrored(path), doc) for path, doc in writes]

        @self.firestore.transactional
        def run(transaction: Any) -> None:
            list(self.client.get_all(reads, transaction=transaction))
            for ref, doc in targets:
                transaction.set(ref, doc)

        first = time.perf_counter()
        for attempt in range(self.max_attempts):
            started = time.perf_counter()
            try:
                run(self.client.transaction(max_attempts=1))
                return started - first
            except self.retryable:
                pass
            except ValueError as exc:
                if not isinstance(exc.__cause__, self.retryable):
                    raise
            self.retries += 1
            if time.perf_counter() - started >= self.lock_timeout_s:
                self.lock_timeouts += 1
            time.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))  # noqa: S311
        raise RawGaveUp("raw transaction kept aborting")

    def duplicate(self, identifier_keys: list[str]) -> float:
        list(self.client.get_all([self._identifiers.document(key) for key in identifier_keys]))
        return 0.0

    def fast_path(self, identifier_keys: list[str], touchpoint_id: str, doc: dict[str, Any]) -> float:
        refs = [self._identifiers.document(key) for key in identifier_keys]
        target = self._mirrored(f"fast-{touchpoint_id}")
        list(self.client.get_all([*refs, target, self._mirrored(f"processed-{touchpoint_id}")]))
        target.create(doc)
        return 0.0


def backend_for(store: Any) -> RawBackend:
    """The raw backend on the same store's own client."""
    client = getattr(store, "client", None)
    if client is None:
        return MemoryRaw(store)
    client = getattr(client, "_client", client)  # unwrap the benchmark's client probe
    return FirestoreRaw(
        client, max_attempts=store.max_attempts, base_delay=store.base_delay, max_delay=store.max_delay
    )
