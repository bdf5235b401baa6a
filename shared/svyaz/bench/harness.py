"""The benchmark and accuracy harness behind ``svyaz bench``.

One run, one store, one worker count:

1. **svyaz**: the population's deliveries (duplicates and out-of-order included) go through
   ``IdentityService.apply`` from W worker threads. A failed apply (``Contention`` or any
   transient store error) puts the event back on the queue, as Pub/Sub redelivers it; an event
   that fails ``MAX_FAILURES`` times is dead-lettered. Every delivery is traced (path taken,
   documents read and written, transaction attempts and the time lost in failed ones).
2. **accuracy**: the final partition against the population's ground truth (``metrics.score``).
3. **raw limit**: the same deliveries, same order, same W, same store, with no engine
   (``raw.py``): the ceiling svyaz is compared to, per event class.
4. **cost growth**: documents per event against profiles of 10 ... 10,000 identifiers.

Event classes (by what svyaz did with the delivery): ``no_change`` (outcome ``unchanged``),
``linking`` (``created``, ``attached``, ``merged``, ``conflict``) and ``duplicate`` (a
redelivery of an applied event). With W busy workers throughput is W / mean service time, so
the svyaz/raw ratio of a class is ``raw mean service time / svyaz mean service time``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tqdm import tqdm

from svyaz.adapters.queue import ordering_key
from svyaz.adapters.store.base import PROFILES, Contention, FoldLater, Store
from svyaz.app.service import IdentityService
from svyaz.bench.growth import DEFAULT_SIZES, measure_growth
from svyaz.bench.metrics import score
from svyaz.bench.population import Key, Population, generate_population
from svyaz.bench.probe import FAST, TRANSACTION, ProbeStore, Trace, instrument
from svyaz.bench.raw import RawBackend, RawGaveUp, backend_for
from svyaz.domain.events import Event
from svyaz.domain.merge import InvalidEvent, follow_chain, observe
from svyaz.domain.model import Job, Profile
from svyaz.identity.policy import Policy

MAX_FAILURES = 5  # deliveries of one event that may fail before it is dead-lettered
LOCK_TIMEOUT_S = 1.5  # a failed attempt this long waited out a lock (the emulator's is 2 s)
BENCH_PROJECT = "svyaz-bench"
BENCH_PEPPER = b"svyaz-bench-pepper-not-a-secret"
GOALS = {"no_change_ratio": 0.8, "linking_ratio": 0.7}


@dataclass
class BenchConfig:
    store: str = "memory"  # "memory" or "firestore"
    customers: int = 300
    workers: int = 8
    seed: int = 1
    noise: bool = True
    growth_sizes: Sequence[int] = DEFAULT_SIZES
    raw: bool = True
    progress: bool | str = True  # True a bar, "lines" periodic lines (no terminal), False nothing
    project: str = BENCH_PROJECT
    ordering: bool = True  # events keyed like the deployed publisher (Pub/Sub message ordering)
    hot_customer: int = 0  # events of the hot-customer test (one customer at 20 events/s); 0: none


@dataclass
class Delivery:
    """One delivery of the population (a duplicate delivery is its own ``Delivery``)."""

    index: int
    event: Event | None
    failures: int = 0
    status: str = ""  # outcome status, or "invalid" / "dead_lettered"
    duplicate: bool = False
    trace: Trace | None = None  # of the successful apply
    latency_s: float = 0.0  # the successful apply
    service_s: float = 0.0  # every apply of this delivery, failed ones included
    lost_s: float = 0.0  # failed applies, failed transaction attempts and their backoff
    cpu_s: float = 0.0  # CPU time of the worker thread (engine, client encoding) in every apply
    failed_attempts: int = 0
    lock_timeouts: int = 0
    lock_timeout_s: float = 0.0
    raw_s: float | None = None
    raw_lost_s: float = 0.0  # the raw transaction's failed attempts and backoff
    raw_failures: int = 0
    raw_cpu_s: float = 0.0
    equivalent_s: float | None = None  # the fast path's own round trips, engine-free
    job: Job | None = None  # a follow-up job the service published (its own delivery)
    ordering_key: str = ""  # the Pub/Sub ordering key the event is published with

    @property
    def applied(self) -> bool:
        return self.trace is not None

    @property
    def kind(self) -> str:
        if self.job is not None:
            return "job"
        if self.duplicate:
            return "duplicate"
        return "no_change" if self.status == "unchanged" else "linking"


@dataclass
class RunStats:
    elapsed_s: float = 0.0
    redeliveries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0  # raw run: failed transaction attempts
    dead_lettered: int = 0  # raw run: deliveries given up after max_failures
    lock_timeouts: int = 0  # raw run: failed attempts that waited out a lock
    deferred_folds: int = 0  # fold jobs that had to wait (debounce), run after the replay


# --- replay ---------------------------------------------------------------------------------
def _account(delivery: Delivery, trace: Trace, succeeded: bool) -> None:
    """Time lost to contention in one apply: every failed attempt and the backoff after it."""
    attempts = trace.attempts
    for attempt in attempts:
        if attempt.failed_at is None:
            continue
        delivery.failed_attempts += 1
        if attempt.failed_at - attempt.start >= LOCK_TIMEOUT_S:
            delivery.lock_timeouts += 1
            delivery.lock_timeout_s += attempt.failed_at - attempt.start
    if succeeded and len(attempts) > 1:
        delivery.lost_s += attempts[-1].start - attempts[0].start


PROGRESS_EVERY = 15.0  # seconds between progress lines when stderr is not a terminal


class _Ticker:
    """Progress lines for logs and CI (no terminal): done / total, rate, every few seconds."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = self.last = time.monotonic()

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            rate = self.done / (now - self.started)
            print(
                f"svyaz bench: {self.label}: {self.done:,}/{self.total:,} deliveries ({rate:,.1f}/s)",
                file=sys.stderr,
                flush=True,
            )


