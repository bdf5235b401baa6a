"""The queue port: how entry points hand canonical events to the pipeline, and how outcomes
reach downstream systems. Two adapters: Pub/Sub (GCP or its emulator) and an in-process queue
for the embedded default."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from svyaz.domain.events import Event
from svyaz.domain.model import Job, Outcome

log = logging.getLogger("svyaz.adapters.queue")
PUBSUB_EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


class QueueUnavailable(RuntimeError):
    """The message was not accepted by the queue; the sender should retry (HTTP 503)."""


@dataclass
class Message:
    data: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ordering_key: str = ""  # Pub/Sub delivers messages of one key in order, one at a time


# Anonymous identifiers, strongest first (the default policy's priorities 6 to 8): what stays
# the same across one customer's events before and after they log in.
ANONYMOUS_KINDS = (
    "client_id",
    "ym_client_id",
    "ga_client_id",
    "ct_client_id",
    "user_pseudo_id",
    "session_id",
    "device_id",
    "advertising_id",
    "push_token",
    "web_push_token",
    "mac",
)


def ordering_key(event: Event) -> str:
    """The event's strongest anonymous identifier, hashed (no personal data in the key): one
    browser's or app's events are delivered in order, never two at once; "" when it has none."""
    for kind in ANONYMOUS_KINDS:
        values = event.identifiers.get(kind)
        value = values[0] if isinstance(values, list) and values else values
        if value not in (None, "", []):
            return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:32]
    return ""


def event_message(event: Event) -> Message:
    return Message(
        event.to_json(), {"kind": "event", "event_id": event.event_id}, ordering_key=ordering_key(event)
    )


def erase_message(profile_id: str) -> Message:
    return Message(json.dumps({"profile_id": profile_id}).encode(), {"kind": "erase"})


def split_message(request_id: str) -> Message:
    return Message(json.dumps({"request_id": request_id}).encode(), {"kind": "split"})


JOB_KINDS = ("repoint", "credit", "sweep", "fold", "settle")


def job_message(job: Job) -> Message:
    """A follow-up job on the events topic; the ``kind`` attribute routes it in process_event.
    It carries profile ids only."""
    return Message(json.dumps(job.as_dict()).encode(), {"kind": job.kind})


class PublishedJobs:
    """The deployed job sink: each follow-up job is a message on the events topic, retried by
    Pub/Sub like any event, never run inside the event's invocation."""

    def __init__(self, publisher: Publisher, topic: str) -> None:
        self.publisher = publisher
        self.topic = topic
        self._held = threading.local()

    def publish(self, jobs: list[Job]) -> None:
        held: list[Job] | None = getattr(self._held, "jobs", None)
        if held is not None:
            held.extend(jobs)
            return
        self.publisher.publish(self.topic, [job_message(job) for job in jobs])

    @contextmanager
    def holding(self) -> Iterator[list[Job]]:
        """Keep the jobs this thread publishes inside the block in the list it yields: the
        worker sends them with the event's outcome in one ``publish_all``, one wait on the
        broker per event instead of two. The caller must publish them (or fail the message)."""
        self._held.jobs = held = []
        try:
            yield held
        finally:
            self._held.jobs = None


def outcome_message(outcome: Outcome) -> Message:
    """Profile updates for downstream systems carry ids and statuses, never personal data:
    consumers read the profile through the API when they need it."""
    attributes = {"status": outcome.status}
    if outcome.profile_id:
        attributes["profile_id"] = outcome.profile_id
    return Message(json.dumps(outcome.as_dict()).encode(), attributes)


def correction_message(event_id: str, profile_id: str, previous_profile_id: str) -> Message:
    """A profile update that corrects an event's first outcome: the event belongs to
    ``profile_id``, not to ``previous_profile_id`` (a profile merged away before the event's
    fast-path write was settled, ``IdentityService.settle_merge``). Ids only."""
    body = {
        "event_id": event_id,
        "status": "corrected",
        "profile_id": profile_id,
        "previous_profile_id": previous_profile_id,
    }
    attributes = {"status": "corrected", "profile_id": profile_id}
    return Message(json.dumps(body).encode(), attributes)


