"""The report of one ``svyaz bench`` run, as typed data: what the replays measured (per event
class: service time, latency, documents, RPCs, paths; against the raw limit when it ran), the
accuracy against the population's truth, the cost growth and the goals met or missed.

``BenchReport.to_json()`` is what ``svyaz bench --json`` prints (its keys are the interface of
the published numbers: docs/performance.md, scripts reading the JSON); ``format_report`` is the
text. Building the sections from the deliveries is ``summary.py``.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from svyaz.bench.accuracy import GraphAccuracy
from svyaz.bench.growth import GrowthRow
from svyaz.bench.probe import FAST, TRANSACTION

GOALS = {"no_change_ratio": 0.8, "linking_ratio": 0.6}  # issue 12's goals, at 1 worker
CLASSES = ("no_change", "linking", "duplicate")  # event classes, by what svyaz did with the delivery
GROWTH_EVENTS = ("no_change", "merge_in", "merge_away")


def to_plain(value: Any) -> Any:
    """JSON-ready data: a section's own ``to_json``, else its fields in order."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_plain(item) for item in value)
    return value


@dataclass(frozen=True)
class Latency:
    """Milliseconds."""

    mean: float
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class RawCost:
    """A class's mean service time against the raw limit (only when every delivery of the class
    was replayed raw). ``ratio``: raw / svyaz, the ratio of the sums over the paired blocks.
    ``ratio_block_median``: the median of the blocks' own ratios (None when not paired).
    ``cpu_ratio``: raw / svyaz client CPU per delivery (the worker thread's own, load-independent).
    ``net``: with the time lost to contention (lock timeouts, retries) taken out on both sides,
    what the comparison would be on a store that resolves conflicts at once."""

    raw_service_ms_mean: float
    raw_cpu_ms_mean: float
    ratio: float | None
    net_service_ms_mean: float
    raw_net_service_ms_mean: float
    ratio_net: float | None
    ratio_block_median: float | None = None
    cpu_ratio: float | None = None


@dataclass(frozen=True)
class EquivalentCost:
    """The fast path's own round trips, engine-free: the ratio to it is what svyaz's code costs."""

    equivalent_service_ms_mean: float
    ratio_equivalent: float | None
    equivalent_cpu_ms_mean: float | None = None


@dataclass(frozen=True)
class ClassStats:
    """The deliveries of one event class (or the follow-up jobs)."""

    deliveries: int
    latency_ms: Latency
    service_ms_mean: float  # every apply, failed ones included
    cpu_ms_mean: float
    reads_mean: float
    writes_mean: float
    rpcs_mean: float  # Firestore round trips per delivery (0 on the memory store)
    rpcs_by_method_mean: Mapping[str, float]
    paths: Mapping[str, int]
    raw: RawCost | None = None
    equivalent: EquivalentCost | None = None
    via: Mapping[str, ClassStats] = field(default_factory=dict)  # no-change: by the path taken
    kinds: Mapping[str, int] | None = None  # follow-up jobs: by kind

    @property
    def ratio(self) -> float | None:
        return self.raw.ratio if self.raw else None

    @property
    def ratio_net(self) -> float | None:
        return self.raw.ratio_net if self.raw else None

    def to_json(self) -> dict[str, Any]:
        """Its own measures, the raw and equivalent ones beside them, then the parts."""
        own = {f.name: to_plain(getattr(self, f.name)) for f in fields(self) if f.name not in _PARTS}
        for part in (self.raw, self.equivalent):
            if part is not None:
                own |= to_plain(part)
        own |= {f"via_{path}": stats.to_json() for path, stats in self.via.items()}
        return own if self.kinds is None else own | {"kinds": dict(self.kinds)}


_PARTS = ("raw", "equivalent", "via", "kinds")


@dataclass(frozen=True)
class ContentionCost:
    failed_attempts: int
    lock_timeouts: int
    lock_timeout_worker_s: float
    lost_worker_s: float
    worker_s: float
    lost_share: float
    lock_timeout_share: float