class JobDeliveries:
    """The benchmark's job sink: each follow-up job becomes a delivery of its own on the same
    queue, as on the events topic, so an event's time never includes its follow-up work."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Delivery] | None = None
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    def publish(self, jobs: list[Job]) -> None:
        with self._lock:
            for job in jobs:
                delivery = Delivery(-1 - len(self.deliveries), None, job=job)
                self.deliveries.append(delivery)
                if self.pending is not None:
                    self.pending.put(delivery)


def _run_workers(
    deliveries: Sequence[Delivery],
    workers: int,
    step: Callable[[Delivery], bool],
    progress: bool | str,
    label: str,
    pending: queue.Queue[Delivery] | None = None,
    pace_per_s: float = 0.0,
) -> RunStats:
    """Run ``step`` over the deliveries from ``workers`` threads. ``step`` returns False to put
    the delivery back on the queue (a redelivery). ``progress``: True a bar (a terminal),
    ``"lines"`` a line every ``PROGRESS_EVERY`` seconds (a log), False nothing."""
    pending = pending if pending is not None else queue.Queue()
    feeding = threading.Event()
    if pace_per_s:  # deliveries arrive at this rate (a feeder), else all at once
        feeding.set()

        def feed() -> None:
            for delivery in deliveries:
                pending.put(delivery)
                time.sleep(1 / pace_per_s)
            feeding.clear()

        threading.Thread(target=feed, daemon=True, name="bench-feed").start()
    else:
        for delivery in deliveries:
            pending.put(delivery)
    stats = RunStats()
    lock = threading.Lock()
    bar = tqdm(
        total=len(deliveries),
        desc=label,
        unit="ev",
        file=sys.stderr,
        disable=progress is not True,
        leave=False,
    )
    ticker = _Ticker(label, len(deliveries)) if progress == "lines" else None
    failure: list[BaseException] = []

    # Ordering keys, as a Pub/Sub subscription with message ordering delivers them: a key's next
    # delivery waits until its current one is done (acknowledged, or failed and retried first).
    in_flight: set[str] = set()
    held: dict[str, list[Delivery]] = {}  # a key's deliveries waiting, in order
    granted: dict[str, Delivery] = {}  # the one delivery a busy key was handed on to

    def take() -> Delivery | None:
        while True:
            try:
                delivery = pending.get_nowait()
            except queue.Empty:
                if feeding.is_set() or in_flight:  # more to come (a feeder, a held key)
                    time.sleep(0.002)
                    continue
                return None
            with lock:
                key = delivery.ordering_key
                if not key:
                    return delivery
                if key not in in_flight:
                    in_flight.add(key)
                    return delivery
                if granted.get(key) is delivery:
                    del granted[key]
                    return delivery
                held.setdefault(key, []).append(delivery)

    def release(delivery: Delivery, done: bool) -> None:
        key = delivery.ordering_key
        if not done:
            stats.redeliveries += 1
            if not key:
                pending.put(delivery)
                return
            held.setdefault(key, []).insert(0, delivery)  # retried before the key's later ones
        if not key:
            return
        if held.get(key):
            granted[key] = held[key].pop(0)  # the key stays busy: handed on to its next delivery
            pending.put(granted[key])
        else:
            in_flight.discard(key)

    def work() -> None:
        try:
            while (delivery := take()) is not None:
                done = step(delivery)
                with lock:
                    if done:
                        bar.update(1)
                        if ticker is not None:
                            ticker.tick()
                    release(delivery, done)
        except BaseException as exc:  # a bug in the harness: stop the run loudly
            failure.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=work, name=f"bench-{n}", daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats.elapsed_s = time.perf_counter() - started
    bar.close()
    if failure:
        raise failure[0]
    return stats


def replay(
    service: IdentityService,
    probe: ProbeStore,
    deliveries: Sequence[Delivery],
    workers: int,
    *,
    max_failures: int = MAX_FAILURES,
    progress: bool | str = False,
    pace_per_s: float = 0.0,
) -> RunStats:
    errors: Counter[str] = Counter()
    errors_lock = threading.Lock()

    def step(delivery: Delivery) -> bool:
        trace = probe.begin()
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            if delivery.job is not None:
                try:
                    service.run_job(delivery.job)
                except FoldLater:  # Pub/Sub would retry it after its backoff: after the replay
                    with errors_lock:
                        deferred.append(delivery)
                delivery.status, delivery.trace = "job", trace
                delivery.latency_s = delivery.service_s = time.perf_counter() - started
                delivery.cpu_s = time.thread_time() - cpu
                return True
            assert delivery.event is not None
            outcome = service.apply(delivery.event)
        except InvalidEvent:
            delivery.status = "invalid"
            return True
        except Exception as exc:  # Contention, StoreError, transient client errors: redeliver
            ended = time.perf_counter()
            delivery.cpu_s += time.thread_time() - cpu
            delivery.service_s += ended - started
            delivery.lost_s += ended - started
            _account(delivery, trace, succeeded=False)
            delivery.failures += 1
            with errors_lock:
                errors["contention" if isinstance(exc, Contention) else type(exc).__name__] += 1
            if delivery.failures >= max_failures:
                delivery.status = "dead_lettered"
                return True
            return False
        ended = time.perf_counter()
        delivery.cpu_s += time.thread_time() - cpu
        delivery.latency_s = ended - started
        delivery.service_s += ended - started
        _account(delivery, trace, succeeded=True)
        delivery.status, delivery.duplicate, delivery.trace = outcome.status, outcome.duplicate, trace
        return True

    deferred: list[Delivery] = []
    pending: queue.Queue[Delivery] = queue.Queue()
    sink = getattr(service, "jobs", None)
    if isinstance(sink, JobDeliveries):
        sink.pending = pending
    stats = _run_workers(deliveries, workers, step, progress, "svyaz", pending, pace_per_s)
    stats.errors = errors
    stats.deferred_folds = len(deferred)
    for delivery in deferred:  # the trailing folds, once the backoff has passed
        assert delivery.job is not None
        started = time.perf_counter()
        service.run_job(delivery.job, debounce=False)
        delivery.service_s += time.perf_counter() - started
    return stats


def raw_replay(
    backend: RawBackend,
    deliveries: Sequence[Delivery],
    workers: int,
    event_key: Callable[[str], str],
    *,
    max_failures: int = MAX_FAILURES,
    progress: bool | str = False,
) -> RunStats:
    """The raw limit for the deliveries svyaz applied, in the same order and concurrency."""
    applied = [d for d in deliveries if d.applied and d.job is None]

    # Everything the raw operations need is prepared before the clock starts.
    work: dict[int, Callable[[], float]] = {}
    for delivery in applied:
        trace, event = delivery.trace, delivery.event
        assert trace is not None and event is not None
        keys = trace.identifier_keys
        if delivery.kind == "duplicate":
            work[delivery.index] = partial(backend.duplicate, keys)
        elif delivery.kind == "no_change":
            doc = trace.touchpoint_doc or {}
            work[delivery.index] = partial(backend.no_change, keys, event_key(event.event_id), doc)
        else:
            work[delivery.index] = partial(backend.linking, trace.tx_read_paths, trace.tx_writes)

    def step(delivery: Delivery) -> bool:
        operation = work[delivery.index]
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            lost, done = operation(), True
        except RawGaveUp:
            lost, done = time.perf_counter() - started, False
            delivery.raw_failures += 1
        delivery.raw_s = (delivery.raw_s or 0.0) + time.perf_counter() - started
        delivery.raw_cpu_s += time.thread_time() - cpu
        delivery.raw_lost_s += lost
        return done or delivery.raw_failures >= max_failures

    stats = _run_workers(applied, workers, step, progress, "raw")
    stats.retries, stats.lock_timeouts = backend.retries, backend.lock_timeouts
    stats.dead_lettered = sum(1 for d in applied if d.raw_failures >= max_failures)
    _equivalent_replay(backend, applied, workers, event_key)
    return stats


def _equivalent_replay(
    backend: RawBackend, applied: Sequence[Delivery], workers: int, event_key: Callable[[str], str]
) -> None:
    """The fast path's own round trips, engine-free (``RawBackend.fast_path``): the ratio to it
    is what svyaz's code costs, the ratio to the raw limit what its design costs as well."""
    fast = [d for d in applied if d.kind == "no_change" and d.trace and d.trace.path == FAST]
    work = {
        d.index: partial(
            backend.fast_path,
            d.trace.identifier_keys,
            event_key(d.event.event_id),
            d.trace.touchpoint_doc or {},
        )
        for d in fast
        if d.trace is not None and d.event is not None
    }

    def step(delivery: Delivery) -> bool:
        started = time.perf_counter()
        work[delivery.index]()
        delivery.equivalent_s = time.perf_counter() - started
        return True

    _run_workers(fast, workers, step, False, "equivalent")


