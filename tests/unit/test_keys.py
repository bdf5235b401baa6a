"""Document keys: the fast path asks for one event's key several times in a row, so ``Keys``
remembers the last one; every answer must still be that event's own keyed hash."""

import hashlib
import hmac
import threading

from svyaz.adapters.store.base import Keys

PEPPER = b"test-pepper"


def expected(event_id: str) -> str:
    return hmac.new(PEPPER, f"event:{event_id}".encode(), hashlib.sha256).hexdigest()


def test_each_event_gets_its_own_key_whatever_was_asked_before():
    keys = Keys(PEPPER)
    for event_id in ["a", "a", "b", "a", "b", "b", "web-0123456789:a"]:
        assert keys.event(event_id) == expected(event_id)
    assert keys.event("") == expected("")


def test_threads_asking_for_different_events_never_get_each_others_key():
    keys, wrong = Keys(PEPPER), []

    def ask(event_id: str) -> None:
        for _ in range(2000):
            if keys.event(event_id) != expected(event_id):
                wrong.append(event_id)

    threads = [threading.Thread(target=ask, args=(f"ev-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
