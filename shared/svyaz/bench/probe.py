"""Measuring instruments for the benchmark: what one ``IdentityService.apply`` did.

``ProbeStore`` wraps a real store without changing what it does: it notes, for the event the
current thread is applying, which path the service took (fast path, transaction, duplicate),
how many documents it read and wrote (snapshot sizes and ``Plan.document_writes``), which
documents those were (so the raw baseline can touch the same number of documents with the same
contention pattern) and how many identifier records the follow-up re-pointing moved.

``FirestoreClientProbe`` wraps the Firestore client of a ``FirestoreStore`` to count its RPCs;
``instrument`` also times every transaction attempt of the store: when it began and, for a
failed attempt, when it failed. That is how the benchmark tells the time lost to contention
apart from useful work.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from svyaz.adapters.store.base import Decide, FirstRead, Keys, Store
from svyaz.domain.merge import Plan, Snapshot
from svyaz.domain.model import Identifier, Profile, Touchpoint

FAST, TRANSACTION, DUPLICATE = "fast_path", "transaction", "duplicate"


@dataclass
class Attempt:
    """One transaction attempt: started at ``start``; ``failed_at`` set if it was rolled back."""

    start: float
    failed_at: float | None = None


@dataclass
class Trace:
    """What one delivery of an event did in the store. The documents a transaction wrote are
    derived from its plan only when asked for (the raw baseline), not while svyaz is timed."""

    path: str = ""
    identifiers: list[Identifier] = field(default_factory=list)
    pre_reads: int = 0  # documents read by the fast-path check (outside any transaction)
    tx_reads: int = 0  # documents read inside the transaction (last attempt)
    writes: int = 0  # documents written (fast-path batch or transaction)
    repointed: int = 0  # identifier records the follow-up job re-pointed (outside the transaction)
    attempts: list[Attempt] = field(default_factory=list)
    # Firestore RPCs by method (BatchGetDocuments, BeginTransaction, Commit, Rollback, RunQuery)
    rpcs: Counter[str] = field(default_factory=Counter)
    plan: Plan | None = None
    fast_touchpoint: Touchpoint | None = None
    keys: Keys | None = None
    event_id: str = ""
    tx_profile_ids: list[str] = field(default_factory=list)
    touchpoint_name: str | None = None

    @property
    def reads(self) -> int:
        return self.pre_reads + self.tx_reads

    @property
    def identifier_keys(self) -> list[str]:
        keys = self.keys
        return [] if keys is None else [keys.identifier(i) for i in self.identifiers]

    @property
    def tx_read_paths(self) -> list[str]:
        """Paths of the documents the transaction read (last attempt)."""
        keys = self.keys
        if keys is None or self.plan is None:  # no transaction
            return []
        reads = [f"identifiers/{key}" for key in self.identifier_keys]
        reads += [f"profiles/{pid}" for pid in self.tx_profile_ids]
        reads.append(f"processed_events/{keys.event(self.event_id)}")
        reads.append(f"touchpoints/{keys.event(self.event_id)}")
        if self.touchpoint_name is not None and self.touchpoint_name != self.event_id:
            reads.append(f"touchpoints/{keys.event(self.touchpoint_name)}")
        return reads

    @property
    def touchpoint_doc(self) -> dict[str, Any] | None:
        if self.fast_touchpoint is not None:
            return self.fast_touchpoint.to_doc()
        if self.plan is not None and self.plan.touchpoint is not None:
            return self.plan.touchpoint.to_doc()
        return None

    @property
    def tx_writes(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, document) of every document the transaction wrote."""
        plan, keys = self.plan, self.keys
        if plan is None or keys is None or plan.outcome.duplicate:
            return []
        writes = [(f"identifiers/{keys.identifier(r.identifier)}", r.to_doc()) for r in plan.records]
        writes += [(f"profiles/{p.profile_id}", p.to_doc()) for p in plan.profiles]
        if plan.touchpoint is not None:
            writes.append((f"touchpoints/{keys.event(plan.touchpoint.name)}", plan.touchpoint.to_doc()))
        writes.append((f"processed_events/{keys.event(self.event_id)}", {"outcome": plan.outcome.as_dict()}))
        return writes

    @property
    def profile_bytes(self) -> int:
        """Approximate size of the biggest profile document the transaction wrote."""
        if self.plan is None:
            return 0
        return max((doc_bytes(p.to_doc()) for p in self.plan.profiles), default=0)


class _Current(threading.local):
    trace: Trace | None = None


def doc_bytes(doc: dict[str, Any]) -> int:
    """Approximate stored size of a document: field names and values as text."""
    return len(repr(doc).encode())


