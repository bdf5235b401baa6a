"""A linking event after the fast path's read: that read round is its transaction's first round
(two read rounds and one commit), and the commit still guards every document of it. On both
stores, with injected interleavings between the fast path's read and the commit: before the
transaction's second round (``transact``) or after it (while the engine decides)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import svyaz.app.service as service_module
from svyaz.adapters.store.base import BLOCKLIST, Store
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService, PendingJobs
from svyaz.app.splits import new_request
from svyaz.domain.merge import BLOCKED_REASON
from svyaz.domain.model import Identifier
from tests.contract.test_races import Interleaved
from tests.contract.test_transactions import round_trips
from tests.helpers import check_invariants, event, partition

COOKIE, EMAIL = Identifier("client_id", "c1"), Identifier("email", "ann@example.com")
PHONE = Identifier("phone", "+79091234567")


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
    expected = {COOKIE, EMAIL} | ({PHONE} if email_known else set())
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
    assert partition(store) == {frozenset({COOKIE, EMAIL, PHONE})}
    check_invariants(store, policy)
    # The retry shows the first attempt started from the fast path's read and was refused (the
    # old code read everything again in its transaction and retried only when "after").
    assert retries(store) - before == 1


@pytest.mark.parametrize("held", [True, False], ids=["held", "unseen"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_an_email_blocked_after_the_fast_path_read_never_links(store, policy, when, held, monkeypatch):
    # An operator blocks the email (the block step of a split, the only way a value is
    # blocked) while the login is in flight: the email is dropped from the login as blocked
    # and joins nothing. ``held``: it belongs to another customer (the block deletes its
    # record, which the login's commit checks); ``unseen``: nobody holds it (the login's commit
    # checks its blocklist entry is still missing).
    service = IdentityService(store, policy, jobs=PendingJobs())
    cookie_owner = service.apply(event({"client_id": "c1"})).profile_id
    other = {"email": "ann@example.com"} if held else {"phone": "+79091234567"}
    other_owner = service.apply(event(other, minutes=1)).profile_id
    request = new_request(other_owner, EMAIL, "shared mailbox")

    def block() -> None:
        store.create_split(request)
        store.begin_split(request.request_id, request.requested_at)

    outcome = racing(store, policy, when, block, monkeypatch).apply(login())
    assert outcome.status == "unchanged" and outcome.profile_id == cookie_owner
    assert {(d.kind, d.reason) for d in outcome.dropped} == {("email", BLOCKED_REASON)}
    assert store.lookup(COOKIE).profile_id == cookie_owner and store.lookup(EMAIL) is None
    assert partition(store) == {frozenset({COOKIE})} | ({frozenset({PHONE})} if not held else set())
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


def guarded_at_commit(store: Store) -> list[set[Any]]:
    """The documents each commit of a transaction checks (the record of its reads)."""
    commits: list[set[Any]] = []
    if isinstance(store, MemoryStore):
        commit_if = store._commit_if

        def checking(read: Any, writes: Any) -> bool:
            commits.append(set(read))
            return commit_if(read, writes)

        store._commit_if = checking  # type: ignore[method-assign]
    else:
        guard = store._guard  # type: ignore[attr-defined]

        def guarding(batch: Any, seen: Any) -> None:
            commits.append(set(seen))
            guard(batch, seen)

        store._guard = guarding  # type: ignore[attr-defined]
    return commits


def test_a_login_commit_checks_the_blocklist_entry_of_its_new_identifier_only(store, policy):
    # The cookie's record exists: a block of the cookie would delete it, and the commit checks
    # the record, so its blocklist entry needs no check of its own (on Firestore: one verifying
    # write less per known identifier). The new email's entry is checked (nothing else would
    # show it was blocked meanwhile: the test above, "unseen").
    service = IdentityService(store, policy, jobs=PendingJobs())
    service.apply(event({"client_id": "c1"}))
    commits = guarded_at_commit(store)
    assert service.apply(login()).status == "attached"
    guarded = commits[-1]
    assert (BLOCKLIST, store.keys.identifier(EMAIL)) in guarded
    assert (BLOCKLIST, store.keys.identifier(COOKIE)) not in guarded
    assert ("identifiers", store.keys.identifier(COOKIE)) in guarded
