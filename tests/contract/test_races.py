"""Races and failures at real scale, with injected interleavings, on both stores: what a user
sees when a merge, an erasure or a crash lands between two steps of another event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from svyaz.adapters.store.base import Later, Store, StoreError
from svyaz.app.service import IdentityService, PendingJobs
from svyaz.app.splits import Splitter, new_request
from svyaz.domain.merge import MAX_HOPS, ChainTooLong
from svyaz.domain.model import Identifier
from tests.helpers import check_invariants, event
from tests.split_support import PHONE, merge_by_shared_phone, shared_phone_events


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


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path's clock: every reading 11 s after the previous one, so its read round and
    commit take longer than the grace period and it checks its owner after its write."""
    ticks = iter(range(0, 10**6, 11))
    monkeypatch.setattr(IdentityService, "clock", staticmethod(lambda: float(next(ticks))))


def test_a_page_view_racing_a_merge_stays_with_the_survivor(store, policy):
    # Its read saw the record of c1 still on the newer profile: the view is ordered before the
    # merge and written on the profile merged away, and its outcome names that profile. The
    # merge's settle job (after the repoint, a grace period later) gives it to the survivor and
    # tells downstream first: the event belongs to the survivor.
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    told: list[tuple[str, str, str]] = []
    service.updates = lambda settled: told.extend((t.event_id, pid, t.profile_id) for t, pid in settled)
    older, newer = two_profiles(service)
    merge = event({"client_id": ["c1", "old"]}, minutes=5)
    racing = IdentityService(
        Interleaved(store, create_touchpoint=lambda: service.apply(merge)), policy, jobs=jobs
    )
    view = event({"client_id": "c1"}, minutes=6, context={"source": "vk", "medium": "social"})
    outcome = racing.apply(view)
    assert racing.stats["fast_path"] == 1 and "profile_state" not in racing.store.calls
    assert outcome.profile_id == newer  # what the first profile update and warehouse row say
    assert store.resolve(outcome.profile_id).profile_id == older
    jobs.run_all(service)  # the merge's repoint, its settle job, the folds
    assert store.get_profile(newer).status == "merged"
    assert owner_of_touchpoint(store, [older, newer], view.event_id) == [older]
    assert told == [(view.event_id, older, newer)]
    survivor = store.lookup(Identifier("client_id", "c1"))
    assert survivor.profile_id == older and survivor.counters["events"] == 4
    assert survivor.last_touch.attribution == {"source": "vk", "medium": "social"}
    assert store.get_profile(older).counters["events"] == 4  # folded onto the document too
    check_invariants(store, policy)


def owner_of_touchpoint_in_family(store: Store, profile_id: str) -> set[str]:
    return {t.event_id for t in store.touchpoints(store.family(profile_id), 500)}


def test_page_views_reading_a_losers_records_before_the_repoint_go_to_the_survivor(store, policy):
    # After the merge commits, the loser's records the merge did not touch still point at it
    # until the repoint job runs: fast-path views of them land on the tombstone. The settle job,
    # a grace period after the repoint, gives each to the survivor and corrects downstream once.
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    told: list[tuple[str, str, str]] = []
    service.updates = lambda settled: told.extend((t.event_id, pid, t.profile_id) for t, pid in settled)
    older, newer = two_profiles(service)
    before = event({"session_id": "s1"}, minutes=3)  # the loser's own view, before the merge
    assert service.apply(before).profile_id == newer
    jobs.jobs.clear()
    service.apply(event({"client_id": ["c1", "old"]}, minutes=5))
    views = [event({"session_id": "s1"}, minutes=6 + n) for n in range(2)]
    assert [service.apply(v).profile_id for v in views] == [newer, newer]  # s1 not re-pointed yet
    repoint = next(j for j in jobs.jobs if j.kind == "repoint")
    service.run_job(repoint)
    [settle] = [j for j in jobs.jobs if j.kind == "settle"]
    with pytest.raises(Later):
        service.run_job(settle)  # as the queue delivers it: due a grace period after the repoint
    assert told == []
    jobs.run_all(service)
    assert sorted(told) == sorted((v.event_id, older, newer) for v in [before, *views])
    assert all(owner_of_touchpoint(store, [older, newer], v.event_id) == [older] for v in views)
    assert service.apply(views[0]).profile_id == older  # a redelivery names the survivor too
    told.clear()
    service.run_job(settle, debounce=False)  # redelivered: nothing left, nothing said again
    assert told == []
    assert store.lookup(Identifier("session_id", "s1")).counters["events"] == 6
    check_invariants(store, policy)