@dataclass(frozen=True)
class ServiceRun:
    """The replay through svyaz."""

    elapsed_s: float
    deliveries: int  # events, their duplicates and the follow-up jobs
    applied: int  # events and duplicates applied
    events_per_s: float
    latency_ms: Latency
    paths: Mapping[str, int]
    outcomes: Mapping[str, int]
    transaction_retries: int
    transaction_give_ups: int
    redeliveries: int
    deferred_folds: int
    errors: Mapping[str, int]
    dead_lettered: int
    invalid: int
    contention: ContentionCost
    by_class: Mapping[str, ClassStats]
    jobs: ClassStats  # re-pointing, order credit: deliveries of their own, off the events' path


@dataclass(frozen=True)
class RawRun:
    """The same deliveries as raw store operations."""

    elapsed_s: float
    events_per_s: float
    redeliveries: int
    transaction_retries: int
    lock_timeouts: int
    dead_lettered: int
    lost_worker_s: float
    worker_s: float
    blocks: int = 0  # paired blocks (svyaz block k, then raw block k); 0: the raw run followed svyaz's
    block_size: int = 0  # deliveries per block


@dataclass(frozen=True)
class Ratios:
    """raw / svyaz mean service time: with W busy workers, svyaz's share of the raw throughput.
    Ratios of sums over the paired blocks; ``*_block_median`` the median of the blocks' ratios;
    ``*_cpu`` raw / svyaz client CPU per delivery."""

    overall: float | None
    no_change: float | None
    no_change_via_fast_path: float | None
    no_change_via_fast_path_vs_equivalent: float | None
    no_change_via_transaction: float | None
    linking: float | None
    duplicate: float | None
    no_change_net: float | None
    linking_net: float | None
    no_change_block_median: float | None = None
    linking_block_median: float | None = None
    no_change_cpu: float | None = None
    linking_cpu: float | None = None


@dataclass(frozen=True)
class RunConfig:
    store: str
    customers: int
    workers: int
    seed: int
    noise: bool
    ordering: bool
    deliveries: int
    unique_events: int
    duplicate_deliveries: int
    garbage_values: int


@dataclass(frozen=True)
class Machine:
    nproc: int | None
    python: str
    cpu: str | None = None
    ram_gib: float | None = None

    @classmethod
    def here(cls) -> Machine:
        return cls(
            os.cpu_count(), platform.python_version(), _proc_field("cpuinfo", "model name"), _ram_gib()
        )

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _proc_field(name: str, key: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in open(f"/proc/{name}", encoding="utf-8"):  # noqa: SIM115
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return None


def _ram_gib() -> float | None:
    total = _proc_field("meminfo", "MemTotal")  # "24576000 kB"
    with contextlib.suppress(ValueError, IndexError):
        return round(int(total.split()[0]) / 1024 / 1024, 1) if total else None
    return None


@dataclass(frozen=True)
class Goal:
    target: Any
    value: Any
    met: bool


@dataclass(frozen=True)
class BenchReport:
    svyaz: ServiceRun
    service_stats: Mapping[str, int]
    accuracy: GraphAccuracy
    config: RunConfig
    machine: Machine
    raw: RawRun | None = None
    ratios: Ratios | None = None
    growth: Sequence[GrowthRow] | None = None
    hot_customer: Mapping[str, Mapping[str, Any]] | None = None

    def goals(self) -> dict[str, Goal]:
        return _accuracy_goals(self) | _ratio_goals(self) | _growth_goals(self.growth or ())

    def to_json(self) -> dict[str, Any]:
        sections = {
            "svyaz": self.svyaz,
            "raw": self.raw,
            "ratios": self.ratios,
            "service_stats": self.service_stats,
            "accuracy": self.accuracy,
            "growth": self.growth,
            "hot_customer": self.hot_customer,
            "config": self.config,
            "machine": self.machine,
            "goals": self.goals(),
        }
        return {name: to_plain(section) for name, section in sections.items() if section is not None}


# --- goals ----------------------------------------------------------------------------------
def _goal(target: Any, value: Any) -> Goal:
    return Goal(target, value, value == target)


def _accuracy_goals(report: BenchReport) -> dict[str, Goal]:
    scores, accuracy = report.accuracy.scores, report.accuracy
    return {
        "precision": _goal(1.0, scores.precision),
        "over_merges": _goal(0, scores.over_merges),
        "recall": _goal(1.0, scores.recall),
        "refused_links_violated": _goal(0, scores.refused_links_violated),
        "dead_lettered": _goal(0, report.svyaz.dead_lettered),
        "graph_inconsistencies": _goal(0, accuracy.inconsistent_records + accuracy.stale_listings),
    }


def _ratio_goals(report: BenchReport) -> dict[str, Goal]:
    """The ratio goals are about Firestore: memory's raw limit is a dict lookup
    (docs/performance.md)."""
    if report.config.store != "firestore" or report.ratios is None:
        return {}
    checks = {}
    for name in ("no_change", "linking"):
        value, target = getattr(report.ratios, name), GOALS[f"{name}_ratio"]
        if value is not None:
            checks[f"{name}_ratio"] = Goal(target, value, value >= target)
    return checks


def _growth_goals(growth: Sequence[GrowthRow]) -> dict[str, Goal]:
    """Documents read and written per event do not grow with the profile."""
    checks = {}
    for event in GROWTH_EVENTS if growth else ():
        counts = {(getattr(row, event).reads, getattr(row, event).writes) for row in growth}
        checks[f"growth_flat_{event}"] = Goal("flat", sorted(counts), len(counts) == 1)
    return checks


# --- text -----------------------------------------------------------------------------------
def _ms(latency: Latency) -> str:
    return f"p50 {latency.p50:.2f} / p95 {latency.p95:.2f} / p99 {latency.p99:.2f} ms"


def _num(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))