# --- accuracy -------------------------------------------------------------------------------
def assignment(store: Store) -> tuple[dict[Key, str], int, int]:
    """Each identifier's active profile (following ``merged_into``); how many identifier records
    resolve to no active profile (invariant 1; must be 0); and how many (profile, kind) identifier
    counts differ from the records that resolve to the profile (the limits would be checked
    against a wrong count; must be 0)."""
    profiles = {key: Profile.from_doc(key, doc) for key, doc in store._scan(PROFILES)}
    result: dict[Key, str] = {}
    counted: Counter[tuple[str, str]] = Counter()
    broken = 0
    for record in store.iter_records():
        owner = follow_chain(record.profile_id, profiles.get)
        if owner is None:
            broken += 1
            continue
        result[(record.identifier.kind, record.identifier.value)] = owner.profile_id
        counted[(owner.profile_id, record.identifier.kind)] += 1
    stored = Counter(
        {
            (p.profile_id, kind): n
            for p in profiles.values()
            if p.status == "active"
            for kind, n in p.identifier_counts.items()
        }
    )
    stale = sum(1 for key in counted.keys() | stored.keys() if counted[key] != stored[key])
    return result, broken, stale


def mismerges(
    placed: Mapping[Key, str], population: Population, deliveries: Sequence[Delivery], limit: int = 3
) -> list[dict[str, Any]]:
    """Up to ``limit`` under-merged customers and over-merged profiles, each with the deliveries
    that carried identifiers of more than one of its parts (what should have linked them)."""
    policy = Policy.default()
    parts: dict[tuple[str, Any], dict[str, set[str]]] = {}
    by_customer: dict[int, dict[str, set[str]]] = {}
    by_profile: dict[str, dict[int, set[str]]] = {}
    for key, owner in population.truth.items():
        profile = placed.get(key, "-")
        by_customer.setdefault(owner, {}).setdefault(profile, set()).add(f"{key[0]}:{key[1]}")
        by_profile.setdefault(profile, {}).setdefault(owner, set()).add(f"{key[0]}:{key[1]}")
    for customer, groups in by_customer.items():
        if len(groups) > 1:
            parts[("under_merged_customer", customer)] = groups
    for profile, owners in by_profile.items():
        if len(owners) > 1 and profile != "-":
            parts[("over_merged_profile", profile)] = {str(o): ids for o, ids in owners.items()}
    examples = []
    for (kind, name), groups in list(parts.items())[:limit]:
        part_of = {identifier: part for part, ids in groups.items() for identifier in ids}
        bridging = []
        for delivery in deliveries:
            if delivery.event is None:
                continue
            try:
                observed = observe(delivery.event, policy).all_linking
            except InvalidEvent:
                continue
            touched = {part_of[str(i)] for i in observed if str(i) in part_of}
            if len(touched) > 1:
                path = delivery.trace.path if delivery.trace else ""
                event_id = delivery.event.event_id
                bridging.append(f"{delivery.index}:{event_id} {delivery.status} {path}")
        examples.append(
            {"kind": kind, "name": str(name), "parts": {p: sorted(ids) for p, ids in groups.items()}}
            | {"bridging_deliveries": bridging[:10]}
        )
    return examples