def test_a_slow_page_view_merged_away_after_its_write_is_withdrawn_and_applied_to_the_survivor(
    store, policy, slow
):
    service = IdentityService(store, policy)
    older, newer = two_profiles(service)
    merge = event({"client_id": ["c1", "old"]}, minutes=5)
    racing = IdentityService(Interleaved(store, profile_state=lambda: service.apply(merge)), policy)
    view = event({"client_id": "c1"}, minutes=6)
    assert racing.apply(view).profile_id == older
    assert owner_of_touchpoint(store, [older, newer], view.event_id) == [older]
    assert racing.stats["fast_path_fallbacks"] == 1


def test_a_page_view_racing_an_erasure_leaves_nothing_of_the_erased_customer(store, policy):
    # The view read c1's record before the erasure deleted it: ordered before the erasure, it is
    # erased with the customer by the final sweep, due a grace period after the records went.
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    first = service.apply(
        event({"client_id": "c1", "phone": "+79091234567"}, traits={"first_name": "Ekaterina"})
    )
    erased = first.profile_id
    jobs.run_all(service)
    racing = IdentityService(
        Interleaved(store, create_touchpoint=lambda: service.erase(erased)), policy, jobs=jobs
    )
    view = event({"client_id": "c1"}, minutes=1, context={"page_url": "https://shop.example/secret"})
    racing.apply(view)
    assert [j.kind for j in jobs.jobs] == ["sweep", "fold"]
    jobs.run_all(service)
    assert store.touchpoints([erased], 50) == [] and store.touchpoints_by_event([view.event_id]) == {}
    assert store.lookup(Identifier("client_id", "c1")) is None
    assert store.lookup(Identifier("phone", "+79091234567")) is None
    assert service.apply(view).duplicate  # redelivered: nothing of it comes back
    assert store.lookup(Identifier("client_id", "c1")) is None
    later = service.apply(event({"client_id": "c1"}, minutes=2))  # a new visit: a new customer
    fresh = store.lookup(Identifier("client_id", "c1"))
    assert fresh.profile_id == later.profile_id != erased and fresh.traits == {}
    assert fresh.counters["events"] == 1
    check_invariants(store, policy)


def test_the_final_sweep_waits_out_the_grace_period(store, policy):
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    erased = service.apply(event({"client_id": "c1"})).profile_id
    jobs.jobs.clear()
    service.erase(erased)
    [sweep] = jobs.jobs
    with pytest.raises(Later):
        service.run_job(sweep)  # as the queue delivers it: due a grace period after the records
    service.run_job(sweep, debounce=False)
    service.run_job(sweep)  # a redelivery after it finished: nothing left to do
    assert store.get_profile(erased).status == "erased"


def test_a_slow_page_view_racing_an_erasure_starts_a_new_customer(store, policy, slow):
    service = IdentityService(store, policy)
    erased = service.apply(event({"client_id": "c1", "phone": "+79091234567"})).profile_id
    racing = IdentityService(Interleaved(store, profile_state=lambda: service.erase(erased)), policy)
    view = event({"client_id": "c1"}, minutes=1, context={"page_url": "https://shop.example/secret"})
    outcome = racing.apply(view)
    assert outcome.profile_id != erased and store.touchpoints([erased], 50) == []
    fresh = store.lookup(Identifier("client_id", "c1"))
    assert fresh.profile_id == outcome.profile_id and fresh.counters["events"] == 1
    assert store.lookup(Identifier("phone", "+79091234567")) is None
    check_invariants(store, policy)


def test_a_worker_dying_between_its_write_and_its_check_leaves_nothing_after_an_erasure(store, policy, slow):
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


ORDER = {"order_id": "A-1", "amount": 1500, "status": "paid"}


@pytest.mark.parametrize("race", [False, True])
def test_a_late_touch_before_an_existing_order_is_credited(store, policy, race):
    # A page view with UTM from before the order arrives after it (or while the order's own
    # credit runs): the fast path does not read the order; the view's fold credits it.
    service = IdentityService(store, policy)
    service.apply(event({"client_id": "c1", "email": "i@x.ru"}, type="lead", minutes=0))
    order = event({"email": "i@x.ru"}, type="order", channel="crm", minutes=30, properties=ORDER)
    view = event({"client_id": "c1"}, minutes=10, context={"source": "vk", "medium": "social"})
    if race:  # the order and its credit job run between the view's read and its write
        IdentityService(Interleaved(store, create_touchpoint=lambda: service.apply(order)), policy).apply(
            view
        )
    else:
        service.apply(order)
        service.apply(view)
    [credited] = [
        t
        for t in store.touchpoints([service.store.lookup(Identifier("client_id", "c1")).profile_id], 50)
        if t.type == "order"
    ]
    assert credited.credit == {
        "first_touch": {"source": "vk", "medium": "social"},
        "last_touch": {"source": "vk", "medium": "social"},
    }


