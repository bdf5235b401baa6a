"""The production path of an import on the real emulators: S3 (moto server) -> `--via queue` ->
the Pub/Sub topic -> each message applied as process_event applies it -> Firestore; then a
direct re-run on Firestore changes nothing, and the report reads the orders back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from google.cloud import pubsub_v1

from svyaz.adapters.queue import Message, PubSubPublisher, ensure_topics
from svyaz.adapters.store.base import Later
from svyaz.app import runtime
from svyaz.app.config import Settings
from svyaz.app.reports import attribution
from svyaz.domain.model import Identifier
from svyaz.entrypoints.process import apply_message
from svyaz.imports import S3Source, run_import
from tests.conftest import PROJECT, make_firestore_store
from tests.pipeline_support import pull as pull_messages

pytestmark = pytest.mark.emulator
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "calls_orders"

TOPIC, SUBSCRIPTION = "svyaz-events-import", "svyaz-events-import-sub"


def pull(subscriber, expected: int) -> list[Message]:
    return pull_messages(subscriber, PROJECT, SUBSCRIPTION, expected)


def test_queue_mode_through_pubsub_into_firestore(s3, s3_endpoint, firestore_emulator, pubsub_emulator):
    settings = Settings(gcp_project=PROJECT, events_topic=TOPIC, profile_updates_topic=TOPIC + "-updates")
    ensure_topics(PROJECT, [TOPIC, TOPIC + "-updates"], {SUBSCRIPTION: TOPIC})
    subscriber = pubsub_v1.SubscriberClient()
    rt = runtime.build(
        settings, store=make_firestore_store(firestore_emulator), publisher=PubSubPublisher(PROJECT)
    )
    try:
        pull(subscriber, 0)  # start clean
        for key, path in (
            ("crm/customers.jsonl", "customers.jsonl"),
            ("till/orders.csv", "orders_till_export.csv"),
        ):
            s3.put_object(Bucket=s3.bucket, Key=key, Body=(FIXTURES / path).read_bytes())
        msk = ZoneInfo("Europe/Moscow")
        queued = 0
        for key in ("crm/customers.jsonl", "till/orders.csv"):
            source = S3Source(f"s3://{s3.bucket}/{key}", s3_endpoint)
            queued += run_import(source, rt, via="queue", tz=msk, progress=False).queued
        assert queued == 8
        messages = pull(subscriber, queued)
        assert len(messages) == 8 and {m.attributes["kind"] for m in messages} == {"event"}
        for message in messages:
            assert not apply_message(message, rt).duplicate
        # The follow-up jobs those events published (order credit, re-pointing), as the
        # function would receive them.
        jobs = pull(subscriber, 1)
        assert jobs and {m.attributes["kind"] for m in jobs} <= {"credit", "repoint", "fold"}
        for job in jobs:
            try:
                apply_message(job, rt)
            except Later:  # debounced: Pub/Sub redelivers it later; reads fold the family already
                assert job.attributes["kind"] == "fold"

        katya = rt.store.lookup(Identifier("phone", "+79091234567"))
        assert katya.identifiers["loyalty_card"] == ["2900009876543"]
        assert katya.counters["revenue"] == 129000.0

        again = run_import(
            S3Source(f"s3://{s3.bucket}/till/orders.csv", s3_endpoint), rt, tz=msk, progress=False
        )
        assert (again.applied, again.duplicates) == (0, 4)
        orders = rt.store.touchpoints_between(
            "order", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
        )
        report = attribution(orders)
        assert {line.label: str(line.offline_revenue) for line in report.lines} == {
            "(none) / (none)": "136490.50",
            "yandex / cpc / sofas": "45990.00",  # the lead source kept by the CRM
        }
    finally:
        subscriber.close()
        rt.publisher.close()
