"""The store's transactions, on both stores: serializable without holding locks across round
trips (a commit finds whatever the body read changed meanwhile, and the body runs again), and
nothing committed when the body writes nothing (a redelivered event costs one read round)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from svyaz.adapters.store.base import BLOCKLIST, PROFILES, Store, Write
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService, PendingJobs
from tests.helpers import event

RPCS = {
    "batch_get_documents": "reads",
    "commit": "commits",
    "begin_transaction": "begins",
    "rollback": "rollbacks",
}


@contextmanager
def round_trips(store: Store) -> Iterator[Counter[str]]:
    """Count the store's read rounds and commits (Firestore: its RPCs; memory: a read round is
    one ``_read``, a commit one ``_commit_if`` that writes, as the empty check writes nothing)."""
    counted: Counter[str] = Counter()
    if isinstance(store, MemoryStore):
        read, commit_if = store._read, store._commit_if

        def counting_read(*args: Any, **kwargs: Any) -> Any:
            counted["reads"] += 1
            return read(*args, **kwargs)

        def counting_commit(read_revisions: Any, writes: list[Write]) -> bool:
            counted["commits"] += 1 if writes else 0
            return commit_if(read_revisions, writes)

        store._read, store._commit_if = counting_read, counting_commit  # type: ignore[method-assign]
        try:
            yield counted
        finally:
            del store._read, store._commit_if
        return
    client = store.client  # type: ignore[attr-defined]
    api = client._firestore_api

    class Counting:
        def __getattr__(self, name: str) -> Any:
            if name in RPCS:
                counted[RPCS[name]] += 1
            return getattr(api, name)

    client._firestore_api_internal = Counting()
    try:
        yield counted
    finally:
        client._firestore_api_internal = api


def put(store: Store, collection: str, key: str, doc: dict[str, Any]) -> None:
    store._commit([Write(collection, key, doc)])


def doc(store: Store, collection: str, key: str) -> dict[str, Any] | None:
    return store._get([(collection, key)]).get((collection, key))


def test_a_redelivered_identify_is_answered_from_one_read_with_no_commit(store, policy):
    # Traits take the transactional path (a read-compare-write of the profile). Follow-up jobs
    # (its fold) are messages of their own, counted apart.
    service = IdentityService(store, policy, jobs=PendingJobs())
    identify = event(
        {"email": "ann@example.com"}, event_id="identify-1", type="identify", traits={"name": "Ann"}
    )
    first = service.apply(identify)
    with round_trips(store) as counted:
        again = service.apply(identify)
    assert again.duplicate and again.profile_id == first.profile_id
    # Before: BeginTransaction, one read round and an empty Commit on Firestore.
    assert counted["reads"] == 1 and counted["commits"] == 0 and counted["begins"] == 0


def test_a_commit_finds_a_document_it_writes_changed_since_the_read_and_runs_again(store):
    put(store, PROFILES, "p", {"n": 1})
    runs = []

    def body(get):
        n = get([(PROFILES, "p")])[(PROFILES, "p")]["n"]
        if not runs:
            put(store, PROFILES, "p", {"n": 10})  # another event's commit lands meanwhile
        runs.append(n)
        return n, [Write(PROFILES, "p", {"n": n + 1})]

    store._transaction(body)
    assert runs == [1, 10] and doc(store, PROFILES, "p") == {"n": 11}  # no write lost


def test_a_commit_finds_a_document_it_only_read_changed_and_runs_again(store):
    # The body writes b from a: a change of a in between must not be missed (no write skew).
    put(store, PROFILES, "a", {"status": "active"})
    runs = []

    def body(get):
        status = get([(PROFILES, "a")])[(PROFILES, "a")]["status"]
        if not runs:
            put(store, PROFILES, "a", {"status": "erased"})
        runs.append(status)
        return status, [Write(PROFILES, "b", {"seen": status})]

    store._transaction(body)
    assert runs == ["active", "erased"] and doc(store, PROFILES, "b") == {"seen": "erased"}
    assert doc(store, PROFILES, "a") == {"status": "erased"}  # verified, not rewritten


def test_a_commit_finds_a_document_read_as_missing_created_meanwhile_and_runs_again(store):
    # An operator blocks a value while an event that would link it is in flight.
    runs = []

    def body(get):
        blocked = (BLOCKLIST, "v") in get([(BLOCKLIST, "v")])
        if not runs:
            put(store, BLOCKLIST, "v", {"reason": "shared phone"})
        runs.append(blocked)
        return blocked, [] if blocked else [Write(PROFILES, "linked", {"via": "v"})]

    assert store._transaction(body) is True
    assert runs == [False, True] and doc(store, PROFILES, "linked") is None


def test_reads_of_a_transaction_come_from_one_moment(store):
    # The second round does not see a commit that landed after the first round.
    put(store, PROFILES, "a", {"v": 1})
    put(store, PROFILES, "b", {"v": 1})
    seen = []

    def body(get):
        a = get([(PROFILES, "a")])[(PROFILES, "a")]["v"]
        if not seen:
            store._commit([Write(PROFILES, "a", {"v": 2}), Write(PROFILES, "b", {"v": 2})])
        b = get([(PROFILES, "b")])[(PROFILES, "b")]["v"]
        seen.append((a, b))
        return (a, b), [Write(PROFILES, "c", {"sum": a + b})]

    store._transaction(body)
    # The first attempt read a=1 and then either b=1 (a snapshot) or b=2 (memory: its commit
    # check finds a changed): never committed from a mixed state.
    assert seen[-1] == (2, 2) and doc(store, PROFILES, "c") == {"sum": 4}