def _header(report: BenchReport) -> list[str]:
    cfg, m = report.config, report.machine
    return [
        f"svyaz bench  store={cfg.store} customers={cfg.customers} workers={cfg.workers} "
        f"seed={cfg.seed}  ({cfg.deliveries} deliveries: {cfg.unique_events} events "
        f"+ {cfg.duplicate_deliveries} duplicates)",
        f"machine      {m.nproc} CPUs, {m.ram_gib} GiB RAM, {m.cpu or '?'}, Python {m.python}",
    ]


def _run_lines(s: ServiceRun) -> list[str]:
    lines = [
        f"throughput   {s.events_per_s:.1f} deliveries/s ({s.applied} in {s.elapsed_s:.2f} s)",
        f"latency      {_ms(s.latency_ms)}",
        f"paths        {_counts(s.paths)}",
        f"outcomes     {_counts(s.outcomes)}",
        f"transactions retries={s.transaction_retries} give-ups={s.transaction_give_ups} "
        f"redeliveries={s.redeliveries} dead-lettered={s.dead_lettered} invalid={s.invalid}",
    ]
    c = s.contention
    if c.failed_attempts:
        lines.append(
            f"contention   {c.failed_attempts} failed attempts, {c.lock_timeouts} lock timeouts "
            f"= {c.lock_timeout_worker_s:.1f} worker-s, {100 * c.lock_timeout_share:.1f}% of "
            f"worker time (all contention {100 * c.lost_share:.1f}%)"
        )
    return lines


def class_rows(s: ServiceRun) -> list[tuple[str, ClassStats]]:
    """The table's rows: each event class (no-change also by path), then the follow-up jobs."""
    no_change = s.by_class["no_change"]
    rows = [("no_change", no_change)]
    rows += [(f"  via {path}", no_change.via[path]) for path in (FAST, TRANSACTION)]
    rows += [("linking", s.by_class["linking"]), ("duplicate", s.by_class["duplicate"])]
    return [*rows, ("follow-up job", s.jobs)]


def _class_line(name: str, row: ClassStats) -> str:
    def raw(measure: str, spec: str = ".3g") -> str:  # "-" where the raw limit did not run
        return _num(getattr(row.raw, measure) if row.raw else None, spec)

    return (
        f"{name:<22}{row.deliveries:>6}{row.service_ms_mean:>9.2f}"
        f"{raw('raw_service_ms_mean', '.2f'):>8}{raw('ratio'):>7}"
        f"{raw('net_service_ms_mean', '.2f'):>8}{raw('raw_net_service_ms_mean', '.2f'):>8}"
        f"{raw('ratio_net'):>7}{row.cpu_ms_mean:>6.2f}{raw('raw_cpu_ms_mean', '.2f'):>8}"
        f"{row.reads_mean:>6.1f}{row.writes_mean:>7.1f}{row.rpcs_mean:>6.2f}"
        f"  {_ms(row.latency_ms)}"
    )


