"""process_event on the real emulators with the warehouse topic configured (as infra/ deploys it):
each applied event publishes its outcome and its touchpoint row in one publish, and the row is the
one the BigQuery subscription's table takes."""

from __future__ import annotations

import json

import pytest
from google.cloud import pubsub_v1

from svyaz.adapters.queue import PubSubPublisher, ensure_topics, event_message
from svyaz.app import runtime
from svyaz.dev.demo import ekaterina
from svyaz.entrypoints.process import apply_message
from tests.conftest import PROJECT, make_firestore_store
from tests.pipeline_support import install, pull
from tests.unit.warehouse.test_bigquery_view import check_row, schema

pytestmark = pytest.mark.emulator
TOUCHES, UPDATES = "svyaz-touchpoints-e2e", "svyaz-updates-warehouse-e2e"


@pytest.fixture
def rt(firestore_emulator, pubsub_emulator):
    rt = install(
        make_firestore_store(firestore_emulator),
        PubSubPublisher(PROJECT),
        gcp_project=PROJECT,
        touchpoints_topic=TOUCHES,
        profile_updates_topic=UPDATES,
    )
    # events: process_event queues its follow-up jobs there
    topics = [TOUCHES, UPDATES, rt.settings.events_topic]
    ensure_topics(PROJECT, topics, {TOUCHES + "-bq": TOUCHES, UPDATES + "-bq": UPDATES})
    subscriber = pubsub_v1.SubscriberClient()
    pull(subscriber, PROJECT, TOUCHES + "-bq", 0)
    pull(subscriber, PROJECT, UPDATES + "-bq", 0)
    yield rt, subscriber
    subscriber.close()
    rt.publisher.close()
    runtime.install(None)


def test_each_event_publishes_its_outcome_and_its_warehouse_row(rt):
    rt, subscriber = rt
    events = ekaterina()
    for event in events:
        apply_message(event_message(event), rt)
    touches = pull(subscriber, PROJECT, TOUCHES + "-bq", len(events))
    updates = pull(subscriber, PROJECT, UPDATES + "-bq", len(events))
    assert len(updates) == len(events)
    rows = {json.loads(m.data)["event_id"]: json.loads(m.data) for m in touches}
    assert set(rows) == {e.event_id for e in events}
    for row in rows.values():
        check_row(row, schema("touchpoints"), row["event_id"])
    order = rows["ekaterina-5"]
    assert (order["touchpoint"], order["amount"], order["channel"]) == ("order:S-77", "129000.00", "store")
