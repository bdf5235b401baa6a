"""The composition root: builds the store, the queue and the service from the settings, once
per process. Entry points ask ``current()``; tests and ``svyaz serve`` may ``install()`` their own.

The store (and so the pepper it needs) is built on first use: a webhook function that only
queues events never needs Firestore rights or the pepper secret.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from datetime import timedelta
from functools import cached_property

from svyaz.adapters.ledger import FirestoreLedger, Ledger, MemoryLedger, StoreLedger
from svyaz.adapters.queue import (
    DurableLocalQueue,
    LocalQueue,
    PublishedJobs,
    Publisher,
    PubSubPublisher,
    correction_message,
)
from svyaz.adapters.store.base import Store
from svyaz.adapters.store.journal import JournaledStore
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.access import SignInLinks
from svyaz.app.config import Settings
from svyaz.app.service import IdentityService
from svyaz.app.warehouse import settled_touchpoint_message
from svyaz.domain.model import Touchpoint
from svyaz.identity.policy import Policy


class Rejections:
    """Messages the worker acknowledged without applying them (poison: they can never apply):
    counted, and the latest kept by message id with the event id and reason, so ``svyaz serve``
    reports them and tests can see them. No personal data: ids and reasons only."""

    def __init__(self, keep: int = 1000) -> None:
        self.count = 0
        self._keep = keep
        self._recent: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, message_id: str, label: str, reason: str) -> None:
        with self._lock:
            self.count += 1
            self._recent[message_id] = (label, reason)
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)

    def __contains__(self, message_id: object) -> bool:
        with self._lock:
            return message_id in self._recent

    def labels(self) -> list[str]:
        """The event ids (or message ids) of the latest rejected messages, oldest first."""
        with self._lock:
            return [label for label, _ in self._recent.values()]


class Runtime:
    def __init__(
        self, settings: Settings, publisher: Publisher | None = None, store: Store | None = None
    ) -> None:
        self.settings = settings
        self.policy: Policy = settings.identity_policy  # validated at start-up: a bad policy stops here
        self.rejected = Rejections()
        if publisher is not None:
            self.__dict__["publisher"] = publisher
        if store is not None:
            store.idempotency_ttl = timedelta(days=settings.idempotency_ttl_days)
            self.__dict__["store"] = store

    @cached_property
    def publisher(self) -> Publisher:
        use_pubsub = self.settings.env == "production" or os.environ.get("PUBSUB_EMULATOR_HOST")
        if use_pubsub:
            return PubSubPublisher(self.settings.gcp_project)
        limits = {self.settings.events_topic: self.settings.local_queue_limit}
        if self.settings.data_dir:
            return DurableLocalQueue(self.settings.data_dir, (self.settings.events_topic,), limits)
        return LocalQueue(limits)

    @cached_property
    def store(self) -> Store:
        settings = self.settings
        store: Store
        if settings.store == "firestore":
            from svyaz.adapters.store.firestore import FirestoreStore

            store = FirestoreStore(
                settings.pepper_bytes, project=settings.gcp_project, database=settings.firestore_database
            )
        elif settings.data_dir:
            store = JournaledStore(settings.pepper_bytes, settings.data_dir)
        else:
            store = MemoryStore(settings.pepper_bytes)
        store.idempotency_ttl = timedelta(days=settings.idempotency_ttl_days)
        return store

    @cached_property
    def ledger(self) -> Ledger:
        """The export ledger, next to the store's data (the same Firestore database)."""
        store = self.store
        client = getattr(store, "client", None)
        if client is not None:  # a FirestoreStore
            return FirestoreLedger(self.settings.pepper_bytes, client)
        if isinstance(store, JournaledStore):  # kept in the data directory with the graph
            return StoreLedger(self.settings.pepper_bytes, store)
        return MemoryLedger(self.settings.pepper_bytes)

    @cached_property
    def service(self) -> IdentityService:
        # Follow-up jobs are messages on the events topic, never run in the event's invocation.
        jobs = PublishedJobs(self.publisher, self.settings.events_topic)
        service = IdentityService(self.store, self.policy, jobs=jobs)
        service.updates = self.publish_corrections
        return service

    def publish_corrections(self, settled: list[tuple[Touchpoint, str]]) -> None:
        """Tell downstream systems that settled fast-path touchpoints belong to another profile
        than their first outcome said: a ``corrected`` profile update and the touchpoint's row
        again, with the profile it belongs to (docs/warehouse.md)."""
        updates = [correction_message(t.event_id, pid, t.profile_id) for t, pid in settled]
        batches = {self.settings.profile_updates_topic: updates}
        if topic := self.settings.touchpoints_topic:
            batches[topic] = [settled_touchpoint_message(t, pid) for t, pid in settled]
        self.publisher.publish_all(batches)

    @cached_property
    def sign_in_links(self) -> SignInLinks:
        """One-time journal sign-in links issued by this process (``svyaz serve``)."""
        return SignInLinks()


def build(
    settings: Settings | None = None, *, store: Store | None = None, publisher: Publisher | None = None
) -> Runtime:
    return Runtime(settings or Settings(), publisher, store)


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
