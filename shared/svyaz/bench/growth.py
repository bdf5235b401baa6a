"""Cost growth: documents read and written per event as a profile grows.

For each size N a profile of N identifiers is built (one ``user_id`` and N-1 ``session_id`` s,
under a policy whose ``session_id`` limit is raised), then three events are measured through
``IdentityService.apply``:

* ``no_change``: a page view of one of its sessions (the fast path);
* ``merge_in``: a small younger profile merged into it (it survives);
* ``merge_away``: it is merged into an older profile (it becomes the tombstone), which leaves the
  re-pointing of its N identifier records to the follow-up job, outside the transaction.

Document counts come from the probe (snapshot sizes, ``Plan.document_writes``); they must not
depend on N, and neither must the profile document's size (identifier counts, not lists). The
follow-up jobs of each measured event run after it, timed apart (``follow_up_ms``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from svyaz.app.service import IdentityService, PendingJobs
from svyaz.bench.probe import ProbeStore, Trace
from svyaz.domain.events import Event
from svyaz.domain.model import Identifier
from svyaz.identity.policy import DEFAULT_KINDS, KindPolicy, Policy

DEFAULT_SIZES = (10, 100, 1_000, 10_000)
PER_EVENT = 49  # new sessions per building event (+ the user_id: 50, the event cap)
START = datetime(2025, 1, 1, tzinfo=UTC)
FIRESTORE_DOC_LIMIT = 1_048_576


@dataclass(frozen=True)
class EventCost:
    """One measured event against the profile: what it did and what it cost."""

    status: str
    path: str
    reads: int  # documents
    writes: int
    rpcs: int
    repointed_after: int  # identifier records the follow-up jobs re-pointed
    ms: float
    follow_up_ms: float


@dataclass(frozen=True)
class GrowthRow:
    """A profile of ``identifiers`` identifiers and the three events measured against it."""

    identifiers: int
    profile_doc_bytes: int
    profile_doc_share_of_limit: float
    build_s: float
    no_change: EventCost
    merge_in: EventCost
    merge_away: EventCost


def growth_policy(largest: int) -> Policy:
    kinds = dict(DEFAULT_KINDS)
    kinds["session_id"] = KindPolicy(limit=max(1000, largest), priority=7)
    return Policy(kinds)


def _event(event_id: str, at: datetime, identifiers: dict[str, Any], type_: str = "page") -> Event:
    return Event(event_id=event_id, type=type_, timestamp=at, identifiers=identifiers)


def _measure(service: IdentityService, probe: ProbeStore, event: Event) -> tuple[Trace, float, str, float]:
    """The event's own apply, then (timed apart, as their own deliveries) its follow-up jobs."""
    probe.begin()
    started = time.perf_counter()
    try:
        outcome = service.apply(event)
    finally:
        trace = probe.end()
    elapsed = time.perf_counter() - started
    jobs_started = time.perf_counter()
    probe.begin()
    try:
        _run_jobs(service)
    finally:
        trace.repointed = probe.end().repointed
    return trace, elapsed, outcome.status, time.perf_counter() - jobs_started


def _run_jobs(service: IdentityService) -> None:
    sink = service.jobs
    if isinstance(sink, PendingJobs):
        sink.run_all(service)


def _cost(trace: Trace, seconds: float, status: str, jobs_seconds: float) -> EventCost:
    return EventCost(
        status=status,
        path=trace.path,
        reads=trace.reads,
        writes=trace.writes,
        rpcs=sum(trace.rpcs.values()),
        repointed_after=trace.repointed,
        ms=round(seconds * 1000, 2),
        follow_up_ms=round(jobs_seconds * 1000, 2),
    )


def measure_size(service: IdentityService, probe: ProbeStore, size: int, tag: str) -> GrowthRow:
    """Build a profile of ``size`` identifiers and measure the three events against it."""
    prefix = f"g{tag}-{size}"
    sessions = [f"{prefix}-s{i}" for i in range(size - 1)]
    at = START + timedelta(hours=1)
    build_started = time.perf_counter()
    for n, start in enumerate(range(0, len(sessions), PER_EVENT)):
        ids: dict[str, Any] = {"user_id": f"{prefix}-u", "session_id": sessions[start : start + PER_EVENT]}
        service.apply(_event(f"{prefix}-build-{n}", at, ids, "identify"))
        _run_jobs(service)
        at += timedelta(seconds=1)
    build_s = time.perf_counter() - build_started
    anchor = probe.inner.lookup(Identifier("user_id", f"{prefix}-u"))
    held = sum(len(v) for v in anchor.identifiers.values()) if anchor else 0
    profile_bytes = len(repr(anchor.to_doc()).encode()) if anchor else 0

    later = START + timedelta(days=1)
    no_change = _measure(service, probe, _event(f"{prefix}-page", later, {"session_id": sessions[0]}))
    # A younger small profile, then an event linking it to the big one: the big one survives.
    young = {"client_id": f"{prefix}-young", "session_id": f"{prefix}-young-s"}
    service.apply(_event(f"{prefix}-young", later, young))
    _run_jobs(service)
    link = {"session_id": sessions[1], "client_id": f"{prefix}-young"}
    merge_in = _measure(service, probe, _event(f"{prefix}-merge-in", later + timedelta(minutes=1), link))
    # An older profile, then an event linking the big one to it: the big one is the loser.
    service.apply(_event(f"{prefix}-old", START, {"client_id": f"{prefix}-old"}))
    _run_jobs(service)
    link = {"session_id": sessions[2], "client_id": f"{prefix}-old"}
    merge_away = _measure(service, probe, _event(f"{prefix}-merge-away", later + timedelta(minutes=2), link))
    return GrowthRow(
        identifiers=held,
        profile_doc_bytes=profile_bytes,
        profile_doc_share_of_limit=round(profile_bytes / FIRESTORE_DOC_LIMIT, 4),
        build_s=round(build_s, 2),
        no_change=_cost(*no_change),
        merge_in=_cost(*merge_in),
        merge_away=_cost(*merge_away),
    )


def measure_growth(probe: ProbeStore, sizes: Iterable[int], tag: str = "") -> list[GrowthRow]:
    sizes = sorted(set(sizes))
    if not sizes:
        return []
    if min(sizes) < 4:
        raise ValueError("growth sizes start at 4 identifiers")
    service = IdentityService(probe, growth_policy(max(sizes)), jobs=PendingJobs())  # type: ignore[arg-type]
    return [measure_size(service, probe, size, tag) for size in sizes]
