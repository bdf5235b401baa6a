"""A busy customer's events never contend with each other: they are published with an ordering
key from their strongest anonymous identifier, and a subscription with message ordering (the
benchmark's replay does the same) hands one key's messages out one at a time."""

from __future__ import annotations

import threading
import time

from svyaz.adapters.queue import event_message, ordering_key
from svyaz.bench.replay import Delivery, run_workers
from tests.helpers import event


def test_one_browser_one_key_and_no_personal_data_in_it():
    page = event({"client_id": "c-42"})
    login = event({"client_id": "c-42", "email": "ivan@x.ru", "user_id": "u1"})
    other = event({"client_id": "c-43"})
    assert ordering_key(page) == ordering_key(login) != ordering_key(other)
    assert "c-42" not in ordering_key(page) and len(ordering_key(page)) == 32
    assert event_message(login).ordering_key == ordering_key(page)
    assert ordering_key(event({"session_id": "s1", "device_id": "d1"})) == ordering_key(
        event({"session_id": "s1"})
    )
    assert ordering_key(event({"email": "ivan@x.ru"})) == ""  # nothing anonymous: unordered


def test_a_keys_deliveries_run_one_at_a_time_in_order_and_a_failure_is_retried_first():
    running: dict[str, int] = {}
    seen: list[int] = []
    lock = threading.Lock()
    failed_once: set[int] = set()

    def step(delivery: Delivery) -> bool:
        with lock:
            running[delivery.ordering_key] = running.get(delivery.ordering_key, 0) + 1
            assert running[delivery.ordering_key] == 1, "two deliveries of one key at once"
        time.sleep(0.001)
        with lock:
            running[delivery.ordering_key] -= 1
            if delivery.index == 3 and delivery.index not in failed_once:
                failed_once.add(delivery.index)
                return False  # redelivered, before the key's later messages
            if delivery.ordering_key == "hot":
                seen.append(delivery.index)
        return True

    deliveries = [Delivery(n, None, ordering_key="hot" if n % 2 else f"k{n}") for n in range(40)]
    stats = run_workers(deliveries, 8, step, False, "test")
    assert stats.redeliveries == 1
    assert seen == [n for n in range(40) if n % 2]
