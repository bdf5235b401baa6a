"""The embedded store holds up as it grows: indexed like Firestore, no full scans on any event
path, idempotency records and erased touchpoints' stubs that expire by the same TTL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService
from svyaz.domain.model import Identifier
from tests.conftest import PEPPER
from tests.helpers import event


def test_no_event_path_scans_a_whole_collection(policy, monkeypatch):
    store = MemoryStore(PEPPER)

    def scan(collection: str):
        raise AssertionError(f"full scan of {collection}")

    monkeypatch.setattr(store, "_scan", scan)
    service = IdentityService(store, policy)
    service.apply(event({"client_id": "c1"}, minutes=0, context={"source": "ya", "medium": "cpc"}))
    service.apply(event({"phone": "+79091234567"}, type="order", properties={"order_id": "A", "amount": 5}))
    service.apply(event({"client_id": "c1"}, minutes=5))  # fast path
    service.apply(event({"client_id": "c1", "phone": "+79091234567"}, minutes=9))  # merge + jobs
    profile = store.lookup(Identifier("phone", "+79091234567"))
    assert (
        profile.counters["orders"] == 1
        and len(store.touchpoints([profile.profile_id, *profile.merged_from], 9)) == 4
    )
    assert store.erase(profile.profile_id).identifiers == 2


def test_idempotency_records_expire_by_the_ttl(policy):
    store = MemoryStore(PEPPER)
    service = IdentityService(store, policy)
    first = event({"client_id": "c1"}, traits={"city": "Kazan"})
    service.apply(first)
    assert store.processed(first.event_id) is not None
    store.idempotency_ttl = timedelta(seconds=-1)  # everything written from now on is expired
    expired = event({"client_id": "c2"}, traits={"city": "Omsk"})
    service.apply(expired)
    service.apply(event({"client_id": "c3"}, traits={"city": "Ufa"}))
    assert store.processed(expired.event_id) is None and store.processed(first.event_id) is not None
    assert len(store.docs["processed_events"]) == 1


def test_erased_touchpoint_stubs_expire_by_the_ttl(policy):
    store = MemoryStore(PEPPER)
    service = IdentityService(store, policy)
    kept = service.apply(event({"client_id": "c1"}, event_id="view-1"))
    store.erase(kept.profile_id)  # its stub expires in 7 days
    store.idempotency_ttl = timedelta(seconds=-1)  # everything written from now on is expired
    gone = service.apply(event({"client_id": "c2"}, event_id="view-2"))
    store.erase(gone.profile_id)
    service.apply(event({"client_id": "c3"}, event_id="view-3"))  # writes run the expiry
    stubs = {key for key, doc in store.docs["touchpoints"].items() if doc.get("erased")}
    assert stubs == {store.keys.event("view-1")}
    assert store.keys.event("view-3") in store.docs["touchpoints"]  # a live touchpoint never expires


@pytest.mark.parametrize("n", [1, 50])
def test_indexes_follow_every_write(policy, n):
    store = MemoryStore(PEPPER)
    service = IdentityService(store, policy)
    for k in range(n):
        service.apply(event({"client_id": f"c{k}", "session_id": "shared" if k % 2 else f"s{k}"}, minutes=k))
    for profile_id, keys in store._index["identifiers"].items():
        assert all(store.docs["identifiers"][key]["profile_id"] == profile_id for key in keys)
    indexed = {key for keys in store._index["identifiers"].values() for key in keys}
    assert indexed == set(store.docs["identifiers"])


def test_folds_are_debounced_and_the_last_events_still_get_folded(policy):
    from svyaz.adapters.store.base import FoldLater
    from svyaz.app.service import PendingJobs
    from svyaz.domain.model import to_ms

    store = MemoryStore(PEPPER)
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    profile_id = service.apply(event({"client_id": "c1"})).profile_id
    assert store.fold(profile_id) and store._profile_doc(profile_id).counters == {"events": 1, "type_page": 1}
    service.apply(event({"client_id": "c1"}, minutes=1))
    [fold] = [j for j in jobs.jobs if j.kind == "fold" and int(j.target) > 0][-1:]
    with pytest.raises(FoldLater):  # folded a moment ago: Pub/Sub retries it after its backoff
        service.run_job(fold)
    assert store._profile_doc(profile_id).counters["events"] == 1  # the document waits...
    assert store.lookup(Identifier("client_id", "c1")).counters["events"] == 2  # ...reads do not
    service.run_job(fold, debounce=False)  # the retry, once the interval has passed
    assert store._profile_doc(profile_id).counters["events"] == 2
    late = to_ms(store._profile_doc(profile_id).last_seen)
    assert not store.fold(profile_id, published_ms=late - 5_000)  # covered by a later fold: one read


def test_a_touchpoint_changed_in_place_keeps_one_entry_in_the_time_index(monkeypatch):
    """Crediting or re-owning a touchpoint leaves its (type, time) entry where it is (no move of
    the sorted list's tail, which grows with the store); a new time moves it."""
    import bisect
    from datetime import UTC, datetime

    from svyaz.adapters.store.base import TOUCHPOINTS, Write

    store = MemoryStore(PEPPER)
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    doc = {"type": "page", "timestamp": at, "profile_id": "p1", "credit": 0}
    store._commit([Write(TOUCHPOINTS, "t1", doc)])
    moves = []
    monkeypatch.setattr(bisect, "insort", lambda *a, **k: moves.append(a))
    store._commit([Write(TOUCHPOINTS, "t1", {"profile_id": "p2", "credit": 1}, "update")])
    assert moves == [] and store._by_type["page"] == [(at, "t1")]
    assert store.docs[TOUCHPOINTS]["t1"]["profile_id"] == "p2" and store._index[TOUCHPOINTS] == {"p2": {"t1"}}
    monkeypatch.undo()
    later = at + timedelta(hours=1)
    store._commit([Write(TOUCHPOINTS, "t1", {"timestamp": later}, "update")])
    assert store._by_type["page"] == [(later, "t1")]
    store._commit([Write(TOUCHPOINTS, "t1", {"erased": True, "expire_at": later})])  # a stub: no type
    assert store._by_type["page"] == []
