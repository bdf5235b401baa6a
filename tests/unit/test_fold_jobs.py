"""Every applied event is folded onto its profile document eventually, also when the delivery
that applied it failed to publish its follow-up jobs (the queue was down): the redelivery, a
duplicate, publishes the fold job again (and a fold that finds nothing new writes nothing)."""

import time
from datetime import UTC, datetime

import pytest

from svyaz.adapters.queue import QueueUnavailable
from svyaz.adapters.store.base import FOLD_SKEW_MS
from svyaz.app.service import IdentityService, PendingJobs
from svyaz.domain.model import to_ms
from tests.helpers import event


class QueueDownOnce(PendingJobs):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def publish(self, jobs):
        if self.down:
            self.down = False
            raise QueueUnavailable("publishing to events failed: ServiceUnavailable")
        super().publish(jobs)


@pytest.mark.parametrize(
    ("identifiers", "path"),
    [({"client_id": "c1"}, "fast_path"), ({"client_id": "c1", "email": "a@x.ru"}, "transactions")],
)
def test_an_event_whose_jobs_were_not_published_is_folded_after_its_redelivery(
    store, policy, identifiers, path
):
    jobs = QueueDownOnce()
    service = IdentityService(store, policy, jobs=jobs)
    profile_id = service.apply(event({"client_id": "c1"}, minutes=-5)).profile_id
    jobs.run_all(service)
    assert store._profile_doc(profile_id).counters["events"] == 1

    later, before = event(identifiers), service.stats[path]
    jobs.down = True
    with pytest.raises(QueueUnavailable):  # applied, but its jobs are lost: Pub/Sub redelivers it
        service.apply(later)
    assert service.stats[path] == before + 1
    assert service.apply(later).duplicate
    jobs.run_all(service)

    assert store._profile_doc(profile_id).counters["events"] == 2


def test_a_redelivery_of_an_event_already_folded_rewrites_nothing(store, policy):
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    view = event({"client_id": "c1"}, context={"source": "vk"})
    profile_id = service.apply(view).profile_id
    jobs.run_all(service)
    folded = store._profile_doc(profile_id).to_doc()
    assert folded["counters"]["events"] == 1

    assert service.apply(view).duplicate
    assert [j.kind for j in jobs.jobs] == ["fold"]
    jobs.run_all(service)  # reads the family's touchpoints, finds the document already says so
    assert store._profile_doc(profile_id).to_doc() == folded  # not even folded_ms moved


@pytest.mark.parametrize("identifiers", [{"client_id": "c1"}, {"client_id": "c1", "email": "a@x.ru"}])
def test_a_redelivery_fold_is_stamped_with_the_first_commit_and_skips_once_a_later_fold_covered_it(
    store, policy, identifiers
):
    jobs = PendingJobs()
    service = IdentityService(store, policy, jobs=jobs)
    profile_id = service.apply(event({"client_id": "c1"}, minutes=-5)).profile_id
    later = event(identifiers)
    before = to_ms(datetime.now(UTC))
    service.apply(later)  # its touchpoint (fast path) or its idempotency record (transaction)
    after = to_ms(datetime.now(UTC))
    jobs.jobs.clear()
    time.sleep((FOLD_SKEW_MS + 10) / 1000)
    assert service.apply(later).duplicate
    [refold] = [j for j in jobs.jobs if j.kind == "fold"]
    assert before <= int(refold.target) <= after + 1  # the first commit's time, not the redelivery's

    # A fold that started after that commit read the event: the redelivery's job skips with one
    # read (no query of the family's touchpoints); one that started before it would not count.
    assert store.fold(profile_id) and store._profile_doc(profile_id).counters["events"] == 2
    queried = []
    real = store._touchpoints_of
    store._touchpoints_of = lambda *a, **k: queried.append(a) or real(*a, **k)
    assert not store.fold(profile_id, int(refold.target)) and queried == []
