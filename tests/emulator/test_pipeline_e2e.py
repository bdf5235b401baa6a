"""The whole pipeline on the real emulators: POST /collect -> message on the Pub/Sub topic ->
process_event (the CloudEvent GCP delivers) -> Firestore -> GET /profiles."""

from __future__ import annotations

import json

import pytest
from google.cloud import pubsub_v1

from svyaz.adapters.queue import Message, PubSubPublisher, ensure_topics
from svyaz.domain.events import namespaced_event_id, sender_namespace
from svyaz.domain.model import Identifier
from tests.conftest import PROJECT, make_firestore_store
from tests.pipeline_support import API_KEY, WRITE_KEY, client, deliver, fixture, install
from tests.pipeline_support import pull as pull_messages

pytestmark = pytest.mark.emulator
SUBSCRIPTION = "svyaz-events-e2e"


@pytest.fixture
def pipeline(firestore_emulator, pubsub_emulator):
    rt = install(make_firestore_store(firestore_emulator), PubSubPublisher(PROJECT), gcp_project=PROJECT)
    ensure_topics(
        PROJECT,
        [rt.settings.events_topic, rt.settings.profile_updates_topic],
        {SUBSCRIPTION: rt.settings.events_topic, "svyaz-updates-e2e": rt.settings.profile_updates_topic},
    )
    subscriber = pubsub_v1.SubscriberClient()
    yield rt, subscriber
    subscriber.close()
    rt.publisher.close()


def pull(subscriber, name: str, expected: int) -> list:
    return pull_messages(subscriber, PROJECT, name, expected)


def test_collect_to_profile_through_pubsub_and_firestore(pipeline):
    # The site's own ids, kept apart from every other sender's (the write key's namespace).
    visit = namespaced_event_id(sender_namespace(WRITE_KEY), "2f6c1d8e-5b0a-4f7e-9d55-0c6a1f3e9b21")
    lead = namespaced_event_id(sender_namespace(WRITE_KEY), "lead-0042")
    rt, subscriber = pipeline
    auth = {"Authorization": f"Bearer {WRITE_KEY}"}
    pull(subscriber, SUBSCRIPTION, 0)  # start clean
    assert (
        client("collect")
        .post("/collect", json=fixture("collect/web_page_view.json"), headers=auth)
        .status_code
        == 202
    )
    assert (
        client("collect")
        .post("/collect", json=fixture("collect/lead_with_garbage.json"), headers=auth)
        .status_code
        == 202
    )
    messages = pull(subscriber, SUBSCRIPTION, 2)
    assert sorted(m.attributes["event_id"] for m in messages) == sorted([visit, lead])
    for message in messages + messages:  # every message delivered twice: the second changes nothing
        assert deliver(message, rt).status_code == 200
    poison = Message(b"\xff not an event", {"kind": "event"}, "poison-1")
    assert deliver(poison, rt).status_code == 200  # acknowledged, never loops

    read = {"Authorization": f"Bearer {API_KEY}"}
    answer = client("profiles").get(
        "/profiles/lookup?kind=phone&value=%2B7%20909%20123%2045%2067", headers=read
    )
    assert answer.status_code == 200
    profile = answer.json
    assert profile["identifiers"]["ym_client_id"] == ["1681971876942937034"]
    assert profile["identifiers"]["phone"] == ["+79091234567"]
    assert profile["counters"]["events"] == 2 and profile["first_touch"]["source"] == "yandex"
    history = client("profiles").get(f"/profiles/{profile['profile_id']}/touchpoints", headers=read).json
    # newest first by event time: the lead was sent at 10:09 Moscow time, before the 10:00 UTC visit
    # the history shows each event under the id its sender gave it
    assert [t["event_id"] for t in history["touchpoints"]] == [
        "2f6c1d8e-5b0a-4f7e-9d55-0c6a1f3e9b21",
        "lead-0042",
    ]

    updates = [json.loads(u.data) for u in pull(subscriber, "svyaz-updates-e2e", 5)]
    # the poison message is not lost silently: its refusal is published too
    assert [u["event_id"] for u in updates if u["status"] == "rejected"] == ["poison-1"]
    published = sorted((u["event_id"], u["duplicate"]) for u in updates if u["status"] != "rejected")
    assert published == sorted([(visit, False), (visit, True), (lead, False), (lead, True)])
    assert rt.store.lookup(Identifier("session_id", "1980094328")).profile_id == profile["profile_id"]
