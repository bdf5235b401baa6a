"""The benchmark and accuracy run behind ``svyaz bench``.

One run, one store, one worker count:

1. **svyaz**: the population's deliveries (duplicates and out-of-order included) replayed
   through ``IdentityService.apply`` from W worker threads (``replay.replay``: redelivery on
   ``Contention``, dead letters, follow-up jobs as deliveries of their own).
2. **raw limit**: the same deliveries, same order, same W, same store, with no engine: the
   ceiling svyaz is compared to, per event class (``summary``). Paired with 1 in blocks
   (``replay.paired_replay``: svyaz replays block k, then the raw limit replays block k from
   svyaz's records of it), so both see the same load on a shared machine.
3. **accuracy**: the final partition against the population's ground truth (``accuracy``).
4. **cost growth**: documents per event against profiles of 10 ... 10,000 identifiers.

The result is a ``report.BenchReport``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from svyaz.adapters.queue import ordering_key
from svyaz.adapters.store.base import Store
from svyaz.app.service import IdentityService
from svyaz.bench import accuracy, summary
from svyaz.bench.growth import DEFAULT_SIZES, measure_growth
from svyaz.bench.hot import hot_customer
from svyaz.bench.population import Population, generate_population
from svyaz.bench.probe import instrument
from svyaz.bench.raw import backend_for
from svyaz.bench.replay import Delivery, JobDeliveries, paired_replay, replay
from svyaz.bench.report import BenchReport, Machine, RunConfig
from svyaz.bench.stores import BENCH_PROJECT
from svyaz.identity.policy import Policy


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
    block: int = 0  # deliveries per paired block (svyaz then raw); 0: replay.block_size(workers)

    def of(self, population: Population) -> RunConfig:
        """The report's account of the run: these settings and the population delivered."""
        return RunConfig(
            store=self.store,
            customers=self.customers,
            workers=self.workers,
            seed=self.seed,
            noise=self.noise,
            ordering=self.ordering,
            deliveries=len(population.events),
            unique_events=population.unique_events,
            duplicate_deliveries=population.duplicates,
            garbage_values=population.garbage_values,
        )


def run_bench(
    config: BenchConfig,
    store: Store,
    population: Population | None = None,
    log: Callable[[str], None] = lambda _message: None,
) -> BenchReport:
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

    raw = raw_run = ratios = None
    if config.raw:
        log(
            f"replaying {len(deliveries)} deliveries through svyaz and as raw store operations, "
            f"in turns, with {config.workers} workers"
        )
        run, raw_run = paired_replay(
            service,
            probe,
            backend_for(store),
            deliveries,
            config.workers,
            store.keys.event,
            block=config.block,
            progress=config.progress,
        )
    else:
        log(f"replaying {len(deliveries)} deliveries through svyaz with {config.workers} workers")
        run = replay(service, probe, deliveries, config.workers, progress=config.progress)
    deliveries = [*deliveries, *jobs.deliveries]
    log("scoring accuracy")
    graph = accuracy.measure(store, population, deliveries)
    svyaz = summary.service_run(deliveries, run, store)  # the store's attempts before growth adds to them
    if raw_run is not None:
        raw, ratios = summary.raw_run(deliveries, raw_run), summary.ratios(svyaz, run, raw_run)
    growth = hot = None
    if config.growth_sizes:
        log(f"measuring cost growth for profiles of {', '.join(map(str, config.growth_sizes))} identifiers")
        growth = measure_growth(probe, config.growth_sizes, tag=str(config.seed))
    if config.hot_customer:
        log(f"hot customer: {config.hot_customer} events at 20/s, {config.workers} workers, ordered and not")
        hot = hot_customer(store, config.workers, config.hot_customer)
    return BenchReport(
        svyaz=svyaz,
        service_stats=dict(service.stats),
        accuracy=graph,
        config=config.of(population),
        machine=Machine.here(),
        raw=raw,
        ratios=ratios,
        growth=growth,
        hot_customer=hot,
    )
