"""Block and split on the memory store: chunked runs, events during a split, the blocklist,
and the HTTP surface (profiles function: /profiles/<id>/split, /splits, /blocklist, explain)."""

from __future__ import annotations

import itertools
import json

import pytest

from svyaz.app.service import IdentityService
from svyaz.app.splits import Splitter, new_request
from svyaz.domain import split as split_rules
from svyaz.domain.merge import ProfileBusy
from svyaz.domain.model import Identifier
from tests.helpers import check_invariants, event, partition
from tests.pipeline_support import API_KEY, client, deliver_all
from tests.split_support import ANNA, BORIS, PHONE, block_and_split, merge_by_shared_phone

READ = {"Authorization": f"Bearer {API_KEY}"}


class StepClock:
    """Each reading is one second later: a budget under a second allows one chunk per run."""

    def __init__(self) -> None:
        self.ticks = itertools.count()

    def __call__(self) -> float:
        return float(next(self.ticks))


def test_a_split_runs_in_chunks_over_several_invocations_with_the_same_result(memory_service, monkeypatch):
    monkeypatch.setattr(split_rules, "PART_SIZE", 2)  # 8 documents to write: 4+ chunks
    merged = merge_by_shared_phone(memory_service)
    request = new_request(merged, PHONE, "shared phone")
    memory_service.store.create_split(request)
    splitter = Splitter(memory_service.store, memory_service.policy, clock=StepClock())
    invocations = 1
    while (done := splitter.run(request.request_id, budget_seconds=0.5)) is None:
        invocations += 1
        assert memory_service.store.get_split(request.request_id).state == "moving"
    assert done.state == "done" and invocations == done.cursor == done.parts >= 4  # one chunk each
    assert partition(memory_service.store) == {frozenset(ANNA), frozenset(BORIS)}
    check_invariants(memory_service.store, memory_service.policy)


def test_events_of_the_customer_wait_while_the_split_runs_and_land_right_after(memory_service):
    merged = merge_by_shared_phone(memory_service)
    store = memory_service.store
    request = new_request(merged, PHONE, "shared phone")
    store.create_split(request)
    store.begin_split(request.request_id, request.requested_at)  # the split has started...
    during = event(
        {"email": "boris@mail.ru", "client_id": "cookie-boris-2"}, event_id="boris-new", minutes=20
    )
    with pytest.raises(ProfileBusy):  # ...an event that would change the profile is retried later
        memory_service.apply(during)
    view = event({"client_id": "cookie-anna"}, event_id="anna-view-2", minutes=21)
    # A page view takes the fast path: ordered before the split, placed by its settling pass
    # (tests/contract/test_races.py: one whose cookie goes to the other customer).
    assert memory_service.apply(view).status == "unchanged"

    Splitter(store, memory_service.policy).run(request.request_id)
    memory_service.apply(during)  # Pub/Sub redelivers them
    assert memory_service.apply(view).duplicate

    boris_more = BORIS | {Identifier("client_id", "cookie-boris-2")}
    assert partition(store) == {frozenset(ANNA), frozenset(boris_more)}
    assert store.lookup(Identifier("client_id", "cookie-anna")).counters["events"] == 5
    check_invariants(store, memory_service.policy)


def test_erasure_waits_for_a_split_in_progress(memory_service):
    merged = merge_by_shared_phone(memory_service)
    request = new_request(merged, PHONE, "shared phone")
    memory_service.store.create_split(request)
    memory_service.store.begin_split(request.request_id, request.requested_at)
    with pytest.raises(ProfileBusy):
        memory_service.store.erase(merged)


def test_erasure_after_a_split_removes_the_merge_history_and_the_request(memory_service):
    merged = merge_by_shared_phone(memory_service)
    request = block_and_split(memory_service, merged)
    store = memory_service.store
    for profile_id in request.result["profile_ids"]:
        store.erase(profile_id)
    assert store.audit(request.result["profile_ids"]) == [] and store.get_split(request.request_id) is None
    assert partition(store) == set()


def test_removing_a_blocklist_entry_re_merges_nothing_but_lets_the_value_link_again(memory_service):
    merged = merge_by_shared_phone(memory_service)
    block_and_split(memory_service, merged)
    store = memory_service.store
    assert store.unblock(PHONE) and not store.unblock(PHONE)
    assert partition(store) == {frozenset(ANNA), frozenset(BORIS)}
    memory_service.apply(
        event({"email": "anna@mail.ru", "phone": "+79091234567"}, event_id="later", minutes=30)
    )
    assert partition(store) == {frozenset(ANNA | {PHONE}), frozenset(BORIS)}


