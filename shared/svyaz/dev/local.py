"""``svyaz serve``: every HTTP function on one local port under its own path, plus a worker
that applies queued events through ``process_event`` exactly as GCP delivers them.

Each HTTP function is the real functions-framework app of its target in ``functions/main.py``,
mounted under its path prefix (the load balancer layout). Queued events go through the
in-process queue by default, or through the Pub/Sub emulator when PUBSUB_EMULATOR_HOST is set.
"""

from __future__ import annotations

import importlib.util
import logging
import queue as queue_lib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response

from svyaz.adapters.queue import (
    JOB_KINDS,
    LocalQueue,
    Message,
    PubSubPublisher,
    cloud_event_for,
    ensure_topics,
)
from svyaz.adapters.store.base import FOLD_INTERVAL_MS, Later
from svyaz.app import runtime as runtime_module
from svyaz.entrypoints import registry

log = logging.getLogger("svyaz.dev.local")

LOCAL_SUBSCRIPTION = "svyaz-events-local"
MAX_ATTEMPTS = 5  # then the message is dead-lettered (kept in memory, reported)
FOLD_RETRY_SECONDS = FOLD_INTERVAL_MS // 1000  # a debounced fold is due again after its interval


def functions_source() -> Path:
    """``functions/main.py`` of a source checkout, or ``main.py`` beside the package in the
    deployed archive."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parents[1] / "functions" / "main.py", package.parent / "main.py"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("functions/main.py not found next to the svyaz package")


def build_wsgi_app(extra: dict[str, Any] | None = None) -> Any:
    """One functions-framework app per HTTP target of the registry, chosen by path prefix. The
    function sees the whole path, as behind the production load balancer. ``extra``: more WSGI
    apps by prefix (the local admin routes), which see the path below their prefix."""
    source = str(functions_source())
    targets = set(registry.routes().values())
    apps = {target: functions_framework.create_app(target, source) for target in targets}
    known = ", ".join(sorted(registry.routes(), key=len)).encode()

    def dispatch(environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO") or "/"
        for prefix, app in (extra or {}).items():
            if path == prefix or path.startswith(prefix + "/"):
                environ["PATH_INFO"] = path[len(prefix) :] or "/"
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
                return app(environ, start_response)
        target = registry.route(path)
        if target is None:
            body = b'{"error": "not_found", "reason": "unknown path; see ' + known + b'"}'
            return Response(body, 404, mimetype="application/json")(environ, start_response)
        return apps[target](environ, start_response)

    return dispatch


def _process_event_function() -> Any:
    """The deployed ``process_event`` target itself, loaded from the functions source."""
    spec = importlib.util.spec_from_file_location("svyaz_functions_main", functions_source())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.process_event


def message_label(message: Message) -> str:
    """How a message is named in logs and summaries: its event id (no personal data), else the
    kind and queue id (an erasure)."""
    if event_id := message.attributes.get("event_id"):
        return event_id
    return f"{message.attributes.get('kind', 'message')}:{message.message_id}"


@dataclass
class Worker:
    """Applies queued events one by one; a failure is retried with backoff like Pub/Sub's, and
    after ``MAX_ATTEMPTS`` the event is given up: counted, kept, logged with its id and listed
    in the summary (the local counterpart of the dead-letter topic)."""

    rt: runtime_module.Runtime
    subscription: str = LOCAL_SUBSCRIPTION
    applied: int = 0
    dead_letters: list[Message] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.process_event = _process_event_function()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.delayed = 0  # debounced jobs waiting to be put back
        self.last_delivery = 0.0
        self.thread: threading.Thread | None = None
        self.streaming: Any = None

    def deliver(self, message: Message) -> None:
        settings = self.rt.settings
        envelope = cloud_event_for(message, settings.gcp_project, settings.events_topic, self.subscription)
        attributes = {k: v for k, v in envelope.items() if k != "data"}
        self.process_event(CloudEvent(attributes, envelope["data"]))
        if message.message_id in self.rt.rejected:
            return  # acknowledged as poison: counted by the runtime, not applied
        if message.attributes.get("kind") not in JOB_KINDS:  # follow-up jobs are not events
            with self._lock:
                self.applied += 1

    def _later(self, topic: queue_lib.Queue, message: Message) -> None:
        """Put a debounced job back when it is due, without holding up the events behind it.
        ``pending`` does not count it (it is not an event); one still waiting at a stop is
        dropped, and the customer's next event folds the profile again."""
        with self._lock:
            self.delayed += 1

        def due() -> None:
            topic.put(message)
            with self._lock:
                self.delayed -= 1

        timer = threading.Timer(FOLD_RETRY_SECONDS, due)
        timer.daemon = True
        timer.start()

    @property
    def given_up(self) -> list[str]:
        """Ids of the events this worker gave up on (never applied)."""
        with self._lock:
            return [message_label(m) for m in self.dead_letters]

    def _failed(self, message: Message, attempt: int, exc: Exception) -> bool:
        """Record a failed delivery; True when the event is given up."""
        label = message_label(message)
        if attempt < MAX_ATTEMPTS:
            log.warning("delivery %d of %s failed: %s", attempt, label, type(exc).__name__)
            return False
        with self._lock:
            self.dead_letters.append(message)
        log.error(
            "gave up on %s after %d attempts (%s): not applied",
            label,
            attempt,
            type(exc).__name__,
            extra={"svyaz": {"event_id": label, "attempts": attempt}},
        )
        return True

    def start(self) -> None:
        publisher = self.rt.publisher
        if isinstance(publisher, LocalQueue):
            self.thread = threading.Thread(
                target=self._run_local, args=(publisher,), daemon=True, name="svyaz-worker"
            )
            self.thread.start()
        elif isinstance(publisher, PubSubPublisher):
            self._start_pubsub()

    def _run_local(self, queue: LocalQueue) -> None:
        topic = queue.topic(self.rt.settings.events_topic)
        attempts: dict[str, int] = {}
        while not (self.stop_event.is_set() and topic.empty()):
            try:
                message = topic.get(timeout=0.1)
            except queue_lib.Empty:
                continue
            try:
                self.deliver(message)
                attempts.pop(message.message_id, None)
                queue.ack(message)  # applied (or rejected as poison): --data-dir forgets it
            except Later:  # debounced, not failed: due again once the fold interval has passed
                self._later(topic, message)
            except Exception as exc:  # transient: redeliver later, as Pub/Sub would
                n = attempts[message.message_id] = attempts.get(message.message_id, 0) + 1
                if not self._failed(message, n, exc):
                    time.sleep(min(2.0, 0.1 * 2**n))
                    topic.put(message)
                else:
                    queue.ack(message)  # given up: listed in the summary, not retried at the next start
            finally:
                topic.task_done()
            queue.drain(self.rt.settings.profile_updates_topic)  # no downstream consumer locally

    def _start_pubsub(self) -> None:
        from google.cloud import pubsub_v1

        settings = self.rt.settings
        ensure_topics(
            settings.gcp_project,
            [settings.events_topic, settings.profile_updates_topic],
            {self.subscription: settings.events_topic},
        )
        subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(settings.gcp_project, self.subscription)

        attempts: dict[str, int] = {}

        def callback(received: Any) -> None:
            message = Message(received.data, dict(received.attributes), received.message_id)
            with self._lock:
                self.in_flight += 1
            try:
                self.deliver(message)
                received.ack()
            except Later:  # debounced, not failed: redelivered once the fold interval has passed
                received.modify_ack_deadline(FOLD_RETRY_SECONDS)
            except Exception as exc:
                # The local subscription has no dead-letter policy: give up here, as GCP's would.
                with self._lock:
                    n = attempts[message.message_id] = attempts.get(message.message_id, 0) + 1
                if self._failed(message, n, exc):
                    received.ack()
                else:
                    received.nack()
            finally:
                with self._lock:
                    self.in_flight -= 1
                    self.last_delivery = time.monotonic()

        flow = pubsub_v1.types.FlowControl(max_messages=4)
        self.streaming = subscriber.subscribe(path, callback=callback, flow_control=flow)

    def pending(self) -> int:
        """Events accepted but not yet applied. With Pub/Sub the backlog is the broker's: count
        deliveries in progress, and treat a delivery in the last half second as more to come."""
        publisher = self.rt.publisher
        if isinstance(publisher, LocalQueue):
            return publisher.topic(self.rt.settings.events_topic).unfinished_tasks
        with self._lock:
            recent = time.monotonic() - self.last_delivery < 0.5
            return self.in_flight + (1 if recent else 0)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.02)
        return self.pending() == 0

    def stop(self, timeout: float = 30.0) -> int:
        """Drain what was accepted, then stop. Returns how many events were left unapplied."""
        self.wait_idle(timeout)
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        if self.streaming is not None:
            self.streaming.cancel()
        return self.pending()


