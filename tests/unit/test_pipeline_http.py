"""The pipeline's functions called exactly as GCP calls them (functions-framework test
clients): /collect, process_event (CloudEvents), /profiles."""

from __future__ import annotations

import copy
import json

import pytest

from svyaz.adapters.queue import LocalQueue, QueueUnavailable
from svyaz.domain.model import Identifier
from tests.pipeline_support import (
    API_KEY,
    WRITE_KEY,
    BrokenQueue,
    client,
    deliver,
    deliver_all,
    fixture,
    install,
    queued,
    raw_message,
)

AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}
READ = {"Authorization": f"Bearer {API_KEY}"}


# --- /collect -----------------------------------------------------------------------------


def test_a_page_view_is_accepted_and_queued(rt):
    answer = client("collect").post("/collect", json=fixture("collect/web_page_view.json"), headers=AUTH)
    assert answer.status_code == 202
    assert answer.json == {"accepted": ["2f6c1d8e-5b0a-4f7e-9d55-0c6a1f3e9b21"]}
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    [event] = queued(rt)
    assert event["identifiers"]["ga_client_id"] == "GA1.1.471788507.1650790107"


def test_a_batch_is_accepted_whole(rt):
    answer = client("collect").post("/collect", json=fixture("collect/app_batch.json"), headers=AUTH)
    assert answer.status_code == 202 and answer.json["accepted"] == ["app-7d1e-0001", "app-7d1e-0002"]
    assert len(queued(rt)) == 2


def test_the_function_answers_on_its_own_url_too(rt):
    assert (
        client("collect").post("/", json=fixture("collect/web_page_view.json"), headers=AUTH).status_code
        == 202
    )


def test_garbage_identifiers_next_to_good_ones_are_accepted_with_warnings(rt):
    answer = client("collect").post("/collect", json=fixture("collect/lead_with_garbage.json"), headers=AUTH)
    assert answer.status_code == 202
    [warning] = answer.json["warnings"]
    assert warning["event_id"] == "lead-0042"
    assert sorted(d["kind"] for d in warning["dropped"]) == ["client_id", "email"]
    assert {d["reason"] for d in warning["dropped"]} == {"placeholder value"}


def test_cors_preflight_is_answered_without_a_key(rt):
    answer = client("collect").options("/collect", headers={"Origin": "https://shop.example"})
    assert answer.status_code == 204 and "POST" in answer.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {WRITE_KEY}"}, 401),
        ({"Authorization": f"Bearer {API_KEY}"}, 401),
    ],
)
def test_a_sender_without_the_write_key_is_refused(rt, headers, status):
    answer = client("collect").post("/collect", json=fixture("collect/web_page_view.json"), headers=headers)
    assert answer.status_code == status and answer.json["error"] == "unauthorized"
    assert queued(rt) == []


def _event(**changes):
    event = fixture("collect/web_page_view.json")
    event.update(changes)
    return event


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"", 400, "invalid_json", None),
        (json.dumps(_event(timestamp="yesterday")).encode(), 400, "invalid_event", "timestamp"),
        (
            json.dumps(_event(identifiers={"client_id": {"nested": 1}})).encode(),
            400,
            "invalid_event",
            "identifiers",
        ),
        (json.dumps(_event(type="Page View")).encode(), 400, "invalid_event", "type"),
        (json.dumps(_event(identifiers={"shoe_size": "42"})).encode(), 400, "invalid_event", "identifiers"),
        (
            json.dumps(_event(identifiers={"email": "null", "phone": "+70000000000"})).encode(),
            400,
            "invalid_event",
            "identifiers",
        ),
        (json.dumps(_event(unexpected=1)).encode(), 400, "invalid_event", "unexpected"),
        (json.dumps([1, 2]).encode(), 400, "invalid_event", ""),
        (json.dumps({"batch": []}).encode(), 400, "invalid_event", None),
        (
            json.dumps({"batch": [_event(event_id=f"e{i}") for i in range(21)]}).encode(),
            413,
            "too_large",
            None,
        ),
        (b"{" + b" " * 70_000 + b"}", 413, "too_large", None),
    ],
)
def test_bad_input_gets_a_json_reason_and_nothing_is_queued(rt, body, status, error, field):
    answer = client("collect").post(
        "/collect", data=body, headers=AUTH | {"Content-Type": "application/json"}
    )
    assert answer.status_code == status and answer.json["error"] == error and answer.json["reason"]
    if field is not None:
        reported = [e["field"] for item in answer.json["events"] for e in item["errors"]]
        assert any(f.startswith(field) for f in reported), reported
    assert queued(rt) == []