def test_an_event_with_only_a_blocked_value_is_refused(memory_service):
    from svyaz.domain.merge import InvalidEvent

    merged = merge_by_shared_phone(memory_service)
    block_and_split(memory_service, merged)
    with pytest.raises(InvalidEvent):
        memory_service.apply(event({"phone": "+79091234567"}, event_id="call", type="call"))


def test_a_second_split_of_the_same_profile_waits_for_the_first(memory_service):
    merged = merge_by_shared_phone(memory_service)
    store = memory_service.store
    first, second = (
        new_request(merged, PHONE, "a"),
        new_request(merged, Identifier("email", "anna@mail.ru"), "b"),
    )
    store.create_split(first)
    store.create_split(second)
    store.begin_split(first.request_id, first.requested_at)
    with pytest.raises(ProfileBusy):
        Splitter(store, memory_service.policy).run(second.request_id)


# --- HTTP ------------------------------------------------------------------------------------


def test_split_over_http_is_queued_answered_202_and_reported_when_done(rt):
    merged = merge_by_shared_phone(IdentityService(rt.store, rt.policy))
    profiles = client("profiles")

    answer = profiles.post(
        f"/profiles/{merged}/split",
        json={"block": {"kind": "phone", "value": "+7 909 123-45-67"}, "reason": "shared family phone"},
        headers=READ,
    )

    assert answer.status_code == 202, answer.json
    request_id = answer.json["request_id"]
    assert answer.json["state"] == "queued" and answer.headers["Location"] == f"/splits/{request_id}"
    assert deliver_all(rt) == 1
    state = profiles.get(f"/splits/{request_id}", headers=READ).json
    assert state["state"] == "done" and len(state["profile_ids"]) == 2 and merged in state["profile_ids"]
    updates = rt.publisher.drain(rt.settings.profile_updates_topic)
    split = [m for m in updates if m.attributes["status"] == "split"]
    assert sorted(m.attributes["profile_id"] for m in split) == sorted(state["profile_ids"])
    # Each event the split gave to the new profile is corrected for downstream (it was
    # published with the merged profile).
    boris = next(p for p in state["profile_ids"] if p != merged)
    corrected = [json.loads(m.data) for m in updates if m.attributes["status"] == "corrected"]
    assert len(corrected) + len(split) == len(updates)
    assert sorted(c["event_id"] for c in corrected) == ["boris-ad", "boris-lead", "boris-order", "boris-view"]
    assert {(c["profile_id"], c["previous_profile_id"]) for c in corrected} == {(boris, merged)}

    listed = profiles.get("/blocklist", headers=READ).json["blocklist"]
    assert [(e["kind"], e["value"], e["reason"]) for e in listed] == [
        ("phone", "+79091234567", "shared family phone")
    ]
    assert profiles.delete(f"/blocklist/{listed[0]['id']}", headers=READ).status_code == 200
    assert profiles.get("/blocklist", headers=READ).json["blocklist"] == []
    assert profiles.delete(f"/blocklist/{listed[0]['id']}", headers=READ).status_code == 404


def test_explain_over_http_with_and_without_a_path_query(rt):
    merged = merge_by_shared_phone(IdentityService(rt.store, rt.policy))
    profiles = client("profiles")
    view = profiles.get(f"/profiles/{merged}/explain", headers=READ).json
    assert {i["value"] for i in view["identifiers"]} == {i.value for i in ANNA | BORIS | {PHONE}}
    assert [m["event"]["event_id"] for m in view["merges"]] == ["boris-lead"]
    chain = profiles.get(
        f"/profiles/{merged}/explain?kind=client_id&value=cookie-anna&to_kind=client_id&to_value=cookie-boris",
        headers=READ,
    ).json
    assert [s["event_id"] for s in chain["path"]] == ["anna-lead", "boris-lead"]
    query = {"kind": "client_id", "value": "cookie-anna", "to_kind": "client_id", "to_value": "cookie-boris"}
    posted = profiles.post(f"/profiles/{merged}/explain", json=query, headers=READ).json
    assert posted == chain  # the same answer, the values out of the URL
    assert profiles.post(f"/profiles/{merged}/explain", json={}, headers=READ).json == view


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"block": {"kind": "phone", "value": "12"}, "reason": "x"}, "invalid_value"),
        ({"block": {"kind": "shoe", "value": "42"}, "reason": "x"}, "unknown_kind"),
        ({"block": {"kind": "phone", "value": "+79091234567"}}, "invalid_body"),
        ({"block": "phone", "reason": "x"}, "invalid_body"),
        ({"block": {"kind": "ip", "value": "1.2.3.4"}, "reason": "x"}, "invalid_body"),
    ],
)
def test_a_bad_split_request_gets_a_json_reason_and_nothing_is_queued(rt, body, error):
    merged = merge_by_shared_phone(IdentityService(rt.store, rt.policy))
    answer = client("profiles").post(f"/profiles/{merged}/split", json=body, headers=READ)
    assert answer.status_code == 400 and answer.json["error"] == error
    assert rt.publisher.drain(rt.settings.events_topic) == []


