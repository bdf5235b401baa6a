"""``svyaz bench --store memory --scale 2000,20000``: the embedded default as the store grows.

For each population size, in one run: the deliveries (events and their follow-up jobs) replayed
on a fresh memory store with 1 and with 2 workers (deliveries/s, wall and CPU ms per delivery,
transaction retries), then what the store holds, in bytes per stored event, per identifier and
per customer (``retained``: every object the store's documents, indexes and revisions reach,
shared ones counted once). The per-delivery cost at the largest size is divided by the cost at
the smallest: flat means the store's size does not enter an event's cost.

Workers are threads. A delivery on the memory store is pure Python, so under the GIL two
workers share one core's worth of Python whatever the locking. Where they do pay is I/O in a
delivery; the ``io`` runs (a smaller population) add a simulated round trip of ``io_ms``:

* ``ack``: after each delivery (a queue acknowledgement, a publish), outside the store;
* ``commit``: inside each commit, stripes held (a journal write), once with the store's striped
  locks and once with a single stripe: what one global lock did to independent customers.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

from svyaz.adapters.queue import ordering_key
from svyaz.adapters.store.base import IDENTIFIERS, PROCESSED, PROFILES, TOUCHPOINTS
from svyaz.adapters.store.journal import JournaledStore
from svyaz.adapters.store.memory import STRIPES, MemoryStore
from svyaz.app.service import IdentityService
from svyaz.bench.population import Population, generate_population
from svyaz.bench.probe import instrument
from svyaz.bench.replay import Delivery, JobDeliveries, replay
from svyaz.bench.stores import BENCH_PEPPER
from svyaz.domain.events import Event
from svyaz.domain.model import Job, Outcome
from svyaz.identity.policy import Policy

DEFAULT_SCALE = (2_000, 20_000)
WORKERS = (1, 2)
FREE_BYTES = 4 * 1024**3  # "a default machine": 4 GB free
HEADROOM = 0.5  # comfortably: the store uses at most half of it (the process, the queue, peaks)


class Acked:
    """The service, with a simulated round trip after each delivery (a queue ack, a publish)."""

    def __init__(self, service: IdentityService, seconds: float) -> None:
        self.service, self.seconds, self.jobs = service, seconds, service.jobs

    def apply(self, event: Event) -> Outcome:
        outcome = self.service.apply(event)
        time.sleep(self.seconds)
        return outcome

    def run_job(self, job: Job, debounce: bool = True) -> None:
        self.service.run_job(job, debounce)
        time.sleep(self.seconds)


def run_once(
    events: list[Event],
    workers: int,
    *,
    ack_s: float = 0.0,
    commit_s: float = 0.0,
    stripes: int = STRIPES,
    data_dir: str | None = None,
) -> tuple[dict[str, Any], MemoryStore]:
    """One replay on a fresh store (``data_dir``: journaled there, as ``svyaz serve --data-dir``):
    throughput, wall and CPU per delivery (jobs included)."""
    store = (
        JournaledStore(BENCH_PEPPER, data_dir, stripes=stripes)
        if data_dir
        else MemoryStore(BENCH_PEPPER, stripes=stripes)
    )
    if commit_s:
        store.before_apply = lambda _writes: time.sleep(commit_s)
    probe = instrument(store)
    jobs = JobDeliveries()
    service: Any = IdentityService(probe, Policy.default(), jobs=jobs)  # type: ignore[arg-type]
    if ack_s:
        service = Acked(service, ack_s)
    deliveries = [Delivery(n, e, ordering_key=ordering_key(e)) for n, e in enumerate(events)]
    gc.collect()
    cpu = time.process_time()
    run = replay(service, probe, deliveries, workers)
    cpu = time.process_time() - cpu
    total = len(deliveries) + len(jobs.deliveries)
    dead = sum(1 for d in [*deliveries, *jobs.deliveries] if d.status == "dead_lettered")
    return {
        "workers": workers,
        "deliveries": total,
        "events": len(deliveries),
        "jobs": len(jobs.deliveries),
        "elapsed_s": round(run.elapsed_s, 2),
        "deliveries_per_s": round(total / run.elapsed_s, 1),
        "wall_ms_per_delivery": round(1000 * run.elapsed_s / total, 4),
        "cpu_ms_per_delivery": round(1000 * cpu / total, 4),
        "retries": store.attempts["retries"],
        "dead_lettered": dead,
    }, store


def _deep_size(roots: Iterable[Any], seen: set[int]) -> int:
    """Bytes of every object reachable from ``roots`` through containers, each counted once."""
    total, stack = 0, list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack += obj.keys()
            stack += obj.values()
        elif isinstance(obj, list | tuple | set | frozenset):
            stack += obj
    return total


def retained(store: MemoryStore) -> dict[str, Any]:
    """What the store holds, by collection: documents, their index entries and revisions."""
    seen: set[int] = set()
    revisions: dict[str, list[Any]] = {}  # the store's refs and revision numbers, by collection
    for ref, revision in store._revisions.items():
        revisions.setdefault(ref[0], []).extend((ref, revision))
    # A dict entry of the revisions' map costs about its share of the table.
    per_revision = sys.getsizeof(store._revisions) / max(1, len(store._revisions))
    sizes: dict[str, int] = {}
    for collection, docs in store.docs.items():
        roots: list[Any] = [docs, *revisions.get(collection, [])]
        if collection in store._index:
            roots.append(store._index[collection])
        if collection == TOUCHPOINTS:
            roots.append(store._by_type)
        if collection == PROCESSED:
            roots.append(store._expiry)
        entries = len(revisions.get(collection, [])) // 2
        sizes[collection] = _deep_size(roots, seen) + int(per_revision * entries)
    counts = {c: len(d) for c, d in store.docs.items()}
    total = sum(sizes.values())
    events = counts[TOUCHPOINTS]
    return {
        "bytes": total,
        "documents": counts,
        "bytes_by_collection": sizes,
        # An event leaves its touchpoint (an order: one per order id) and its idempotency record.
        "bytes_per_event": round((sizes[TOUCHPOINTS] + sizes[PROCESSED]) / max(1, events)),
        "bytes_per_identifier": round(sizes[IDENTIFIERS] / max(1, counts[IDENTIFIERS])),
        "bytes_per_profile": round(sizes[PROFILES] / max(1, counts[PROFILES])),
    }


def measure_size(population: Population, workers: Iterable[int]) -> dict[str, Any]:
    runs, store = [], None
    for count in workers:
        result, store = run_once(population.events, count)
        runs.append(result)
    assert store is not None
    memory = retained(store)
    memory["bytes_per_customer"] = round(memory["bytes"] / population.customers)
    return {"customers": population.customers, "runs": runs, "memory": memory}


def io_runs(events: list[Event], io_s: float) -> list[dict[str, Any]]:
    """Where a second worker pays: a delivery that waits on I/O (see the module's docstring)."""
    cases: list[tuple[str, int, dict[str, Any]]] = [
        ("ack", 1, {"ack_s": io_s}),
        ("ack", 2, {"ack_s": io_s}),
        ("commit, striped locks", 1, {"commit_s": io_s}),
        ("commit, striped locks", 2, {"commit_s": io_s}),
        ("commit, one global lock", 2, {"commit_s": io_s, "stripes": 1}),
    ]
    rows = []
    for name, count, options in cases:
        result, _ = run_once(events, count, **options)
        rows.append({"io": name, **result})
    return rows


def journal_runs(events: list[Event], plain: list[dict[str, Any]]) -> dict[str, Any]:
    """The same replay on a journaled store (``svyaz serve --data-dir``, a temporary directory on
    this machine's disk): what the fsync of each commit costs, and how many commits shared one."""
    runs = []
    for count in WORKERS:
        with tempfile.TemporaryDirectory(prefix="svyaz-bench-data-") as folder:
            result, store = run_once(events, count, data_dir=folder)
            assert isinstance(store, JournaledStore)
            journal = store.journal_stats()
            store.close()
        deliveries = result["deliveries"]
        result["commits_per_delivery"] = round(journal["commits"] / deliveries, 2)
        result["fsyncs_per_delivery"] = round(journal["syncs"] / deliveries, 2)
        result["journal_bytes_per_delivery"] = round(journal["bytes"] / deliveries)
        runs.append(result)
    ratio = {
        f"{run['workers']}_workers": round(run["deliveries_per_s"] / base["deliveries_per_s"], 3)
        for run, base in zip(runs, plain, strict=True)
    }
    return {"runs": runs, "deliveries_per_s_vs_memory_only": ratio}


def scale_report(
    sizes: Iterable[int] = DEFAULT_SCALE,
    *,
    seed: int = 1,
    io_ms: float = 1.0,
    io_customers: int = 300,
    journal: bool = True,
    log: Callable[[str], None] = lambda _message: None,
) -> dict[str, Any]:
    results = []
    for customers in sizes:
        log(f"scale: {customers} customers (seed {seed}), {' and '.join(map(str, WORKERS))} workers")
        results.append(measure_size(generate_population(customers, seed), WORKERS))
    smallest, largest = results[0], results[-1]
    report: dict[str, Any] = {"sizes": results, "seed": seed}
    report["cost_ratio_largest_vs_smallest"] = {
        f"{run['workers']}_workers_{unit}": round(
            big[f"{unit}_ms_per_delivery"] / run[f"{unit}_ms_per_delivery"], 3
        )
        for run, big in zip(smallest["runs"], largest["runs"], strict=True)
        for unit in ("wall", "cpu")
    }
    report["two_vs_one_worker"] = {
        str(size["customers"]): round(
            size["runs"][1]["deliveries_per_s"] / size["runs"][0]["deliveries_per_s"], 3
        )
        for size in results
    }
    if journal:
        log(f"scale: {smallest['customers']} customers journaled (--data-dir), 1 and 2 workers")
        population = generate_population(smallest["customers"], seed)
        report["journal"] = journal_runs(population.events, smallest["runs"])
    per_customer = max(size["memory"]["bytes_per_customer"] for size in results)
    report["customers_in_4_gb"] = int(FREE_BYTES * HEADROOM / per_customer)
    if io_ms:
        log(f"scale: {io_customers} customers with {io_ms} ms of I/O per delivery / per commit")
        report["io"] = {"ms": io_ms, "customers": io_customers}
        report["io"]["runs"] = io_runs(generate_population(io_customers, seed).events, io_ms / 1000)
    return report


def format_scale(report: dict[str, Any]) -> str:
    lines = [
        f"svyaz bench --scale  store=memory seed={report['seed']}  (deliveries: events + follow-up jobs)",
        f"{'customers':>10}{'workers':>8}{'deliveries':>11}{'per s':>9}{'wall ms':>9}{'cpu ms':>8}"
        f"{'retries':>8}{'dead':>5}",
    ]
    for size in report["sizes"]:
        for run in size["runs"]:
            lines.append(
                f"{size['customers']:>10,}{run['workers']:>8}{run['deliveries']:>11,}"
                f"{run['deliveries_per_s']:>9,.0f}{run['wall_ms_per_delivery']:>9.3f}"
                f"{run['cpu_ms_per_delivery']:>8.3f}{run['retries']:>8}{run['dead_lettered']:>5}"
            )
    ratios = ", ".join(f"{k} {v}" for k, v in report["cost_ratio_largest_vs_smallest"].items())
    lines += [f"cost per delivery, largest / smallest: {ratios} (goal <= 1.2)"]
    lines += [f"2 workers / 1 worker (deliveries/s): {report['two_vs_one_worker']}", ""]
    lines.append(
        f"{'customers':>10}{'MiB':>8}{'B/event':>9}{'B/identifier':>13}{'B/profile':>10}{'B/customer':>11}"
        f"{'events':>9}{'identifiers':>12}"
    )
    for size in report["sizes"]:
        m = size["memory"]
        lines.append(
            f"{size['customers']:>10,}{m['bytes'] / 2**20:>8.1f}{m['bytes_per_event']:>9,}"
            f"{m['bytes_per_identifier']:>13,}{m['bytes_per_profile']:>10,}{m['bytes_per_customer']:>11,}"
            f"{m['documents'][TOUCHPOINTS]:>9,}{m['documents'][IDENTIFIERS]:>12,}"
        )
    lines.append(
        f"customers a 4 GB machine holds comfortably (store <= half): {report['customers_in_4_gb']:,}"
    )
    if "journal" in report:
        lines += ["", f"journaled (--data-dir), {report['sizes'][0]['customers']:,} customers:"]
        for run in report["journal"]["runs"]:
            lines.append(
                f"  {run['workers']} workers {run['deliveries_per_s']:>8,.0f} deliveries/s"
                f"  {run['commits_per_delivery']} commits and {run['fsyncs_per_delivery']} fsyncs"
                f" per delivery, {run['journal_bytes_per_delivery']:,} journal bytes per delivery"
            )
        ratio = ", ".join(f"{k} {v}" for k, v in report["journal"]["deliveries_per_s_vs_memory_only"].items())
        lines.append(f"  deliveries/s journaled / memory only: {ratio}")
    if "io" in report:
        io = report["io"]
        lines += ["", f"with {io['ms']} ms of I/O, {io['customers']} customers:"]
        for run in io["runs"]:
            lines.append(
                f"  {run['io']:<26}{run['workers']} workers {run['deliveries_per_s']:>8,.0f} deliveries/s"
                f"  retries {run['retries']}"
            )
    return "\n".join(lines)