def test_one_bad_event_refuses_the_whole_batch(rt):
    batch = {"batch": [_event(event_id="good"), _event(event_id="bad", timestamp="never")]}
    answer = client("collect").post("/collect", json=batch, headers=AUTH)
    assert answer.status_code == 400
    assert [(e["index"], e["event_id"]) for e in answer.json["events"]] == [(1, "bad")]
    assert queued(rt) == []


def test_queue_down_is_503_so_the_sender_retries():
    install(publisher=BrokenQueue())
    answer = client("collect").post("/collect", json=fixture("collect/web_page_view.json"), headers=AUTH)
    assert answer.status_code == 503 and answer.headers["Retry-After"]


def test_only_post_is_allowed(rt):
    answer = client("collect").get("/collect", headers=AUTH)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"


# --- process_event ------------------------------------------------------------------------


def test_process_event_applies_the_event_and_publishes_the_outcome(rt):
    client("collect").post("/collect", json=fixture("collect/web_page_view.json"), headers=AUTH)
    assert deliver_all(rt) == 1
    profile = rt.store.lookup(Identifier("ga_client_id", "471788507.1650790107"))
    assert profile is not None and profile.first_touch.attribution["source"] == "yandex"
    [update] = rt.publisher.drain(rt.settings.profile_updates_topic)
    body = json.loads(update.data)
    assert body["status"] == "created" and body["profile_id"] == profile.profile_id
    assert "1681971876942937034" not in update.data.decode()  # no personal data downstream


def test_a_redelivered_message_changes_nothing(rt):
    client("collect").post("/collect", json=fixture("collect/app_batch.json"), headers=AUTH)
    messages = rt.publisher.drain(rt.settings.events_topic)
    for message in messages:
        deliver(message, rt)
    before = rt.store.lookup(Identifier("user_id", "crm-10442"))
    for message in messages:
        assert deliver(copy.deepcopy(message), rt).status_code == 200
    after = rt.store.lookup(Identifier("user_id", "crm-10442"))
    assert (after.counters, after.version) == (before.counters, before.version)


@pytest.mark.parametrize(
    "message",
    [
        raw_message(b"not json at all", kind="event"),
        raw_message(b'{"event_id": "x"}', kind="event"),
        raw_message(
            json.dumps(
                {
                    "event_id": "x",
                    "type": "page",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "identifiers": {"shoe": "1"},
                }
            ).encode(),
            kind="event",
        ),
        raw_message(b"{}", kind="mystery"),
        raw_message(b"[]", kind="erase"),
    ],
)
def test_a_poison_message_is_acknowledged_and_writes_nothing(rt, message):
    answer = deliver(message, rt)
    assert answer.status_code == 200  # acknowledged: Pub/Sub will not redeliver it forever
    assert list(rt.store.iter_records()) == [] and list(rt.store.iter_profiles()) == []


def test_a_message_that_is_not_pubsub_is_acknowledged(rt):
    envelope = {
        "specversion": "1.0",
        "id": "1",
        "source": "//x",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "datacontenttype": "application/json",
        "data": {"message": {"data": "%%%not-base64"}},
    }
    answer = client("process_event").post(
        "/", json=envelope, headers={"Content-Type": "application/cloudevents+json"}
    )
    assert answer.status_code == 200


def test_a_transient_failure_fails_the_delivery_so_pubsub_retries(rt):
    client("collect").post("/collect", json=fixture("collect/web_page_view.json"), headers=AUTH)
    [message] = rt.publisher.drain(rt.settings.events_topic)
    rt.publisher = BrokenQueue()  # the outcome cannot be published
    assert deliver(message, rt).status_code == 500