def test_split_endpoints_need_the_api_key_and_unknown_ids_are_404(rt):
    profiles = client("profiles")
    assert profiles.get("/blocklist").status_code == 401
    assert profiles.post("/profiles/abc/split", json={}).status_code == 401
    assert profiles.get("/splits/0123456789abcdef", headers=READ).status_code == 404
    body = {"block": {"kind": "phone", "value": "+79091234567"}, "reason": "x"}
    assert profiles.post("/profiles/0123456789abcdef/split", json=body, headers=READ).status_code == 404


# --- CLI -------------------------------------------------------------------------------------


def test_cli_explains_as_a_tree_and_splits(rt, monkeypatch, capsys):
    from svyaz.cli import main, target
    from svyaz.dev.client import Target

    merged = merge_by_shared_phone(IdentityService(rt.store, rt.policy))
    monkeypatch.setattr(target, "open_target", lambda args, **_: target.Opened(Target(store="memory"), rt=rt))

    assert main(["explain", "--kind", "phone", "--value", "8 909 123-45-67"]) == 0
    tree = capsys.readouterr().out
    assert f"Profile {merged}" in tree
    assert "└─ email:boris@mail.ru  ← event boris-lead (lead via web," in tree
    assert main(["explain", "--kind", "email", "--value", "anna@mail.ru", "--to", "email=boris@mail.ru"]) == 0
    assert "event anna-lead" in capsys.readouterr().out

    assert (
        main(["split", "--profile", merged, "--block", "phone=+7 909 123 45 67", "--reason", "family"]) == 0
    )
    assert f"split of profile {merged} done (phone blocked): 2 profiles" in capsys.readouterr().out
    assert partition(rt.store) == {frozenset(ANNA), frozenset(BORIS)}


@pytest.mark.svyaz_settings(split_budget_seconds=1e-9)
def test_process_event_queues_the_rest_of_a_split_when_its_time_budget_runs_out(rt, monkeypatch):
    monkeypatch.setattr(split_rules, "PART_SIZE", 2)
    merged = merge_by_shared_phone(IdentityService(rt.store, rt.policy))
    body = {"block": {"kind": "phone", "value": "+79091234567"}, "reason": "shared phone"}
    request_id = (
        client("profiles").post(f"/profiles/{merged}/split", json=body, headers=READ).json["request_id"]
    )
    deliveries = 0
    while delivered := deliver_all(rt):  # each delivery applies one chunk and queues the rest
        deliveries += delivered
    assert deliveries >= 4 and rt.store.get_split(request_id).state == "done"
    assert partition(rt.store) == {frozenset(ANNA), frozenset(BORIS)}


def test_explain_shows_moved_devices_and_refused_links_that_touched_the_profile(memory_service):
    from svyaz.app.explain import explain

    store = memory_service.store
    first = memory_service.apply(event({"user_id": "u1", "device_id": "d1"}, event_id="login-1", minutes=0))
    second = memory_service.apply(event({"user_id": "u2", "device_id": "d1"}, event_id="login-2", minutes=1))
    refused = memory_service.apply(event({"user_id": "u3", "email": "x@mail.ru"}, event_id="form", minutes=2))
    clash = memory_service.apply(event({"user_id": "u1", "email": "x@mail.ru"}, event_id="clash", minutes=3))
    assert clash.status == "conflict" and refused.status == "created"

    old_owner = explain(store, store.resolve(first.profile_id))
    assert [(m["event"]["event_id"], m["kind"], m["to"]) for m in old_owner["moves"]] == [
        ("login-2", "device_id", second.profile_id)
    ]
    assert [(c["event"]["event_id"], c["kind"], c["reason"]) for c in old_owner["conflicts"]] == [
        ("clash", "email", "would exceed the limit of user_id")
    ]
    other = explain(store, store.resolve(refused.profile_id))
    assert [c["event"]["event_id"] for c in other["conflicts"]] == ["clash"]
