"""The hot-customer test: one busy customer (a browser that keeps clicking, logs in, leaves a
lead, updates their details) sending 20 events/s to W workers. Run twice on the same store: with
the deployed Pub/Sub ordering keys (the customer's events one after the other) and without (all
W workers on the one customer at once, the worst case the design must survive)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from svyaz.adapters.queue import ordering_key
from svyaz.adapters.store.base import Store
from svyaz.app.service import IdentityService
from svyaz.bench.probe import instrument
from svyaz.bench.replay import Delivery, JobDeliveries, replay
from svyaz.domain.events import Event
from svyaz.domain.model import Identifier
from svyaz.identity.policy import Policy

START = datetime(2025, 6, 1, 9, tzinfo=UTC)
PATHS = ("fast_path", "transaction", "duplicate")
ADS = [{"source": "yandex", "medium": "cpc", "campaign": "sofas"}, {"source": "vk", "medium": "social"}]


def hot_events(tag: str, count: int, seed: int = 7) -> list[Event]:
    """One customer's events: 85 % page views (half with UTM), logins, leads, new sessions,
    traits; every one carries the customer's browser id."""
    rng = random.Random(seed)  # noqa: S311 - a synthetic population, not a secret
    browser = f"hot-{tag}-browser"
    events = []
    for n in range(count):
        at = START + timedelta(milliseconds=50 * n)
        ids: dict[str, Any] = {"client_id": browser}
        fields: dict[str, Any] = {}
        roll = rng.random()
        if roll < 0.85:
            kind = "page"
            if rng.random() < 0.5:
                fields["context"] = rng.choice(ADS)
        elif roll < 0.90:
            kind, ids["email"] = "identify", f"hot-{tag}@example.ru"
            fields["traits"] = {"plan": rng.choice(["a", "b", "c"])}
        elif roll < 0.95:
            kind, ids["phone"] = "lead", "+7916000000" + ("1" if tag == "ordered" else "2")
        else:
            kind, ids["session_id"] = "page", f"hot-{tag}-s{n}"
        events.append(Event(event_id=f"hot-{tag}-{n}", type=kind, timestamp=at, identifiers=ids, **fields))
    return events


def hot_customer(store: Store, workers: int, events: int = 200, rate: float = 20.0) -> dict[str, Any]:
    """The same customer's stream with and without ordering keys; per run: dead letters,
    redeliveries, failed transaction attempts, whether every event reached the one profile."""
    results = {}
    for ordered in (True, False):
        tag = "ordered" if ordered else "unordered"
        stream = hot_events(tag, events)
        probe = instrument(store)
        jobs = JobDeliveries()
        service = IdentityService(probe, Policy.default(), jobs=jobs)  # type: ignore[arg-type]
        deliveries = [
            Delivery(n, e, ordering_key=ordering_key(e) if ordered else "") for n, e in enumerate(stream)
        ]
        before = dict(getattr(store, "attempts", {"retries": 0, "contention": 0}))
        run = replay(service, probe, deliveries, workers, pace_per_s=rate)
        after = getattr(store, "attempts", {"retries": 0, "contention": 0})
        profile = store.lookup(Identifier("client_id", f"hot-{tag}-browser"))
        applied = (
            len(store.touchpoints([profile.profile_id, *profile.merged_from], events + 10)) if profile else 0
        )
        latencies = sorted(d.latency_s for d in deliveries if d.applied)
        results[tag] = {
            "events": events,
            "rate_per_s": rate,
            "workers": workers,
            "elapsed_s": round(run.elapsed_s, 2),
            "dead_lettered": sum(1 for d in deliveries if d.status == "dead_lettered"),
            "redeliveries": run.redeliveries,
            "transaction_retries": after["retries"] - before["retries"],
            "transaction_give_ups": after["contention"] - before["contention"],
            "touchpoints_on_the_profile": applied,
            "paths": dict(
                sorted(
                    {
                        p: sum(1 for d in deliveries if d.trace and d.trace.path == p)
                        for p in ("fast_path", "transaction", "duplicate")
                    }.items()
                )
            ),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 2) if latencies else None,
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 2) if latencies else None,
            "follow_up_jobs": len(jobs.deliveries),
        }
    return results