def test_a_page_view_racing_a_split_goes_to_the_customer_its_cookie_belongs_to(service, policy):
    # The view read cookie-boris's record while it still pointed at the merged profile and wrote
    # after the split read its evidence: the split's settling pass gives it to Boris.
    merged = merge_by_shared_phone(service)
    store = service.store
    request = new_request(merged, PHONE, "shared family phone")
    store.create_split(request)

    def split_meanwhile() -> None:
        with pytest.raises(Later):  # everything but the settling pass, not due yet
            while Splitter(store, policy, wait=True).run(request.request_id) is None:
                pass

    racing = IdentityService(Interleaved(store, create_touchpoint=split_meanwhile), policy)
    view = event({"client_id": "cookie-boris"}, minutes=20, context={"source": "vk", "medium": "cpc"})
    racing.apply(view)
    assert owner_of_touchpoint(store, [merged], view.event_id) == [merged]  # where it read
    told: list[tuple[str, str, str]] = []
    done = Splitter(  # the queue's redelivery, once due; downstream hears of the view first
        store, policy, updates=lambda settled: told.extend((t.event_id, p, t.profile_id) for t, p in settled)
    ).run(request.request_id)
    assert done.state == "done" and not done.settle_ms
    boris = store.lookup(Identifier("email", "boris@mail.ru"))
    assert boris.profile_id != merged
    assert owner_of_touchpoint(store, [boris.profile_id, merged], view.event_id) == [boris.profile_id]
    assert told == [(view.event_id, boris.profile_id, merged)]
    assert (
        boris.counters["events"] == 5
        and store.lookup(Identifier("email", "anna@mail.ru")).counters["events"] == 4
    )
    check_invariants(store, policy)


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
    # The fast path writes on the record's profile, a tombstone of the family (not "unknown").
    early = service.apply(event({"client_id": "c0"}, minutes=500))
    assert early.status == "unchanged" and early.profile_id in ids[:-1]
    with pytest.raises(ChainTooLong):
        store.erase(ids[0])
    assert {j.kind for j in jobs.jobs} == {"repoint", "fold"}
    jobs.run_all(service)
    assert store.lookup(Identifier("client_id", "c0")).profile_id == ids[-1]
    assert store.get_record(Identifier("client_id", "c0")).profile_id == ids[-1]
    assert all(store.get_profile(pid).merged_into == ids[-1] for pid in ids[:-1])  # chains shortened
    assert early.event_id in owner_of_touchpoint_in_family(store, ids[-1])  # the customer's
    outcome = service.apply(event({"client_id": "c0"}, minutes=501))
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
    # (and its fold: the lost delivery never published one)
    assert [(j.kind, j.subject, j.target if j.kind != "fold" else "") for j in jobs.jobs] == [
        ("repoint", b, a),
        ("fold", a, ""),
    ]
    jobs.run_all(service)
    assert store.get_record(Identifier("email", "i@x.ru")).profile_id == a
    assert store.lookup(Identifier("client_id", "c1")).counters["events"] == 3
    # The profile document too (the journal's directory counts from it): the merge is folded.
    assert store._profile_doc(a).counters["events"] == 3


def test_a_duplicate_is_answered_from_one_read_and_writes_nothing(store, policy):
    service = IdentityService(store, policy)
    service.apply(event({"client_id": "c1"}))
    view = event({"client_id": "c1"}, minutes=1, context={"source": "vk"})
    service.apply(view)
    watched, jobs = Interleaved(store), PendingJobs()
    again = IdentityService(watched, policy, jobs=jobs).apply(view)
    assert again.duplicate
    assert watched.calls == ["first_read", "profile_state"]  # the read, and the erasure check
    # Its fold job again, off its path (the delivery that applied it may have failed to publish it).
    assert [(j.kind, j.subject) for j in jobs.jobs] == [("fold", again.profile_id)]


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


