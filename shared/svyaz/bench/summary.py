"""The replays' deliveries summarised into the report's sections (``report.py``): per event
class (no-change, linking, duplicate; no-change also by the path svyaz took) and for the
follow-up jobs, the svyaz run as a whole, the raw run and the raw/svyaz ratios.

Event classes (by what svyaz did with the delivery): ``no_change`` (outcome ``unchanged``),
``linking`` (``created``, ``attached``, ``merged``, ``conflict``) and ``duplicate`` (a
redelivery of an applied event). With W busy workers throughput is W / mean service time, so
the svyaz/raw ratio of a class is ``raw mean service time / svyaz mean service time``: the sum
of its raw times over the sum of its svyaz times, both taken in the same paired blocks
(``replay.paired_replay``), so the machine's load of the moment is in both. The median of the
blocks' own ratios and the client CPU per delivery (raw / svyaz) are reported beside it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from statistics import median

from svyaz.adapters.store.base import Store
from svyaz.bench.probe import FAST, TRANSACTION
from svyaz.bench.replay import Delivery, RunStats
from svyaz.bench.report import (
    CLASSES,
    ClassStats,
    ContentionCost,
    EquivalentCost,
    Latency,
    Ratios,
    RawCost,
    RawRun,
    ServiceRun,
)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def latency_ms(values: Sequence[float]) -> Latency:
    return Latency(
        mean=round(1000 * sum(values) / len(values), 3) if values else 0.0,
        p50=round(1000 * percentile(values, 50), 3),
        p95=round(1000 * percentile(values, 95), 3),
        p99=round(1000 * percentile(values, 99), 3),
    )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _share(part: float, whole: float, digits: int, empty: float | None = None) -> float | None:
    return round(part / whole, digits) if whole else empty


def block_median(group: Sequence[Delivery], limit: Callable[[Delivery], float]) -> float | None:
    """The median over the paired blocks of ``sum(limit) / sum(service_s)`` of the group's
    deliveries in each block; None when the group was not replayed in blocks."""
    by_block: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in group:
        if delivery.block >= 0:
            by_block[delivery.block].append(delivery)
    shares = [
        sum(limit(d) for d in part) / service
        for part in by_block.values()
        if (service := sum(d.service_s for d in part))
    ]
    return round(median(shares), 4) if shares else None


def _raw_cost(group: Sequence[Delivery]) -> RawCost | None:
    """Only when every delivery of the group was replayed raw (never a follow-up job)."""
    raw = [d.raw_s for d in group if d.raw_s is not None]
    if not raw or len(raw) != len(group):
        return None
    service = _mean([d.service_s for d in group])
    net = _mean([d.service_s - d.lost_s for d in group])
    raw_net = _mean([(d.raw_s or 0.0) - d.raw_lost_s for d in group])
    raw_cpu = _mean([d.raw_cpu_s for d in group])
    return RawCost(
        raw_service_ms_mean=round(1000 * _mean(raw), 3),
        raw_cpu_ms_mean=round(1000 * raw_cpu, 3),
        ratio=_share(_mean(raw), service, 4),
        net_service_ms_mean=round(1000 * net, 3),
        raw_net_service_ms_mean=round(1000 * raw_net, 3),
        ratio_net=_share(raw_net, net, 4),
        ratio_block_median=block_median(group, lambda d: d.raw_s or 0.0),
        cpu_ratio=_share(raw_cpu, _mean([d.cpu_s for d in group]), 4),
    )


def _equivalent_cost(group: Sequence[Delivery]) -> EquivalentCost | None:
    equivalent = [d.equivalent_s for d in group if d.equivalent_s is not None]
    if not equivalent or len(equivalent) != len(group):
        return None
    return EquivalentCost(
        equivalent_service_ms_mean=round(1000 * _mean(equivalent), 3),
        ratio_equivalent=_share(_mean(equivalent), _mean([d.service_s for d in group]), 4),
        equivalent_cpu_ms_mean=round(1000 * _mean([d.equivalent_cpu_s for d in group]), 3),
    )


def _rpcs_by_method(group: Sequence[Delivery]) -> dict[str, float]:
    traces = [d.trace for d in group if d.trace]
    methods = sorted({name for trace in traces for name in trace.rpcs})
    return {name: round(sum(trace.rpcs[name] for trace in traces) / len(group), 2) for name in methods}


def class_stats(group: Sequence[Delivery]) -> ClassStats:
    traces = [d.trace for d in group if d.trace]
    return ClassStats(
        deliveries=len(group),
        latency_ms=latency_ms([d.latency_s for d in group]),
        service_ms_mean=round(1000 * _mean([d.service_s for d in group]), 3),
        cpu_ms_mean=round(1000 * _mean([d.cpu_s for d in group]), 3),
        reads_mean=round(_mean([t.reads for t in traces]), 2),
        writes_mean=round(_mean([t.writes for t in traces]), 2),
        rpcs_mean=round(_mean([sum(t.rpcs.values()) for t in traces]), 2),
        rpcs_by_method_mean=_rpcs_by_method(group),
        paths=dict(Counter(t.path for t in traces)),
        raw=_raw_cost(group),
        equivalent=_equivalent_cost(group),
    )


def _by_class(applied: Sequence[Delivery]) -> dict[str, ClassStats]:
    by_kind: dict[str, list[Delivery]] = {kind: [] for kind in CLASSES}
    for delivery in applied:
        by_kind[delivery.kind].append(delivery)
    classes = {kind: class_stats(group) for kind, group in by_kind.items()}
    # No-change deliveries split by the path svyaz took (the raw work is the same for both).
    via = {
        path: class_stats([d for d in by_kind["no_change"] if d.trace and d.trace.path == path])
        for path in (FAST, TRANSACTION)
    }
    classes["no_change"] = replace(classes["no_change"], via=via)
    return classes


def _contention(deliveries: Sequence[Delivery]) -> ContentionCost:
    worker_s = sum(d.service_s for d in deliveries)
    lost = sum(d.lost_s for d in deliveries)
    lock_s = sum(d.lock_timeout_s for d in deliveries)
    return ContentionCost(
        failed_attempts=sum(d.failed_attempts for d in deliveries),
        lock_timeouts=sum(d.lock_timeouts for d in deliveries),
        lock_timeout_worker_s=round(lock_s, 3),
        lost_worker_s=round(lost, 3),
        worker_s=round(worker_s, 3),
        lost_share=_share(lost, worker_s, 4, empty=0.0),
        lock_timeout_share=_share(lock_s, worker_s, 4, empty=0.0),
    )


def _jobs(deliveries: Sequence[Delivery]) -> ClassStats:
    jobs = [d for d in deliveries if d.job is not None and d.applied]
    return replace(class_stats(jobs), kinds=dict(Counter(d.job.kind for d in jobs if d.job)))


def applied_events(deliveries: Sequence[Delivery]) -> list[Delivery]:
    """The events and duplicates svyaz applied (not the follow-up jobs)."""
    return [d for d in deliveries if d.applied and d.job is None]


def service_run(deliveries: Sequence[Delivery], run: RunStats, store: Store) -> ServiceRun:
    applied = applied_events(deliveries)
    attempts = getattr(store, "attempts", {"retries": 0, "contention": 0})
    return ServiceRun(
        elapsed_s=round(run.elapsed_s, 3),
        deliveries=len(deliveries),
        applied=len(applied),
        events_per_s=round(len(applied) / run.elapsed_s, 1) if run.elapsed_s else 0.0,
        latency_ms=latency_ms([d.latency_s for d in applied]),
        paths=dict(Counter(d.trace.path for d in applied if d.trace)),
        outcomes=dict(Counter(d.status for d in applied if not d.duplicate)),
        transaction_retries=attempts["retries"],
        transaction_give_ups=attempts["contention"],
        redeliveries=run.redeliveries,
        deferred_folds=run.deferred_folds,
        errors=dict(run.errors),
        dead_lettered=sum(1 for d in deliveries if d.status == "dead_lettered"),
        invalid=sum(1 for d in deliveries if d.status == "invalid"),
        contention=_contention(deliveries),
        by_class=_by_class(applied),
        jobs=_jobs(deliveries),
    )


def raw_run(deliveries: Sequence[Delivery], raw: RunStats) -> RawRun:
    applied = applied_events(deliveries)
    return RawRun(
        elapsed_s=round(raw.elapsed_s, 3),
        events_per_s=round(len(applied) / raw.elapsed_s, 1) if raw.elapsed_s else 0.0,
        redeliveries=raw.redeliveries,
        transaction_retries=raw.retries,
        lock_timeouts=raw.lock_timeouts,
        dead_lettered=raw.dead_lettered,
        lost_worker_s=round(sum(d.raw_lost_s for d in applied), 3),
        worker_s=round(sum(d.raw_s or 0.0 for d in applied), 3),
        blocks=raw.blocks,
        block_size=raw.block_size,
    )


def ratios(svyaz: ServiceRun, run: RunStats, raw: RunStats) -> Ratios:
    no_change, fast = svyaz.by_class["no_change"], svyaz.by_class["no_change"].via[FAST]
    linking = svyaz.by_class["linking"].raw
    return Ratios(
        overall=_share(raw.elapsed_s, run.elapsed_s, 3),
        no_change=no_change.ratio,
        no_change_via_fast_path=fast.ratio,
        no_change_via_fast_path_vs_equivalent=fast.equivalent.ratio_equivalent if fast.equivalent else None,
        no_change_via_transaction=no_change.via[TRANSACTION].ratio,
        linking=svyaz.by_class["linking"].ratio,
        duplicate=svyaz.by_class["duplicate"].ratio,
        no_change_net=no_change.ratio_net,
        linking_net=svyaz.by_class["linking"].ratio_net,
        no_change_block_median=no_change.raw.ratio_block_median if no_change.raw else None,
        linking_block_median=linking.ratio_block_median if linking else None,
        no_change_cpu=no_change.raw.cpu_ratio if no_change.raw else None,
        linking_cpu=linking.cpu_ratio if linking else None,
    )
