"""The store port: how the engine reads a snapshot and writes a plan, whatever holds the data.

Both implementations (``memory.MemoryStore``, ``firestore.FirestoreStore``) pass the same
contract suite (``tests/contract``).
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from svyaz.domain.merge import Plan, Snapshot
from svyaz.domain.model import (
    AuditEntry,
    BlockEntry,
    Identifier,
    IdentifierRecord,
    Outcome,
    Profile,
    Touchpoint,
)
from svyaz.domain.split import SplitRequest

Decide = Callable[[Snapshot], Plan]
GONE = datetime(1970, 1, 1, tzinfo=UTC)


class StoreError(RuntimeError):
    """The store failed; nothing of the event was written."""


class Contention(StoreError):
    """The transaction kept losing to concurrent ones (ABORTED / lock timeouts) and retries ran
    out. Nothing was written; the caller should retry the whole event later (Pub/Sub will)."""


class Duplicate(StoreError):
    """The event was applied before (its idempotency record exists)."""


@dataclass
class FastWrite:
    """The no-transaction path: a touchpoint plus server-side counter transforms."""

    profile_id: str
    touchpoint: Touchpoint
    outcome: Outcome
    increments: dict[str, float]
    seen_at: datetime
    # An attributed event: the profile's touch fields to set, only if the profile document is
    # still at ``revision`` (else ``StoreError``: the service decides again in a transaction).
    touches: dict[str, Any] | None = None
    revision: Any = None


@dataclass
class ErasureReport:
    profile_ids: list[str]
    identifiers: int
    touchpoints: int


class Keys:
    """Document ids: keyed hashes, so no personal data sits in a path and ids spread evenly."""

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper

    def _hash(self, text: str) -> str:
        return hmac.new(self._pepper, text.encode(), hashlib.sha256).hexdigest()

    def identifier(self, identifier: Identifier) -> str:
        return self._hash(f"{identifier.kind}:{identifier.value}")

    def event(self, event_id: str) -> str:
        return self._hash(f"event:{event_id}")

    def audit(self, entry: AuditEntry) -> str:
        return self._hash(entry.name)


class Store(ABC):
    idempotency_ttl = timedelta(days=7)

    def __init__(self, pepper: bytes) -> None:
        self.keys = Keys(pepper)

    # --- the write path -------------------------------------------------------------
    @abstractmethod
    def read_snapshot(self, identifiers: Iterable[Identifier], event_id: str) -> Snapshot:
        """Read without a transaction (fast-path check)."""

    @abstractmethod
    def transact(
        self, identifiers: list[Identifier], event_id: str, decide: Decide, touchpoint_name: str | None = None
    ) -> Plan:
        """In one transaction: read the snapshot (all reads first; with ``touchpoint_name``
        also the touchpoint the event updates), call ``decide``, write the plan. ``decide``
        may be called again on retry; it must be pure. Raises ``Contention``."""

    @abstractmethod
    def write_fast(self, write: FastWrite) -> None:
        """Atomically create the idempotency record and the touchpoint and apply the profile's
        counter transforms. Raises ``Duplicate`` if the event was applied, ``KeyError`` if the
        profile no longer exists."""

    @abstractmethod
    def set_credit(self, touchpoint_name: str, credit: dict[str, dict[str, str]]) -> None:
        """Replace an order touchpoint's credit (follow-up after merges and late touches)."""

    @abstractmethod
    def repoint(self, loser_id: str, survivor_id: str, batch_size: int = 400) -> int:
        """Follow-up job after a merge: point the loser's identifier records at the survivor.
        Reads follow ``merged_into`` meanwhile, so this is an optimisation, safe to repeat."""

    # --- reads ----------------------------------------------------------------------
    @abstractmethod
    def get_profile(self, profile_id: str) -> Profile | None:
        """The profile document as stored (may be a tombstone)."""

    @abstractmethod
    def get_record(self, identifier: Identifier) -> IdentifierRecord | None: ...

    @abstractmethod
    def touchpoints(
        self, profile_ids: list[str], limit: int, before: datetime | None = None
    ) -> list[Touchpoint]:
        """Touchpoints owned by any of these profiles, newest first, older than ``before``."""

    @abstractmethod
    def touchpoints_between(self, type_: str, start: datetime, end: datetime) -> Iterator[Touchpoint]:
        """Every touchpoint of one type with ``start <= timestamp < end`` (reports)."""

    @abstractmethod
    def processed(self, event_id: str) -> Outcome | None: ...

    @abstractmethod
    def iter_records(self) -> Iterator[IdentifierRecord]:
        """Every identifier record (audits, invariant checks, benchmarks)."""

    @abstractmethod
    def iter_profiles(self) -> Iterator[Profile]: ...

    # --- erasure --------------------------------------------------------------------
    @abstractmethod
    def erase(self, profile_id: str) -> ErasureReport | None:
        """Remove a customer completely: mark the profile erased (so every identifier
        resolves to nothing at once), then delete its identifier records, touchpoints and the
        tombstones of every profile merged into it. None if the profile is unknown."""

    # --- blocklist, audit, evidence --------------------------------------------------
    @abstractmethod
    def blocklist(self) -> list[BlockEntry]:
        """Every value blocked by an operator (``blocklist/{keyed hash}``)."""

    @abstractmethod
    def unblock(self, identifier: Identifier) -> bool:
        """Remove a blocklist entry (False if there was none). Re-merges nothing by itself."""

    @abstractmethod
    def audit(self, profile_ids: list[str]) -> list[AuditEntry]:
        """The merge history (merges, moves, conflicts, blocks, splits) touching these profiles."""

    @abstractmethod
    def records_of(self, profile_ids: list[str]) -> list[IdentifierRecord]:
        """Every identifier record pointing at one of these profiles (no chain following)."""

    @abstractmethod
    def touchpoints_of(self, profile_ids: list[str]) -> Iterator[Touchpoint]:
        """Every touchpoint owned by one of these profiles, in no particular order."""

    @abstractmethod
    def touchpoints_by_event(self, event_ids: list[str]) -> dict[str, Touchpoint]:
        """Touchpoints by the event id they are keyed by (the evidence of identifier records)."""

    # --- split ----------------------------------------------------------------------
    @abstractmethod
    def create_split(self, request: SplitRequest) -> None:
        """Store a new split request (state ``queued``)."""

    @abstractmethod
    def get_split(self, request_id: str) -> SplitRequest | None: ...

    @abstractmethod
    def begin_split(self, request_id: str, at: datetime) -> SplitRequest:
        """In one transaction (``split.decide_block``): block the value, take it out of the
        profile holding it, mark the profile to split as splitting. A repeat changes nothing.
        Raises ``ProfileBusy`` while another split of the profile runs."""

    @abstractmethod
    def save_split_plan(
        self,
        request: SplitRequest,
        parts: list[dict[str, Any]],
        profiles: list[Profile],
        tombstones: dict[str, str],
    ) -> SplitRequest:
        """Store the plan's chunks, create the new profiles (still marked splitting) and keep the
        first profile's recomputed document and the tombstones' new targets for the end."""

    @abstractmethod
    def apply_split_part(self, request_id: str, n: int) -> SplitRequest:
        """In one transaction: chunk ``n`` of the plan, if it is the next one to apply."""

    @abstractmethod
    def finish_split(self, request_id: str, audit: list[AuditEntry]) -> SplitRequest:
        """In one transaction: the kept profile's recomputed document, every resulting profile
        open to events again, tombstones pointing at the profile that took their evidence, the
        audit entries, the request ``done``; then the plan's chunks are deleted."""

    # --- shared helpers -------------------------------------------------------------
    def resolve(self, profile_id: str | None) -> Profile | None:
        """Follow ``merged_into`` to the active profile (None for unknown or erased)."""
        for _ in range(64):
            if profile_id is None:
                return None
            profile = self.get_profile(profile_id)
            if profile is None or profile.status == "erased":
                return None
            if profile.status == "active":
                return profile
            profile_id = profile.merged_into
        return None

    def lookup(self, identifier: Identifier) -> Profile | None:
        record = self.get_record(identifier)
        return None if record is None else self.resolve(record.profile_id)

    def expiry(self, now: datetime) -> datetime:
        return now + self.idempotency_ttl


def gather_snapshot(
    identifiers: Iterable[Identifier],
    fetch_records: Callable[[list[Identifier]], dict[Identifier, IdentifierRecord]],
    fetch_profiles: Callable[[set[str]], dict[str, Profile]],
    processed: Outcome | None,
    previous: Touchpoint | None = None,
) -> Snapshot:
    """Read the records, then profiles round by round until every ``merged_into`` chain ends.
    Only reads: a transactional store passes transaction-bound fetchers."""
    snapshot = Snapshot(records=fetch_records(list(identifiers)), processed=processed, previous=previous)
    for _ in range(64):
        missing = snapshot.missing_profile_ids()
        if not missing:
            break
        found = fetch_profiles(missing)
        # A record may point at a profile that no longer exists (erased and deleted).
        snapshot.profiles.update(found)
        for gone in missing - set(found):
            snapshot.profiles[gone] = Profile(gone, "erased", first_seen=GONE, last_seen=GONE)
    return snapshot
