"""The Pub/Sub-triggered function: apply one queued message to the identity graph.

A transient failure (store contention, Firestore or Pub/Sub unavailable) raises, so Pub/Sub
redelivers it (and dead-letters it after the configured attempts). A message that can never
apply is logged with its id and acknowledged: a poison message never loops.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from contextlib import nullcontext
from typing import Any

from pydantic import ValidationError

from svyaz.adapters.queue import (
    JOB_KINDS,
    LocalQueue,
    Message,
    PublishedJobs,
    QueueUnavailable,
    job_message,
    outcome_message,
    split_message,
)
from svyaz.app.runtime import Runtime
from svyaz.app.splits import Splitter
from svyaz.app.warehouse import touchpoint_message
from svyaz.domain.events import Event, describe_validation_error
from svyaz.domain.merge import InvalidEvent
from svyaz.domain.model import Job, Outcome
from svyaz.domain.validation import check_event_time

log = logging.getLogger("svyaz.process")


class PoisonMessage(ValueError):
    pass


def decode(data: dict[str, Any]) -> Message:
    """The Pub/Sub message inside a CloudEvent's data (``{"message": {...}, "subscription"}``)."""
    try:
        message = data["message"]
        payload = base64.b64decode(message.get("data", ""), validate=True)
        return Message(payload, dict(message.get("attributes") or {}), str(message.get("messageId", "")))
    except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise PoisonMessage(f"not a Pub/Sub message: {type(exc).__name__}") from None


def apply_message(message: Message, runtime: Runtime) -> Outcome | None:
    kind = message.attributes.get("kind", "event")
    if kind == "erase":
        return _erase(message, runtime)
    if kind == "split":
        return _split(message, runtime)
    if kind in JOB_KINDS:
        return _job(message, runtime)
    if kind != "event":
        raise PoisonMessage(f"unknown message kind {kind!r}")
    try:
        event = Event.from_json(message.data)
    except ValidationError as exc:
        fields = sorted({d["field"] for d in describe_validation_error(exc)})
        raise PoisonMessage(f"invalid event ({', '.join(fields)})") from None
    if (reason := check_event_time(event, runtime.settings.time_window)) is not None:
        raise PoisonMessage(f"invalid event ({reason})")
    sink = runtime.service.jobs
    try:
        with sink.holding() if isinstance(sink, PublishedJobs) else nullcontext([]) as jobs:
            outcome = runtime.service.apply(event)
    except InvalidEvent as exc:
        raise PoisonMessage(str(exc)) from None
    settings = runtime.settings
    # The outcome for downstream systems, and the touchpoint row the warehouse subscription
    # writes to BigQuery; a duplicate delivery publishes them again (the views deduplicate), so a
    # failed publish after the commit loses neither. The event's follow-up jobs go in the same
    # publish (one wait on the broker): a redelivery publishes them again too.
    batches = {settings.profile_updates_topic: [outcome_message(outcome)]}
    if jobs:
        batches[settings.events_topic] = [job_message(job) for job in jobs]
    if settings.touchpoints_topic and (row := touchpoint_message(event, outcome)) is not None:
        batches[settings.touchpoints_topic] = [row]
    runtime.publisher.publish_all(batches)
    return outcome


def _redelivers_later(runtime: Runtime) -> bool:
    """Whether a job that is not due may wait (``Later``) for the queue to deliver it again.
    The embedded queue applies one message at a time, so no fast-path write is in flight while
    a job runs: its jobs (folds, final sweeps, a split's settling) run at once."""
    return not isinstance(runtime.publisher, LocalQueue)


def _job(message: Message, runtime: Runtime) -> None:
    """A follow-up job (re-pointing, order credit, fold, erasure sweep): idempotent, so a
    redelivery is harmless; a transient failure, or a job that must wait (``Later``),
    raises and Pub/Sub retries it after its backoff. The embedded queue has no such backoff (and
    its memory store no write limit): it folds at once."""
    try:
        job = Job.from_dict(json.loads(message.data))
    except (ValueError, TypeError, AttributeError):
        raise PoisonMessage("invalid follow-up job") from None
    runtime.service.run_job(job, debounce=_redelivers_later(runtime))
    log.info("follow-up job done", extra={"svyaz": job.as_dict()})


