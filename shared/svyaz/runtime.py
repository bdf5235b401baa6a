"""The composition root: builds the store, the queue and the service from the settings, once
per process. Entry points ask ``current()``; tests and ``svyaz serve`` may ``install()`` their own."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from .config import Settings
from .queue import LocalQueue, Publisher, PubSubPublisher
from .service import IdentityService
from .store.base import Store
from .store.memory import MemoryStore


@dataclass
class Runtime:
    settings: Settings
    store: Store
    publisher: Publisher
    service: IdentityService


def build(
    settings: Settings | None = None, *, store: Store | None = None, publisher: Publisher | None = None
) -> Runtime:
    settings = settings or Settings()
    policy = settings.policy  # validated at start-up: a bad policy file stops here
    if store is None:
        if settings.store == "firestore":
            from .store.firestore import FirestoreStore

            store = FirestoreStore(
                settings.pepper_bytes, project=settings.gcp_project, database=settings.firestore_database
            )
        else:
            store = MemoryStore(settings.pepper_bytes)
    store.idempotency_ttl = store.idempotency_ttl.__class__(days=settings.idempotency_ttl_days)
    if publisher is None:
        use_pubsub = settings.env == "production" or os.environ.get("PUBSUB_EMULATOR_HOST")
        publisher = PubSubPublisher(settings.gcp_project) if use_pubsub else LocalQueue()
    return Runtime(settings, store, publisher, IdentityService(store, policy))


_current: Runtime | None = None
_lock = threading.Lock()


def current() -> Runtime:
    global _current
    with _lock:
        if _current is None:
            _current = build()
        return _current


def install(runtime: Runtime | None) -> None:
    global _current
    with _lock:
        _current = runtime
