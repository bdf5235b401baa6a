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
from svyaz.domain.merge import Plan, Snapshot
from svyaz.domain.model import Identifier, IdentifierRecord, Outcome, Profile, Touchpoint, to_ms


class MemoryStore(Store):
    def __init__(self, pepper: bytes = b"svyaz-memory") -> None:
        super().__init__(pepper)
        self._lock = threading.RLock()
        self.identifiers: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.touchpoint_docs: dict[str, dict[str, Any]] = {}
        self.processed_events: dict[str, dict[str, Any]] = {}

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
        return gather_snapshot(identifiers, records, profiles, self._processed(event_id), previous)

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
            family = {profile.profile_id, *profile.merged_from}
            records = [k for k, d in self.identifiers.items() if d["profile_id"] in family]
            touches = [k for k, d in self.touchpoint_docs.items() if d["profile_id"] in family]
            for key in records:
                del self.identifiers[key]
            for key in touches:
                del self.touchpoint_docs[key]
            for pid in profile.merged_from:
                self.profiles.pop(pid, None)
            self.profiles[profile.profile_id] = erased_doc(profile, datetime.now(UTC))
            return ErasureReport(sorted(family), len(records), len(touches))


def erased_doc(profile: Profile, now: datetime) -> dict[str, Any]:
    """What remains of an erased customer: the fact and time of destruction, no personal data."""
    empty = Profile(profile.profile_id, "erased", first_seen=now, last_seen=now, version=profile.version + 1)
    return {**empty.to_doc(), "erased_at": now}
