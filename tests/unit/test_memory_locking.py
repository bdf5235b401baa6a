"""The embedded store's transactions, interleaved on purpose: events of different customers hold
no common lock (one commits while the other is paused inside its commit), events of the same
customer are serialized by the commit's check (the loser runs again; no write is lost)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from svyaz.adapters.store.base import Write
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService, PendingJobs
from svyaz.domain.model import Identifier
from tests.conftest import PEPPER
from tests.helpers import check_invariants, event, profile_of

WAIT_S = 5.0  # only reached when the behaviour under test is broken


class Paused:
    """Pauses the first call made from the thread named ``who`` until ``resume``."""

    def __init__(self, who: str) -> None:
        self.who, self.reached, self.go = who, threading.Event(), threading.Event()

    def __call__(self, *_: Any) -> None:
        if threading.current_thread().name == self.who and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(WAIT_S), "never resumed"


class Deciding:
    """The store, with every ``transact`` counting the engine's runs (``decisions``) and calling
    ``during(thread name)`` in the middle of each one: after its reads, before its commit."""

    def __init__(self, inner: MemoryStore, during: Callable[[str], None]) -> None:
        self.inner, self.during, self.decisions = inner, during, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def transact(
        self, identifiers: list[Identifier], event_id: str, decide: Any, touchpoint: Any = None, **kw: Any
    ):
        def deciding(snapshot: Any) -> Any:
            self.decisions += 1
            self.during(threading.current_thread().name)
            return decide(snapshot)

        return self.inner.transact(identifiers, event_id, deciding, touchpoint, **kw)


@pytest.fixture
def threads() -> Iterator[Callable[[str, Callable[[], Any]], threading.Thread]]:
    started: list[threading.Thread] = []

    def start(name: str, work: Callable[[], Any]) -> threading.Thread:
        thread = threading.Thread(target=work, name=name, daemon=True)
        started.append(thread)
        thread.start()
        return thread

    yield start
    for thread in started:
        thread.join(WAIT_S)


def service_on(store: Any, policy, name: str) -> IdentityService:
    ids = iter(f"{name}{n}" for n in range(100))
    return IdentityService(store, policy, id_factory=lambda: next(ids), jobs=PendingJobs())


def test_a_customer_commits_while_another_customer_is_paused_inside_its_commit(policy, threads):
    store = MemoryStore(PEPPER)
    paused = Paused("A")
    store.before_apply = paused
    a = event({"client_id": "a1", "phone": "+79091234567"})
    b = event({"client_id": "b1", "email": "b@example.com"})
    a_thread = threads("A", lambda: service_on(store, policy, "pa").apply(a))
    assert paused.reached.wait(WAIT_S)  # A checked its reads and holds its stripes
    b_thread = threads("B", lambda: service_on(store, policy, "pb").apply(b))
    b_thread.join(WAIT_S)
    assert not b_thread.is_alive(), "B waited for A: they share a lock"
    assert profile_of(store, "client_id", "b1") == {"client_id:b1", "email:b@example.com"}
    assert store.lookup(Identifier("client_id", "a1")) is None  # A is still paused before its writes
    paused.go.set()
    a_thread.join(WAIT_S)
    assert profile_of(store, "client_id", "a1") == {"client_id:a1", "phone:+79091234567"}
    assert store.attempts["retries"] == 0
    check_invariants(store, policy)


def test_with_one_stripe_the_other_customer_waits_for_the_paused_commit(policy, threads):
    """The same interleaving on a store with a single commit lock (what one global lock did)."""
    store = MemoryStore(PEPPER, stripes=1)
    paused = Paused("A")
    store.before_apply = paused
    a_thread = threads("A", lambda: service_on(store, policy, "pa").apply(event({"client_id": "a1"})))
    assert paused.reached.wait(WAIT_S)
    b_thread = threads("B", lambda: service_on(store, policy, "pb").apply(event({"client_id": "b1"})))
    b_thread.join(0.2)
    assert b_thread.is_alive() and store.lookup(Identifier("client_id", "b1")) is None
    paused.go.set()
    a_thread.join(WAIT_S)
    b_thread.join(WAIT_S)
    assert store.lookup(Identifier("client_id", "b1")) is not None


def test_a_customer_applies_while_another_customers_transaction_is_paused_mid_way(policy, threads):
    paused = Paused("A")
    store = Deciding(MemoryStore(PEPPER), paused)
    a_thread = threads("A", lambda: service_on(store, policy, "pa").apply(event({"client_id": "a1"})))
    assert paused.reached.wait(WAIT_S)  # A has read its snapshot and runs the engine
    service_on(store, policy, "pb").apply(event({"client_id": "b1", "session_id": "s1"}))
    paused.go.set()
    a_thread.join(WAIT_S)
    assert store.decisions == 2 and store.inner.attempts["retries"] == 0  # A's reads stayed valid
    assert profile_of(store.inner, "client_id", "a1") == {"client_id:a1"}
    assert profile_of(store.inner, "session_id", "s1") == {"client_id:b1", "session_id:s1"}


def counts(store: MemoryStore, identifier: Identifier) -> dict[str, int]:
    record = store.get_record(identifier)
    return store._profile_doc(record.profile_id).identifier_counts


def test_the_same_customer_paused_mid_way_runs_again_and_keeps_the_other_write(policy, threads):
    inner = MemoryStore(PEPPER)
    service_on(inner, policy, "p").apply(event({"client_id": "c1"}))
    paused = Paused("A")
    store = Deciding(inner, paused)
    a_thread = threads(
        "A",
        lambda: service_on(store, policy, "pa").apply(event({"client_id": "c1", "phone": "+79091234567"})),
    )
    assert paused.reached.wait(WAIT_S)  # A read c1's profile before B's write
    service_on(store, policy, "pb").apply(event({"client_id": "c1", "email": "c@example.com"}))
    paused.go.set()
    a_thread.join(WAIT_S)
    # A's first commit found c1's profile changed and ran again on B's write: 1 + 1 + 1 runs.
    assert store.decisions == 3 and inner.attempts["retries"] == 1
    assert profile_of(inner, "client_id", "c1") == {
        "client_id:c1",
        "phone:+79091234567",
        "email:c@example.com",
    }
    assert counts(inner, Identifier("client_id", "c1")) == {"client_id": 1, "phone": 1, "email": 1}
    check_invariants(inner, policy)


def test_the_same_customer_read_before_a_paused_commit_runs_again_after_it(policy, threads):
    inner = MemoryStore(PEPPER)
    service_on(inner, policy, "p").apply(event({"client_id": "c1"}))
    a_paused = Paused("A")
    inner.before_apply = a_paused
    b_decided = threading.Event()
    store = Deciding(inner, lambda who: who == "B" and b_decided.set())
    a_thread = threads(
        "A",
        lambda: service_on(store, policy, "pa").apply(event({"client_id": "c1", "phone": "+79091234567"})),
    )
    assert a_paused.reached.wait(WAIT_S)  # A checked, holds c1's stripes, has not written
    b_thread = threads(
        "B",
        lambda: service_on(store, policy, "pb").apply(event({"client_id": "c1", "email": "c@example.com"})),
    )
    assert b_decided.wait(WAIT_S)  # B read c1 as it was before A's writes
    a_paused.go.set()
    a_thread.join(WAIT_S)
    b_thread.join(WAIT_S)
    assert not b_thread.is_alive() and inner.attempts["retries"] == 1  # B ran again, on A's write
    assert counts(inner, Identifier("client_id", "c1")) == {"client_id": 1, "phone": 1, "email": 1}
    check_invariants(inner, policy)


def test_a_failed_check_writes_nothing_of_the_batch(policy):
    store = MemoryStore(PEPPER)
    service_on(store, policy, "p").apply(event({"client_id": "c1"}))
    [key] = store.identifiers
    stale = Write("identifiers", key, {"profile_id": "elsewhere"}, "update", revision=-1)
    store.before_apply = lambda writes: pytest.fail("a batch that failed its check reached the apply")
    with pytest.raises(Exception, match="changed"):
        store._commit([Write("profiles", "new", {"status": "active"}), stale])
    assert "new" not in store.profiles and store.identifiers[key]["profile_id"] == "p0"
