"""What erasure leaves behind expires, on both stores: a touchpoint's stub (no personal data,
kept so that a redelivered old event stays a duplicate) carries ``expire_at`` like an
idempotency record, and Firestore's TTL policy on ``touchpoints.expire_at`` (``infra/``) deletes
it once passed, as the memory store does (``tests/unit/test_memory_store.py``)."""

from datetime import UTC, datetime

from svyaz.adapters.store.base import TOUCHPOINTS
from svyaz.domain.model import Identifier
from tests.helpers import event


def test_erased_touchpoints_leave_stubs_that_expire_after_the_idempotency_ttl(service):
    store = service.store
    first = service.apply(event({"client_id": "c1"}, event_id="view-1"))
    service.apply(event({"client_id": "c1"}, event_id="view-2", minutes=1))
    service.apply(event({"client_id": "c2"}, event_id="view-3", minutes=2))
    start = datetime.now(UTC)
    store.erase(first.profile_id)  # the sweep: view-1 and view-2
    store.erase_touchpoint("view-3")  # a fast-path write found racing an erasure
    end = datetime.now(UTC)
    stubs = [doc for _, doc in store._scan(TOUCHPOINTS)]
    assert len(stubs) == 3 and all(set(doc) == {"erased", "expire_at"} for doc in stubs)
    ttl = store.idempotency_ttl
    assert all(start + ttl <= doc["expire_at"] <= end + ttl for doc in stubs)
    # Until then a redelivered old event is still a duplicate, and nothing comes back.
    again = service.apply(event({"client_id": "c1"}, event_id="view-1"))
    assert again.duplicate
    assert store.lookup(Identifier("client_id", "c1")) is None
