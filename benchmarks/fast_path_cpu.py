"""Where a fast-path event's client CPU goes, against the raw limit's same steps.

Starts a Firestore emulator, applies a synthetic population (``--customers``, seed 1, no noise)
through ``IdentityService``, then sends again, under new event ids, every page view that took
the fast path (known browsers) and measures per event, interleaved so that load hits all alike,
the worker thread's CPU (``time.thread_time``) of:

* ``raw``: the raw limit's no-change event (``bench/raw.py``): one BatchGet of the identifier
  records, one ``set`` of the same touchpoint document;
* ``raw + 2 docs``: its BatchGet also asks for the two documents svyaz's read adds (the
  idempotency record and the touchpoint, both missing);
* ``raw + 2 docs + create``: and the touchpoint is ``create``d with ``written_ms``, as svyaz does;
* ``svyaz``: ``IdentityService.apply`` (follow-up jobs dropped).

``--profile`` also prints svyaz's CPU profile (cProfile on ``time.thread_time``) grouped into
svyaz's own modules and the Firestore client's layers (its ``svyaz`` row then includes the
profiler's overhead).

    PYTHONPATH=shared python3 benchmarks/fast_path_cpu.py [--customers 100] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from svyaz.adapters.store.firestore import FirestoreStore
from svyaz.app.service import IdentityService
from svyaz.bench.population import generate_population
from svyaz.bench.stores import BENCH_PEPPER, reset_emulator
from svyaz.dev.emulators import Emulator
from svyaz.domain.merge import InvalidEvent, observe, touchpoint_for
from svyaz.identity.policy import Policy

PROJECT = "fast-path-cpu"


class Dropped:
    def publish(self, jobs: list) -> None:
        pass


def layer(filename: str) -> str:
    if "svyaz/" in filename:
        return "svyaz " + filename.split("svyaz/")[-1]
    for part, name in (("firestore_v1", "firestore client"), ("/proto/", "proto-plus"), ("grpc", "grpc")):
        if part in filename:
            return name
    return "google api_core" if "api_core" in filename else "python " + filename.rsplit("/", 1)[-1]


def print_profile(profile: cProfile.Profile, events: int) -> None:
    by_layer: Counter[str] = Counter()
    for (filename, _, _), (_, _, own, _, _) in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        by_layer[layer(filename)] += own
    total = sum(by_layer.values())
    print(f"profile (own time, profiler overhead included): {1e3 * total / events:.2f} ms per event")
    for name, own in by_layer.most_common(20):
        print(f"  {100 * own / total:5.1f} %  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    emulator = Emulator("firestore").start()
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    try:
        from google.cloud import firestore

        reset_emulator(emulator.host, PROJECT)
        client = firestore.Client(project=PROJECT)
        store, policy = FirestoreStore(BENCH_PEPPER, client=client), Policy.default()
        service = IdentityService(store, policy, jobs=Dropped())

        def took_fast_path(event: object) -> bool:
            before = service.stats["fast_path"]
            try:
                service.apply(event)  # type: ignore[arg-type]
            except InvalidEvent:
                return False
            return service.stats["fast_path"] > before

        views = [e for e in generate_population(args.customers, 1, noise=False).events if took_fast_path(e)]
        again = [e.model_copy(update={"event_id": f"{e.event_id}-again"}) for e in views]
        again = [e for e in again if took_fast_path(e.model_copy(update={"event_id": f"{e.event_id}-warm"}))]
        identifiers, mirror = client.collection("identifiers"), client.collection("bench_raw")

        def raw(keys: list[str], name: str, doc: dict, extra: bool = False, create: bool = False) -> None:
            refs = [identifiers.document(key) for key in keys]
            if extra:
                refs += [mirror.document(f"processed-{name}"), mirror.document(f"touchpoint-{name}")]
            list(client.get_all(refs))
            target = mirror.document(f"{'create' if create else 'set'}-{name}")
            target.create(doc) if create else target.set(doc)

        labels = ("raw", "raw + 2 docs", "raw + 2 docs + create", "svyaz")
        cpu: dict[str, list[float]] = {label: [] for label in labels}
        profile = cProfile.Profile(time.thread_time) if args.profile else None
        for event in again:
            observation = observe(event, policy)
            keys = [store.keys.identifier(i) for i in observation.all_linking]
            name = store.keys.event(f"{event.event_id}-raw")
            doc = touchpoint_for(observation, "p" * 32).to_doc()
            steps: list[Callable[[], object]] = [
                partial(raw, keys, name, doc),
                partial(raw, keys, name, doc, extra=True),
                partial(raw, keys, name, dict(doc, written_ms=1), extra=True, create=True),
                partial(service.apply, event),
            ]
            for label, step in zip(labels, steps, strict=True):
                started = time.thread_time()
                if profile is not None and label == "svyaz":
                    profile.runcall(step)
                else:
                    step()
                cpu[label].append(time.thread_time() - started)
        print(f"{len(again)} fast-path page views of known browsers; client CPU per event (median / mean)")
        base = statistics.mean(cpu["raw"])
        for label, times in cpu.items():
            median, mean = 1e3 * statistics.median(times), 1e3 * statistics.mean(times)
            ratio = base / statistics.mean(times)
            print(f"  {label:22} {median:6.2f} / {mean:6.2f} ms   raw / this {ratio:.2f}")
        if profile is not None:
            print_profile(profile, len(again))
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
