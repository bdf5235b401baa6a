"""Races and failures at real scale, with injected interleavings, on both stores: what a user
sees when a merge, an erasure or a crash lands between two steps of another event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from svyaz.adapters.store.base import Store, StoreError
from svyaz.app.service import IdentityService, PendingJobs
from svyaz.domain.merge import MAX_HOPS, ChainTooLong
from svyaz.domain.model import Identifier
from tests.helpers import check_invariants, event


class Interleaved:
    """The store, with ``hooks[name]`` run once just before the service's call ``name``."""

    def __init__(self, inner: Store, **hooks: Callable[[], Any]) -> None:
        self.inner = inner
        self.hooks = dict(hooks)
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            hook = self.hooks.pop(name, None)
            if hook is not None:
                hook()
            return target(*args, **kwargs)

        return call


class Crash(Exception):
    """The worker dies here (its message is redelivered later)."""


def crash() -> None:
    raise Crash


def two_profiles(service: IdentityService) -> tuple[str, str]:
    older = service.apply(event({"client_id": "old"}, minutes=-10)).profile_id
    newer = service.apply(event({"client_id": "c1", "session_id": "s1"}, minutes=0)).profile_id
    return older, newer


def owner_of_touchpoint(store: Store, profile_ids: list[str], event_id: str) -> list[str]:
    return [t.profile_id for t in store.touchpoints(profile_ids, 50) if t.event_id == event_id]


def test_a_page_view_racing_a_merge_lands_on_the_survivor_never_on_the_tombstone(store, policy):
    service = IdentityService(store, policy)
    older, newer = two_profiles(service)
    merge = event({"client_id": ["c1", "old"]}, minutes=5)
    racing = IdentityService(Interleaved(store, create_touchpoint=lambda: service.apply(merge)), policy)
    view = event({"client_id": "c1"}, minutes=6, context={"source": "vk", "medium": "social"})
    outcome = racing.apply(view)
    assert outcome.profile_id == older  # not the tombstone
    assert owner_of_touchpoint(store, [older, newer], view.event_id) == [older]
    assert store.get_profile(newer).status == "merged"
    assert store.lookup(Identifier("client_id", "c1")).counters["events"] == 4
    check_invariants(store, policy)


def test_a_page_view_merged_away_after_its_write_is_withdrawn_and_applied_to_the_survivor(store, policy):
    service = IdentityService(store, policy)
    older, newer = two_profiles(service)
    merge = event({"client_id": ["c1", "old"]}, minutes=5)
    racing = IdentityService(Interleaved(store, profile_state=lambda: service.apply(merge)), policy)
    view = event({"client_id": "c1"}, minutes=6)
    assert racing.apply(view).profile_id == older
    assert owner_of_touchpoint(store, [older, newer], view.event_id) == [older]
    assert racing.stats["fast_path_fallbacks"] == 1


@pytest.mark.parametrize("step", ["create_touchpoint", "profile_state"])
def test_a_page_view_racing_an_erasure_leaves_nothing_of_the_erased_customer(store, policy, step):
    service = IdentityService(store, policy)
    first = service.apply(
        event({"client_id": "c1", "phone": "+79091234567"}, traits={"first_name": "Ekaterina"})
    )
    erased = first.profile_id
    racing = IdentityService(Interleaved(store, **{step: lambda: store.erase(erased)}), policy)
    view = event({"client_id": "c1"}, minutes=1, context={"page_url": "https://shop.example/secret"})
    outcome = racing.apply(view)
    # The event came after the erasure: a new profile with only its own data.
    assert outcome.profile_id != erased
    assert store.touchpoints([erased], 50) == []
    fresh = store.lookup(Identifier("client_id", "c1"))
    assert fresh.profile_id == outcome.profile_id and fresh.all_identifiers() == [
        Identifier("client_id", "c1")
    ]
    assert fresh.traits == {} and fresh.counters["events"] == 1
    assert store.lookup(Identifier("phone", "+79091234567")) is None
    check_invariants(store, policy)


def test_a_worker_dying_between_its_write_and_its_check_leaves_nothing_after_an_erasure(store, policy):
    service = IdentityService(store, policy)
    erased = service.apply(event({"client_id": "c1"})).profile_id
    view = event({"client_id": "c1"}, minutes=1, context={"page_url": "https://shop.example/secret"})
    dying = IdentityService(
        Interleaved(store, create_touchpoint=lambda: store.erase(erased), profile_state=crash), policy
    )
    with pytest.raises(Crash):
        dying.apply(view)
    again = service.apply(view)  # Pub/Sub redelivers the message
    assert again.duplicate
    assert store.touchpoints([erased], 50) == []
    assert all(r.profile_id != erased for r in store.iter_records())


def build_chain(service: IdentityService, length: int) -> list[str]:
    """Profiles p0..pN, each older than the previous; merging k with k+1 makes p(k+1) survive,
    so without the follow-up jobs the record of c0 ends ``length`` hops from its survivor."""
    ids = [service.apply(event({"client_id": f"c{k}"}, minutes=-k)).profile_id for k in range(length + 1)]
    for k in range(length):
        service.apply(event({"client_id": [f"c{k}", f"c{k + 1}"]}, minutes=k + 1))
    return ids


