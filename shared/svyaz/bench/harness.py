"""The benchmark and accuracy run behind ``svyaz bench``.

One run, one store, one worker count:

1. **svyaz**: the population's deliveries (duplicates and out-of-order included) replayed
   through ``IdentityService.apply`` from W worker threads (``replay.replay``: redelivery on
   ``Contention``, dead letters, follow-up jobs as deliveries of their own).
2. **accuracy**: the final partition against the population's ground truth (``accuracy``).
3. **raw limit**: the same deliveries, same order, same W, same store, with no engine
   (``replay.raw_replay``): the ceiling svyaz is compared to, per event class.
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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from svyaz.adapters.queue import ordering_key
from svyaz.adapters.store.base import Store
from svyaz.app.service import IdentityService
from svyaz.bench.accuracy import assignment, mismerges, score
from svyaz.bench.growth import DEFAULT_SIZES, measure_growth
from svyaz.bench.population import Population, generate_population
from svyaz.bench.probe import FAST, TRANSACTION, instrument
from svyaz.bench.raw import backend_for
from svyaz.bench.replay import Delivery, JobDeliveries, RunStats, raw_replay, replay
from svyaz.bench.stores import BENCH_PROJECT
from svyaz.identity.policy import Policy

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
