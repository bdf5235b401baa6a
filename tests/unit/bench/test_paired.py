"""The paired measurement: svyaz and the raw limit take turns on blocks of deliveries (svyaz
block k, then raw block k from svyaz's records of it), so both see the same machine load, and
a class's ratio is the sum of its raw times over the sum of its svyaz times over the blocks."""

from __future__ import annotations

import threading
from collections import Counter
from itertools import groupby

import pytest

from svyaz.adapters.store.base import Contention
from svyaz.adapters.store.memory import MemoryStore
from svyaz.bench.harness import BenchConfig, run_bench
from svyaz.bench.probe import FAST, ProbeStore
from svyaz.bench.replay import Delivery, block_size, paired_replay
from svyaz.bench.report import format_report
from svyaz.bench.summary import class_stats
from tests.helpers import event


class Log:
    """Who ran which event, in the order they ran (both sides append under one lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, str]] = []

    def add(self, side: str, event_id: str) -> None:
        with self.lock:
            self.entries.append((side, event_id))


class Service:
    """svyaz's side: every event is a no-change event, the even ones through the fast path;
    ``fail`` events raise Contention once."""

    def __init__(self, log: Log, fail: set[str], probe: ProbeStore) -> None:
        self.log, self.fail, self.probe = log, set(fail), probe

    def apply(self, e):
        with self.log.lock:
            if e.event_id in self.fail:
                self.fail.discard(e.event_id)
                raise Contention("busy")
        self.log.add("svyaz", e.event_id)
        if int(e.event_id[1:]) % 2 == 0:
            self.probe.trace.path = FAST

        class Outcome:
            status, duplicate = "unchanged", False

        return Outcome()


class Raw:
    """The raw side: records the touchpoint it writes (the event id, see ``event_key`` below)."""

    retries = lock_timeouts = 0

    def __init__(self, log: Log) -> None:
        self.log = log

    def no_change(self, identifier_keys, touchpoint_id, doc) -> float:
        self.log.add("raw", touchpoint_id)
        return 0.0

    def fast_path(self, identifier_keys, touchpoint_id, doc) -> float:
        self.log.add("equivalent", touchpoint_id)
        return 0.0

    def linking(self, read_paths, writes) -> float:
        raise AssertionError("every event here is a no-change event")

    duplicate = linking


@pytest.mark.parametrize("workers", [1, 3])
def test_blocks_alternate_and_each_delivery_runs_once_on_each_side(workers: int) -> None:
    log = Log()
    deliveries = [
        Delivery(n, event({"client_id": f"c{n}"}, event_id=f"e{n}"), ordering_key=f"k{n % 4}")
        for n in range(23)
    ]
    probe = ProbeStore(MemoryStore())
    service = Service(log, {"e2", "e11"}, probe)  # redelivered within their block, before its raw turn
    svyaz, raw = paired_replay(
        service,  # type: ignore[arg-type]
        probe,
        Raw(log),  # type: ignore[arg-type]
        deliveries,
        workers,
        lambda event_id: event_id,
        block=5,
    )
    once = [(side, f"e{n}") for n in range(23) for side in ("svyaz", "raw")]
    assert Counter(log.entries) == Counter(once + [("equivalent", f"e{n}") for n in range(0, 23, 2)])
    assert [d.block for d in deliveries] == [n // 5 for n in range(23)]
    # The log is svyaz block 0, raw block 0, its fast-path events' equivalent, svyaz block 1, the
    # equivalent, raw block 1, ...: each turn one side and exactly one block's events; the two
    # engine-free replays take turns at following svyaz.
    turns = [
        (side, {event_id for _, event_id in run}) for side, run in groupby(log.entries, key=lambda e: e[0])
    ]
    expected = []
    for block, start in enumerate(range(0, 23, 5)):
        events = range(start, min(start + 5, 23))
        engine_free = [
            ("raw", {f"e{n}" for n in events}),
            ("equivalent", {f"e{n}" for n in events if n % 2 == 0}),
        ]
        expected += [("svyaz", {f"e{n}" for n in events}), *(engine_free[::-1] if block % 2 else engine_free)]
    assert turns == expected
    assert (svyaz.blocks, svyaz.block_size, raw.blocks, raw.block_size) == (5, 5, 5, 5)
    assert svyaz.redeliveries == 2 and raw.redeliveries == 0


def test_the_block_grows_with_the_worker_pool() -> None:
    assert block_size(1) == block_size(2) == block_size(3) == 24
    assert block_size(8) == 64


def _timed(
    index: int, block: int, service_s: float, raw_s: float, cpu_s: float, raw_cpu_s: float
) -> Delivery:
    return Delivery(
        index, None, status="unchanged", block=block, service_s=service_s, raw_s=raw_s, cpu_s=cpu_s,
        raw_cpu_s=raw_cpu_s,
    )  # fmt: skip


def test_a_class_ratio_is_the_sum_over_the_blocks_and_the_median_of_the_blocks_beside_it() -> None:
    group = [
        _timed(0, 0, service_s=1.0, raw_s=1.0, cpu_s=0.4, raw_cpu_s=0.1),  # block 0: 2 / 4 = 0.5
        _timed(1, 0, service_s=3.0, raw_s=1.0, cpu_s=0.4, raw_cpu_s=0.1),
        _timed(2, 1, service_s=2.0, raw_s=2.0, cpu_s=0.4, raw_cpu_s=0.3),  # block 1: 1.0
        _timed(3, 2, service_s=4.0, raw_s=3.0, cpu_s=0.8, raw_cpu_s=0.3),  # block 2: 0.75
    ]
    raw = class_stats(group).raw
    assert raw is not None
    assert raw.ratio == 0.7  # 7 s of raw over 10 s of svyaz (the mean of per-delivery ratios: 0.77)
    assert raw.ratio_block_median == 0.75
    assert raw.cpu_ratio == 0.4  # 0.8 s of raw CPU over 2.0 s of svyaz CPU
    unpaired = class_stats([_timed(0, -1, 1.0, 0.5, 0.1, 0.1)]).raw
    assert unpaired is not None and unpaired.ratio == 0.5 and unpaired.ratio_block_median is None


def test_the_bench_report_says_how_its_ratios_were_paired() -> None:
    config = BenchConfig(customers=8, workers=2, seed=4, growth_sizes=(), progress=False, block=16)
    bench = run_bench(config, MemoryStore())
    report = bench.to_json()
    applied = report["svyaz"]["applied"]
    assert report["raw"]["blocks"] == -(-report["config"]["deliveries"] // 16) and applied > 16
    assert report["raw"]["block_size"] == 16
    no_change = report["svyaz"]["by_class"]["no_change"]
    assert no_change["ratio"] == report["ratios"]["no_change"]
    assert no_change["cpu_ratio"] == report["ratios"]["no_change_cpu"]
    assert no_change["ratio_block_median"] == report["ratios"]["no_change_block_median"] is not None
    assert report["accuracy"]["precision"] == 1.0 and report["svyaz"]["dead_lettered"] == 0
    (line,) = [line for line in format_report(bench).splitlines() if line.startswith("paired ")]
    assert line.startswith(f"paired       {report['raw']['blocks']} blocks of 16 deliveries, svyaz then raw")
    assert f"CPU raw/svyaz: no-change {report['ratios']['no_change_cpu']:.3g}" in line


class Client:
    """A Firestore client that records the round trips the raw backend sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def collection(self, name: str) -> Client:
        return self

    def document(self, name: str) -> Client:
        return self

    def get_all(self, refs, transaction=None):
        self.sent.append("BatchGet")
        return iter(())

    def create(self, doc) -> None:
        self.sent.append("Commit")

    def get(self, **_fields) -> None:
        self.sent.append("Get")


def test_the_equivalent_replay_sends_the_fast_paths_two_round_trips() -> None:
    """svyaz's fast path is one read round and one create (docs/performance.md), so the
    engine-free replay it is compared to (``ratio_equivalent``) sends exactly those."""
    pytest.importorskip("google.cloud.firestore")
    from svyaz.bench.raw import FirestoreRaw

    client = Client()
    FirestoreRaw(client).fast_path(["id-1", "id-2"], "t-1", {"at": 1})
    assert client.sent == ["BatchGet", "Commit"]
