"""The benchmark harness on the memory store: the report's shape, accuracy on a tiny population,
redelivery and dead-lettering, and the command line. Never a speed."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from svyaz.adapters.store.base import Contention
from svyaz.adapters.store.memory import MemoryStore
from svyaz.bench import generate_population
from svyaz.bench.harness import BenchConfig, run_bench
from svyaz.bench.probe import ProbeStore
from svyaz.bench.replay import MAX_FAILURES, Delivery, replay
from svyaz.bench.report import BenchReport, format_report
from svyaz.bench.summary import percentile
from svyaz.cli import main
from svyaz.domain.merge import InvalidEvent
from tests.helpers import event

CLASSES = ("no_change", "linking", "duplicate")


@pytest.fixture(scope="module")
def bench_report() -> BenchReport:
    config = BenchConfig(customers=25, workers=4, seed=3, growth_sizes=(10, 60), progress=False)
    return run_bench(config, MemoryStore())


@pytest.fixture(scope="module")
def report(bench_report: BenchReport) -> dict:
    """As ``svyaz bench --json`` prints it."""
    return bench_report.to_json()


def test_report_has_every_section(report: dict) -> None:
    assert set(report) >= {"config", "machine", "svyaz", "raw", "ratios", "accuracy", "growth", "goals"}
    svyaz = report["svyaz"]
    for key in ("events_per_s", "latency_ms", "paths", "transaction_retries", "transaction_give_ups"):
        assert key in svyaz
    assert set(svyaz["latency_ms"]) == {"mean", "p50", "p95", "p99"}
    assert svyaz["latency_ms"]["p50"] <= svyaz["latency_ms"]["p95"] <= svyaz["latency_ms"]["p99"]
    assert set(svyaz["by_class"]) == set(CLASSES)
    assert set(report["ratios"]) >= {"no_change", "linking", "overall"}
    assert report["machine"]["nproc"] >= 1


def test_every_delivery_is_applied_once_and_none_is_dead_lettered(report: dict) -> None:
    config, svyaz = report["config"], report["svyaz"]
    assert svyaz["applied"] == config["deliveries"]
    assert svyaz["dead_lettered"] == 0 and svyaz["invalid"] == 0
    assert sum(svyaz["by_class"][c]["deliveries"] for c in CLASSES) == config["deliveries"]
    # Every redelivered copy is recognised as a duplicate (the population's own count).
    assert svyaz["by_class"]["duplicate"]["deliveries"] == config["duplicate_deliveries"]
    assert sum(svyaz["paths"].values()) == config["deliveries"]


def test_accuracy_on_the_noisy_population(report: dict) -> None:
    accuracy = report["accuracy"]
    assert accuracy["precision"] == 1.0
    assert accuracy["over_merges"] == 0
    assert accuracy["refused_links_violated"] == 0
    assert accuracy["inconsistent_records"] == 0
    assert report["goals"]["precision"]["met"]


def test_cost_growth_is_measured_for_each_size_and_stays_flat(report: dict) -> None:
    growth = report["growth"]
    assert [row["identifiers"] for row in growth] == [10, 60]
    for event_name in ("no_change", "merge_in", "merge_away"):
        assert len({(row[event_name]["reads"], row[event_name]["writes"]) for row in growth}) == 1
    assert all(row["no_change"]["path"] == "fast_path" for row in growth)
    assert all(row["merge_away"]["status"] == "merged" for row in growth)
    # The big profile lost: its records are re-pointed by the follow-up job, not the transaction.
    assert growth[1]["merge_away"]["repointed_after"] > growth[0]["merge_away"]["repointed_after"]


def test_the_text_report_names_every_section(bench_report: BenchReport) -> None:
    text = format_report(bench_report)
    for part in ("throughput", "latency", "raw limit", "accuracy", "cost growth", "goals"):
        assert part in text


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([], 50) == 0.0 and percentile([7.0], 99) == 7.0


class FlakyService:
    """Raises ``Contention`` for some events a given number of times, like a contended store."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = dict(failures)
        self.lock = threading.Lock()
        self.applied: list[str] = []

    def apply(self, e):
        with self.lock:
            left = self.failures.get(e.event_id, 0)
            if left:
                self.failures[e.event_id] = left - 1
                raise Contention("busy")
            if e.event_id == "invalid":
                raise InvalidEvent("no usable identifier")
            self.applied.append(e.event_id)

        class Outcome:
            status, duplicate = "created", False

        return Outcome()


def test_contention_redelivers_and_five_failures_dead_letter() -> None:
    events = [
        event({"client_id": f"c{n}"}, event_id=name)
        for n, name in enumerate(["ok", "twice", "never", "invalid"])
    ]
    service = FlakyService({"twice": 2, "never": 100})
    deliveries = [Delivery(n, e) for n, e in enumerate(events)]
    run = replay(service, ProbeStore(MemoryStore()), deliveries, workers=3)  # type: ignore[arg-type]
    by_id = {d.event.event_id: d for d in deliveries}
    assert sorted(service.applied) == ["ok", "twice"]
    assert by_id["twice"].failures == 2 and by_id["twice"].applied
    assert by_id["never"].status == "dead_lettered" and by_id["never"].failures == MAX_FAILURES
    assert by_id["invalid"].status == "invalid"
    assert run.redeliveries == 2 + MAX_FAILURES - 1
    assert run.errors["contention"] == 2 + MAX_FAILURES


def test_the_command_prints_a_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "--customers",
            "6",
            "--workers",
            "2",
            "--seed",
            "5",
            "--json",
            "--growth",
            "none",
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["store"] == "memory" and report["config"]["workers"] == 2
    assert report["accuracy"]["precision"] == 1.0
    assert "growth" not in report


def test_the_population_of_the_report_is_the_seeded_one() -> None:
    population = generate_population(6, seed=5)
    report = run_bench(
        BenchConfig(customers=6, workers=2, growth_sizes=(), raw=False, progress=False),
        MemoryStore(),
        population,
    ).to_json()
    assert report["config"]["deliveries"] == len(population.events)
    assert "raw" not in report and "ratios" not in report


def test_the_ratio_goals_are_shown_only_for_firestore(report: dict, bench_report: BenchReport) -> None:
    """The ratio goals are about Firestore; on memory they would only print MISS for nothing."""
    assert report["config"]["store"] == "memory"
    assert not {"no_change_ratio", "linking_ratio"} & set(report["goals"])
    assert "no_change_ratio" not in format_report(bench_report)
    on_firestore = replace(bench_report, config=replace(bench_report.config, store="firestore"))
    assert {"no_change_ratio", "linking_ratio"} <= set(on_firestore.goals())


def test_progress_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch) -> None:
    from svyaz.bench import replay as replay_module

    monkeypatch.setattr(replay_module, "PROGRESS_EVERY", 0.0)
    deliveries = [Delivery(n, event({"client_id": f"c{n}"})) for n in range(3)]
    replay_module.run_workers(deliveries, 1, lambda _delivery: True, "lines", "svyaz")
    err = capsys.readouterr().err
    assert "svyaz bench: svyaz: 3/3 deliveries" in err