def _class_table(s: ServiceRun) -> list[str]:
    return [
        "",
        "mean service time per delivery in ms (with W busy workers throughput = W / mean); "
        "net: without contention; cpu: the worker thread's own CPU",
        f"{'class':<22}{'n':>6}{'svyaz':>9}{'raw':>8}{'ratio':>7}{'net':>8}{'raw net':>8}{'ratio':>7}"
        f"{'cpu':>6}{'raw cpu':>8}{'reads':>6}{'writes':>7}{'rpcs':>6}  svyaz latency",
        *(_class_line(name, row) for name, row in class_rows(s)),
    ]


def _raw_lines(report: BenchReport) -> list[str]:
    r = report.raw
    if r is None:
        return []
    overall = report.ratios.overall if report.ratios else None
    lines = [
        f"raw limit    {r.events_per_s:.1f} deliveries/s ({r.elapsed_s:.2f} s, "
        f"{r.transaction_retries} retries, {r.lock_timeouts} lock timeouts); "
        f"svyaz/raw overall {overall}"
    ]
    if r.blocks and report.ratios:
        q = report.ratios
        lines.append(
            f"paired       {r.blocks} blocks of {r.block_size} deliveries, svyaz then raw in each; "
            f"median of the blocks' ratios: no-change {_num(q.no_change_block_median)}, "
            f"linking {_num(q.linking_block_median)}; CPU raw/svyaz: no-change "
            f"{_num(q.no_change_cpu)}, linking {_num(q.linking_cpu)}; fast path / its own round "
            f"trips engine-free {_num(q.no_change_via_fast_path_vs_equivalent)}"
        )
    return lines


def _accuracy_lines(accuracy: GraphAccuracy) -> list[str]:
    a = accuracy.scores
    return [
        "",
        f"accuracy     precision {a.precision:.4f}  recall {a.recall:.4f}  F1 {a.f1:.4f}  "
        f"over-merges {a.over_merges}  under-merges {a.under_merges}  "
        f"refused links violated {a.refused_links_violated}  "
        f"({a.profiles} profiles for {a.customers} customers)",
    ]


def _growth_lines(growth: Sequence[GrowthRow]) -> list[str]:
    if not growth:
        return []
    lines = [
        "",
        "cost growth  documents read r / written w per event (ms); re-pointed (ms): follow-up jobs",
        f"{'identifiers':>12}{'doc KiB':>9}  {'no-change':<18}{'merge in':<18}{'merge away':<18}"
        f"{'re-pointed':>18}",
    ]
    for row in growth:
        cells = [
            f"{c.reads}r/{c.writes}w ({c.ms:.1f})" for c in (row.no_change, row.merge_in, row.merge_away)
        ]
        lines.append(
            f"{row.identifiers:>12}{row.profile_doc_bytes / 1024:>9.1f}  "
            f"{cells[0]:<18}{cells[1]:<18}{cells[2]:<18}"
            f"{row.merge_away.repointed_after:>10} ({row.merge_away.follow_up_ms:.1f})"
        )
    return lines


def _hot_lines(hot_customer: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    return [
        f"hot customer ({tag}): {hot['events']} events at {hot['rate_per_s']:.0f}/s, "
        f"{hot['workers']} workers: "
        f"dead-lettered {hot['dead_lettered']}, redeliveries {hot['redeliveries']}, "
        f"retries {hot['transaction_retries']}, {hot['touchpoints_on_the_profile']} touchpoints on the "
        f"profile, p50 {hot['p50_ms']} / p99 {hot['p99_ms']} ms, paths {hot['paths']}"
        for tag, hot in (hot_customer or {}).items()
    ]


def _goal_lines(goals: Mapping[str, Goal]) -> list[str]:
    return [
        "",
        "goals",
        *(
            f"  {'ok  ' if goal.met else 'MISS'} {name:<26} target {goal.target}  value {goal.value}"
            for name, goal in goals.items()
        ),
    ]


def format_report(report: BenchReport) -> str:
    return "\n".join(
        [
            *_header(report),
            "",
            *_run_lines(report.svyaz),
            *_class_table(report.svyaz),
            *_raw_lines(report),
            *_accuracy_lines(report.accuracy),
            *_growth_lines(report.growth or ()),
            *_hot_lines(report.hot_customer),
            *_goal_lines(report.goals()),
        ]
    )