# --- statistics -----------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def latency_ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": round(1000 * sum(values) / len(values), 3) if values else 0.0,
        "p50": round(1000 * percentile(values, 50), 3),
        "p95": round(1000 * percentile(values, 95), 3),
        "p99": round(1000 * percentile(values, 99), 3),
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def class_stats(group: Sequence[Delivery], with_raw: bool) -> dict[str, Any]:
    service = [d.service_s for d in group]
    stats: dict[str, Any] = {
        "deliveries": len(group),
        "latency_ms": latency_ms([d.latency_s for d in group]),
        "service_ms_mean": round(1000 * _mean(service), 3),
        "cpu_ms_mean": round(1000 * _mean([d.cpu_s for d in group]), 3),
        "reads_mean": round(_mean([d.trace.reads for d in group if d.trace]), 2),
        "writes_mean": round(_mean([d.trace.writes for d in group if d.trace]), 2),
        # Firestore round trips per delivery, by method (empty on the memory store).
        "rpcs_mean": round(_mean([sum(d.trace.rpcs.values()) for d in group if d.trace]), 2),
        "rpcs_by_method_mean": {
            name: round(sum(d.trace.rpcs[name] for d in group if d.trace) / len(group), 2)
            for name in sorted({n for d in group if d.trace for n in d.trace.rpcs})
        }
        if group
        else {},
        "paths": dict(Counter(d.trace.path for d in group if d.trace)),
    }
    raw = [d.raw_s for d in group if d.raw_s is not None]
    if with_raw and raw and len(raw) == len(group):
        stats["raw_service_ms_mean"] = round(1000 * _mean(raw), 3)
        stats["raw_cpu_ms_mean"] = round(1000 * _mean([d.raw_cpu_s for d in group]), 3)
        stats["ratio"] = round(_mean(raw) / _mean(service), 4) if _mean(service) else None
        # The same with the time lost to contention (lock timeouts, retries) taken out on both
        # sides: what the comparison would be on a store that resolves conflicts at once.
        net = _mean([d.service_s - d.lost_s for d in group])
        raw_net = _mean([(d.raw_s or 0.0) - d.raw_lost_s for d in group])
        stats["net_service_ms_mean"] = round(1000 * net, 3)
        stats["raw_net_service_ms_mean"] = round(1000 * raw_net, 3)
        stats["ratio_net"] = round(raw_net / net, 4) if net else None
    equivalent = [d.equivalent_s for d in group if d.equivalent_s is not None]
    if with_raw and equivalent and len(equivalent) == len(group):
        stats["equivalent_service_ms_mean"] = round(1000 * _mean(equivalent), 3)
        stats["ratio_equivalent"] = round(_mean(equivalent) / _mean(service), 4) if _mean(service) else None
    return stats


