"""Calling the Cloud Functions exactly as GCP does, with a runtime of the test's choosing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import functions_framework

from svyaz.adapters.queue import LocalQueue, Message, Publisher, QueueUnavailable, cloud_event_for
from svyaz.adapters.store.base import Store
from svyaz.app import runtime
from svyaz.app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
MAIN = str(ROOT / "functions" / "main.py")
FIXTURES = ROOT / "tests" / "fixtures"
WRITE_KEY, API_KEY = "test-write-key", "test-api-key"


def settings(**overrides: Any) -> Settings:
    values = {
        "write_keys": [WRITE_KEY],
        "api_keys": [API_KEY],
        "max_body_bytes": 64 * 1024,
        "max_batch_events": 20,
    } | overrides
    return Settings(**values)


def install(store: Store, publisher: Publisher | None = None, **overrides: Any) -> runtime.Runtime:
    rt = runtime.build(settings(**overrides), store=store, publisher=publisher or LocalQueue())
    runtime.install(rt)
    return rt


def client(target: str):
    return functions_framework.create_app(target, MAIN).test_client()


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def deliver(message: Message, rt: runtime.Runtime) -> Any:
    """POST a queued message to process_event as the CloudEvent GCP delivers."""
    envelope = cloud_event_for(message, "svyaz-test", rt.settings.events_topic, "svyaz-events-push")
    return client("process_event").post(
        "/", json=envelope, headers={"Content-Type": "application/cloudevents+json"}
    )


def deliver_all(rt: runtime.Runtime) -> int:
    """Deliver everything queued, and the follow-up jobs those deliveries queue, until the
    events topic is empty; how many messages other than follow-up jobs were delivered."""
    from svyaz.adapters.queue import JOB_KINDS

    delivered = 0
    while messages := rt.publisher.drain(rt.settings.events_topic):
        for message in messages:
            assert deliver(message, rt).status_code == 200
            delivered += message.attributes.get("kind") not in JOB_KINDS
    return delivered


def raw_message(data: bytes, **attributes: str) -> Message:
    return Message(data, attributes)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class BrokenQueue(LocalQueue):
    """A queue that is down: publishing fails the way Pub/Sub unavailability does."""

    def publish(self, topic: str, messages: list[Message]) -> None:
        raise QueueUnavailable("down for the test")


def pull(subscriber: Any, project: str, subscription: str, expected: int) -> list[Message]:
    """Synchronously pull (and acknowledge) at least ``expected`` messages, or what arrives."""
    path = subscriber.subscription_path(project, subscription)
    received: list[Any] = []
    for _ in range(20):
        answer = subscriber.pull(request={"subscription": path, "max_messages": 100}, timeout=10)
        received += answer.received_messages
        if len(received) >= expected:
            break
    if received:
        subscriber.acknowledge(request={"subscription": path, "ack_ids": [r.ack_id for r in received]})
    return [Message(r.message.data, dict(r.message.attributes), r.message.message_id) for r in received]