def test_identifiers_far_from_their_survivor_always_resolve(store, policy):
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    length = MAX_HOPS + 6
    ids = build_chain(service, length)
    # Before the follow-up jobs ran: a read says it cannot resolve, never "unknown".
    with pytest.raises(ChainTooLong):
        store.lookup(Identifier("client_id", "c0"))
    with pytest.raises(ChainTooLong):
        service.apply(event({"client_id": "c0"}, minutes=500))
    with pytest.raises(ChainTooLong):
        store.erase(ids[0])
    assert {j.kind for j in jobs.jobs} == {"repoint", "fold"}
    jobs.run_all(service)
    assert store.lookup(Identifier("client_id", "c0")).profile_id == ids[-1]
    assert store.get_record(Identifier("client_id", "c0")).profile_id == ids[-1]
    assert all(store.get_profile(pid).merged_into == ids[-1] for pid in ids[:-1])  # chains shortened
    outcome = service.apply(event({"client_id": "c0"}, minutes=500))
    assert outcome.profile_id == ids[-1] and outcome.status == "unchanged"
    report = store.erase(ids[0])  # an id far back in the chain reaches the customer
    assert report is not None and len(report.profile_ids) == length + 1 and report.identifiers == length + 1


class LostReply(StoreError):
    pass


def test_a_merge_whose_commit_reply_was_lost_still_runs_its_follow_ups(store, policy):
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    a = service.apply(event({"client_id": "c1", "session_id": "s1"}, minutes=0)).profile_id
    b = service.apply(event({"phone": "+79091234567", "email": "i@x.ru"}, minutes=1)).profile_id
    merge = event({"session_id": "s1", "phone": "+79091234567"}, minutes=2)

    class ReplyLost(Interleaved):
        def transact(self, *args: Any, **kwargs: Any) -> Any:
            self.inner.transact(*args, **kwargs)  # committed...
            raise LostReply("deadline exceeded")  # ...but the worker never heard back

    jobs.jobs.clear()  # (the folds of the events before)
    with pytest.raises(LostReply):
        IdentityService(ReplyLost(store), policy, jobs=jobs).apply(merge)
    assert jobs.jobs == []
    again = service.apply(merge)  # redelivered: a duplicate, and its jobs again
    assert again.duplicate and again.status == "merged" and again.profile_id == a
    assert [(j.kind, j.subject, j.target) for j in jobs.jobs] == [("repoint", b, a)]
    jobs.run_all(service)
    assert store.get_record(Identifier("email", "i@x.ru")).profile_id == a
    assert store.lookup(Identifier("client_id", "c1")).counters["events"] == 3


def test_a_duplicate_is_answered_from_one_read_and_writes_nothing(store, policy):
    service = IdentityService(store, policy)
    service.apply(event({"client_id": "c1"}))
    view = event({"client_id": "c1"}, minutes=1, context={"source": "vk"})
    service.apply(view)
    watched = Interleaved(store)
    again = IdentityService(watched, policy).apply(view)
    assert again.duplicate
    assert watched.calls == ["first_read", "profile_state"]  # the read, and the erasure check


def test_no_change_events_write_only_their_touchpoint(store, policy):
    service = IdentityService(store, policy)
    created = service.apply(event({"client_id": "c1", "session_id": "s1"}))
    before = store.get_profile(created.profile_id)
    record = store.get_record(Identifier("client_id", "c1"))
    watched = Interleaved(store)
    busy = IdentityService(watched, policy)
    for minute in range(1, 4):  # attributed page views too: no transaction
        busy.apply(event({"client_id": "c1"}, minutes=minute, context={"source": "ya", "medium": "cpc"}))
    assert busy.stats["fast_path"] == 3 and "transact" not in watched.calls
    after = store.get_profile(created.profile_id)
    assert after.version == before.version and store.get_record(Identifier("client_id", "c1")) == record
    assert after.counters["events"] == 4 and after.last_touch.attribution == {"source": "ya", "medium": "cpc"}


def test_the_profile_document_stays_small_whatever_the_profile_holds(store, policy):
    roomy = policy.__class__.from_mapping({"kinds": {"session_id": {"limit": 5000}}})
    service = IdentityService(store, roomy)
    for batch in range(20):
        service.apply(event({"client_id": "big", "session_id": [f"s{batch}-{n}" for n in range(49)]}))
    profile = store.lookup(Identifier("client_id", "big"))
    assert len(profile.identifiers["session_id"]) == 980
    assert len(repr(profile.to_doc())) < 1000  # counts, not lists
    assert profile.identifier_counts == {"client_id": 1, "session_id": 980}


def test_profile_totals_are_derived_from_the_family_touchpoints(store, policy):
    from svyaz.app.views import profile_totals

    service = IdentityService(store, policy)
    older, newer = two_profiles(service)
    service.apply(event({"client_id": "c1"}, minutes=3, context={"source": "vk", "medium": "social"}))
    service.apply(event({"client_id": ["c1", "old"]}, minutes=5))
    totals = profile_totals(store, newer)  # a merged id answers with its survivor
    assert totals["profile_id"] == older and totals["merged_profile_ids"] == [newer]
    assert totals["counters"] == {"events": 4, "type_page": 4}
    assert totals["first_touch"]["source"] == "vk" and totals["last_seen"].endswith("12:05:00Z")
    assert profile_totals(store, "no-such-profile") is None