def _erase(message: Message, runtime: Runtime) -> Outcome | None:
    try:
        profile_id = json.loads(message.data)["profile_id"]
    except (ValueError, KeyError, TypeError):
        raise PoisonMessage("invalid erasure request") from None
    report = runtime.service.erase(str(profile_id))  # and its final sweep, as a job
    if report is None:
        log.info("erasure of an unknown profile", extra={"svyaz": {"profile_id": profile_id}})
        return None
    outcome = Outcome(event_id=f"erase:{profile_id}", status="unchanged", profile_id=profile_id)
    update = outcome_message(outcome)
    update.attributes["status"] = "erased"
    update.data = json.dumps(
        {
            "status": "erased",
            "profile_ids": report.profile_ids,
            "identifiers": report.identifiers,
            "touchpoints": report.touchpoints,
        }
    ).encode()
    runtime.publisher.publish(runtime.settings.profile_updates_topic, [update])
    log.info("profile erased", extra={"svyaz": {"profile_ids": report.profile_ids}})
    return outcome


def _split(message: Message, runtime: Runtime) -> None:
    """Carry a split request on; queue it again when the time budget runs out. A transient
    failure or ``ProfileBusy`` (another split of the profile) raises: Pub/Sub redelivers."""
    try:
        request_id = str(json.loads(message.data)["request_id"])
        wait, updates = _redelivers_later(runtime), runtime.publish_corrections
        splitter = Splitter(runtime.store, runtime.policy, wait=wait, updates=updates)
        request = splitter.run(request_id, runtime.settings.split_budget_seconds)
    except (ValueError, KeyError, TypeError):
        raise PoisonMessage("invalid or unknown split request") from None
    if request is None:
        runtime.publisher.publish(runtime.settings.events_topic, [split_message(request_id)])
        return None
    if request.state == "done":
        updates = []
        for profile_id in request.result.get("profile_ids", []):
            update = outcome_message(Outcome(f"split:{request_id}", "unchanged", profile_id))
            update.attributes["status"] = "split"
            update.data = json.dumps(
                {"status": "split", "profile_id": profile_id, "request_id": request_id, **request.result}
            ).encode()
            updates.append(update)
        runtime.publisher.publish(runtime.settings.profile_updates_topic, updates)
    return None


def handle_cloud_event(data: dict[str, Any], event_id: str, runtime: Runtime) -> Outcome | None:
    message: Message | None = None
    try:
        message = decode(data)
        return apply_message(message, runtime)
    except PoisonMessage as exc:
        reject(message, event_id, str(exc), runtime)
        return None


def reject(message: Message | None, message_id: str, reason: str, runtime: Runtime) -> None:
    """A message that can never apply: acknowledged (it never loops), and never silent: logged
    with its ids and reason, counted (``runtime.rejected``: ``svyaz serve``'s summary) and
    published on the profile-updates topic as ``status: rejected`` for downstream systems."""
    label = (message.attributes.get("event_id") if message is not None else None) or message_id
    runtime.rejected.record(message_id, label, reason)
    log.error(
        "message rejected (acknowledged, not applied): %s",
        reason,
        extra={"svyaz": {"message_id": message_id, "event_id": label, "reason": reason}},
    )
    body = {"status": "rejected", "event_id": label, "message_id": message_id, "reason": reason}
    update = Message(json.dumps(body).encode(), {"status": "rejected", "event_id": label})
    try:
        runtime.publisher.publish(runtime.settings.profile_updates_topic, [update])
    except QueueUnavailable:
        log.error("rejection not published", extra={"svyaz": {"message_id": message_id}})
