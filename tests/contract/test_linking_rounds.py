"""A linking event after the fast path's read: that read round is its transaction's first round
(two read rounds and one commit), and the commit still guards every document of it. On both
stores, with injected interleavings between the fast path's read and the commit: before the
transaction's second round (``transact``) or after it (while the engine decides)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import svyaz.app.service as service_module
from svyaz.adapters.store.base import BLOCKLIST, Store, Write
from svyaz.app.service import IdentityService, PendingJobs
from svyaz.domain.merge import BLOCKED_REASON
from svyaz.domain.model import BlockEntry, Identifier
from tests.contract.test_races import Interleaved
from tests.contract.test_transactions import round_trips
from tests.helpers import check_invariants, event, partition

COOKIE, EMAIL = Identifier("client_id", "c1"), Identifier("email", "ann@example.com")


def login(**fields: Any):
    return event({"client_id": "c1", "email": "ann@example.com"}, minutes=5, event_id="login-1", **fields)


def retries(store: Store) -> int:
    return store.attempts["retries"]  # type: ignore[attr-defined]


def racing(store: Store, policy, when: str, hook: Callable[[], Any], monkeypatch) -> IdentityService:
    """A service whose next event meets ``hook`` between its fast-path read and its commit:
    ``before``: before the transaction reads its second round; ``after``: after it, while
    the engine decides on the snapshot (the first decision only)."""
    if when == "before":
        return IdentityService(Interleaved(store, transact=hook), policy, jobs=PendingJobs())
    real, pending = service_module.plan_event, [hook]

    def deciding(*args: Any) -> Any:
        if pending:
            pending.pop()()
        return real(*args)

    monkeypatch.setattr(service_module, "plan_event", deciding)
    return IdentityService(store, policy, jobs=PendingJobs())


@pytest.mark.parametrize("email_known", [False, True], ids=["attach", "merge"])
def test_a_login_on_a_known_cookie_costs_two_read_rounds_and_one_commit(store, policy, email_known):
    service = IdentityService(store, policy, jobs=PendingJobs())
    cookie_owner = service.apply(event({"client_id": "c1"})).profile_id
    if email_known:
        service.apply(event({"email": "ann@example.com", "phone": "+79091234567"}, minutes=1))
    with round_trips(store) as counted:
        outcome = service.apply(login())
    # Before: 3 read rounds (the fast path's, then the transaction's first round again, then
    # the profiles), 1 commit.
    assert (counted["reads"], counted["commits"], counted["begins"]) == (2, 1, 0)
    assert outcome.status == ("merged" if email_known else "attached") and outcome.profile_id == cookie_owner
    expected = {COOKIE, EMAIL} | ({Identifier("phone", "+79091234567")} if email_known else set())
    assert frozenset(expected) in partition(store)
    check_invariants(store, policy)


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_email_taken_by_another_customer_after_the_fast_path_read_merges_them(
    store, policy, when, monkeypatch
):
    # The fast path read the email's record as missing; another event gives it to a new
    # customer before the login commits. The login must not take the email away (its record
    # pointing at the cookie's profile while the other profile counts it): its first commit is
    # refused (the record's "still missing" precondition), the retry sees the email and merges.
    service = IdentityService(store, policy, jobs=PendingJobs())
    cookie_owner = service.apply(event({"client_id": "c1"})).profile_id
    other = event({"email": "ann@example.com", "phone": "+79091234567"}, minutes=1)
    hooked = racing(store, policy, when, lambda: service.apply(other), monkeypatch)
    before = retries(store)
    outcome = hooked.apply(login())
    assert outcome.status == "merged" and outcome.profile_id == cookie_owner
    assert partition(store) == {frozenset({COOKIE, EMAIL, Identifier("phone", "+79091234567")})}
    check_invariants(store, policy)
    # The retry shows the first attempt started from the fast path's read and was refused (the
    # old code read everything again in its transaction and retried only when "after").
    assert retries(store) - before == 1


@pytest.mark.parametrize("when", ["before", "after"])
def test_an_email_blocked_after_the_fast_path_read_never_links(store, policy, when, monkeypatch):
    # The email belongs to another customer; an operator blocks it while the login is in
    # flight: the two customers stay apart, the email dropped from the login as blocked.
    service = IdentityService(store, policy, jobs=PendingJobs())
    cookie_owner = service.apply(event({"client_id": "c1"})).profile_id
    other_owner = service.apply(event({"email": "ann@example.com"}, minutes=1)).profile_id
    entry = BlockEntry(EMAIL, datetime.now(UTC), "shared mailbox")

    def block() -> None:
        store._commit([Write(BLOCKLIST, store.keys.identifier(EMAIL), entry.to_doc())])

    outcome = racing(store, policy, when, block, monkeypatch).apply(login())
    assert outcome.status == "unchanged" and outcome.profile_id == cookie_owner
    assert {(d.kind, d.reason) for d in outcome.dropped} == {("email", BLOCKED_REASON)}
    assert store.lookup(COOKIE).profile_id == cookie_owner
    assert store.lookup(EMAIL).profile_id == other_owner
    check_invariants(store, policy)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_login_applied_by_another_worker_after_the_fast_path_read_is_a_duplicate(
    store, policy, when, monkeypatch
):
    # Exactly once: the same delivery runs on two workers; the second one's fast-path read
    # found nothing applied, the first one commits before it: its commit is refused (the
    # idempotency record's "still missing" precondition) and the retry answers as a duplicate.
    service = IdentityService(store, policy, jobs=PendingJobs())
    cookie_owner = service.apply(event({"client_id": "c1"})).profile_id
    first: list[Any] = []
    hooked = racing(store, policy, when, lambda: first.append(service.apply(login())), monkeypatch)
    before = retries(store)
    again = hooked.apply(login())
    assert first[0].status == "attached" and not first[0].duplicate
    assert again.duplicate and again.status == "attached" and again.profile_id == cookie_owner
    assert partition(store) == {frozenset({COOKIE, EMAIL})}
    check_invariants(store, policy)
    assert retries(store) - before == 1  # the first attempt, from the fast path's read, refused
