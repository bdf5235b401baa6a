"""The typed bench report: the JSON keys ``svyaz bench --json`` prints (scripts and the docs'
tables read them), and the text: a row for each event class, the raw columns only when the raw
limit ran, the ratio goals only for Firestore."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from svyaz.adapters.store.memory import MemoryStore
from svyaz.bench.accuracy import Accuracy, GraphAccuracy
from svyaz.bench.harness import BenchConfig, run_bench
from svyaz.bench.report import (
    BenchReport,
    ClassStats,
    ContentionCost,
    Latency,
    Machine,
    RunConfig,
    ServiceRun,
    format_report,
)

CLASS_KEYS = [
    "deliveries",
    "latency_ms",
    "service_ms_mean",
    "cpu_ms_mean",
    "reads_mean",
    "writes_mean",
    "rpcs_mean",
    "rpcs_by_method_mean",
    "paths",
]
RAW_KEYS = [
    "raw_service_ms_mean",
    "raw_cpu_ms_mean",
    "ratio",
    "net_service_ms_mean",
    "raw_net_service_ms_mean",
    "ratio_net",
    "ratio_block_median",  # the paired blocks' median (new keys only ever follow the old ones)
    "cpu_ratio",
]
EVENT_COST_KEYS = ["status", "path", "reads", "writes", "rpcs", "repointed_after", "ms", "follow_up_ms"]


@pytest.fixture(scope="module")
def printed() -> dict:
    """What ``svyaz bench --json`` prints, through JSON and back."""
    config = BenchConfig(customers=4, workers=2, seed=2, growth_sizes=(10,), progress=False, hot_customer=5)
    return json.loads(json.dumps(run_bench(config, MemoryStore()).to_json(), default=str))


def test_the_json_keys_are_the_ones_svyaz_bench_printed_before_the_typed_report(printed: dict) -> None:
    assert list(printed) == [
        "svyaz",
        "raw",
        "ratios",
        "service_stats",
        "accuracy",
        "growth",
        "hot_customer",
        "config",
        "machine",
        "goals",
    ]
    svyaz = printed["svyaz"]
    assert list(svyaz) == [
        "elapsed_s",
        "deliveries",
        "applied",
        "events_per_s",
        "latency_ms",
        "paths",
        "outcomes",
        "transaction_retries",
        "transaction_give_ups",
        "redeliveries",
        "deferred_folds",
        "errors",
        "dead_lettered",
        "invalid",
        "contention",
        "by_class",
        "jobs",
    ]
    assert list(svyaz["latency_ms"]) == ["mean", "p50", "p95", "p99"]
    assert list(svyaz["contention"]) == [
        "failed_attempts",
        "lock_timeouts",
        "lock_timeout_worker_s",
        "lost_worker_s",
        "worker_s",
        "lost_share",
        "lock_timeout_share",
    ]
    assert list(svyaz["by_class"]) == ["no_change", "linking", "duplicate"]
    no_change = svyaz["by_class"]["no_change"]
    assert list(no_change) == CLASS_KEYS + RAW_KEYS + ["via_fast_path", "via_transaction"]
    equivalent = ["equivalent_service_ms_mean", "ratio_equivalent", "equivalent_cpu_ms_mean"]
    assert list(no_change["via_fast_path"]) == CLASS_KEYS + RAW_KEYS + equivalent
    assert list(svyaz["by_class"]["linking"]) == CLASS_KEYS + RAW_KEYS
    assert list(svyaz["jobs"]) == CLASS_KEYS + ["kinds"]  # never replayed raw
    assert list(printed["raw"]) == [
        "elapsed_s",
        "events_per_s",
        "redeliveries",
        "transaction_retries",
        "lock_timeouts",
        "dead_lettered",
        "lost_worker_s",
        "worker_s",
        "blocks",
        "block_size",
    ]
    assert list(printed["ratios"]) == [
        "overall",
        "no_change",
        "no_change_via_fast_path",
        "no_change_via_fast_path_vs_equivalent",
        "no_change_via_transaction",
        "linking",
        "duplicate",
        "no_change_net",
        "linking_net",
        "no_change_block_median",
        "linking_block_median",
        "no_change_cpu",
        "linking_cpu",
    ]


def test_the_accuracy_growth_config_and_goal_keys(printed: dict) -> None:
    assert list(printed["accuracy"]) == [
        "precision",
        "recall",
        "f1",
        "over_merges",
        "under_merges",
        "profiles",
        "customers",
        "refused_links_violated",
        "true_pairs",
        "predicted_pairs",
        "correct_pairs",
        "inconsistent_records",
        "stale_listings",
    ]
    (row,) = printed["growth"]
    assert list(row) == [
        "identifiers",
        "profile_doc_bytes",
        "profile_doc_share_of_limit",
        "build_s",
        "no_change",
        "merge_in",
        "merge_away",
    ]
    assert all(list(row[event]) == EVENT_COST_KEYS for event in ("no_change", "merge_in", "merge_away"))
    assert list(printed["hot_customer"]) == ["ordered", "unordered"]
    assert list(printed["config"]) == [
        "store",
        "customers",
        "workers",
        "seed",
        "noise",
        "ordering",
        "deliveries",
        "unique_events",
        "duplicate_deliveries",
        "garbage_values",
    ]
    assert list(printed["machine"])[:2] == ["nproc", "python"]
    assert set(printed["machine"]) <= {"nproc", "python", "cpu", "ram_gib"}
    # a no-change event: its record, its idempotency record and its touchpoint read, one write
    assert printed["goals"]["growth_flat_no_change"] == {"target": "flat", "value": [[3, 1]], "met": True}
    assert all(list(goal) == ["target", "value", "met"] for goal in printed["goals"].values())


def _class(deliveries: int, **extra) -> ClassStats:
    return ClassStats(
        deliveries=deliveries,
        latency_ms=Latency(mean=1.0, p50=0.5, p95=2.0, p99=3.0),
        service_ms_mean=1.25,
        cpu_ms_mean=0.5,
        reads_mean=4.0,
        writes_mean=1.0,
        rpcs_mean=0.0,
        rpcs_by_method_mean={},
        paths={},
        **extra,
    )


def hand_made(store: str = "memory") -> BenchReport:
    """A report with no raw run, growth or hot customer; each class a different count."""
    via = {"fast_path": _class(12), "transaction": _class(13)}
    run = ServiceRun(
        elapsed_s=2.0,
        deliveries=120,
        applied=50,
        events_per_s=25.0,
        latency_ms=Latency(mean=1.0, p50=0.5, p95=2.0, p99=3.0),
        paths={"fast_path": 12, "transaction": 23, "duplicate": 15},
        outcomes={"unchanged": 25, "created": 10},
        transaction_retries=3,
        transaction_give_ups=0,
        redeliveries=1,
        deferred_folds=0,
        errors={"contention": 1},
        dead_lettered=0,
        invalid=0,
        contention=ContentionCost(2, 0, 0.0, 0.01, 0.1, 0.1, 0.0),
        by_class={"no_change": _class(25, via=via), "linking": _class(10), "duplicate": _class(15)},
        jobs=_class(70, kinds={"fold": 70}),
    )
    scores = Accuracy(1.0, 1.0, 1.0, 0, 0, 3, 3, 0)
    return BenchReport(
        svyaz=run,
        service_stats={"fast_path": 12},
        accuracy=GraphAccuracy(scores, inconsistent_records=0, stale_listings=0),
        config=RunConfig(store, 3, 2, 1, True, True, 50, 35, 15, 0),
        machine=Machine(nproc=2, python="3.11.7"),
    )


def test_the_text_has_a_row_for_each_event_class_and_the_follow_up_jobs() -> None:
    lines = format_report(hand_made()).splitlines()
    rows = {
        "no_change": 25,
        "  via fast_path": 12,
        "  via transaction": 13,
        "linking": 10,
        "duplicate": 15,
        "follow-up job": 70,
    }
    for name, count in rows.items():
        (line,) = [line for line in lines if line.startswith(f"{name:<22}")]
        # No raw run: the raw and ratio columns are "-", svyaz's own columns are there.
        columns = line.split()[-21:-9]  # n, svyaz, raw, ratio, net, raw net, ratio, cpu, ..., rpcs
        assert columns == [str(count), "1.25", "-", "-", "-", "-", "-", "0.50", "-", "4.0", "1.0", "0.00"]
        assert line.endswith("p50 0.50 / p95 2.00 / p99 3.00 ms")
    assert not any(line.startswith("raw limit") for line in lines)
    assert "machine      2 CPUs, None GiB RAM, ?, Python 3.11.7" in lines
    assert (
        "contention   2 failed attempts, 0 lock timeouts = 0.0 worker-s, 0.0% of worker time "
        in "\n".join(lines)
    )


def test_a_hand_made_report_without_raw_growth_or_hot_customer_prints_none_of_them() -> None:
    printed = hand_made().to_json()
    assert not {"raw", "ratios", "growth", "hot_customer"} & set(printed)
    assert "examples" not in printed["accuracy"]
    assert printed["machine"] == {"nproc": 2, "python": "3.11.7"}
    assert printed["svyaz"]["by_class"]["no_change"]["via_transaction"]["deliveries"] == 13
    assert printed["svyaz"]["jobs"]["kinds"] == {"fold": 70}
    assert list(printed["goals"]) == [
        "precision",
        "over_merges",
        "recall",
        "refused_links_violated",
        "dead_lettered",
        "graph_inconsistencies",
    ]


def test_a_missed_goal_is_marked_in_the_text() -> None:
    report = hand_made()
    missed = replace(report, svyaz=replace(report.svyaz, dead_lettered=2))
    assert "  MISS dead_lettered              target 0  value 2" in format_report(missed).splitlines()
    assert missed.to_json()["goals"]["dead_lettered"] == {"target": 0, "value": 2, "met": False}