class CountingQueue(LocalQueue):
    """The in-process queue, counting the waits on the broker: each ``publish`` or
    ``publish_all`` call is one (Pub/Sub's client waits on every future of a call together)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[list[str]] = []
        self._inside = False

    def publish_all(self, batches):
        self.waits.append(sorted(batches))
        self._inside = True
        try:
            super().publish_all(batches)
        finally:
            self._inside = False

    def publish(self, topic, messages):
        if not self._inside:
            self.waits.append([topic])
        super().publish(topic, messages)


def test_an_event_waits_on_the_broker_once_for_its_jobs_outcome_and_warehouse_row():
    queue = CountingQueue()
    rt = install(publisher=queue, touchpoints_topic="svyaz-touchpoints")
    client("collect").post("/collect", json=fixture("collect/web_page_view.json"), headers=AUTH)
    [message] = queue.drain(rt.settings.events_topic)
    queue.waits.clear()
    assert deliver(message, rt).status_code == 200
    topics = sorted([rt.settings.events_topic, rt.settings.profile_updates_topic, "svyaz-touchpoints"])
    assert queue.waits == [topics]  # before: the jobs alone, then the outcome and the row
    [job] = queue.drain(rt.settings.events_topic)
    assert job.attributes["kind"] == "fold"


def test_an_event_whose_publish_fails_leaves_no_job_behind_and_its_redelivery_publishes_them():
    queue = CountingQueue()
    rt = install(publisher=queue)
    client("collect").post("/collect", json=fixture("collect/app_batch.json"), headers=AUTH)
    messages = queue.drain(rt.settings.events_topic)
    broken = {"on": True}
    publish_all = queue.publish_all

    def failing(batches):
        if broken["on"]:
            raise QueueUnavailable("down for the test")
        publish_all(batches)

    queue.publish_all = failing
    assert deliver(messages[0], rt).status_code == 500
    assert queue.drain(rt.settings.events_topic) == []  # nothing was sent of the failed delivery
    broken["on"] = False
    assert deliver(copy.deepcopy(messages[0]), rt).status_code == 200
    assert queue.drain(rt.settings.profile_updates_topic)


# --- /profiles ----------------------------------------------------------------------------


def _apply(rt, *events):
    client("collect").post("/collect", json={"batch": list(events)}, headers=AUTH)
    deliver_all(rt)


def test_lookup_normalizes_the_value_first(rt):
    _apply(rt, fixture("collect/lead_with_garbage.json"))
    answer = client("profiles").get("/profiles/lookup?kind=phone&value=8%20(909)%20123-45-67", headers=READ)
    assert answer.status_code == 200
    assert answer.json["identifiers"] == {"phone": ["+79091234567"], "session_id": ["1980094328"]}
    assert answer.json["traits"] == {"first_name": "Василий"}
    for field in ("profile_id", "first_seen", "last_seen", "first_touch", "last_touch", "counters"):
        assert field in answer.json


def test_a_merged_id_answers_with_its_survivor(rt):
    _apply(rt, _event(event_id="a", identifiers={"client_id": "c1"}, timestamp="2026-11-01T00:00:00Z"))
    _apply(rt, _event(event_id="b", identifiers={"client_id": "c2"}, timestamp="2026-11-02T00:00:00Z"))
    loser = rt.store.lookup(Identifier("client_id", "c2")).profile_id
    _apply(
        rt, _event(event_id="c", identifiers={"client_id": ["c1", "c2"]}, timestamp="2026-11-03T00:00:00Z")
    )
    answer = client("profiles").get(f"/profiles/{loser}", headers=READ)
    assert answer.status_code == 200 and answer.json["profile_id"] != loser
    assert answer.json["identifiers"]["client_id"] == ["c1", "c2"]
    assert answer.json["merged_profile_ids"] == [loser]


def test_touch_history_is_newest_first_and_paginated(rt):
    _apply(
        rt,
        *[
            _event(event_id=f"v{i}", timestamp=f"2026-11-0{i + 1}T00:00:00Z", context={"source": f"s{i}"})
            for i in range(5)
        ],
    )
    pid = rt.store.lookup(Identifier("client_id", "5f3a9c2e7d1b4a60")).profile_id
    first = client("profiles").get(f"/profiles/{pid}/touchpoints?limit=2", headers=READ).json
    assert [t["event_id"] for t in first["touchpoints"]] == ["v4", "v3"]
    rest = (
        client("profiles")
        .get(f"/profiles/{pid}/touchpoints?limit=10&before={first['next_before']}", headers=READ)
        .json
    )
    assert [t["event_id"] for t in rest["touchpoints"]] == ["v2", "v1", "v0"] and "next_before" not in rest


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/profiles/lookup?kind=phone&value=%2B79990000000", 404, "not_found"),
        ("/profiles/lookup?kind=phone&value=12", 400, "invalid_value"),
        ("/profiles/lookup?kind=shoe&value=42", 400, "unknown_kind"),
        ("/profiles/lookup?kind=phone", 400, "invalid_query"),
        ("/profiles/0123456789abcdef0123456789abcdef", 404, "not_found"),
        ("/profiles/..%2f..%2fetc", 404, "not_found"),
        ("/profiles/x/touchpoints?limit=0", 404, "not_found"),
        ("/profiles/a/b/c", 404, "not_found"),
    ],
)
def test_profile_api_errors_are_json(rt, path, status, error):
    answer = client("profiles").get(path, headers=READ)
    assert answer.status_code == status and answer.json["error"] == error


def test_bad_pagination_is_400(rt):
    _apply(rt, _event())
    pid = rt.store.lookup(Identifier("client_id", "5f3a9c2e7d1b4a60")).profile_id
    for query in ("limit=abc", "limit=1000", "before=yesterday", "before=2026-11-01T00:00:00"):
        answer = client("profiles").get(f"/profiles/{pid}/touchpoints?{query}", headers=READ)
        assert answer.status_code == 400 and answer.json["error"] == "invalid_query", query


@pytest.mark.parametrize(
    "before",
    # a year past 9999 or before 1 once it is UTC: the page was empty (every touch hidden), a 200
    ["9999-12-31T23:59:59.999999-14:00", "0001-01-01T00:00:00%2B05:00", "9999-12-31T23:59:59Z"],
)
def test_a_page_boundary_outside_the_times_an_event_may_have_is_a_400_not_an_empty_page(rt, before):
    _apply(rt, _event())
    pid = rt.store.lookup(Identifier("client_id", "5f3a9c2e7d1b4a60")).profile_id
    answer = client("profiles").get(f"/profiles/{pid}/touchpoints?before={before}", headers=READ)
    assert answer.status_code == 400, answer.data
    assert answer.json["reason"] == "before is out of range"


def test_the_profile_api_needs_the_api_key_not_the_write_key(rt):
    for headers in ({}, AUTH):
        answer = client("profiles").get("/profiles/lookup?kind=phone&value=89091234567", headers=headers)
        assert answer.status_code == 401


def test_erasure_is_queued_then_removes_the_customer(rt):
    _apply(rt, fixture("collect/lead_with_garbage.json"))
    pid = rt.store.lookup(Identifier("phone", "+79091234567")).profile_id
    answer = client("profiles").delete(f"/profiles/{pid}", headers=READ)
    assert answer.status_code == 202 and answer.json == {"profile_id": pid, "erasure": "queued"}
    deliver_all(rt)
    assert client("profiles").get(f"/profiles/{pid}", headers=READ).status_code == 404
    lookup = client("profiles").get("/profiles/lookup?kind=phone&value=89091234567", headers=READ)
    assert lookup.status_code == 404
    erased = [json.loads(m.data) for m in rt.publisher.drain(rt.settings.profile_updates_topic)][-1]
    assert erased["status"] == "erased" and erased["identifiers"] == 2


def test_the_journal_page_shows_the_history_and_escapes_what_customers_typed(rt):
    _apply(rt, _event(traits={"first_name": "<script>alert(1)</script>"}))
    pid = rt.store.lookup(Identifier("client_id", "5f3a9c2e7d1b4a60")).profile_id
    page = client("profiles").get(f"/profiles/{pid}/journal", headers=READ)
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "yandex/cpc/sofas-autumn" in text and "1681971876942937034" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert client("profiles").get(f"/profiles/{pid}/journal").status_code == 401