def summarize(
    deliveries: Sequence[Delivery],
    run: RunStats,
    raw_run: RunStats | None,
    store: Store,
    workers: int,
) -> dict[str, Any]:
    applied = [d for d in deliveries if d.applied and d.job is None]
    with_raw = raw_run is not None
    by_kind: dict[str, list[Delivery]] = {"no_change": [], "linking": [], "duplicate": []}
    for delivery in applied:
        by_kind[delivery.kind].append(delivery)
    jobs = [d for d in deliveries if d.job is not None and d.applied]
    classes = {kind: class_stats(group, with_raw) for kind, group in by_kind.items()}
    # No-change deliveries split by the path svyaz took (the raw work is the same for both).
    for path in (FAST, TRANSACTION):
        group = [d for d in by_kind["no_change"] if d.trace and d.trace.path == path]
        classes["no_change"][f"via_{path}"] = class_stats(group, with_raw)
    attempts = getattr(store, "attempts", {"retries": 0, "contention": 0})
    worker_s = sum(d.service_s for d in deliveries)
    lost = sum(d.lost_s for d in deliveries)
    lock_s = sum(d.lock_timeout_s for d in deliveries)
    svyaz: dict[str, Any] = {
        "elapsed_s": round(run.elapsed_s, 3),
        "deliveries": len(deliveries),
        "applied": len(applied),
        "events_per_s": round(len(applied) / run.elapsed_s, 1) if run.elapsed_s else 0.0,
        "latency_ms": latency_ms([d.latency_s for d in applied]),
        "paths": dict(Counter(d.trace.path for d in applied if d.trace)),
        "outcomes": dict(Counter(d.status for d in applied if not d.duplicate)),
        "transaction_retries": attempts["retries"],
        "transaction_give_ups": attempts["contention"],
        "redeliveries": run.redeliveries,
        "deferred_folds": run.deferred_folds,
        "errors": dict(run.errors),
        "dead_lettered": sum(1 for d in deliveries if d.status == "dead_lettered"),
        "invalid": sum(1 for d in deliveries if d.status == "invalid"),
        "contention": {
            "failed_attempts": sum(d.failed_attempts for d in deliveries),
            "lock_timeouts": sum(d.lock_timeouts for d in deliveries),
            "lock_timeout_worker_s": round(lock_s, 3),
            "lost_worker_s": round(lost, 3),
            "worker_s": round(worker_s, 3),
            "lost_share": round(lost / worker_s, 4) if worker_s else 0.0,
            "lock_timeout_share": round(lock_s / worker_s, 4) if worker_s else 0.0,
        },
        "by_class": classes,
        # Follow-up jobs (re-pointing, order credit): deliveries of their own, off the events' path.
        "jobs": class_stats(jobs, False) | {"kinds": dict(Counter(d.job.kind for d in jobs if d.job))},
    }
    report: dict[str, Any] = {"svyaz": svyaz}
    if raw_run is not None:
        report["raw"] = {
            "elapsed_s": round(raw_run.elapsed_s, 3),
            "events_per_s": round(len(applied) / raw_run.elapsed_s, 1) if raw_run.elapsed_s else 0.0,
            "redeliveries": raw_run.redeliveries,
            "transaction_retries": raw_run.retries,
            "lock_timeouts": raw_run.lock_timeouts,
            "dead_lettered": raw_run.dead_lettered,
            "lost_worker_s": round(sum(d.raw_lost_s for d in applied), 3),
            "worker_s": round(sum(d.raw_s or 0.0 for d in applied), 3),
        }
        report["ratios"] = {
            "overall": round(raw_run.elapsed_s / run.elapsed_s, 3) if run.elapsed_s else None,
            "no_change": classes["no_change"].get("ratio"),
            "no_change_via_fast_path": classes["no_change"][f"via_{FAST}"].get("ratio"),
            "no_change_via_fast_path_vs_equivalent": classes["no_change"][f"via_{FAST}"].get(
                "ratio_equivalent"
            ),
            "no_change_via_transaction": classes["no_change"][f"via_{TRANSACTION}"].get("ratio"),
            "linking": classes["linking"].get("ratio"),
            "duplicate": classes["duplicate"].get("ratio"),
            "no_change_net": classes["no_change"].get("ratio_net"),
            "linking_net": classes["linking"].get("ratio_net"),
        }
    return report


