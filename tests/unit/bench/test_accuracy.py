"""Accuracy of a store's final partition against a hand-made truth: two customers, replayed
through the service on a memory store; one event carries an identifier of each and joins them."""

from __future__ import annotations

from svyaz.adapters.store.base import IDENTIFIERS
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService
from svyaz.bench.accuracy import measure
from svyaz.bench.population import Population
from svyaz.bench.probe import instrument
from svyaz.bench.replay import Delivery, replay
from svyaz.identity.policy import Policy
from tests.helpers import event

ANNA = [("client_id", "c-anna"), ("email", "anna@mail.ru")]
BORIS = [("client_id", "c-boris"), ("email", "boris@mail.ru")]
APART = ({"client_id": "c-anna", "email": "anna@mail.ru"}, {"client_id": "c-boris", "email": "boris@mail.ru"})


def replayed(*identifier_sets: dict) -> tuple[MemoryStore, Population, list[Delivery]]:
    store = MemoryStore()
    probe = instrument(store)
    service = IdentityService(probe, Policy.default())
    events = [event(ids, event_id=f"e{n}", minutes=n) for n, ids in enumerate(identifier_sets)]
    deliveries = [Delivery(n, e) for n, e in enumerate(events)]
    replay(service, probe, deliveries, workers=1)
    truth = {key: 0 for key in ANNA} | {key: 1 for key in BORIS}
    return store, Population(events=events, truth=truth, customers=2), deliveries


def test_two_customers_kept_apart_score_one() -> None:
    store, population, deliveries = replayed(*APART)
    result = measure(store, population, deliveries)
    assert (result.scores.precision, result.scores.recall, result.scores.over_merges) == (1.0, 1.0, 0)
    assert (result.inconsistent_records, result.stale_listings, result.examples) == (0, 0, None)


def test_one_over_merge_lowers_precision_and_names_the_event_that_joined_them() -> None:
    # Boris logs in on Anna's browser: c-anna and boris@mail.ru in one event, so every
    # identifier of both customers ends in one profile (an over-merge the truth says is wrong).
    store, population, deliveries = replayed(*APART, {"client_id": "c-anna", "email": "boris@mail.ru"})
    result = measure(store, population, deliveries)
    scores = result.scores
    # 4 identifiers in one profile: 6 predicted pairs, of which 2 are one customer's.
    assert (scores.predicted_pairs, scores.correct_pairs, scores.true_pairs) == (6, 2, 2)
    assert scores.precision == 2 / 6 and scores.recall == 1.0
    assert (scores.over_merges, scores.under_merges, scores.profiles) == (1, 0, 1)
    assert result.inconsistent_records == 0 and result.stale_listings == 0
    (example,) = result.examples or ()
    assert example.kind == "over_merged_profile"
    assert example.parts == {
        "0": ["client_id:c-anna", "email:anna@mail.ru"],
        "1": ["client_id:c-boris", "email:boris@mail.ru"],
    }
    assert [line.split()[:2] for line in example.bridging_deliveries] == [["2:e2", "merged"]]
    assert result.to_json()["examples"][0]["bridging_deliveries"] == example.bridging_deliveries


def test_a_record_of_no_active_profile_is_an_inconsistency() -> None:
    store, population, deliveries = replayed(*APART)
    key, doc = next((k, d) for k, d in store.docs[IDENTIFIERS].items() if d["value"] == "c-boris")
    store.docs[IDENTIFIERS][key] = doc | {"profile_id": "no-such-profile"}
    result = measure(store, population, deliveries)
    assert result.inconsistent_records == 1
    assert result.stale_listings == 1  # Boris's profile still counts the record as its own
    assert result.scores.under_merges == 1  # c-boris is scored as a profile of its own
