"""The embedded default store: documents in dicts behind one lock.

It keeps the same document shapes and keyed-hash ids as Firestore, and the lock gives the
transaction semantics (serializable), so it passes the same contract suite.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from svyaz.adapters.store.base import (
    Decide,
    Duplicate,
    ErasureReport,
    FastWrite,
    Store,
    StoreError,
    gather_snapshot,
)
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


class MemoryStore(Store):
    def __init__(self, pepper: bytes = b"svyaz-memory") -> None:
        super().__init__(pepper)
        self._lock = threading.RLock()
        self.identifiers: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.touchpoint_docs: dict[str, dict[str, Any]] = {}
        self.processed_events: dict[str, dict[str, Any]] = {}
        self.blocklist_docs: dict[str, dict[str, Any]] = {}
        self.audit_docs: dict[str, dict[str, Any]] = {}
        self.split_docs: dict[str, dict[str, Any]] = {}
        self.split_parts: dict[tuple[str, str], dict[str, Any]] = {}

    # --- write path -------------------------------------------------------------------
    def _snapshot(
        self, identifiers: Iterable[Identifier], event_id: str, touchpoint_name: str | None = None
    ) -> Snapshot:
        def records(ids: list[Identifier]) -> dict[Identifier, IdentifierRecord]:
            found = {}
            for identifier in ids:
                doc = self.identifiers.get(self.keys.identifier(identifier))
                if doc is not None:
                    found[identifier] = IdentifierRecord.from_doc(copy.deepcopy(doc))
            return found

        def profiles(ids: set[str]) -> dict[str, Profile]:
            found = {}
            for pid in ids & self.profiles.keys():
                doc = self.profiles[pid]
                found[pid] = Profile.from_doc(pid, copy.deepcopy(doc))
                found[pid].revision = doc.get("version", 0)  # every write increments it
            return found

        previous = None
        if touchpoint_name is not None and touchpoint_name != event_id:
            doc = self.touchpoint_docs.get(self.keys.event(touchpoint_name))
            previous = None if doc is None else Touchpoint.from_doc(copy.deepcopy(doc))
        identifiers = list(identifiers)
        snapshot = gather_snapshot(identifiers, records, profiles, self._processed(event_id), previous)
        snapshot.blocked = {i for i in identifiers if self.keys.identifier(i) in self.blocklist_docs}
        return snapshot

    def read_snapshot(self, identifiers: Iterable[Identifier], event_id: str) -> Snapshot:
        with self._lock:
            return self._snapshot(identifiers, event_id)

    def transact(
        self, identifiers: list[Identifier], event_id: str, decide: Decide, touchpoint_name: str | None = None
    ) -> Plan:
        with self._lock:
            plan = decide(self._snapshot(identifiers, event_id, touchpoint_name))
            if plan.outcome.duplicate:
                return plan
            for record in plan.records:
                self.identifiers[self.keys.identifier(record.identifier)] = record.to_doc()
            for profile in plan.profiles:
                self.profiles[profile.profile_id] = profile.to_doc()
            if plan.touchpoint is not None:
                self.touchpoint_docs[self.keys.event(plan.touchpoint.name)] = plan.touchpoint.to_doc()
            for entry in plan.audit:
                self.audit_docs[self.keys.audit(entry)] = entry.to_doc()
            self._remember(event_id, plan.outcome)
            return plan

    def _remember(self, event_id: str, outcome: Outcome) -> None:
        now = datetime.now(UTC)
        self.processed_events[self.keys.event(event_id)] = {
            "outcome": outcome.as_dict(),
            "expire_at": self.expiry(now),
        }

    def write_fast(self, write: FastWrite) -> None:
        with self._lock:
            key = self.keys.event(write.touchpoint.event_id)
            if key in self.processed_events:
                raise Duplicate(write.touchpoint.event_id)
            doc = self.profiles.get(write.profile_id)
            if doc is None:
                raise KeyError(write.profile_id)
            if write.touches is not None:
                if doc.get("version", 0) != write.revision:
                    raise StoreError("the profile changed since it was read")
                doc.update(copy.deepcopy(write.touches))
            counters = doc.setdefault("counters", {})
            for name, value in write.increments.items():
                counters[name] = counters.get(name, 0) + value
            doc["last_seen_ms"] = max(doc["last_seen_ms"], to_ms(write.seen_at))
            doc["first_seen_ms"] = min(doc["first_seen_ms"], to_ms(write.seen_at))
            doc["version"] = doc.get("version", 0) + 1
            self.touchpoint_docs[key] = write.touchpoint.to_doc()
            self._remember(write.touchpoint.event_id, write.outcome)

    def set_credit(self, touchpoint_name: str, credit: dict[str, dict[str, str]]) -> None:
        with self._lock:
            doc = self.touchpoint_docs.get(self.keys.event(touchpoint_name))
            if doc is not None:
                doc["credit"] = copy.deepcopy(credit)

    def repoint(self, loser_id: str, survivor_id: str, batch_size: int = 400) -> int:
        with self._lock:
            moved = 0
            for doc in self.identifiers.values():
                if doc["profile_id"] == loser_id:
                    doc["profile_id"] = survivor_id
                    moved += 1
            return moved

    # --- reads ------------------------------------------------------------------------
    def get_profile(self, profile_id: str) -> Profile | None:
        with self._lock:
            doc = self.profiles.get(profile_id)
            return None if doc is None else Profile.from_doc(profile_id, copy.deepcopy(doc))

    def get_record(self, identifier: Identifier) -> IdentifierRecord | None:
        with self._lock:
            doc = self.identifiers.get(self.keys.identifier(identifier))
            return None if doc is None else IdentifierRecord.from_doc(copy.deepcopy(doc))

    def touchpoints(
        self, profile_ids: list[str], limit: int, before: datetime | None = None
    ) -> list[Touchpoint]:
        wanted = set(profile_ids)
        with self._lock:
            docs = [
                copy.deepcopy(d)
                for d in self.touchpoint_docs.values()
                if d["profile_id"] in wanted and (before is None or d["timestamp"] < before)
            ]
        docs.sort(key=lambda d: d["timestamp"], reverse=True)
        return [Touchpoint.from_doc(d) for d in docs[:limit]]

    def touchpoints_between(self, type_: str, start: datetime, end: datetime) -> Iterator[Touchpoint]:
        with self._lock:
            docs = [
                copy.deepcopy(d)
                for d in self.touchpoint_docs.values()
                if d["type"] == type_ and start <= d["timestamp"] < end
            ]
        return (Touchpoint.from_doc(d) for d in docs)

    def _processed(self, event_id: str) -> Outcome | None:
        doc = self.processed_events.get(self.keys.event(event_id))
        return None if doc is None else Outcome.from_dict(copy.deepcopy(doc["outcome"]))

    def processed(self, event_id: str) -> Outcome | None:
        with self._lock:
            return self._processed(event_id)

    def iter_records(self) -> Iterator[IdentifierRecord]:
        with self._lock:
            docs = [copy.deepcopy(d) for d in self.identifiers.values()]
        return (IdentifierRecord.from_doc(d) for d in docs)

    def iter_profiles(self) -> Iterator[Profile]:
        with self._lock:
            docs = [(pid, copy.deepcopy(d)) for pid, d in self.profiles.items()]
        return (Profile.from_doc(pid, d) for pid, d in docs)

    # --- erasure ----------------------------------------------------------------------
    def erase(self, profile_id: str) -> ErasureReport | None:
        with self._lock:
            profile = self.resolve(profile_id)
            if profile is None:
                return None
            if profile.splitting:
                raise ProfileBusy(profile.profile_id)
            family = {profile.profile_id, *profile.merged_from}
            records = [k for k, d in self.identifiers.items() if d["profile_id"] in family]
            touches = [k for k, d in self.touchpoint_docs.items() if d["profile_id"] in family]
            for key in records:
                del self.identifiers[key]
            for key in touches:
                del self.touchpoint_docs[key]
            for pid in profile.merged_from:
                self.profiles.pop(pid, None)
            for key in [k for k, d in self.audit_docs.items() if family & set(d["profile_ids"])]:
                del self.audit_docs[key]
            for request_id in [r for r, d in self.split_docs.items() if d["profile_id"] in family]:
                del self.split_docs[request_id]
            self.profiles[profile.profile_id] = erased_doc(profile, datetime.now(UTC))
            return ErasureReport(sorted(family), len(records), len(touches))

    # --- blocklist, audit, evidence -----------------------------------------------------
    def blocklist(self) -> list[BlockEntry]:
        with self._lock:
            return [BlockEntry.from_doc(copy.deepcopy(d)) for d in self.blocklist_docs.values()]

    def unblock(self, identifier: Identifier) -> bool:
        with self._lock:
            return self.blocklist_docs.pop(self.keys.identifier(identifier), None) is not None

    def audit(self, profile_ids: list[str]) -> list[AuditEntry]:
        wanted = set(profile_ids)
        with self._lock:
            docs = [copy.deepcopy(d) for d in self.audit_docs.values() if wanted & set(d["profile_ids"])]
        return sorted((AuditEntry.from_doc(d) for d in docs), key=lambda e: (e.at, e.action))

    def records_of(self, profile_ids: list[str]) -> list[IdentifierRecord]:
        wanted = set(profile_ids)
        with self._lock:
            docs = [copy.deepcopy(d) for d in self.identifiers.values() if d["profile_id"] in wanted]
        return [IdentifierRecord.from_doc(d) for d in docs]

    def touchpoints_of(self, profile_ids: list[str]) -> Iterator[Touchpoint]:
        wanted = set(profile_ids)
        with self._lock:
            docs = [copy.deepcopy(d) for d in self.touchpoint_docs.values() if d["profile_id"] in wanted]
        return (Touchpoint.from_doc(d) for d in docs)

    def touchpoints_by_event(self, event_ids: list[str]) -> dict[str, Touchpoint]:
        with self._lock:
            found = {e: self.touchpoint_docs.get(self.keys.event(e)) for e in event_ids}
            return {e: Touchpoint.from_doc(copy.deepcopy(d)) for e, d in found.items() if d is not None}

    # --- split ------------------------------------------------------------------------
    def create_split(self, request: SplitRequest) -> None:
        with self._lock:
            self.split_docs.setdefault(request.request_id, request.to_doc())

    def get_split(self, request_id: str) -> SplitRequest | None:
        with self._lock:
            doc = self.split_docs.get(request_id)
            return None if doc is None else SplitRequest.from_doc(request_id, copy.deepcopy(doc))

    def begin_split(self, request_id: str, at: datetime) -> SplitRequest:
        with self._lock:
            request = self.get_split(request_id)
            assert request is not None
            record = self.get_record(request.block)
            owner = self.resolve(record.profile_id) if record is not None else None
            decision = decide_block(request, self.resolve(request.profile_id), record, owner, at)
            if decision.entry is not None:
                key = self.keys.identifier(request.block)
                self.blocklist_docs.setdefault(key, decision.entry.to_doc())
            if decision.delete_record:
                self.identifiers.pop(self.keys.identifier(request.block), None)
            for profile in decision.profiles:
                self.profiles[profile.profile_id] = profile.to_doc()
            for entry in decision.audit:
                self.audit_docs[self.keys.audit(entry)] = entry.to_doc()
            self.split_docs[request_id] = decision.request.to_doc()
            return decision.request

    def save_split_plan(
        self,
        request: SplitRequest,
        parts: list[dict[str, Any]],
        profiles: list[Profile],
        tombstones: dict[str, str],
    ) -> SplitRequest:
        with self._lock:
            current = self.get_split(request.request_id)
            if current is None or current.parts >= 0:
                return current or request
            for n, part in enumerate(parts):
                self.split_parts[(request.request_id, str(n))] = copy.deepcopy(part)
            kept, *created = profiles
            kept_doc = {"profile": kept.to_doc(), "tombstones": dict(tombstones)}
            self.split_parts[(request.request_id, "kept")] = kept_doc
            for profile in created:
                self.profiles[profile.profile_id] = profile.to_doc()
            self.split_docs[request.request_id] = request.to_doc()
            return request

    def apply_split_part(self, request_id: str, n: int) -> SplitRequest:
        with self._lock:
            request = self.get_split(request_id)
            assert request is not None
            if request.state != "moving" or request.cursor != n:
                return request
            part = self.split_parts[(request_id, str(n))]
            for doc in part["records"]:
                self.identifiers[self.keys.identifier(Identifier(doc["kind"], doc["value"]))] = copy.deepcopy(
                    doc
                )
            for move in part["touchpoints"]:
                doc = self.touchpoint_docs.get(self.keys.event(move["name"]))
                if doc is not None:  # erased meanwhile: nothing to move
                    doc["profile_id"], doc["credit"] = move["profile_id"], copy.deepcopy(move["credit"])
            request.cursor = n + 1
            self.split_docs[request_id] = request.to_doc()
            return request

    def finish_split(self, request_id: str, audit: list[AuditEntry]) -> SplitRequest:
        with self._lock:
            request = self.get_split(request_id)
            assert request is not None
            if request.state != "moving" or request.cursor != request.parts:
                return request
            kept = self.split_parts[(request_id, "kept")]
            self.profiles[request.profile_id] = {**copy.deepcopy(kept["profile"]), "splitting": None}
            for loser, target in kept["tombstones"].items():
                if loser in self.profiles:
                    self.profiles[loser]["merged_into"] = target
            for profile_id in request.result.get("profile_ids", []):
                self.profiles[profile_id]["splitting"] = None
            for entry in audit:
                self.audit_docs[self.keys.audit(entry)] = entry.to_doc()
            request.state = "done"
            self.split_docs[request_id] = request.to_doc()
            for key in [k for k in self.split_parts if k[0] == request_id]:
                del self.split_parts[key]
            return request


def erased_doc(profile: Profile, now: datetime) -> dict[str, Any]:
    """What remains of an erased customer: the fact and time of destruction, no personal data."""
    empty = Profile(profile.profile_id, "erased", first_seen=now, last_seen=now, version=profile.version + 1)
    return {**empty.to_doc(), "erased_at": now}
