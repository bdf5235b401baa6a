"""Calling the Cloud Functions exactly as GCP does, with a runtime of the test's choosing, and a
served svyaz (``svyaz serve``'s LocalService) over real HTTP.

The runtime: :func:`install` (the ``rt`` fixture of ``tests/conftest.py`` uses it; the conftest
uninstalls whatever a test installed). Requests: :func:`client` (functions-framework's test
client on functions/main.py) and :func:`http` (a real connection to a served instance)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import functions_framework

from svyaz.adapters.queue import LocalQueue, Message, Publisher, QueueUnavailable, cloud_event_for
from svyaz.adapters.store.base import Store
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app import runtime
from svyaz.app.config import Settings
from svyaz.dev.local import LocalService
from svyaz.entrypoints.process import apply_message

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


def build(
    store: Store | None = None,
    publisher: Publisher | None = None,
    *,
    config: Settings | None = None,
    **overrides: Any,
) -> runtime.Runtime:
    """A runtime: ``config``, else the test settings with ``overrides``; a memory store and the
    in-process queue of ``svyaz serve`` (bounded by ``local_queue_limit``) unless given."""
    from tests.conftest import PEPPER  # the conftest imports this module

    config = config or settings(**overrides)
    return runtime.build(
        config,
        store=store if store is not None else MemoryStore(PEPPER),
        publisher=publisher or LocalQueue({config.events_topic: config.local_queue_limit}),
    )


def install(
    store: Store | None = None,
    publisher: Publisher | None = None,
    *,
    config: Settings | None = None,
    **overrides: Any,
) -> runtime.Runtime:
    """:func:`build`, installed where functions/main.py finds it (until the test ends)."""
    rt = build(store, publisher, config=config, **overrides)
    runtime.install(rt)
    return rt


@contextmanager
def served(rt: runtime.Runtime, **options: Any) -> Iterator[LocalService]:
    """Every function under its path and the worker on a free local port, as ``svyaz serve``
    runs them; stopped (what was accepted applied first) when the block ends."""
    service = LocalService("127.0.0.1", 0, rt, **{"quiet": True} | options).start()
    try:
        yield service
    finally:
        service.stop()


def user_environment(**extra: str) -> dict[str, str]:
    """The environment of a user's shell for a ``svyaz`` process: none of the test session's
    SVYAZ_* or emulator variables (its state directory kept: no developer's `svyaz serve` is
    found), then ``extra``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("SVYAZ_", "FIRESTORE", "PUBSUB"))}
    return kept | {"SVYAZ_STATE_DIR": os.environ["SVYAZ_STATE_DIR"]} | extra


@contextmanager
def svyaz_running(*args: str, until: str, **env: str) -> Iterator[tuple[subprocess.Popen, list[str]]]:
    """``svyaz <args>`` started as a user starts it, once it has printed a line containing
    ``until``: the process and its lines so far; killed if it still runs when the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "svyaz.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=user_environment(**env),
    )
    try:
        lines: list[str] = []
        while not any(until in line for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()


def client(target: str):
    return functions_framework.create_app(target, MAIN).test_client()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Any  # case-insensitive, as http.client gives them
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def http(
    url: str,
    body: Any = None,
    *,
    key: str | None = None,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Answer:
    """One real HTTP request to a served svyaz, as a sender makes it: a dict or list body goes
    as JSON, bytes or text as they are; ``key`` as the bearer key; POST when there is a body.
    Redirects are not followed (the QR landing's answer is the 302 itself)."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if isinstance(body, dict | list):
        body = json.dumps(body, ensure_ascii=False)
        sent.setdefault("Content-Type", "application/json")
    data = body.encode() if isinstance(body, str) else body
    parts = urlsplit(url)
    connection = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request(method or ("GET" if data is None else "POST"), target, body=data, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def queued(rt: runtime.Runtime) -> list[dict]:
    """The canonical events waiting on the events topic (not taken off it)."""
    return [json.loads(m.data) for m in rt.publisher.topic(rt.settings.events_topic).queue]


def apply_queued(rt: runtime.Runtime) -> list:
    """Apply every queued event in order through process_event's code, then the follow-up jobs
    they queue; the events' outcomes."""
    outcomes = []
    while messages := rt.publisher.drain(rt.settings.events_topic):
        for message in messages:
            outcome = apply_message(message, rt)
            if message.attributes.get("kind", "event") == "event":
                outcomes.append(outcome)
    rt.publisher.drain(rt.settings.profile_updates_topic)
    return outcomes


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
