"""``svyaz serve`` under a flood: the queue of accepted events stays within its limit, senders
are told to come back (503 + Retry-After) instead of memory growing, and every event answered
202 is applied."""

from __future__ import annotations

import threading

import pytest

from svyaz.adapters.queue import LocalQueue, Message, QueueUnavailable
from svyaz.dev.local import LocalService
from svyaz.domain.model import Identifier
from tests.pipeline_support import WRITE_KEY, build, http

LIMIT = 40


def test_a_full_topic_refuses_a_whole_request_and_takes_it_once_there_is_room():
    queue = LocalQueue({"events": 3})
    queue.publish("events", [Message(b"1"), Message(b"2")])
    with pytest.raises(QueueUnavailable):
        queue.publish("events", [Message(b"3"), Message(b"4")])  # would be 4 waiting
    assert [m.data for m in queue.drain("events")] == [b"1", b"2"]  # nothing half-added
    queue.publish("events", [Message(b"3"), Message(b"4"), Message(b"5")])
    assert queue.refused == 2 and queue.peak["events"] == 3
    queue.publish("other", [Message(b"x")] * 10)  # topics without a limit are not bounded


def post(url: str, batch: list[dict]) -> tuple[int, dict, dict]:
    answer = http(f"{url}/collect", {"batch": batch}, key=WRITE_KEY)
    return answer.status, dict(answer.headers), answer.json


def test_a_flood_of_batches_is_held_to_the_limit_and_everything_accepted_is_applied():
    rt = build(local_queue_limit=LIMIT)
    service = LocalService("127.0.0.1", 0, rt, quiet=True).start()
    accepted: list[str] = []
    refusals: list[tuple[int, dict, dict]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for request in range(12):
            batch = [
                {
                    "event_id": f"c{n}-r{request}-e{i}",
                    "type": "page",
                    "timestamp": "2026-11-02T10:00:00Z",
                    "identifiers": {"client_id": f"visitor-{n}-{request}-{i}"},
                }
                for i in range(20)
            ]
            status, headers, body = post(service.url, batch)
            with lock:
                if status == 202:
                    accepted.extend(body["accepted"])
                else:
                    refusals.append((status, headers, body))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        left = service.stop()

    queue = rt.publisher
    assert left == 0
    assert queue.peak[rt.settings.events_topic] <= LIMIT
    assert refusals, "8 clients posting 20-event batches must outrun a 40-event queue"
    for status, headers, body in refusals:
        assert status == 503 and headers["Retry-After"] and body["error"] == "queue_unavailable"
    assert queue.refused == 20 * len(refusals)
    assert len(accepted) + queue.refused == 8 * 12 * 20
    for event_id in accepted:  # every 202 reached the graph
        n, request, i = (part[1:] for part in event_id.split("-"))
        assert rt.store.lookup(Identifier("client_id", f"visitor-{n}-{request}-{i}")) is not None


def test_a_debounced_fold_is_put_back_when_due_not_given_up(monkeypatch):
    """A fold job that must wait (``FoldLater``) is not a failure: the worker puts it back once
    its interval has passed instead of burning its delivery attempts and giving it up."""
    from svyaz.adapters.store.base import FoldLater
    from svyaz.dev import local

    monkeypatch.setattr(local, "FOLD_RETRY_SECONDS", 0.05)
    rt = build()
    worker = local.Worker(rt)
    tries: list[int] = []

    def deliver(message):
        tries.append(1)
        if len(tries) <= local.MAX_ATTEMPTS + 2:  # more waits than attempts a failure gets
            raise FoldLater("profile folded a moment ago")

    worker.deliver = deliver
    worker.start()
    rt.publisher.publish(rt.settings.events_topic, [Message(b"{}", {"kind": "fold"})])
    for _ in range(200):
        if len(tries) > local.MAX_ATTEMPTS + 2:
            break
        threading.Event().wait(0.02)
    worker.stop()
    assert len(tries) == local.MAX_ATTEMPTS + 3 and worker.given_up == []