def test_an_erased_customers_events_redelivered_name_no_profile_and_their_records_forget_it(store, policy):
    # Idempotency records name profiles (outcome, jobs); once the customer is erased a
    # redelivery must answer with no profile (no profile update, no warehouse row of it) and no
    # record may keep the erased ids. Another customer's record keeps its own outcome.
    from svyaz.adapters.store.base import PROCESSED
    from svyaz.app.warehouse import touchpoint_row

    service = IdentityService(store, policy)
    lead = event({"user_id": "u1", "email": "i@x.ru"}, type="lead", traits={"first_name": "Ekaterina"})
    kept = service.apply(lead).profile_id
    cookie = service.apply(event({"client_id": "c1", "session_id": "s1"}, minutes=1)).profile_id
    merge = event({"email": "i@x.ru", "session_id": "s1"}, type="lead", minutes=2)
    assert service.apply(merge).merged_profile_ids == [cookie]
    other = event({"user_id": "u2", "email": "i@x.ru"}, type="lead", minutes=3)  # refused link to it
    refused = service.apply(other)
    assert refused.status == "conflict" and refused.conflicts[0].profile_id == kept
    family = {kept, cookie}
    assert any(family & set(repr(doc).split("'")) for _, doc in store._scan(PROCESSED))

    report = service.erase(kept)
    assert sorted(report.profile_ids) == sorted(family)
    for _, doc in store._scan(PROCESSED):
        assert not any(pid in repr(doc) for pid in family), doc
    for again in (lead, merge):
        replayed = service.apply(again)
        assert replayed.duplicate and replayed.event_id == again.event_id
        assert replayed.profile_id is None and replayed.merged_profile_ids == []
        assert touchpoint_row(again, replayed) is None
    assert service.stats["transactions"] == 4  # the redeliveries wrote nothing
    still = service.apply(other)
    assert still.duplicate and still.profile_id == refused.profile_id
    assert [c.profile_id for c in still.conflicts] == [None] and still.conflicts[0].kind == "email"
    assert store.lookup(Identifier("email", "i@x.ru")) is None


def test_a_redelivered_page_view_of_a_profile_merged_away_since_names_the_survivor(store, policy):
    # (its touchpoint on the tombstone: written long before the merge, or not settled yet)
    service = IdentityService(store, policy, jobs=PendingJobs())
    older, newer = two_profiles(service)
    view = event({"session_id": "s1"}, minutes=1)
    assert service.apply(view).profile_id == newer
    service.apply(event({"client_id": ["c1", "old"]}, minutes=5))
    assert owner_of_touchpoint(store, [older, newer], view.event_id) == [newer]
    again = service.apply(view)
    assert again.duplicate and again.profile_id == older


def test_a_merge_settles_its_late_writes_after_a_split_of_the_family_as_the_split_placed_them(store, policy):
    # Boris's view read his cookie on his own profile while his lead merged it into Anna's: it
    # lands on the tombstone. Before the merge settles, the family is split on the shared phone:
    # the settle job waits for the split, which gives the view to Boris (and says so); the
    # merge's settling then leaves it there.
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    events = {e.event_id: e for e in shared_phone_events()}
    boris_lead = events.pop("boris-lead")
    for e in events.values():
        service.apply(e)
    boris_own = store.lookup(Identifier("client_id", "cookie-boris")).profile_id
    racing = IdentityService(
        Interleaved(store, create_touchpoint=lambda: service.apply(boris_lead)), policy, jobs=jobs
    )
    view = event({"client_id": "cookie-boris"}, minutes=20)
    assert racing.apply(view).profile_id == boris_own
    merged = store.lookup(PHONE).profile_id
    assert merged != boris_own and store.get_profile(boris_own).status == "merged"
    repoint = next(j for j in jobs.jobs if j.kind == "repoint" and j.subject == boris_own)
    service.run_job(repoint)
    [settle] = [j for j in jobs.jobs if j.kind == "settle"]
    request = new_request(merged, PHONE, "shared family phone")
    store.create_split(request)
    store.begin_split(request.request_id, request.requested_at)  # the family is splitting
    with pytest.raises(Later):
        service.run_job(settle, debounce=False)
    told: list[tuple[str, str, str]] = []
    service.updates = lambda settled: told.extend((t.event_id, p, t.profile_id) for t, p in settled)
    Splitter(store, policy, updates=service.updates).run(request.request_id)
    boris = store.lookup(Identifier("email", "boris@mail.ru")).profile_id
    assert boris != merged
    assert owner_of_touchpoint(store, [boris, merged, boris_own], view.event_id) == [boris]
    # Downstream hears of every touchpoint the split gave Boris, the racing view included.
    assert (view.event_id, boris, merged) in told
    assert {e for e, _, _ in told} == {t.event_id for t in store.touchpoints([boris], 50)}
    told.clear()
    service.run_job(settle, debounce=False)
    assert told == []  # nothing left on the tombstone
    assert owner_of_touchpoint(store, [boris, merged, boris_own], view.event_id) == [boris]
    check_invariants(store, policy)
