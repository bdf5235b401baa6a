"""The Firestore store (official ``google-cloud-firestore`` client).

Layout (design page, section 5): ``identifiers/{hmac(kind:value)}``, ``profiles/{random id}``,
``touchpoints/{hmac(event id)}``, ``processed_events/{hmac(event id)}`` with ``expire_at`` for
the TTL policy. A graph change is one read-write transaction, every read before any write.
Contention (ABORTED, lock timeouts) is retried with jittered exponential backoff; when the
retries run out ``Contention`` is raised and the transaction has been rolled back.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import transforms
from google.cloud.firestore_v1.base_query import FieldFilter

from svyaz.adapters.store.base import (
    Contention,
    Decide,
    Duplicate,
    ErasureReport,
    FastWrite,
    Store,
    StoreError,
    gather_snapshot,
)
from svyaz.adapters.store.memory import erased_doc
from svyaz.domain.merge import Plan, ProfileBusy, Snapshot
from svyaz.domain.model import (
    AuditEntry,
    BlockEntry,
    Identifier,
    IdentifierRecord,
    Outcome,
    Profile,
    Touchpoint,
    to_ms,
)
from svyaz.domain.split import SplitRequest, decide_block

log = logging.getLogger("svyaz.adapters.store.firestore")

# Errors after which the same transaction may succeed if tried again.
RETRYABLE = (gexc.Aborted, gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.AlreadyExists)
IN_QUERY_LIMIT = 30  # Firestore's cap on values in an "in" filter
# What the fast-path check reads of a profile: its status and chain, and the touches it may update
# (not its identifiers, which grow with the profile).
FAST_CHECK_FIELDS = ["status", "merged_into", "first_seen_ms", "last_seen_ms"]
FAST_CHECK_FIELDS += ["first_touch", "last_touch", "recent_touches", "counters"]


class FirestoreStore(Store):
    def __init__(
        self,
        pepper: bytes,
        client: firestore.Client | None = None,
        *,
        project: str | None = None,
        database: str = "(default)",
        max_attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> None:
        super().__init__(pepper)
        self.client = client or firestore.Client(project=project, database=database)
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.attempts = {"retries": 0, "contention": 0}
        self._identifiers = self.client.collection("identifiers")
        self._profiles = self.client.collection("profiles")
        self._touchpoints = self.client.collection("touchpoints")
        self._processed = self.client.collection("processed_events")
        self._blocklist = self.client.collection("blocklist")
        self._audit = self.client.collection("audit")
        self._splits = self.client.collection("splits")

    # --- snapshot reads ---------------------------------------------------------------
    def _gather(
        self,
        identifiers: Iterable[Identifier],
        event_id: str,
        transaction: Any = None,
        touchpoint_name: str | None = None,
        fast_check: bool = False,
    ) -> Snapshot:
        # One round trip for the idempotency record, the touchpoint the event updates and the
        # identifier records; then one per level of profiles.
        identifiers = list(identifiers)
        processed_ref = self._processed.document(self.keys.event(event_id))
        previous_ref = None
        if touchpoint_name is not None and touchpoint_name != event_id:
            previous_ref = self._touchpoints.document(self.keys.event(touchpoint_name))
        wanted = {self._identifiers.document(self.keys.identifier(i)).path: i for i in identifiers}
        # Blocklist entries only inside a transaction: the fast path needs none (a blocked value
        # has no record, so an event carrying one never takes the fast path).
        block_refs = (
            {}
            if fast_check
            else {self._blocklist.document(self.keys.identifier(i)).path: i for i in identifiers}
        )
        refs = [processed_ref, *([previous_ref] if previous_ref else []), *map(self.client.document, wanted)]
        refs += list(map(self.client.document, block_refs))
        found = {d.reference.path: d for d in self.client.get_all(refs, transaction=transaction) if d.exists}
        blocked = {i for p, i in block_refs.items() if p in found}
        processed = found.get(processed_ref.path)
        outcome = Outcome.from_dict(processed.get("outcome")) if processed is not None else None
        previous_doc = found.get(previous_ref.path) if previous_ref is not None else None
        previous = Touchpoint.from_doc(previous_doc.to_dict()) if previous_doc is not None else None
        records = {i: IdentifierRecord.from_doc(found[p].to_dict()) for p, i in wanted.items() if p in found}
        if outcome is not None or (fast_check and len(records) < len(wanted)):
            # A duplicate needs nothing else to replay its outcome; an unknown identifier rules
            # the fast path out (the transaction reads everything again anyway).
            return Snapshot(records=records, processed=outcome, previous=previous)

        fields = FAST_CHECK_FIELDS if fast_check else None

        def profiles(ids: set[str]) -> dict[str, Profile]:
            refs = [self._profiles.document(p) for p in ids]
            docs = self.client.get_all(refs, field_paths=fields, transaction=transaction)
            found = {}
            for doc in docs:
                if doc.exists:
                    found[doc.id] = Profile.from_doc(doc.id, doc.to_dict())
                    found[doc.id].revision = doc.update_time
            return found

        snapshot = gather_snapshot(identifiers, lambda _ids: records, profiles, outcome, previous)
        snapshot.blocked = blocked
        return snapshot

    def read_snapshot(self, identifiers: Iterable[Identifier], event_id: str) -> Snapshot:
        return self._gather(identifiers, event_id, fast_check=True)

    # --- transactions -----------------------------------------------------------------
    def _retrying(self, what: str, attempt_once: Any) -> Any:
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                return attempt_once()
            except RETRYABLE as exc:
                last = exc
            except ValueError as exc:
                # The client wraps a commit that was ABORTED on its last attempt in ValueError.
                if not isinstance(exc.__cause__, RETRYABLE):
                    raise
                last = exc.__cause__
            self.attempts["retries"] += 1
            # Full jitter: contending workers spread out instead of colliding again in step.
            time.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))  # noqa: S311
        self.attempts["contention"] += 1
        raise Contention(
            f"{what}: gave up after {self.max_attempts} attempts ({type(last).__name__})"
        ) from last

    def transact(
        self, identifiers: list[Identifier], event_id: str, decide: Decide, touchpoint_name: str | None = None
    ) -> Plan:
        @firestore.transactional
        def run(transaction: firestore.Transaction) -> Plan:
            plan = decide(self._gather(identifiers, event_id, transaction, touchpoint_name))
            if plan.outcome.duplicate:
                return plan
            for record in plan.records:
                transaction.set(
                    self._identifiers.document(self.keys.identifier(record.identifier)), record.to_doc()
                )
            for profile in plan.profiles:
                transaction.set(self._profiles.document(profile.profile_id), profile.to_doc())
            if plan.touchpoint is not None:
                transaction.set(
                    self._touchpoints.document(self.keys.event(plan.touchpoint.name)),
                    plan.touchpoint.to_doc(),
                )
            for entry in plan.audit:
                transaction.set(self._audit.document(self.keys.audit(entry)), entry.to_doc())
            transaction.create(
                self._processed.document(self.keys.event(event_id)), self._processed_doc(plan.outcome)
            )
            return plan

        return self._retrying("apply event", lambda: run(self.client.transaction(max_attempts=1)))

    def _processed_doc(self, outcome: Outcome) -> dict[str, Any]:
        return {"outcome": outcome.as_dict(), "expire_at": self.expiry(datetime.now(UTC))}

    def write_fast(self, write: FastWrite) -> None:
        key = self.keys.event(write.touchpoint.event_id)
        batch = self.client.batch()
        batch.create(self._processed.document(key), self._processed_doc(write.outcome))
        batch.create(self._touchpoints.document(key), write.touchpoint.to_doc())
        seen = to_ms(write.seen_at)
        update: dict[str, Any] = {
            f"counters.{name}": transforms.Increment(v) for name, v in write.increments.items()
        }
        update |= {
            "last_seen_ms": transforms.Maximum(seen),
            "first_seen_ms": transforms.Minimum(seen),
            "version": transforms.Increment(1),
        }
        option = None
        if write.touches is not None:
            # Read-compare-write without a transaction: only if nobody wrote the profile since.
            update |= write.touches
            option = self.client.write_option(last_update_time=write.revision)
        batch.update(self._profiles.document(write.profile_id), update, option=option)
        try:
            batch.commit()
        except gexc.AlreadyExists as exc:
            raise Duplicate(write.touchpoint.event_id) from exc
        except gexc.NotFound as exc:
            raise KeyError(write.profile_id) from exc
        except gexc.FailedPrecondition as exc:
            raise StoreError("the profile changed since it was read") from exc
        except (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.Aborted) as exc:
            raise StoreError(f"fast-path write failed: {type(exc).__name__}") from exc

    def set_credit(self, touchpoint_name: str, credit: dict[str, dict[str, str]]) -> None:
        try:
            self._touchpoints.document(self.keys.event(touchpoint_name)).update({"credit": credit})
        except gexc.NotFound:
            pass  # erased meanwhile
        except (gexc.Aborted, gexc.ServiceUnavailable, gexc.DeadlineExceeded) as exc:
            raise StoreError(f"credit update failed: {type(exc).__name__}") from exc

    def repoint(self, loser_id: str, survivor_id: str, batch_size: int = 400) -> int:
        moved = failures = 0
        while failures < self.max_attempts:  # only failed batches count: a big loser has many
            query = self._identifiers.where(filter=FieldFilter("profile_id", "==", loser_id)).limit(
                batch_size
            )
            docs = list(query.stream())
            if not docs:
                return moved
            batch = self.client.batch()
            for doc in docs:
                # Only if untouched since read: a concurrent move of this identifier must win.
                option = self.client.write_option(last_update_time=doc.update_time)
                batch.update(doc.reference, {"profile_id": survivor_id}, option=option)
            try:
                batch.commit()
                moved += len(docs)
            except (gexc.FailedPrecondition, *RETRYABLE):
                self.attempts["retries"] += 1
                failures += 1
        raise StoreError("re-pointing identifiers kept conflicting; reads still follow merged_into")

    # --- reads ------------------------------------------------------------------------
    def get_profile(self, profile_id: str) -> Profile | None:
        doc = self._profiles.document(profile_id).get()
        return Profile.from_doc(doc.id, doc.to_dict()) if doc.exists else None

    def get_record(self, identifier: Identifier) -> IdentifierRecord | None:
        doc = self._identifiers.document(self.keys.identifier(identifier)).get()
        return IdentifierRecord.from_doc(doc.to_dict()) if doc.exists else None

    def touchpoints(
        self, profile_ids: list[str], limit: int, before: datetime | None = None
    ) -> list[Touchpoint]:
        found: list[Touchpoint] = []
        for start in range(0, len(profile_ids), IN_QUERY_LIMIT):
            chunk = profile_ids[start : start + IN_QUERY_LIMIT]
            query = self._touchpoints.where(filter=FieldFilter("profile_id", "in", chunk))
            if before is not None:
                query = query.where(filter=FieldFilter("timestamp", "<", before))
            query = query.order_by("timestamp", direction=firestore.Query.DESCENDING).limit(limit)
            found.extend(Touchpoint.from_doc(d.to_dict()) for d in query.stream())
        found.sort(key=lambda t: t.timestamp, reverse=True)
        return found[:limit]

    def touchpoints_between(self, type_: str, start: datetime, end: datetime) -> Iterator[Touchpoint]:
        query = (
            self._touchpoints.where(filter=FieldFilter("type", "==", type_))
            .where(filter=FieldFilter("timestamp", ">=", start))
            .where(filter=FieldFilter("timestamp", "<", end))
        )
        return (Touchpoint.from_doc(d.to_dict()) for d in query.stream())

    def processed(self, event_id: str) -> Outcome | None:
        doc = self._processed.document(self.keys.event(event_id)).get()
        return Outcome.from_dict(doc.get("outcome")) if doc.exists else None

    def iter_records(self) -> Iterator[IdentifierRecord]:
        return (IdentifierRecord.from_doc(d.to_dict()) for d in self._identifiers.stream())

    def iter_profiles(self) -> Iterator[Profile]:
        return (Profile.from_doc(d.id, d.to_dict()) for d in self._profiles.stream())

    # --- erasure ----------------------------------------------------------------------
    def erase(self, profile_id: str) -> ErasureReport | None:
        @firestore.transactional
        def mark(transaction: firestore.Transaction) -> Profile | None:
            profile = self._resolve_in(transaction, profile_id)
            if profile is not None and profile.splitting:
                raise ProfileBusy(profile.profile_id)
            if profile is not None:
                transaction.set(
                    self._profiles.document(profile.profile_id), erased_doc(profile, datetime.now(UTC))
                )
            return profile

        # First the tombstone of the customer, so every identifier resolves to nothing at once.
        profile = self._retrying("erase", lambda: mark(self.client.transaction(max_attempts=1)))
        if profile is None:
            return None
        family = [profile.profile_id, *profile.merged_from]
        records = self._delete_where(self._identifiers, family)
        touches = self._delete_where(self._touchpoints, family)
        self._delete_where(self._splits, family)
        self._delete_audit(family)
        batch = self.client.batch()
        for pid in profile.merged_from:
            batch.delete(self._profiles.document(pid))
        batch.commit()
        return ErasureReport(sorted(family), records, touches)

    def _resolve_in(self, transaction: Any, profile_id: str) -> Profile | None:
        """Follow ``merged_into`` from ``profile_id`` with reads inside the transaction."""
        for _ in range(64):
            doc = self._profiles.document(profile_id).get(transaction=transaction)
            if not doc.exists:
                return None
            profile = Profile.from_doc(doc.id, doc.to_dict())
            if profile.status != "merged" or not profile.merged_into:
                return profile if profile.status == "active" else None
            profile_id = profile.merged_into
        return None

    def _delete_where(self, collection: Any, profile_ids: list[str]) -> int:
        deleted = 0
        for start in range(0, len(profile_ids), IN_QUERY_LIMIT):
            chunk = profile_ids[start : start + IN_QUERY_LIMIT]
            while True:
                docs = list(
                    collection.where(filter=FieldFilter("profile_id", "in", chunk)).limit(400).stream()
                )
                if not docs:
                    break
                batch = self.client.batch()
                for doc in docs:
                    batch.delete(doc.reference)
                batch.commit()
                deleted += len(docs)
        return deleted

    def _delete_audit(self, profile_ids: list[str]) -> None:
        for start in range(0, len(profile_ids), IN_QUERY_LIMIT):
            chunk = profile_ids[start : start + IN_QUERY_LIMIT]
            query = self._audit.where(filter=FieldFilter("profile_ids", "array_contains_any", chunk))
            while docs := list(query.limit(400).stream()):
                batch = self.client.batch()
                for doc in docs:
                    batch.delete(doc.reference)
                batch.commit()

    # --- blocklist, audit, evidence -----------------------------------------------------
    def blocklist(self) -> list[BlockEntry]:
        return [BlockEntry.from_doc(d.to_dict()) for d in self._blocklist.stream()]

    def unblock(self, identifier: Identifier) -> bool:
        ref = self._blocklist.document(self.keys.identifier(identifier))
        if not ref.get().exists:
            return False
        ref.delete()
        return True

    def audit(self, profile_ids: list[str]) -> list[AuditEntry]:
        found: dict[str, AuditEntry] = {}
        for start in range(0, len(profile_ids), IN_QUERY_LIMIT):
            chunk = profile_ids[start : start + IN_QUERY_LIMIT]
            query = self._audit.where(filter=FieldFilter("profile_ids", "array_contains_any", chunk))
            found |= {d.id: AuditEntry.from_doc(d.to_dict()) for d in query.stream()}
        return sorted(found.values(), key=lambda e: (e.at, e.action))

    def _where_profile(self, collection: Any, profile_ids: list[str]) -> Iterator[Any]:
        for start in range(0, len(profile_ids), IN_QUERY_LIMIT):
            chunk = profile_ids[start : start + IN_QUERY_LIMIT]
            yield from collection.where(filter=FieldFilter("profile_id", "in", chunk)).stream()

    def records_of(self, profile_ids: list[str]) -> list[IdentifierRecord]:
        return [
            IdentifierRecord.from_doc(d.to_dict())
            for d in self._where_profile(self._identifiers, profile_ids)
        ]

    def touchpoints_of(self, profile_ids: list[str]) -> Iterator[Touchpoint]:
        return (Touchpoint.from_doc(d.to_dict()) for d in self._where_profile(self._touchpoints, profile_ids))

    def touchpoints_by_event(self, event_ids: list[str]) -> dict[str, Touchpoint]:
        refs = {self._touchpoints.document(self.keys.event(e)).path: e for e in event_ids}
        docs = self.client.get_all(list(map(self.client.document, refs))) if refs else []
        return {refs[d.reference.path]: Touchpoint.from_doc(d.to_dict()) for d in docs if d.exists}

    # --- split ------------------------------------------------------------------------
    def create_split(self, request: SplitRequest) -> None:
        try:
            self._splits.document(request.request_id).create(request.to_doc())
        except gexc.AlreadyExists:
            pass

    def get_split(self, request_id: str) -> SplitRequest | None:
        doc = self._splits.document(request_id).get()
        return SplitRequest.from_doc(doc.id, doc.to_dict()) if doc.exists else None

    def _split_in(self, transaction: Any, request_id: str) -> SplitRequest:
        doc = self._splits.document(request_id).get(transaction=transaction)
        if not doc.exists:
            raise KeyError(request_id)
        return SplitRequest.from_doc(doc.id, doc.to_dict())

    def _part(self, request_id: str, name: str) -> Any:
        return self._splits.document(request_id).collection("parts").document(name)

    def begin_split(self, request_id: str, at: datetime) -> SplitRequest:
        @firestore.transactional
        def run(transaction: firestore.Transaction) -> SplitRequest:
            request = self._split_in(transaction, request_id)
            record_ref = self._identifiers.document(self.keys.identifier(request.block))
            record_doc = record_ref.get(transaction=transaction)
            record = IdentifierRecord.from_doc(record_doc.to_dict()) if record_doc.exists else None
            owner = self._resolve_in(transaction, record.profile_id) if record is not None else None
            profile = self._resolve_in(transaction, request.profile_id)
            decision = decide_block(request, profile, record, owner, at)
            if decision.entry is not None:
                transaction.set(
                    self._blocklist.document(self.keys.identifier(request.block)), decision.entry.to_doc()
                )
            if decision.delete_record:
                transaction.delete(record_ref)
            for changed in decision.profiles:
                transaction.set(self._profiles.document(changed.profile_id), changed.to_doc())
            for entry in decision.audit:
                transaction.set(self._audit.document(self.keys.audit(entry)), entry.to_doc())
            transaction.set(self._splits.document(request_id), decision.request.to_doc())
            return decision.request

        return self._retrying("begin split", lambda: run(self.client.transaction(max_attempts=1)))

    def save_split_plan(
        self,
        request: SplitRequest,
        parts: list[dict[str, Any]],
        profiles: list[Profile],
        tombstones: dict[str, str],
    ) -> SplitRequest:
        # The chunks first (a crash here leaves the request unplanned: planned again, the same
        # chunks are written again); then one transaction makes the plan the request's.
        for n, part in enumerate(parts):
            self._part(request.request_id, str(n)).set(part)
        kept, *created = profiles
        self._part(request.request_id, "kept").set({"profile": kept.to_doc(), "tombstones": dict(tombstones)})

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> SplitRequest:
            current = self._split_in(transaction, request.request_id)
            if current.parts >= 0:
                return current
            for profile in created:
                transaction.set(self._profiles.document(profile.profile_id), profile.to_doc())
            transaction.set(self._splits.document(request.request_id), request.to_doc())
            return request

        return self._retrying("plan split", lambda: run(self.client.transaction(max_attempts=1)))

    def apply_split_part(self, request_id: str, n: int) -> SplitRequest:
        @firestore.transactional
        def run(transaction: firestore.Transaction) -> SplitRequest:
            request = self._split_in(transaction, request_id)
            if request.state != "moving" or request.cursor != n:
                return request
            part = self._part(request_id, str(n)).get(transaction=transaction).to_dict()
            for doc in part["records"]:
                ref = self._identifiers.document(self.keys.identifier(Identifier(doc["kind"], doc["value"])))
                transaction.set(ref, doc)
            # No read of the touchpoints first: only an erasure deletes them, and it waits
            # (ProfileBusy) until the split is done.
            for move in part["touchpoints"]:
                ref = self._touchpoints.document(self.keys.event(move["name"]))
                transaction.update(ref, {"profile_id": move["profile_id"], "credit": move["credit"]})
            request.cursor = n + 1
            transaction.set(self._splits.document(request_id), request.to_doc())
            return request

        return self._retrying("split chunk", lambda: run(self.client.transaction(max_attempts=1)))

    def finish_split(self, request_id: str, audit: list[AuditEntry]) -> SplitRequest:
        @firestore.transactional
        def run(transaction: firestore.Transaction) -> SplitRequest:
            request = self._split_in(transaction, request_id)
            if request.state != "moving" or request.cursor != request.parts:
                return request
            kept = self._part(request_id, "kept").get(transaction=transaction).to_dict()
            losers = [self._profiles.document(p) for p in kept["tombstones"]]
            existing = (
                {d.id for d in self.client.get_all(losers, transaction=transaction) if d.exists}
                if losers
                else set()
            )
            transaction.set(
                self._profiles.document(request.profile_id), {**kept["profile"], "splitting": None}
            )
            for profile_id in request.result.get("profile_ids", []):
                if profile_id != request.profile_id:
                    transaction.update(self._profiles.document(profile_id), {"splitting": None})
            for loser, target in kept["tombstones"].items():
                if loser in existing:
                    transaction.update(self._profiles.document(loser), {"merged_into": target})
            for entry in audit:
                transaction.set(self._audit.document(self.keys.audit(entry)), entry.to_doc())
            request.state = "done"
            transaction.set(self._splits.document(request_id), request.to_doc())
            return request

        request = self._retrying("finish split", lambda: run(self.client.transaction(max_attempts=1)))
        if request.state == "done":
            for doc in self._splits.document(request_id).collection("parts").list_documents():
                doc.delete()
        return request