def cloud_event_for(message: Message, project: str, topic: str, subscription: str) -> dict[str, Any]:
    """The CloudEvent (structured JSON) that GCP delivers to a Pub/Sub-triggered function."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "specversion": "1.0",
        "id": message.message_id,
        "source": f"//pubsub.googleapis.com/projects/{project}/topics/{topic}",
        "type": PUBSUB_EVENT_TYPE,
        "time": now,
        "datacontenttype": "application/json",
        "data": {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "attributes": dict(message.attributes),
                "messageId": message.message_id,
                "publishTime": now,
            },
            "subscription": f"projects/{project}/subscriptions/{subscription}",
        },
    }


class Publisher(ABC):
    @abstractmethod
    def publish(self, topic: str, messages: list[Message]) -> None:
        """Return only once every message is accepted; else raise ``QueueUnavailable``."""

    def publish_all(self, batches: dict[str, list[Message]]) -> None:
        """Publish to several topics; return once every message is accepted."""
        for topic, messages in batches.items():
            self.publish(topic, messages)

    def publish_nowait(self, topic: str, messages: list[Message]) -> None:
        """Hand messages to the queue without waiting for the broker's acknowledgement (for
        requests a person waits on). ``close()`` flushes them, so a clean shutdown loses none."""
        self.publish(topic, messages)

    def publish_within(self, topic: str, messages: list[Message], seconds: float) -> None:
        """Like ``publish``, waiting at most ``seconds`` for the broker (a person waits on the
        answer); past it ``QueueUnavailable``."""
        self.publish(topic, messages)

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LocalQueue(Publisher):
    """In-process topics. Each topic has a FIFO; a worker (``svyaz serve``) drains it.

    ``limits`` bounds the messages waiting on a topic: a publish that would pass it is refused
    whole (``QueueUnavailable``, so the sender gets 503 + Retry-After and retries) instead of
    growing memory until the process dies with everything it accepted."""

    def __init__(self, limits: dict[str, int] | None = None) -> None:
        self.topics: dict[str, queue.Queue[Message]] = {}
        self._lock = threading.Lock()
        self.closed = False
        self.limits = dict(limits or {})
        self.refused = 0  # messages refused because their topic was full
        self.peak: dict[str, int] = {}  # the most messages each topic has held waiting
        self._reserved: dict[str, int] = {}  # room taken by publishes still being journaled

    def topic(self, name: str) -> queue.Queue[Message]:
        with self._lock:
            return self.topics.setdefault(name, queue.Queue())

    def publish(self, topic: str, messages: list[Message]) -> None:
        if self.closed:
            raise QueueUnavailable("the local queue is shutting down")
        q, limit = self.topic(topic), self.limits.get(topic)
        # Follow-up jobs come from the worker itself, a few per applied event: refusing them
        # would only fail the event they follow; the limit holds what senders may add.
        bounded = not all(m.attributes.get("kind") in JOB_KINDS for m in messages)
        if bounded:
            with self._lock:  # all of a request's messages or none of them
                held = q.qsize() + self._reserved.get(topic, 0)
                if limit is not None and held + len(messages) > limit:
                    self.refused += len(messages)
                    raise QueueUnavailable(f"the local queue holds its limit of {limit} messages")
                self._reserved[topic] = self._reserved.get(topic, 0) + len(messages)
        try:
            self._accept(topic, messages)
        finally:
            with self._lock:
                if bounded:
                    self._reserved[topic] -= len(messages)
        with self._lock:
            for message in messages:
                q.put(message)
            if bounded:
                self.peak[topic] = max(self.peak.get(topic, 0), q.qsize())

    def _accept(self, topic: str, messages: list[Message]) -> None:
        """Messages about to be queued, their room reserved (the durable queue journals them)."""

    def ack(self, message: Message) -> None:
        """The worker is done with a message (applied, rejected as poison, or given up)."""

    def drain(self, topic: str) -> list[Message]:
        q, found = self.topic(topic), []
        while True:
            try:
                found.append(q.get_nowait())
            except queue.Empty:
                return found


class DurableLocalQueue(LocalQueue):
    """The local queue of ``svyaz serve --data-dir``: a message published to a ``durable`` topic
    (the events topic) is journaled and synced before ``publish`` returns, so before the sender
    gets its 202, and acknowledged once the worker is done with it; at start the messages never
    acknowledged are queued again. A crash or ``kill -9`` loses no accepted event: at least once,
    as Pub/Sub (one applied just before the crash is delivered again, a duplicate to the store).

    ``<dir>/queue/queue.jsonl``: ``{"put": ...}`` and ``{"ack": id}`` lines; rewritten with only
    the waiting messages when it passes ``compact_bytes`` (the queue is bounded, so that is small).
    """

    def __init__(
        self,
        directory: str | Path,
        durable: tuple[str, ...],
        limits: dict[str, int] | None = None,
        *,
        compact_bytes: int = 8 * 1024**2,
    ) -> None:
        super().__init__(limits)
        from svyaz.adapters.datadir import AppendLog, DirectoryLock, read_lines

        self.durable = set(durable)
        self.compact_bytes = compact_bytes
        self.path = Path(directory) / "queue"
        self._dir_lock = DirectoryLock(self.path)
        self._waiting: dict[str, tuple[str, Message]] = {}  # message id -> topic, message: in order
        self._swap = threading.Lock()  # the log's appends against its rewrite
        log_path = self.path / "queue.jsonl"
        valid = read_lines(log_path, self._replay) if log_path.exists() else None
        self._log = AppendLog(log_path, valid=valid)
        for topic, message in self._waiting.values():
            self.topic(topic).put(message)
        self.recovered = len(self._waiting)  # accepted before the last stop, not yet applied

    def _replay(self, record: dict[str, Any]) -> None:
        if "ack" in record:
            self._waiting.pop(record["ack"], None)
            return
        message = Message(
            base64.b64decode(record["data"]), record["attributes"], record["id"], record.get("key", "")
        )
        self._waiting[message.message_id] = (record["put"], message)

    @staticmethod
    def _put_record(topic: str, message: Message) -> dict[str, Any]:
        data = base64.b64encode(message.data).decode()
        put = {"put": topic, "id": message.message_id, "data": data, "attributes": message.attributes}
        return put | ({"key": message.ordering_key} if message.ordering_key else {})

    def _accept(self, topic: str, messages: list[Message]) -> None:
        if topic not in self.durable:
            return
        with self._swap:
            journal = self._log
            try:
                end = journal.write([self._put_record(topic, m) for m in messages])
            except OSError as exc:
                raise QueueUnavailable(f"the data directory refused the event: {type(exc).__name__}") from exc
            for message in messages:
                self._waiting[message.message_id] = (topic, message)
        try:
            journal.sync_to(end)  # outside the lock: concurrent publishes share an fsync
        except (OSError, ValueError) as exc:
            if journal is self._log:  # else rewritten meanwhile, these messages synced with it
                raise QueueUnavailable(f"the data directory refused the event: {type(exc).__name__}") from exc

    def ack(self, message: Message) -> None:
        with self._swap:
            if self._waiting.pop(message.message_id, None) is None:
                return
            # Not synced: an acknowledgement a crash loses only delivers the message once more.
            self._log.write([{"ack": message.message_id}])
            if self._log.size > self.compact_bytes:
                self._rewrite()

    def _rewrite(self) -> None:
        from svyaz.adapters.datadir import AppendLog, write_atomic

        path = self._log.path
        write_atomic(path, [self._put_record(t, m) for t, m in self._waiting.values()])
        # A publish may still be syncing the old file: it is left to close when dropped.
        self._log = AppendLog(path)

    def close(self) -> None:
        super().close()
        with self._swap:
            self._log.close()
        self._dir_lock.release()


class PubSubPublisher(Publisher):
    """Google Cloud Pub/Sub (the emulator when PUBSUB_EMULATOR_HOST is set)."""

    def __init__(self, project: str, timeout: float = 10.0) -> None:
        from google.cloud import pubsub_v1

        # Batch briefly so a burst of requests shares round trips; publish() still waits. Message
        # ordering: an event's ordering key (``ordering_key``) keeps a customer's events in order.
        settings = pubsub_v1.types.BatchSettings(max_messages=500, max_latency=0.005)
        options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        self.client = pubsub_v1.PublisherClient(batch_settings=settings, publisher_options=options)
        self.project = project
        self.timeout = timeout

    def publish(self, topic: str, messages: list[Message]) -> None:
        self.publish_all({topic: messages})

    def publish_all(self, batches: dict[str, list[Message]]) -> None:
        self._publish_all(batches, self.timeout)

    def publish_within(self, topic: str, messages: list[Message], seconds: float) -> None:
        self._publish_all({topic: messages}, seconds)

    def _publish_all(self, batches: dict[str, list[Message]], timeout: float) -> None:
        # Every message is handed over before waiting: one round trip for several topics.
        try:
            futures = []
            for topic, messages in batches.items():
                path = self.client.topic_path(self.project, topic)
                futures += [self._send(path, m) for m in messages]
            deadline = time.monotonic() + timeout
            for future in futures:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
        except Exception as exc:  # any failure means "not safely queued": the sender retries
            self._resume(batches)
            topics = ", ".join(batches)
            raise QueueUnavailable(f"publishing to {topics} failed: {type(exc).__name__}") from exc

    def _send(self, path: str, message: Message) -> Any:
        if message.ordering_key:
            return self.client.publish(
                path, message.data, ordering_key=message.ordering_key, **message.attributes
            )
        return self.client.publish(path, message.data, **message.attributes)

    def _resume(self, batches: dict[str, list[Message]]) -> None:
        """After a failed publish an ordering key is paused; the sender's retry needs it open."""
        for topic, messages in batches.items():
            path = self.client.topic_path(self.project, topic)
            for key in {m.ordering_key for m in messages if m.ordering_key}:
                self.client.resume_publish(path, key)

    def publish_nowait(self, topic: str, messages: list[Message]) -> None:
        path = self.client.topic_path(self.project, topic)
        for message in messages:
            future = self._send(path, message)
            future.add_done_callback(_log_failure)

    def close(self) -> None:
        self.client.stop()  # publishes every batched message before returning


def _log_failure(future: Any) -> None:
    if future.exception() is not None:
        log.error("background publish failed: %s", type(future.exception()).__name__)


def ensure_topics(project: str, topics: list[str], subscriptions: dict[str, str]) -> None:
    """Create topics and pull subscriptions if missing (emulator and local runs only)."""
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for topic in topics:
        try:
            publisher.create_topic(name=publisher.topic_path(project, topic))
        except exceptions.AlreadyExists:
            pass
    for subscription, topic in subscriptions.items():
        try:
            # A request object: the flattened arguments have no enable_message_ordering.
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(project, subscription),
                    "topic": publisher.topic_path(project, topic),
                    "ack_deadline_seconds": 60,
                    "enable_message_ordering": True,  # as infra/pubsub.tf: one customer's events in order
                }
            )
        except exceptions.AlreadyExists:
            pass
    subscriber.close()