class _PrivateHandler(WSGIRequestHandler):
    """The access log without query strings: they carry personal data (phones, emails) and
    senders' secrets (call-tracking tokens, the WhatsApp verify token); nor the secret of a URL
    that is one (amoCRM's webhook)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = registry.loggable_path(self.path)
        self.log("info", '"%s %s %s" %s %s', self.command, path, self.request_version, code, size)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class LocalService:
    host: str = "127.0.0.1"
    port: int = 8080
    rt: runtime_module.Runtime | None = None
    server: BaseWSGIServer | None = None
    worker: Worker | None = None
    quiet: bool = False  # no per-request access log lines (demo, tests, benchmarks)
    # Seconds a connection may stay silent (request line, headers, each read of the body): a
    # body that stalls (a chunked body never completed) is then refused as unreadable (a JSON
    # 400) or its connection closed, instead of holding a handler thread forever.
    request_timeout: float = 10.0
    # Pub/Sub mode: the pull subscription the worker consumes (kept across restarts, so events
    # accepted before a stop are applied after the next start).
    subscription: str = LOCAL_SUBSCRIPTION

    def start(self) -> LocalService:
        if self.rt is not None:
            runtime_module.install(self.rt)
        self.rt = runtime_module.current()
        from svyaz.dev import admin

        base = _QuietHandler if self.quiet else _PrivateHandler
        # socketserver applies ``timeout`` to the connection's socket in the handler's setup.
        handler = type(base.__name__, (base,), {"timeout": self.request_timeout})
        app = build_wsgi_app({admin.PREFIX: admin.create_app(self)})
        self.server = make_server(self.host, self.port, app, threaded=True, request_handler=handler)
        self.port = self.server.server_port
        self.worker = Worker(self.rt, self.subscription)
        self.worker.start()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="svyaz-http")
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> int:
        assert self.server is not None and self.worker is not None
        self.server.shutdown()  # no new requests; then apply what was accepted
        left = self.worker.stop()
        self.rt.publisher.close()
        return left
