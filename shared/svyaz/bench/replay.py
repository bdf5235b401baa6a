"""Replaying deliveries from W worker threads, as a Pub/Sub subscription hands them out.

``replay``: each delivery goes through ``IdentityService.apply`` (a follow-up job through
``run_job``). A failed apply (``Contention`` or any transient store error) puts the delivery
back on the queue, as Pub/Sub redelivers it; one that fails ``MAX_FAILURES`` times is
dead-lettered. Follow-up jobs the service publishes become deliveries of their own on the same
queue. Every delivery is traced (path taken, documents read and written, transaction attempts
and the time lost in failed ones).

``raw_replay``: the deliveries svyaz applied, in the same order and concurrency, as raw store
operations with no engine (``raw.py``): the ceiling svyaz is compared to.

``paired_replay``: both, interleaved in blocks of a few dozen deliveries (svyaz block k, then
the raw replay of block k from svyaz's records of it, then block k+1, ...), so that the two
see the same load on a shared machine: a ratio of sums over the blocks is then the ratio of
two measurements taken side by side, not minutes apart.

Deliveries with an ordering key are handed out as a subscription with message ordering does:
a key's next delivery waits until its current one is done (acknowledged, or failed and retried
first).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tqdm import tqdm

from svyaz.adapters.store.base import Contention, Later
from svyaz.app.service import IdentityService
from svyaz.bench.probe import FAST, ProbeStore, Trace
from svyaz.bench.raw import RawBackend, RawGaveUp
from svyaz.domain.events import Event
from svyaz.domain.merge import InvalidEvent
from svyaz.domain.model import Job

MAX_FAILURES = 5  # deliveries of one event that may fail before it is dead-lettered
LOCK_TIMEOUT_S = 1.5  # a failed attempt this long waited out a lock (the emulator's is 2 s)
PROGRESS_EVERY = 15.0  # seconds between progress lines when stderr is not a terminal
IDLE_POLL_S = 0.002  # a worker's wait for a feeder or a held key
BLOCK_DELIVERIES = 24  # a paired block at 1 worker (~0.5-1 s of svyaz and its jobs on the emulator)
BLOCK_PER_WORKER = 8  # with W workers a block is at least 8 W deliveries (the pool's tail)


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
    equivalent_cpu_s: float = 0.0
    block: int = -1  # the paired block it was replayed in (-1: not paired, or a follow-up job)
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
    blocks: int = 0  # paired_replay: the blocks svyaz and the raw limit took turns on
    block_size: int = 0


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


# --- the worker pool ------------------------------------------------------------------------
class _Ticker:
    """Progress lines for logs and CI (no terminal): done / total, rate, every few seconds."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.started = self.last = time.monotonic()

    def tick(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            rate = self.done / (now - self.started)
            print(
                f"svyaz bench: {self.label}: {self.done:,}/{self.total:,} deliveries ({rate:,.1f}/s)",
                file=sys.stderr,
                flush=True,
            )


class _Progress:
    """``progress``: True a bar (a terminal), ``"lines"`` a ``_Ticker`` (a log), False nothing."""

    def __init__(self, progress: bool | str, label: str, total: int) -> None:
        self.bar = tqdm(
            total=total, desc=label, unit="ev", file=sys.stderr, disable=progress is not True, leave=False
        )
        self.ticker = _Ticker(label, total) if progress == "lines" else None

    def done(self, count: int = 1) -> None:
        self.bar.update(count)
        if self.ticker is not None:
            self.ticker.tick(count)


class _Subscription:
    """The queue of pending deliveries, handed out one key at a time (message ordering)."""

    def __init__(self, pending: queue.Queue[Delivery], feeding: threading.Event) -> None:
        self.pending, self.feeding = pending, feeding
        self.lock = threading.Lock()
        self.redeliveries = 0
        self.in_flight: set[str] = set()
        self.held: dict[str, list[Delivery]] = {}  # a key's deliveries waiting, in order
        self.granted: dict[str, Delivery] = {}  # the one delivery a busy key was handed on to

    def take(self) -> Delivery | None:
        """The next delivery a worker may run; None when nothing more will come."""
        while True:
            try:
                delivery = self.pending.get_nowait()
            except queue.Empty:
                if self.feeding.is_set() or self.in_flight:  # more to come (a feeder, a held key)
                    time.sleep(IDLE_POLL_S)
                    continue
                return None
            with self.lock:
                if self._admit(delivery):
                    return delivery

    def _admit(self, delivery: Delivery) -> bool:
        """Whether the delivery may run now; else it waits behind its key's current one."""
        key = delivery.ordering_key
        if not key:
            return True
        if key not in self.in_flight:
            self.in_flight.add(key)
            return True
        if self.granted.get(key) is delivery:
            del self.granted[key]
            return True
        self.held.setdefault(key, []).append(delivery)
        return False

    def release(self, delivery: Delivery, done: bool) -> None:
        """After a run (under ``lock``): not done, it is redelivered, before its key's later
        deliveries; its key then passes to the next delivery waiting for it, if any."""
        key = delivery.ordering_key
        if not done:
            self.redeliveries += 1
            if not key:
                self.pending.put(delivery)
                return
            self.held.setdefault(key, []).insert(0, delivery)
        if key:
            self._hand_on(key)

    def _hand_on(self, key: str) -> None:
        if self.held.get(key):
            self.granted[key] = self.held[key].pop(0)  # the key stays busy
            self.pending.put(self.granted[key])
        else:
            self.in_flight.discard(key)


def _enqueue(
    deliveries: Sequence[Delivery], pending: queue.Queue[Delivery], pace_per_s: float
) -> threading.Event:
    """Put the deliveries on the queue: all at once, or at ``pace_per_s`` from a feeder thread.
    The event returned is set while the feeder has more to put."""
    feeding = threading.Event()
    if not pace_per_s:
        for delivery in deliveries:
            pending.put(delivery)
        return feeding
    feeding.set()

    def feed() -> None:
        for delivery in deliveries:
            pending.put(delivery)
            time.sleep(1 / pace_per_s)
        feeding.clear()

    threading.Thread(target=feed, daemon=True, name="bench-feed").start()
    return feeding


def _timed_threads(target: Callable[[], None], workers: int) -> float:
    """Run ``target`` in ``workers`` threads; the seconds until the last one ends."""
    started = time.perf_counter()
    threads = [threading.Thread(target=target, name=f"bench-{n}", daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def run_workers(
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
    subscription = _Subscription(pending, _enqueue(deliveries, pending, pace_per_s))
    shown = _Progress(progress, label, len(deliveries))
    failure: list[BaseException] = []

    def work() -> None:
        try:
            while (delivery := subscription.take()) is not None:
                done = step(delivery)
                with subscription.lock:
                    if done:
                        shown.done()
                    subscription.release(delivery, done)
        except BaseException as exc:  # a bug in the harness: stop the run loudly
            failure.append(exc)

    stats = RunStats(elapsed_s=_timed_threads(work, workers))
    stats.redeliveries = subscription.redeliveries
    shown.bar.close()
    if failure:
        raise failure[0]
    return stats


# --- svyaz ----------------------------------------------------------------------------------
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


class _Apply:
    """A worker's step of ``replay``: one apply of a delivery, traced and timed."""

    def __init__(self, service: IdentityService, probe: ProbeStore, max_failures: int) -> None:
        self.service, self.probe, self.max_failures = service, probe, max_failures
        self.errors: Counter[str] = Counter()
        self.deferred: list[Delivery] = []  # fold jobs to run once their backoff has passed
        self._lock = threading.Lock()

    def __call__(self, delivery: Delivery) -> bool:
        trace = self.probe.begin()
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            outcome = self._run(delivery)
        except InvalidEvent:
            delivery.status = "invalid"
            return True
        except Exception as exc:  # Contention, StoreError, transient client errors: redeliver
            return self._failed(delivery, trace, exc, time.perf_counter() - started, cpu)
        elapsed, cpu_s = time.perf_counter() - started, time.thread_time() - cpu
        if outcome is None:  # a follow-up job: its last run is its time
            delivery.status, delivery.trace = "job", trace
            delivery.latency_s = delivery.service_s = elapsed
            delivery.cpu_s = cpu_s
            return True
        delivery.cpu_s += cpu_s
        delivery.latency_s = elapsed
        delivery.service_s += elapsed
        _account(delivery, trace, succeeded=True)
        delivery.status, delivery.duplicate, delivery.trace = outcome.status, outcome.duplicate, trace
        return True

    def _run(self, delivery: Delivery) -> Any:
        """The event's outcome, or None for a follow-up job."""
        if delivery.job is None:
            assert delivery.event is not None
            return self.service.apply(delivery.event)
        try:
            self.service.run_job(delivery.job)
        except Later:  # Pub/Sub would retry it after its backoff: after the replay
            with self._lock:
                self.deferred.append(delivery)
        return None

    def _failed(self, delivery: Delivery, trace: Trace, exc: Exception, elapsed: float, cpu: float) -> bool:
        """A failed apply: redelivered (False), or dead-lettered after ``max_failures``."""
        delivery.cpu_s += time.thread_time() - cpu
        delivery.service_s += elapsed
        delivery.lost_s += elapsed
        _account(delivery, trace, succeeded=False)
        delivery.failures += 1
        with self._lock:
            self.errors["contention" if isinstance(exc, Contention) else type(exc).__name__] += 1
        if delivery.failures >= self.max_failures:
            delivery.status = "dead_lettered"
            return True
        return False


def _svyaz_block(
    service: IdentityService,
    apply: _Apply,
    deliveries: Sequence[Delivery],
    workers: int,
    progress: bool | str = False,
    pace_per_s: float = 0.0,
) -> RunStats:
    """The deliveries through svyaz; the follow-up jobs they publish join the same queue, so
    the run ends when they are done too."""
    pending: queue.Queue[Delivery] = queue.Queue()
    sink = getattr(service, "jobs", None)
    if isinstance(sink, JobDeliveries):
        sink.pending = pending
    return run_workers(deliveries, workers, apply, progress, "svyaz", pending, pace_per_s)


def _finish(service: IdentityService, apply: _Apply, stats: RunStats) -> RunStats:
    stats.errors = apply.errors
    stats.deferred_folds = len(apply.deferred)
    for delivery in apply.deferred:  # the trailing folds, once the backoff has passed
        assert delivery.job is not None
        started = time.perf_counter()
        service.run_job(delivery.job, debounce=False)
        delivery.service_s += time.perf_counter() - started
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
    apply = _Apply(service, probe, max_failures)
    return _finish(service, apply, _svyaz_block(service, apply, deliveries, workers, progress, pace_per_s))


# --- the raw limit --------------------------------------------------------------------------
def _raw_operation(
    backend: RawBackend, delivery: Delivery, event_key: Callable[[str], str]
) -> Callable[[], float]:
    """The raw store operations of what svyaz did with the delivery (prepared before the clock)."""
    trace, event = delivery.trace, delivery.event
    assert trace is not None and event is not None
    keys = trace.identifier_keys
    if delivery.kind == "duplicate":
        return partial(backend.duplicate, keys)
    if delivery.kind == "no_change":
        return partial(backend.no_change, keys, event_key(event.event_id), trace.touchpoint_doc or {})
    return partial(backend.linking, trace.tx_read_paths, trace.tx_writes)


def raw_events(deliveries: Sequence[Delivery]) -> list[Delivery]:
    """What the raw limit replays: the events and duplicates svyaz applied (no follow-up job)."""
    return [d for d in deliveries if d.applied and d.job is None]


def _raw_block(
    backend: RawBackend,
    applied: Sequence[Delivery],
    workers: int,
    event_key: Callable[[str], str],
    max_failures: int,
    progress: bool | str = False,
) -> RunStats:
    work = {delivery.index: _raw_operation(backend, delivery, event_key) for delivery in applied}

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

    return run_workers(applied, workers, step, progress, "raw")


def _raw_totals(backend: RawBackend, applied: Sequence[Delivery], stats: RunStats, max_failures: int) -> None:
    stats.retries, stats.lock_timeouts = backend.retries, backend.lock_timeouts
    stats.dead_lettered = sum(1 for d in applied if d.raw_failures >= max_failures)


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
    applied = raw_events(deliveries)
    stats = _raw_block(backend, applied, workers, event_key, max_failures, progress)
    _raw_totals(backend, applied, stats, max_failures)
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
        started, cpu = time.perf_counter(), time.thread_time()
        work[delivery.index]()
        delivery.equivalent_s = time.perf_counter() - started
        delivery.equivalent_cpu_s = time.thread_time() - cpu
        return True

    run_workers(fast, workers, step, False, "equivalent")


# --- svyaz and the raw limit side by side ----------------------------------------------------
def block_size(workers: int) -> int:
    """Deliveries per paired block: a few dozen, more with more workers so that the pool is
    busy for most of a block (it drains at each block's end)."""
    return max(BLOCK_DELIVERIES, BLOCK_PER_WORKER * workers)


def _add(total: RunStats, part: RunStats) -> None:
    total.elapsed_s += part.elapsed_s
    total.redeliveries += part.redeliveries


def paired_replay(
    service: IdentityService,
    probe: ProbeStore,
    backend: RawBackend,
    deliveries: Sequence[Delivery],
    workers: int,
    event_key: Callable[[str], str],
    *,
    block: int = 0,
    max_failures: int = MAX_FAILURES,
    progress: bool | str = False,
) -> tuple[RunStats, RunStats]:
    """svyaz and the raw limit interleaved in blocks of ``block`` deliveries (default
    ``block_size(workers)``): svyaz replays block k with the worker pool (its follow-up jobs
    included), then the raw limit replays the deliveries of block k svyaz applied and the
    engine-free fast path its fast-path ones (``_equivalent_replay``; these two in turns first,
    so that neither always meets the emulator just after svyaz's work), then block k+1. Each
    delivery is in one block (``Delivery.block``) and replayed once by each side; the elapsed
    times are sums over the blocks. Returns svyaz's run and the raw run."""
    size = block or block_size(workers)
    apply = _Apply(service, probe, max_failures)
    svyaz, raw = RunStats(), RunStats()
    shown = _Progress(progress, "svyaz+raw", len(deliveries))
    applied: list[Delivery] = []
    for number, start in enumerate(range(0, len(deliveries), size)):
        part = deliveries[start : start + size]
        for delivery in part:
            delivery.block = number
        _add(svyaz, _svyaz_block(service, apply, part, workers))
        events = raw_events(part)
        if number % 2:  # the two engine-free replays take turns at following svyaz's block
            _equivalent_replay(backend, events, workers, event_key)
        _add(raw, _raw_block(backend, events, workers, event_key, max_failures))
        if not number % 2:
            _equivalent_replay(backend, events, workers, event_key)
        applied += events
        shown.done(len(part))
    shown.bar.close()
    _raw_totals(backend, applied, raw, max_failures)
    svyaz.blocks = raw.blocks = -(-len(deliveries) // size)
    svyaz.block_size = raw.block_size = size
    return _finish(service, apply, svyaz), raw