def goals(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    accuracy = report["accuracy"]
    checks: dict[str, tuple[Any, Any, bool]] = {
        "precision": (1.0, accuracy["precision"], accuracy["precision"] == 1.0),
        "over_merges": (0, accuracy["over_merges"], accuracy["over_merges"] == 0),
        "recall": (1.0, accuracy["recall"], accuracy["recall"] == 1.0),
        "refused_links_violated": (
            0,
            accuracy["refused_links_violated"],
            accuracy["refused_links_violated"] == 0,
        ),
        "dead_lettered": (0, report["svyaz"]["dead_lettered"], report["svyaz"]["dead_lettered"] == 0),
        "graph_inconsistencies": (
            0,
            accuracy["inconsistent_records"] + accuracy["stale_listings"],
            accuracy["inconsistent_records"] + accuracy["stale_listings"] == 0,
        ),
    }
    # The ratio goals are about Firestore: memory's raw limit is a dict lookup (docs/performance.md).
    store = (report.get("config") or {}).get("store", "firestore")
    ratios = (report.get("ratios") or {}) if store == "firestore" else {}
    for name, target in (("no_change", GOALS["no_change_ratio"]), ("linking", GOALS["linking_ratio"])):
        value = ratios.get(name)
        if value is not None:
            checks[f"{name}_ratio"] = (target, value, value >= target)
    growth = report.get("growth") or []
    if growth:
        for event in ("no_change", "merge_in", "merge_away"):
            counts = {(row[event]["reads"], row[event]["writes"]) for row in growth}
            checks[f"growth_flat_{event}"] = ("flat", sorted(counts), len(counts) == 1)
    return {name: {"target": t, "value": v, "met": met} for name, (t, v, met) in checks.items()}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version()}
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError):
        for line in open("/proc/meminfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    return info


# --- stores ---------------------------------------------------------------------------------
def reset_emulator(host: str, project: str) -> None:
    """Delete every document of ``project`` on the Firestore emulator at ``host``."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass


@contextlib.contextmanager
def open_store(kind: str, *, project: str = BENCH_PROJECT, start_emulator: bool = False) -> Iterator[Store]:
    """The store to benchmark. Firestore: the emulator at ``FIRESTORE_EMULATOR_HOST`` (its
    ``project`` is emptied first), else one started here with ``start_emulator``, else the real
    Firestore of ``project``."""
    if kind == "memory":
        from svyaz.adapters.store.memory import MemoryStore

        yield MemoryStore(BENCH_PEPPER)
        return
    if kind != "firestore":
        raise ValueError(f"unknown store {kind!r} (memory or firestore)")
    from google.cloud import firestore

    from svyaz.adapters.store.firestore import FirestoreStore
    from svyaz.dev.emulators import Emulator

    emulator = None
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if not previous and start_emulator:
        emulator = Emulator("firestore").start()
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    try:
        host = os.environ.get("FIRESTORE_EMULATOR_HOST")
        if host:
            reset_emulator(host, project)
        yield FirestoreStore(BENCH_PEPPER, client=firestore.Client(project=project))
    finally:
        if emulator is not None:
            emulator.stop()
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)


# --- the whole run --------------------------------------------------------------------------
def run_bench(
    config: BenchConfig,
    store: Store,
    population: Population | None = None,
    log: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    if config.workers < 1:
        raise ValueError("workers must be >= 1")
    if population is None:
        log(f"generating {config.customers} customers (seed {config.seed})")
        population = generate_population(config.customers, config.seed, noise=config.noise)
    probe = instrument(store)
    jobs = JobDeliveries()
    service = IdentityService(probe, Policy.default(), jobs=jobs)  # type: ignore[arg-type]
    deliveries = [
        Delivery(n, event, ordering_key=ordering_key(event) if config.ordering else "")
        for n, event in enumerate(population.events)
    ]

    log(f"replaying {len(deliveries)} deliveries through svyaz with {config.workers} workers")
    run = replay(service, probe, deliveries, config.workers, progress=config.progress)
    deliveries = [*deliveries, *jobs.deliveries]
    log("scoring accuracy")
    placed, broken, stale = assignment(store)
    accuracy = score(placed, population).as_dict() | {"inconsistent_records": broken, "stale_listings": stale}
    if accuracy["under_merges"] or accuracy["over_merges"]:
        accuracy["examples"] = mismerges(placed, population, deliveries)

    raw_run = None
    if config.raw:
        log("replaying the same deliveries as raw store operations")
        raw_run = raw_replay(
            backend_for(store), deliveries, config.workers, store.keys.event, progress=config.progress
        )
    report = summarize(deliveries, run, raw_run, store, config.workers)
    report["service_stats"] = dict(service.stats)
    report["accuracy"] = accuracy
    if config.growth_sizes:
        log(f"measuring cost growth for profiles of {', '.join(map(str, config.growth_sizes))} identifiers")
        report["growth"] = measure_growth(probe, config.growth_sizes, tag=str(config.seed))
    if config.hot_customer:
        from svyaz.bench.hot import hot_customer

        log(f"hot customer: {config.hot_customer} events at 20/s, {config.workers} workers, ordered and not")
        report["hot_customer"] = hot_customer(store, config.workers, config.hot_customer)
    report["config"] = {
        "store": config.store,
        "customers": config.customers,
        "workers": config.workers,
        "seed": config.seed,
        "noise": config.noise,
        "ordering": config.ordering,
        "deliveries": len(population.events),
        "unique_events": population.unique_events,
        "duplicate_deliveries": population.duplicates,
        "garbage_values": population.garbage_values,
    }
    report["machine"] = machine()
    report["goals"] = goals(report)
    return report


# --- text -----------------------------------------------------------------------------------
def _ms(stats: Mapping[str, float]) -> str:
    return f"p50 {stats['p50']:.2f} / p95 {stats['p95']:.2f} / p99 {stats['p99']:.2f} ms"


def _num(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: Mapping[str, Any]) -> str:
    cfg, s, acc = report["config"], report["svyaz"], report["accuracy"]
    m = report["machine"]
    lines = [
        f"svyaz bench  store={cfg['store']} customers={cfg['customers']} workers={cfg['workers']} "
        f"seed={cfg['seed']}  ({cfg['deliveries']} deliveries: {cfg['unique_events']} events "
        f"+ {cfg['duplicate_deliveries']} duplicates)",
        f"machine      {m.get('nproc')} CPUs, {m.get('ram_gib')} GiB RAM, {m.get('cpu', '?')}, "
        f"Python {m['python']}",
        "",
        f"throughput   {s['events_per_s']:.1f} deliveries/s ({s['applied']} in {s['elapsed_s']:.2f} s)",
        f"latency      {_ms(s['latency_ms'])}",
        f"paths        {', '.join(f'{k}={v}' for k, v in sorted(s['paths'].items()))}",
        f"outcomes     {', '.join(f'{k}={v}' for k, v in sorted(s['outcomes'].items()))}",
        f"transactions retries={s['transaction_retries']} give-ups={s['transaction_give_ups']} "
        f"redeliveries={s['redeliveries']} dead-lettered={s['dead_lettered']} invalid={s['invalid']}",
    ]
    c = s["contention"]
    if c["failed_attempts"]:
        lines.append(
            f"contention   {c['failed_attempts']} failed attempts, {c['lock_timeouts']} lock timeouts "
            f"= {c['lock_timeout_worker_s']:.1f} worker-s, {100 * c['lock_timeout_share']:.1f}% of "
            f"worker time (all contention {100 * c['lost_share']:.1f}%)"
        )
    lines += [
        "",
        "mean service time per delivery in ms (with W busy workers throughput = W / mean); "
        "net: without contention; cpu: the worker thread's own CPU",
        f"{'class':<22}{'n':>6}{'svyaz':>9}{'raw':>8}{'ratio':>7}{'net':>8}{'raw net':>8}{'ratio':>7}"
        f"{'cpu':>6}{'raw cpu':>8}{'reads':>6}{'writes':>7}{'rpcs':>6}  svyaz latency",
    ]
    rows = [("no_change", s["by_class"]["no_change"])]
    rows += [(f"  via {p}", s["by_class"]["no_change"][f"via_{p}"]) for p in (FAST, TRANSACTION)]
    rows += [("linking", s["by_class"]["linking"]), ("duplicate", s["by_class"]["duplicate"])]
    rows += [("follow-up job", s["jobs"])]
    for name, row in rows:
        lines.append(
            f"{name:<22}{row['deliveries']:>6}{row['service_ms_mean']:>9.2f}"
            f"{_num(row.get('raw_service_ms_mean'), '.2f'):>8}{_num(row.get('ratio')):>7}"
            f"{_num(row.get('net_service_ms_mean'), '.2f'):>8}"
            f"{_num(row.get('raw_net_service_ms_mean'), '.2f'):>8}"
            f"{_num(row.get('ratio_net')):>7}{row['cpu_ms_mean']:>6.2f}"
            f"{_num(row.get('raw_cpu_ms_mean'), '.2f'):>8}"
            f"{row['reads_mean']:>6.1f}{row['writes_mean']:>7.1f}{row['rpcs_mean']:>6.2f}"
            f"  {_ms(row['latency_ms'])}"
        )
    if "raw" in report:
        r = report["raw"]
        lines.append(
            f"raw limit    {r['events_per_s']:.1f} deliveries/s ({r['elapsed_s']:.2f} s, "
            f"{r['transaction_retries']} retries, {r['lock_timeouts']} lock timeouts); "
            f"svyaz/raw overall {report['ratios']['overall']}"
        )
    lines += [
        "",
        f"accuracy     precision {acc['precision']:.4f}  recall {acc['recall']:.4f}  F1 {acc['f1']:.4f}  "
        f"over-merges {acc['over_merges']}  under-merges {acc['under_merges']}  "
        f"refused links violated {acc['refused_links_violated']}  "
        f"({acc['profiles']} profiles for {acc['customers']} customers)",
    ]
    if report.get("growth"):
        lines += [
            "",
            "cost growth  documents read r / written w per event (ms); re-pointed (ms): follow-up jobs",
            f"{'identifiers':>12}{'doc KiB':>9}  {'no-change':<18}{'merge in':<18}{'merge away':<18}"
            f"{'re-pointed':>18}",
        ]
        for row in report["growth"]:
            cells = [
                f"{row[k]['reads']}r/{row[k]['writes']}w ({row[k]['ms']:.1f})"
                for k in ("no_change", "merge_in", "merge_away")
            ]
            lines.append(
                f"{row['identifiers']:>12}{row['profile_doc_bytes'] / 1024:>9.1f}  "
                f"{cells[0]:<18}{cells[1]:<18}{cells[2]:<18}"
                f"{row['merge_away']['repointed_after']:>10} ({row['merge_away'].get('follow_up_ms', 0):.1f})"
            )
    for tag, hot in (report.get("hot_customer") or {}).items():
        lines.append(
            f"hot customer ({tag}): {hot['events']} events at {hot['rate_per_s']:.0f}/s, "
            f"{hot['workers']} workers: "
            f"dead-lettered {hot['dead_lettered']}, redeliveries {hot['redeliveries']}, "
            f"retries {hot['transaction_retries']}, {hot['touchpoints_on_the_profile']} touchpoints on the "
            f"profile, p50 {hot['p50_ms']} / p99 {hot['p99_ms']} ms, paths {hot['paths']}"
        )
    lines += ["", "goals"]
    for name, goal in report["goals"].items():
        mark = "ok  " if goal["met"] else "MISS"
        lines.append(f"  {mark} {name:<26} target {goal['target']}  value {goal['value']}")
    return "\n".join(lines)
