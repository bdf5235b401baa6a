"""``svyaz bench --scale``: the embedded default at several sizes, 1 and 2 workers, bytes held."""

from __future__ import annotations

import sys

import pytest

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService
from svyaz.bench.embedded import _deep_size, format_scale, retained, scale_report
from svyaz.cli import main
from svyaz.identity.policy import Policy
from tests.conftest import PEPPER
from tests.helpers import event


@pytest.fixture(scope="module")
def report() -> dict:
    return scale_report((8, 16), io_ms=0.1, io_customers=8)


def test_each_size_is_replayed_with_one_and_two_workers_and_nothing_is_lost(report: dict) -> None:
    assert [s["customers"] for s in report["sizes"]] == [8, 16]
    for size in report["sizes"]:
        assert [r["workers"] for r in size["runs"]] == [1, 2]
        for run in size["runs"]:
            assert run["dead_lettered"] == 0 and run["deliveries"] == run["events"] + run["jobs"]
    small, big = report["sizes"]
    assert big["runs"][0]["events"] > small["runs"][0]["events"]
    expected = big["runs"][0]["cpu_ms_per_delivery"] / small["runs"][0]["cpu_ms_per_delivery"]
    assert report["cost_ratio_largest_vs_smallest"]["1_workers_cpu"] == round(expected, 3)
    assert [(r["io"], r["workers"]) for r in report["io"]["runs"]] == [
        ("ack", 1),
        ("ack", 2),
        ("commit, striped locks", 1),
        ("commit, striped locks", 2),
        ("commit, one global lock", 2),
    ]


def test_the_journaled_runs_replay_the_smallest_size_and_count_what_the_journal_did(report: dict) -> None:
    small = report["sizes"][0]["runs"]
    journaled = report["journal"]["runs"]
    assert [r["workers"] for r in journaled] == [1, 2]
    for run, plain in zip(journaled, small, strict=True):
        assert run["events"] == plain["events"] and run["dead_lettered"] == 0
        # Commits running at once may share an fsync, never the other way round.
        assert 0 < run["fsyncs_per_delivery"] <= run["commits_per_delivery"]
        assert run["journal_bytes_per_delivery"] > 100
    assert set(report["journal"]["deliveries_per_s_vs_memory_only"]) == {"1_workers", "2_workers"}
    assert "journaled (--data-dir)" in format_scale(report)


def test_bytes_are_counted_by_collection_and_per_stored_document(report: dict) -> None:
    for size in report["sizes"]:
        memory = size["memory"]
        assert memory["bytes"] == sum(memory["bytes_by_collection"].values())
        assert memory["bytes_per_customer"] == round(memory["bytes"] / size["customers"])
        assert memory["documents"]["touchpoints"] > 0 and memory["bytes_per_identifier"] > 0
    per_customer = max(s["memory"]["bytes_per_customer"] for s in report["sizes"])
    assert report["customers_in_4_gb"] == int(2 * 1024**3 / per_customer)
    text = format_scale(report)
    assert "B/identifier" in text and "one global lock" in text and "goal <= 1.2" in text


def test_a_shared_object_is_counted_once() -> None:
    shared = "x" * 1000
    assert _deep_size([[shared], [shared]], set()) == 2 * sys.getsizeof([shared]) + sys.getsizeof(shared)


def test_every_stored_identifier_adds_to_the_identifiers_bytes() -> None:
    store = MemoryStore(PEPPER)
    service = IdentityService(store, Policy.default())
    service.apply(event({"client_id": "c1"}))
    one = retained(store)["bytes_by_collection"]["identifiers"]
    for n in range(2, 21):
        service.apply(event({"client_id": f"c{n}"}))
    twenty = retained(store)
    assert twenty["documents"]["identifiers"] == 20
    assert twenty["bytes_by_collection"]["identifiers"] > 10 * one


def test_scale_is_for_the_memory_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--store", "firestore", "--scale", "10", "--quiet"]) == 2
    assert "--store memory" in capsys.readouterr().err