class ProbeStore:
    """Delegates everything to ``inner``; records a ``Trace`` for the current thread's event."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self._current = _Current()

    # The service only uses the store port; anything not instrumented passes through.
    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def begin(self) -> Trace:
        trace = Trace()
        self._current.trace = trace
        return trace

    def end(self) -> Trace:
        trace = self.trace
        self._current.trace = None
        return trace

    @property
    def trace(self) -> Trace:
        # Outside begin() / end(): the call is measured into a throwaway trace.
        return self._current.trace or Trace()

    def first_read(self, identifiers: Iterable[Identifier], event_id: str) -> FirstRead:
        identifiers = list(identifiers)
        first = self.inner.first_read(identifiers, event_id)
        snapshot = first.snapshot
        trace = self.trace
        trace.identifiers, trace.keys, trace.event_id = identifiers, self.inner.keys, event_id
        # identifier documents + the idempotency record + the event's touchpoint
        trace.pre_reads = len(identifiers) + 2
        if snapshot.processed is not None or snapshot.applied is not None:
            trace.path = DUPLICATE
        return first

    def create_touchpoint(self, touchpoint: Touchpoint, written_ms: int = 0) -> None:
        self.inner.create_touchpoint(touchpoint, written_ms)
        trace = self.trace
        trace.path, trace.writes, trace.fast_touchpoint = FAST, 1, touchpoint

    def profile_state(self, profile_id: str) -> Profile | None:
        self.trace.pre_reads += 1
        return self.inner.profile_state(profile_id)

    def transact(
        self,
        identifiers: list[Identifier],
        event_id: str,
        decide: Decide,
        touchpoint_name: str | None = None,
        first: FirstRead | None = None,
    ) -> Plan:
        seen: list[Snapshot] = []

        def observed(snapshot: Snapshot) -> Plan:
            seen.append(snapshot)
            return decide(snapshot)

        identifiers = list(identifiers)
        plan = self.inner.transact(identifiers, event_id, observed, touchpoint_name, first=first)
        trace = self.trace
        snapshot = seen[-1]
        trace.identifiers, trace.keys, trace.event_id = list(identifiers), self.inner.keys, event_id
        trace.tx_profile_ids, trace.touchpoint_name = list(snapshot.profiles), touchpoint_name
        trace.plan = plan
        trace.fast_touchpoint = None
        # identifier documents + profiles + the idempotency record + the event's touchpoint
        # (+ the touchpoint it updates); an attempt started from the fast path's read
        # (``first``, counted in ``pre_reads``) read only the profiles
        updates = touchpoint_name is not None and touchpoint_name != event_id
        seeded = len(seen) == 1 and first is not None and first.seeds(identifiers, event_id, touchpoint_name)
        first_round = 0 if seeded else len(identifiers) + 2 + int(updates)
        trace.tx_reads = first_round + len(snapshot.profiles)
        if plan.outcome.duplicate:
            trace.path = DUPLICATE
            return plan
        trace.path = TRANSACTION
        trace.writes = plan.document_writes
        return plan

    def repoint(self, loser_id: str, survivor_id: str, batch_size: int = 400) -> int:
        moved = self.inner.repoint(loser_id, survivor_id, batch_size)
        self.trace.repointed += moved
        return moved


RPC_NAMES = {
    "batch_get_documents": "BatchGet",
    "begin_transaction": "Begin",
    "commit": "Commit",
    "rollback": "Rollback",
    "run_query": "RunQuery",
    "run_aggregation_query": "RunAggregationQuery",
}


class CountingApi:
    """Wraps the client's GAPIC stub: counts every RPC into the current thread's trace."""

    def __init__(self, api: Any, probe: ProbeStore) -> None:
        self._api = api
        self._probe = probe

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._api, name)
        rpc = RPC_NAMES.get(name)
        if rpc is None:
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._probe.trace.rpcs[rpc] += 1
            return target(*args, **kwargs)

        return counted


class FirestoreClientProbe:
    """Wraps a ``firestore.Client``: counts its RPCs into the current trace."""

    def __init__(self, client: Any, probe: ProbeStore) -> None:
        self._client = client
        self._probe = probe
        client._firestore_api_internal = CountingApi(client._firestore_api, probe)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def instrument(store: Store) -> ProbeStore:
    """A probe around ``store``; for Firestore also around its client (RPCs) and its
    transaction attempts (timing: the time lost to contention apart from useful work)."""
    probe = ProbeStore(store)
    client = getattr(store, "client", None)
    if client is not None and hasattr(client, "transaction"):
        store.client = FirestoreClientProbe(client, probe)  # type: ignore[attr-defined]
    if hasattr(store, "on_attempt"):

        def attempt() -> Callable[[], None]:
            started = Attempt(time.perf_counter())
            probe.trace.attempts.append(started)

            def failed() -> None:
                started.failed_at = time.perf_counter()

            return failed

        store.on_attempt = attempt  # type: ignore[attr-defined]
    return probe
