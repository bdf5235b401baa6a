"""The store port, and the behaviour both stores share.

A store implements a few primitives (``_get``, ``_transaction``, ``_commit`` and four indexed
queries); everything else lives here once: how a snapshot is gathered, how a plan maps to
documents, the fast path's writes, the follow-up jobs (re-pointing, chain shortening, order
credit reads, erasure sweeps), chain resolution and the read model. Both implementations
(``memory.MemoryStore``, ``firestore.FirestoreStore``) pass the same contract suite.

Layout (the same documents in both stores):

* ``identifiers/{hmac(kind:value)}``: kind, value, profile_id, first/last seen, linked by event,
  linked through (the evidence);
* ``profiles/{id}``: status, merged_into, per-kind identifier counts, traits, seen times, the
  latest order's time, version: O(1) in size;
* ``touchpoints/{hmac(touchpoint name)}``: one per event (an order: one per order id), owned by
  a profile; the fast path's ``create`` of it is the event's idempotency check; erasure leaves
  a stub without personal data (``erased``, ``expire_at``) so a redelivery stays a duplicate;
* ``processed_events/{hmac(event id)}``: outcome and follow-up jobs of a transactional event,
  ``expire_at`` (TTL).
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from svyaz.domain.merge import (
    MAX_HOPS,
    Aggregates,
    ChainTooLong,
    Plan,
    ProfileBusy,
    Replay,
    Snapshot,
    aggregate,
    follow_chain,
    named_profiles,
    order_credit,
    replay_after_erasure,
)
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

IDENTIFIERS, PROFILES, TOUCHPOINTS, PROCESSED = "identifiers", "profiles", "touchpoints", "processed_events"
BLOCKLIST, AUDIT, SPLITS, SPLIT_PARTS = "blocklist", "audit", "splits", "split_parts"
COLLECTIONS = (IDENTIFIERS, PROFILES, TOUCHPOINTS, PROCESSED, BLOCKLIST, AUDIT, SPLITS, SPLIT_PARTS)
LEDGER = "conversion_exports"  # the export ledger's entries (``adapters.ledger``), next to the store's
FOLD_SKEW_MS = 50  # clocks of two workers (NTP) may differ this much: a fold skips only when surely later
FOLD_INTERVAL_MS = 10_000  # a profile document is folded at most about once per interval
GONE = datetime(1970, 1, 1, tzinfo=UTC)
# The grace argument (docs/identity-graph.md, "Fast path"): a fast-path write whose read round
# and commit took less than FAST_GRACE_MS skips the state read after its write, because every
# job that could miss it (an erasure's final sweep, a split's settling) runs its last pass at
# least FAST_GRACE_MS + CLOCK_MARGIN_MS after the records that write read were changed.
FAST_GRACE_MS = 10_000
CLOCK_MARGIN_MS = 1_000  # wall clocks of two workers (NTP) differ far less
# What the fast path reads of a profile after its write: is it still the active owner, and
# does a late touch need its orders credited again.
CHUNKS_PER_COMMIT = 8  # split plan chunks written per commit
STATE_FIELDS = ["status", "merged_into", "last_order_ms", "first_seen_ms", "last_seen_ms", "splitting"]
# What the read model needs of a touchpoint to aggregate it (field mask).
AGGREGATE_FIELDS = ["event_id", "profile_id", "type", "channel", "timestamp", "attribution"]
AGGREGATE_FIELDS += ["properties.status", "properties.amount"]
# A fold reads the orders' credit too: it re-credits an order a late touch belongs to.
FOLD_FIELDS = [*AGGREGATE_FIELDS, "properties.order_id", "credit"]
# The profile fields a fold writes (the journal's directory queries them).
FOLDED_FIELDS = ("counters", "first_touch", "last_touch", "first_order_ms", "last_seen_ms", "first_seen_ms")
BATCH = 400

Ref = tuple[str, str]  # (collection, document id)
Get = Callable[[list[Ref]], dict[Ref, dict[str, Any]]]
Decide = Callable[[Snapshot], Plan]
T = TypeVar("T")


class StoreError(RuntimeError):
    """The store failed; nothing of the event was written."""


class Unstorable(StoreError):
    """The store refuses this write for good (a value or a document it cannot hold): retrying
    the event can never succeed, so the worker treats it as poison, not as a transient error.
    The event validation (``domain.validation``) exists so that this never happens."""


class Contention(StoreError):
    """The transaction kept losing to concurrent ones (ABORTED / lock timeouts) and retries ran
    out. Nothing was written; the caller should retry the whole event later (Pub/Sub will)."""


class Duplicate(StoreError):
    """A ``create`` found its document already there (the event was applied before)."""


class Later(StoreError):
    """A job that is not due yet: the queue delivers it again after its backoff (debounce)."""


class FoldLater(Later):
    """The profile was folded a moment ago: the fold job is retried later (debounce)."""


class Conflict(StoreError):
    """A conditional write found the document changed or gone since it was read."""


@dataclass
class Write:
    """One document write of an atomic batch or a transaction."""

    collection: str
    key: str
    doc: dict[str, Any] | None
    op: Literal["set", "create", "update", "delete"] = "set"
    revision: Any = None  # for update / delete: only if the document is still at this revision

    @property
    def ref(self) -> Ref:
        return self.collection, self.key


class Reader:
    """A transaction's getter (a ``Get``): each call is one read round, and every document it
    read is in ``record`` (the store's: its revision, or its update time; Firestore also keeps
    the read time there), which the commit checks is still true. ``unguard``: documents whose
    change the commit need not check (why it may not: ``Store._unguard_blocks``)."""

    def __init__(self, read: Callable[..., dict[Ref, dict[str, Any]]], record: dict[Any, Any]) -> None:
        self._read, self.record = read, record

    def __call__(self, refs: list[Ref], fields: list[str] | None = None) -> dict[Ref, dict[str, Any]]:
        return self._read(refs, fields)

    def unguard(self, refs: Iterable[Ref]) -> None:
        for ref in refs:
            self.record.pop(ref, None)


@dataclass
class FirstRead:
    """The fast path's read round, kept so that the transaction a linking event falls back to
    starts from it instead of reading the same documents again: what it found, and the getter
    that read it (``_reading``), whose record the first attempt's commit checks like any read
    of its own. Good for one transaction."""

    identifiers: list[Identifier]
    event_id: str
    snapshot: Snapshot
    reader: Reader

    def seeds(self, identifiers: list[Identifier], event_id: str, touchpoint_name: str | None) -> bool:
        """It is what that transaction's first round would read, but the blocklist entries
        (read with the profiles then): the same identifiers and no earlier touchpoint."""
        same = identifiers == self.identifiers and event_id == self.event_id
        return same and touchpoint_name in (None, event_id)


@dataclass
class Found:
    """A document a query found, with its revision (for conditional writes)."""

    key: str
    doc: dict[str, Any]
    revision: Any


@dataclass
class ErasureReport:
    profile_ids: list[str]
    identifiers: int
    touchpoints: int
    root_id: str = ""  # the erased record (the subject of the final sweep)


class Keys:
    """Document ids: keyed hashes, so no personal data sits in a path and ids spread evenly."""

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper
        self._last_event = ("", "")  # (event id, key): one event's key is asked for 3 times in a row

    def _hash(self, text: str) -> str:
        return hmac.new(self._pepper, text.encode(), hashlib.sha256).hexdigest()

    def identifier(self, identifier: Identifier) -> str:
        return self._hash(f"{identifier.kind}:{identifier.value}")

    def event(self, event_id: str) -> str:
        last_id, last_key = self._last_event  # one tuple read: safe across worker threads
        if event_id == last_id and last_id:
            return last_key
        key = self._hash(f"event:{event_id}")
        self._last_event = (event_id, key)
        return key

    def audit(self, entry: AuditEntry) -> str:
        return self._hash(entry.name)

    def split_request(self, profile_id: str, block: Identifier, generation: int) -> str:
        """The id of the n-th split of a profile on one value: the same for every confirmation
        of it, so a second confirm finds the first request instead of queuing another."""
        return self._hash(f"split:{profile_id}:{block.kind}:{block.value}:{generation}")[:32]


def stub_touchpoint(event_id: str = "") -> Touchpoint:
    """An erased touchpoint: it exists (so the event stays applied) but belongs to nobody."""
    return Touchpoint(event_id, "", "erased", "", GONE, {}, {}, [], {})


def touchpoint_from_doc(doc: dict[str, Any]) -> Touchpoint:
    return stub_touchpoint() if doc.get("erased") else Touchpoint.from_doc(doc)


class Store(ABC):
    idempotency_ttl = timedelta(days=7)

    def __init__(self, pepper: bytes) -> None:
        self.keys = Keys(pepper)

    # --- primitives: what each store implements ---------------------------------------------
    @abstractmethod
    def _get(self, refs: list[Ref], fields: list[str] | None = None) -> dict[Ref, dict[str, Any]]:
        """One round trip: the documents that exist among ``refs`` (optionally field-masked)."""

    @abstractmethod
    def _get_found(self, ref: Ref) -> Found | None:
        """One document with its revision (for a conditional write), or None."""

    @abstractmethod
    def _reading(self) -> Reader:
        """A getter that reads as a transaction does (lock-free, like every read), recording
        what it read for the commit's preconditions."""

    @abstractmethod
    def _transaction(self, body: Callable[[Get], tuple[T, list[Write]]], reader: Reader | None = None) -> T:
        """Run ``body`` (reads through the getter it is given, then the writes it returns) as
        one serializable transaction; retried on contention, else ``Contention``. ``reader``:
        a ``_reading`` getter that read rounds before, the first attempt's getter (retries
        read everything afresh)."""

    @abstractmethod
    def _commit(self, writes: list[Write]) -> None:
        """Write atomically. ``Duplicate`` if a create finds its document, ``Conflict`` if an
        update or conditional delete finds it changed or gone: then nothing is written."""

    @abstractmethod
    def _where_in(
        self,
        collection: str,
        field: str,
        values: list[str],
        limit: int | None = None,
        *,
        contains: bool = False,
    ) -> list[Found]:
        """Documents whose ``field`` is one of ``values`` (``contains``: a list field holding one
        of them), through an index: identifier records by profile, tombstones by survivor,
        audit entries and split requests by profile."""

    def _records_of(self, profile_ids: list[str], limit: int | None = None) -> list[Found]:
        return self._where_in(IDENTIFIERS, "profile_id", profile_ids, limit)

    def _tombstones_of(self, profile_ids: list[str]) -> list[Found]:
        return self._where_in(PROFILES, "merged_into", profile_ids)

    @abstractmethod
    def _touchpoints_of(
        self,
        profile_ids: list[str],
        limit: int | None = None,
        before: datetime | None = None,
        *,
        type_: str | None = None,
        attributed: bool = False,
        fields: list[str] | None = None,
    ) -> list[Found]:
        """Touchpoints owned by any of ``profile_ids`` (newest first when ``limit`` is set)."""

    @abstractmethod
    def touchpoints_between(self, type_: str, start: datetime, end: datetime) -> Iterator[Touchpoint]:
        """Every touchpoint of one type with ``start <= timestamp < end`` (reports)."""

    @abstractmethod
    def _scan(self, collection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every document of a collection (audits, invariant checks, benchmarks only)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the store holds open (files of a data directory); its data stays."""

    # --- refs -------------------------------------------------------------------------------
    def _record_ref(self, identifier: Identifier) -> Ref:
        return IDENTIFIERS, self.keys.identifier(identifier)

    def _touchpoint_ref(self, name: str) -> Ref:
        return TOUCHPOINTS, self.keys.event(name)

    def _processed_ref(self, event_id: str) -> Ref:
        return PROCESSED, self.keys.event(event_id)

    def expiry(self, now: datetime) -> datetime:
        return now + self.idempotency_ttl

    # --- the write path: snapshot, plan -> documents -----------------------------------------
    def _first_round(
        self,
        get: Get,
        identifiers: list[Identifier],
        event_id: str,
        touchpoint_name: str | None,
        blocklist: bool = False,
    ) -> Snapshot:
        """One round trip: the idempotency record, the event's touchpoint (the fast path's
        write), the touchpoint an order updates, the identifier records and (in a transaction)
        their blocklist entries. The fast path needs none: a blocked value has no record, so an
        event carrying one never takes it."""
        wanted = {self._record_ref(i): i for i in identifiers}
        blocks = {(BLOCKLIST, ref[1]): i for ref, i in wanted.items()} if blocklist else {}
        refs = [self._processed_ref(event_id), self._touchpoint_ref(event_id), *wanted, *blocks]
        previous_ref = None
        if touchpoint_name is not None and touchpoint_name != event_id:
            previous_ref = self._touchpoint_ref(touchpoint_name)
            refs.append(previous_ref)
        found = get(refs)
        processed = found.get(self._processed_ref(event_id))
        applied = found.get(self._touchpoint_ref(event_id))
        previous = found.get(previous_ref) if previous_ref else None
        snapshot = Snapshot(
            records={i: IdentifierRecord.from_doc(found[ref]) for ref, i in wanted.items() if ref in found},
            processed=Replay.from_doc(processed) if processed else None,
            applied=touchpoint_from_doc(applied) if applied else None,
            previous=touchpoint_from_doc(previous) if previous else None,
            blocked={i for ref, i in blocks.items() if ref in found},
        )
        if processed or applied:
            done = self._processed_ref(event_id) if processed else self._touchpoint_ref(event_id)
            snapshot.written_ms = self._written_ms(get, done)
        self._unguard_blocks(get, blocks, snapshot)
        return snapshot

    def _written_ms(self, get: Get, ref: Ref) -> int | None:
        """When a document read by ``get`` was last committed, in ms rounded up, from what the
        read brought along (no read of its own); None: unknown. A redelivery's fold job is
        stamped with it, so a fold that started after it (it read the event) covers it."""
        return None

    @staticmethod
    def _unguard_blocks(get: Get, blocks: dict[Ref, Identifier], snapshot: Snapshot) -> None:
        """The commit checks the blocklist entry of an identifier only when its record was read
        as missing. A block of a value whose record exists deletes that record in the same
        commit (``begin_split``, the only writer of entries, reads the record and deletes it):
        a block landing after this snapshot changes the record, which the commit checks anyway.
        On Firestore that saves a verifying write (a delete of the missing entry) per known
        identifier; an unblock meanwhile orders the event before it."""
        if isinstance(get, Reader):
            get.unguard(ref for ref, i in blocks.items() if i in snapshot.records)

    def _gather(
        self,
        get: Get,
        identifiers: list[Identifier],
        event_id: str,
        touchpoint_name: str | None = None,
        seed: Snapshot | None = None,
    ) -> Snapshot:
        """The first round (or ``seed``: the fast path's, read by ``get`` before), then profiles
        round by round until every ``merged_into`` chain ends (one round when chains are short,
        which the repoint jobs keep them). A seed lacks the blocklist entries: they are read
        with the first round of profiles."""
        blocks: dict[Ref, Identifier] = {}
        if seed is None:
            snapshot = self._first_round(get, identifiers, event_id, touchpoint_name, blocklist=True)
        else:
            snapshot, blocks = seed, {(BLOCKLIST, self.keys.identifier(i)): i for i in identifiers}
        if snapshot.processed is not None or snapshot.applied is not None:
            return snapshot  # a duplicate needs nothing else
        for _ in range(MAX_HOPS):
            missing = snapshot.missing_profile_ids()
            if not missing and not blocks:
                return snapshot
            found = get([*blocks, *((PROFILES, pid) for pid in sorted(missing))])
            snapshot.blocked |= {i for ref, i in blocks.items() if ref in found}
            self._unguard_blocks(get, blocks, snapshot)
            blocks = {}
            for pid in missing:
                doc = found.get((PROFILES, pid))
                # A record may point at a profile that no longer exists (erased and swept).
                snapshot.profiles[pid] = (
                    Profile.from_doc(pid, doc) if doc else Profile(pid, "erased", GONE, GONE)
                )
        raise ChainTooLong(f"merged_into chains longer than {MAX_HOPS} hops")

    def plan_writes(self, plan: Plan, event_id: str) -> list[Write]:
        """The one mapping of a plan to documents, both stores write it."""
        now = datetime.now(UTC)
        writes = [Write(*self._record_ref(r.identifier), r.to_doc()) for r in plan.records]
        # A new tombstone keeps when it was merged: its ``settle`` job looks for fast-path writes
        # from about then on (``merged_late``).
        stamp = {pid: {"merged_ms": to_ms(now)} for pid in plan.outcome.merged_profile_ids}
        for p in plan.profiles:
            writes.append(Write(PROFILES, p.profile_id, p.to_doc() | stamp.get(p.profile_id, {})))
        if plan.touchpoint is not None:
            writes.append(Write(*self._touchpoint_ref(plan.touchpoint.name), plan.touchpoint.to_doc()))
        writes += [Write(AUDIT, self.keys.audit(entry), entry.to_doc()) for entry in plan.audit]
        replay = Replay(plan.outcome, plan.jobs).as_doc()
        replay["expire_at"] = self.expiry(now)
        replay["profile_ids"] = named_profiles(plan.outcome)  # what an erasure looks them up by
        writes.append(Write(*self._processed_ref(event_id), replay, "create"))
        return writes

    def transact(
        self,
        identifiers: list[Identifier],
        event_id: str,
        decide: Decide,
        touchpoint_name: str | None = None,
        first: FirstRead | None = None,
    ) -> Plan:
        """In one transaction: read the snapshot (all reads first; with ``touchpoint_name``
        also the touchpoint the event updates), call ``decide``, write the plan. ``decide``
        may be called again on retry; it must be pure. Raises ``Contention``. ``first``: the
        fast path's read round of this event, the first attempt's first round (one round trip
        less); its documents are guarded by the commit like the attempt's own reads."""
        seeded = first is not None and first.seeds(identifiers, event_id, touchpoint_name)
        seeds = [first.snapshot] if first is not None and seeded else []

        def body(get: Get) -> tuple[Plan, list[Write]]:
            seed = seeds.pop() if seeds else None  # the first attempt only, as its reads
            plan = decide(self._gather(get, identifiers, event_id, touchpoint_name, seed))
            return plan, ([] if plan.outcome.duplicate else self.plan_writes(plan, event_id))

        return self._transaction(body, first.reader if first is not None and seeded else None)

    def first_read(self, identifiers: Iterable[Identifier], event_id: str) -> FirstRead:
        """The fast path's one read round: idempotency record, touchpoint, identifier records
        (no profiles: the owner's state is checked after the write). Read as a transaction
        reads, so a linking event's transaction can start from it (``transact(first=...)``)."""
        reader, identifiers = self._reading(), list(identifiers)
        snapshot = self._first_round(reader, identifiers, event_id, None)
        return FirstRead(identifiers, event_id, snapshot, reader)

    def read_snapshot(self, identifiers: Iterable[Identifier], event_id: str) -> Snapshot:
        """What a transaction would read, without one (audits, tests)."""
        return self._gather(self._get, list(identifiers), event_id)

    def create_touchpoint(self, touchpoint: Touchpoint, written_ms: int = 0) -> None:
        """The fast path's write: ``Duplicate`` if the event was applied before. ``written_ms``:
        when its read round started (wall clock), what a split settling late writes looks at."""
        doc = touchpoint.to_doc()
        if written_ms:
            doc["written_ms"] = written_ms
        self._commit([Write(*self._touchpoint_ref(touchpoint.name), doc, "create")])

    def withdraw_touchpoint(self, touchpoint: Touchpoint) -> None:
        """Undo a fast-path write whose profile was merged away or erased meanwhile (only if
        it is still that write)."""
        try:
            self._commit([Write(*self._touchpoint_ref(touchpoint.name), None, "delete")])
        except Conflict:
            pass

    def erase_touchpoint(self, name: str) -> None:
        """Replace a touchpoint by a stub without personal data (it keeps the event applied)."""
        stub = {"erased": True, "expire_at": self.expiry(datetime.now(UTC))}
        self._commit([Write(*self._touchpoint_ref(name), stub)])

    def profile_state(self, profile_id: str) -> Profile | None:
        """The stored profile document, masked to its state (fast path, after its write)."""
        doc = self._get([(PROFILES, profile_id)], STATE_FIELDS).get((PROFILES, profile_id))
        return None if doc is None else Profile.from_doc(profile_id, doc)

    # --- follow-up jobs ---------------------------------------------------------------------
    def repoint(self, loser_id: str, survivor_id: str, batch_size: int = BATCH) -> int:
        """Point the loser's identifier records, and the tombstones merged into it, at the
        survivor (chains stay one hop long). Each write is conditioned on the document being
        unchanged since it was read, so a concurrent move wins; safe to repeat."""
        moved = failures = 0
        while failures < 8:  # only failed batches count: a big loser has many
            records = self._records_of([loser_id], batch_size)
            tombstones = [] if records else self._tombstones_of([loser_id])
            if not records and not tombstones:
                return moved
            writes = [
                Write(IDENTIFIERS, f.key, {"profile_id": survivor_id}, "update", f.revision) for f in records
            ]
            writes += [
                Write(PROFILES, f.key, {"merged_into": survivor_id}, "update", f.revision) for f in tombstones
            ]
            try:
                self._commit(writes)
                moved += len(records)
            except StoreError:
                failures += 1
        raise StoreError("re-pointing kept conflicting; reads still follow merged_into")

    def credit(
        self, touchpoints: Iterable[Touchpoint], orders: Iterable[Touchpoint], lookback_days: int
    ) -> int:
        """Credit each order with the touches that preceded it (the engine's ``order_credit``),
        whatever the arrival order; only the orders whose credit changes are written."""
        touches = [t.touch for t in touchpoints if t.touch]
        changed = 0
        for order in orders:
            credit = order_credit(touches, order.timestamp, lookback_days)
            if credit != order.credit:
                self.set_credit(order.name, credit)
                changed += 1
        return changed

    def set_credit(self, touchpoint_name: str, credit: dict[str, dict[str, str]]) -> None:
        """Replace an order touchpoint's credit (the credit job)."""
        try:
            self._commit([Write(*self._touchpoint_ref(touchpoint_name), {"credit": credit}, "update")])
        except Conflict:
            pass  # erased meanwhile

    def family(self, profile_id: str) -> list[str]:
        """The profile and every tombstone merged into it, directly or through others."""
        family, frontier = [profile_id], [profile_id]
        for _ in range(MAX_HOPS):
            if not frontier:
                return family
            frontier = [f.key for f in self._tombstones_of(frontier) if f.key not in family]
            family += frontier
        raise ChainTooLong(f"tombstones nested deeper than {MAX_HOPS} under {profile_id}")

    def family_touchpoints(
        self, profile_ids: list[str], *, type_: str | None = None, attributed: bool = False
    ) -> list[Touchpoint]:
        found = self._touchpoints_of(profile_ids, type_=type_, attributed=attributed)
        return [touchpoint_from_doc(f.doc) for f in found]

    # --- erasure: a template over the primitives ---------------------------------------------
    def erase(self, profile_id: str) -> ErasureReport | None:
        """Remove a customer completely: mark the family's active profile erased (so every
        identifier resolves to nothing at once), then sweep: delete its identifier records and
        tombstones, replace its touchpoints by stubs. Idempotent; None if the profile is unknown."""
        root = self._root(profile_id)
        if root is None:
            return None
        if root.status == "active" and not self._mark_erased(root.profile_id):
            return self.erase(profile_id)  # merged away meanwhile: erase its new family
        return self.sweep(root.profile_id)

    def _root(self, profile_id: str) -> Profile | None:
        """Follow the chain to its end, active or erased (None: unknown)."""
        hops = 0
        while hops < MAX_HOPS:
            doc = self._get([(PROFILES, profile_id)]).get((PROFILES, profile_id))
            if doc is None:
                return None
            profile = Profile.from_doc(profile_id, doc)
            if profile.status != "merged" or not profile.merged_into:
                return profile
            profile_id, hops = profile.merged_into, hops + 1
        raise ChainTooLong(f"merged_into chain longer than {MAX_HOPS} hops")

    def _mark_erased(self, profile_id: str) -> bool:
        """In a transaction: the active profile becomes an erased record (no personal data).
        False if it is no longer active (merged meanwhile)."""

        def body(get: Get) -> tuple[bool, list[Write]]:
            doc = get([(PROFILES, profile_id)]).get((PROFILES, profile_id))
            if doc is None or doc.get("status") != "active":
                return doc is not None and doc.get("status") == "erased", []
            if doc.get("splitting"):
                raise ProfileBusy(profile_id)  # retried once the split is done
            now = datetime.now(UTC)
            erased = Profile(profile_id, "erased", now, now, version=int(doc.get("version", 0)) + 1)
            return True, [Write(PROFILES, profile_id, {**erased.to_doc(), "erased_at": now})]

        return self._transaction(body)

    def sweep(self, root_id: str, final: bool = False, wait: bool = True) -> ErasureReport:
        """Delete what is left of an erased family: records (only if still pointing into the
        family), touchpoints (stubs), then the tombstones, so a crash midway is swept again.

        The family stays listed on the erased record (``swept_family``, profile ids only) until
        the ``final`` pass (the ``sweep`` job): a fast-path write that read a record before this
        pass deleted it lands at most ``FAST_GRACE_MS`` later, so the final pass, due that long
        after the records were gone (``swept_ms``), stubs it (``Later`` before; ``wait=False``:
        now, for callers with no write in flight)."""
        ref = (PROFILES, root_id)
        doc = self._get([ref]).get(ref) or {}
        listed = list(doc.get("swept_family") or [])
        family = [*self.family(root_id), *(pid for pid in listed if pid != root_id)]
        family = list(dict.fromkeys(family))
        if final:
            due = int(doc.get("swept_ms") or 0) + FAST_GRACE_MS + CLOCK_MARGIN_MS
            if not listed:
                return ErasureReport(family, 0, 0, root_id)  # swept for good already
            if wait and to_ms(datetime.now(UTC)) < due:
                raise Later(f"final sweep due in {due - to_ms(datetime.now(UTC))} ms")
        elif listed != family:
            self._commit([Write(*ref, {"swept_family": family}, "update")])  # before tombstones go
        records = self._delete_all(lambda: self._records_of(family, BATCH), IDENTIFIERS)
        if not final or records:  # no record points into the family from now on
            self._commit([Write(*ref, {"swept_ms": to_ms(datetime.now(UTC))}, "update")])
        touchpoints = 0
        while found := self._touchpoints_of(family, BATCH, fields=["profile_id", "timestamp"]):
            stub = {"erased": True, "expire_at": self.expiry(datetime.now(UTC))}
            self._commit([Write(TOUCHPOINTS, f.key, dict(stub)) for f in found])
            touchpoints += len(found)
        self._forget_in_replays(set(family))
        audit = {f.key for f in self._where_in(AUDIT, "profile_ids", family, contains=True)}
        splits = [f.key for f in self._where_in(SPLITS, "profile_id", family)]
        self._commit(
            [Write(AUDIT, key, None, "delete") for key in sorted(audit)]
            + [Write(SPLITS, key, None, "delete") for key in splits]
            + [Write(PROFILES, pid, None, "delete") for pid in family if pid != root_id]
        )
        if final and records:
            raise Later("records pointed into the erased family again: one more final sweep")
        if final:
            self._commit([Write(*ref, {"swept_family": None, "swept_ms": None}, "update")])
        return ErasureReport(sorted(family), records, touchpoints, root_id)

    def _forget_in_replays(self, family: set[str]) -> None:
        """The idempotency records naming the erased family keep no trace of it
        (``replay_after_erasure``); each rewrite drops the family from ``profile_ids``, so the
        query ends and a repeated sweep finds nothing."""
        ids = sorted(family)
        while found := self._where_in(PROCESSED, "profile_ids", ids, BATCH, contains=True):
            writes = []
            for f in found:
                replay = replay_after_erasure(Replay.from_doc(f.doc), family)
                doc = {**replay.as_doc(), "expire_at": f.doc.get("expire_at")}
                writes.append(Write(PROCESSED, f.key, {**doc, "profile_ids": named_profiles(replay.outcome)}))
            self._commit(writes)

    def _delete_all(self, find: Callable[[], list[Found]], collection: str) -> int:
        deleted = failures = 0
        while (found := find()) and failures < 8:
            try:
                self._commit([Write(collection, f.key, None, "delete", f.revision) for f in found])
                deleted += len(found)
            except Conflict:
                failures += 1  # re-pointed or moved meanwhile: read again
        if found:
            raise StoreError("erasure sweep kept conflicting; it is retried")
        return deleted

    # --- reads: the read model ---------------------------------------------------------------
    def get_profile(self, profile_id: str) -> Profile | None:
        """The profile as a user sees it (a tombstone or erased record as stored)."""
        doc = self._get([(PROFILES, profile_id)]).get((PROFILES, profile_id))
        if doc is None:
            return None
        profile = Profile.from_doc(profile_id, doc)
        return self.assemble(profile) if profile.status == "active" else profile

    def get_record(self, identifier: Identifier) -> IdentifierRecord | None:
        doc = self._get([self._record_ref(identifier)]).get(self._record_ref(identifier))
        return None if doc is None else IdentifierRecord.from_doc(doc)

    def _profile_doc(self, profile_id: str) -> Profile | None:
        doc = self._get([(PROFILES, profile_id)]).get((PROFILES, profile_id))
        return None if doc is None else Profile.from_doc(profile_id, doc)

    def active_profile(self, profile_id: str | None) -> Profile | None:
        """The stored document of the active profile ``profile_id`` resolves to (no read model)."""
        return follow_chain(profile_id, self._profile_doc)

    def resolve(self, profile_id: str | None) -> Profile | None:
        """Follow ``merged_into`` to the active profile (None for unknown or erased), with its
        read model."""
        profile = self.active_profile(profile_id)
        return None if profile is None else self.assemble(profile)

    def lookup(self, identifier: Identifier) -> Profile | None:
        record = self.get_record(identifier)
        return None if record is None else self.resolve(record.profile_id)

    def with_identifiers(self, profile: Profile) -> list[str]:
        """Fill the profile's family (``merged_from``) and identifiers (by query); the family."""
        family = self.family(profile.profile_id)
        profile.merged_from = sorted(family[1:])
        identifiers: dict[str, list[str]] = {}
        for found in self._records_of(family):
            identifiers.setdefault(found.doc["kind"], []).append(found.doc["value"])
        profile.identifiers = {kind: sorted(values) for kind, values in sorted(identifiers.items())}
        return family

    def assemble(self, profile: Profile) -> Profile:
        """Fill the read model: the family, its identifiers (by query) and exact aggregates."""
        family = self.with_identifiers(profile)
        totals = self.aggregates(family)
        profile.counters = totals.counters
        profile.first_seen = min(profile.first_seen, totals.first_seen or profile.first_seen)
        profile.last_seen = max(profile.last_seen, totals.last_seen or profile.last_seen)
        profile.first_touch, profile.last_touch = totals.first_touch, totals.last_touch
        profile.first_order_at = totals.first_order_at
        return profile

    def aggregates(self, profile_ids: list[str]) -> Aggregates:
        """Counters, seen times and first / last touch, derived from the family's touchpoints
        at read time (one masked query per 30 profiles; cost: one document read per touchpoint)."""
        return aggregate(
            touchpoint_from_doc(f.doc) for f in self._touchpoints_of(profile_ids, fields=AGGREGATE_FIELDS)
        )

    def touchpoints(
        self, profile_ids: list[str], limit: int, before: datetime | None = None
    ) -> list[Touchpoint]:
        """Touchpoints owned by any of these profiles, newest first, older than ``before``."""
        return [touchpoint_from_doc(f.doc) for f in self._touchpoints_of(profile_ids, limit, before)]

    def processed(self, event_id: str) -> Outcome | None:
        doc = self._get([self._processed_ref(event_id)]).get(self._processed_ref(event_id))
        return None if doc is None else Replay.from_doc(doc).outcome

    def iter_records(self) -> Iterator[IdentifierRecord]:
        return (IdentifierRecord.from_doc(doc) for _, doc in self._scan(IDENTIFIERS))

    def iter_profiles(self) -> Iterator[Profile]:
        for key, doc in self._scan(PROFILES):
            profile = Profile.from_doc(key, doc)
            yield self.assemble(profile) if profile.status == "active" else profile

    # --- the fold job: aggregates onto the profile document, off the events' path -----------
    def fold(
        self, profile_id: str, published_ms: int = 0, interval_ms: int = 0, lookback_days: int | None = None
    ) -> bool:
        """Fold the aggregates of the family (``aggregates``) onto the active profile's document,
        for queries across customers. Debounced: skipped when a fold that started after the job
        was published did it (one read), and ``FoldLater`` when the last fold is younger than
        ``interval_ms`` (the job is retried after Pub/Sub's backoff, so a busy customer's
        profile is written at most about once per interval, and the last events still get
        folded). A fold never overwrites a later one, and writes nothing when the document
        already holds what it derived (a redelivery's fold). Returns whether it wrote.

        With ``lookback_days`` it also re-credits every order whose credit the touchpoints it
        read change: every event's fold job reads after the event's write, so a late touch
        (older than an order of the family) is credited without the fast path reading the
        profile's latest order."""
        profile = self.active_profile(profile_id)
        if profile is None or profile.folded_ms >= published_ms + FOLD_SKEW_MS:
            return False
        started = to_ms(datetime.now(UTC))
        if interval_ms and started - profile.folded_ms < interval_ms:
            raise FoldLater(f"profile folded {started - profile.folded_ms} ms ago")
        family = self.family(profile.profile_id)
        read = [touchpoint_from_doc(f.doc) for f in self._touchpoints_of(family, fields=FOLD_FIELDS)]
        if lookback_days is not None:
            self.credit(read, [t for t in read if t.type == "order"], lookback_days)
        totals = aggregate(read)
        first_touch, last_touch = totals.first_touch, totals.last_touch
        fields: dict[str, Any] = {
            "counters": dict(totals.counters),
            "first_touch": first_touch.to_doc() if first_touch else None,
            "last_touch": last_touch.to_doc() if last_touch else None,
            "first_order_ms": to_ms(totals.first_order_at) if totals.first_order_at else None,
        }
        # A conditional write, not a transaction: a fold holds no lock a customer's events wait on.
        found = self._get_found((PROFILES, profile.profile_id))
        doc = None if found is None else found.doc
        if doc is None or doc.get("status") != "active" or int(doc.get("folded_ms") or 0) > started:
            return False  # merged or erased meanwhile (that change folds), or a later fold won
        # (an earlier fold in the same millisecond read no more than this one: this one writes)
        update = dict(fields, folded_ms=started)
        if totals.last_seen is not None:
            update["last_seen_ms"] = max(int(doc.get("last_seen_ms") or 0), to_ms(totals.last_seen))
        if totals.first_seen is not None:
            update["first_seen_ms"] = min(int(doc.get("first_seen_ms") or 0), to_ms(totals.first_seen))
        if all(doc.get(field) == value for field, value in update.items() if field != "folded_ms"):
            # Nothing new (a redelivery's fold, an import re-run): the document stays as it is.
            return False
        try:
            self._commit([Write(PROFILES, profile.profile_id, update, "update", found.revision)])
        except Conflict:
            return False  # written meanwhile: by a later fold, or by an event whose own fold follows
        return True

    # --- blocklist, audit, evidence (explain, split) ---------------------------------------
    def blocklist(self) -> list[BlockEntry]:
        """Every value blocked by an operator (``blocklist/{keyed hash}``)."""
        return [BlockEntry.from_doc(doc) for _, doc in self._scan(BLOCKLIST)]

    def block_entry(self, identifier: Identifier) -> BlockEntry | None:
        """The blocklist entry of a value (None: not blocked)."""
        ref = (BLOCKLIST, self.keys.identifier(identifier))
        doc = self._get([ref]).get(ref)
        return None if doc is None else BlockEntry.from_doc(doc)

    def unblock(self, identifier: Identifier) -> bool:
        """Remove a blocklist entry (False if there was none). Re-merges nothing by itself."""
        ref = (BLOCKLIST, self.keys.identifier(identifier))
        if ref not in self._get([ref]):
            return False
        self._commit([Write(*ref, None, "delete")])
        return True

    def audit(self, profile_ids: list[str]) -> list[AuditEntry]:
        """The merge history (merges, moves, conflicts, blocks, splits) touching these profiles."""
        found = {f.key: f.doc for f in self._where_in(AUDIT, "profile_ids", profile_ids, contains=True)}
        return sorted((AuditEntry.from_doc(d) for d in found.values()), key=lambda e: (e.at, e.action))

    def records_of(self, profile_ids: list[str]) -> list[IdentifierRecord]:
        """Every identifier record pointing at one of these profiles (no chain following)."""
        return [IdentifierRecord.from_doc(f.doc) for f in self._records_of(profile_ids)]

    def touchpoints_of(self, profile_ids: list[str]) -> Iterator[Touchpoint]:
        """Every touchpoint owned by one of these profiles, in no particular order."""
        return (Touchpoint.from_doc(f.doc) for f in self._touchpoints_of(profile_ids))

    def touchpoints_by_event(self, event_ids: list[str]) -> dict[str, Touchpoint]:
        """Touchpoints by the event id they are keyed by (the evidence of identifier records)."""
        refs = {self._touchpoint_ref(e): e for e in event_ids}
        found = self._get(list(refs))
        return {refs[ref]: Touchpoint.from_doc(doc) for ref, doc in found.items() if not doc.get("erased")}

    def late_touchpoints(self, profile_ids: list[str], since_ms: int) -> list[tuple[str, Touchpoint]]:
        """Fast-path touchpoints of these profiles whose read round started at ``since_ms`` or
        later (document id, touchpoint): the writes a split's evidence may not have held."""
        fields = ["event_id", "profile_id", "type", "channel", "timestamp", "identifiers", "written_ms"]
        fields.append("attribution")
        found = self._touchpoints_of(profile_ids, fields=fields)
        return [
            (f.key, touchpoint_from_doc(f.doc))
            for f in found
            if int(f.doc.get("written_ms") or 0) >= since_ms and not f.doc.get("erased")
        ]

    def merged_late(self, loser_id: str) -> list[tuple[str, Touchpoint]]:
        """Fast-path touchpoints on a tombstone that may have been written after its merge (their
        read round started at most a grace period before it): the ``settle`` job's work. None
        for a profile that is not a tombstone, or one merged before tombstones kept the time."""
        doc = self._get([(PROFILES, loser_id)], ["status", "merged_ms"]).get((PROFILES, loser_id))
        if doc is None or doc.get("status") != "merged" or not doc.get("merged_ms"):
            return []
        return self.late_touchpoints([loser_id], int(doc["merged_ms"]) - FAST_GRACE_MS - CLOCK_MARGIN_MS)

    def resolve_late(
        self, late: list[tuple[str, Touchpoint]], links: Callable[[Identifier], bool]
    ) -> dict[str, str]:
        """Where each late fast-path write (document id, touchpoint) belongs now: the one active
        profile all its linking identifiers (``links``) resolve to; a write whose identifiers
        resolve to none or to several is left out. The settling passes of merges and splits."""
        owners = self._owners(sorted({i for _, t in late for i in t.identifiers if links(i)}))
        resolved: dict[str, str] = {}
        for key, touchpoint in late:
            now = {owners[i] for i in touchpoint.identifiers if owners.get(i)}
            if len(now) == 1:
                resolved[key] = now.pop()
        return resolved

    def _owners(self, identifiers: list[Identifier]) -> dict[Identifier, str | None]:
        """The active profile each identifier resolves to now (None: unknown or erased)."""
        found = self._get([self._record_ref(i) for i in identifiers])
        resolved: dict[str, str | None] = {}
        owners: dict[Identifier, str | None] = {}
        for identifier in identifiers:
            doc = found.get(self._record_ref(identifier))
            if doc is None:
                owners[identifier] = None
                continue
            pid = doc["profile_id"]
            if pid not in resolved:
                profile = self.active_profile(pid)
                resolved[pid] = None if profile is None else profile.profile_id
            owners[identifier] = resolved[pid]
        return owners

    def move_touchpoints(self, moves: dict[str, str]) -> None:
        """Point touchpoints (by document id) at other profiles; one gone meanwhile is skipped."""
        keys = sorted(moves)
        for start in range(0, len(keys), BATCH):
            writes = [
                Write(TOUCHPOINTS, k, {"profile_id": moves[k]}, "update") for k in keys[start : start + BATCH]
            ]
            try:
                self._commit(writes)
            except Conflict:
                for write in writes:  # one was erased meanwhile: the others one by one
                    try:
                        self._commit([write])
                    except Conflict:
                        pass

    def settled(self, request_id: str) -> SplitRequest:
        """Mark the split's settling pass done (in a transaction; a repeat changes nothing)."""

        def body(get: Get) -> tuple[SplitRequest, list[Write]]:
            request = self._split_in(get, request_id)
            if not request.settle_ms:
                return request, []
            request.settle_ms = 0
            return request, [Write(SPLITS, request_id, {"settle_ms": 0}, "update")]

        return self._transaction(body)

    def credit_orders(self, profile_id: str, lookback_days: int) -> int:
        """Credit every order of the profile's family again (the ``credit`` job)."""
        profile = self.active_profile(profile_id)
        if profile is None:
            return 0
        family = self.family(profile.profile_id)
        return self.credit(
            self.family_touchpoints(family, attributed=True),
            self.family_touchpoints(family, type_="order"),
            lookback_days,
        )

    # --- split: each step one transaction over the primitives ------------------------------
    def create_split(self, request: SplitRequest) -> None:
        """Store a new split request (state ``queued``)."""
        try:
            self._commit([Write(SPLITS, request.request_id, request.to_doc(), "create")])
        except Duplicate:
            pass

    def get_split(self, request_id: str) -> SplitRequest | None:
        doc = self._get([(SPLITS, request_id)]).get((SPLITS, request_id))
        return None if doc is None else SplitRequest.from_doc(request_id, doc)

    @staticmethod
    def _split_in(get: Get, request_id: str) -> SplitRequest:
        doc = get([(SPLITS, request_id)]).get((SPLITS, request_id))
        if doc is None:
            raise KeyError(request_id)
        return SplitRequest.from_doc(request_id, doc)

    def begin_split(self, request_id: str, at: datetime) -> SplitRequest:
        """In one transaction (``split.decide_block``): block the value, take it out of the
        profile holding it, mark the profile to split as splitting. A repeat changes nothing.
        Raises ``ProfileBusy`` while another split of the profile runs."""

        def body(get: Get) -> tuple[SplitRequest, list[Write]]:
            request = self._split_in(get, request_id)
            record_ref = self._record_ref(request.block)
            record_doc = get([record_ref]).get(record_ref)
            record = IdentifierRecord.from_doc(record_doc) if record_doc else None

            def fetch(pid: str) -> Profile | None:
                doc = get([(PROFILES, pid)]).get((PROFILES, pid))
                return None if doc is None else Profile.from_doc(pid, doc)

            owner = follow_chain(record.profile_id, fetch) if record is not None else None
            profile = follow_chain(request.profile_id, fetch)
            if profile is not None:
                profile.merged_from = self.family(profile.profile_id)[1:]
            decision = decide_block(request, profile, record, owner, at)
            writes = [Write(PROFILES, p.profile_id, p.to_doc()) for p in decision.profiles]
            if decision.entry is not None:
                writes.append(Write(BLOCKLIST, record_ref[1], decision.entry.to_doc()))
            if decision.delete_record:
                writes.append(Write(*record_ref, None, "delete"))
            writes += [Write(AUDIT, self.keys.audit(e), e.to_doc()) for e in decision.audit]
            writes.append(Write(SPLITS, request_id, decision.request.to_doc()))
            return decision.request, writes

        return self._transaction(body)

    def save_split_plan(
        self,
        request: SplitRequest,
        parts: list[dict[str, Any]],
        profiles: list[Profile],
        tombstones: dict[str, str],
    ) -> SplitRequest:
        """Store the plan's chunks, create the new profiles (still marked splitting) and keep the
        first profile's recomputed document and the tombstones' new targets for the end."""
        # The chunks first (a crash here leaves the request unplanned: planned again, the same
        # chunks are written again); then one transaction makes the plan the request's.
        rid = request.request_id
        kept, *created = profiles
        chunks = [Write(SPLIT_PARTS, f"{rid}.{n}", part) for n, part in enumerate(parts)]
        chunks.append(
            Write(SPLIT_PARTS, f"{rid}.kept", {"profile": kept.to_doc(), "tombstones": dict(tombstones)})
        )
        for start in range(0, len(chunks), CHUNKS_PER_COMMIT):
            # A few per commit: one chunk is up to ~400 records (~150 KB), and a commit request
            # is capped at 10 MiB by Firestore (4 MiB by the emulator's gRPC).
            self._commit(chunks[start : start + CHUNKS_PER_COMMIT])

        def body(get: Get) -> tuple[SplitRequest, list[Write]]:
            current = self._split_in(get, rid)
            if current.parts >= 0:
                return current, []
            writes = [Write(PROFILES, p.profile_id, p.to_doc()) for p in created]
            return request, [*writes, Write(SPLITS, rid, request.to_doc())]

        return self._transaction(body)

    def apply_split_part(self, request_id: str, n: int) -> SplitRequest:
        """In one transaction: chunk ``n`` of the plan, if it is the next one to apply."""

        def body(get: Get) -> tuple[SplitRequest, list[Write]]:
            request = self._split_in(get, request_id)
            if request.state != "moving" or request.cursor != n:
                return request, []
            part = get([(SPLIT_PARTS, f"{request_id}.{n}")])[(SPLIT_PARTS, f"{request_id}.{n}")]
            writes = [
                Write(*self._record_ref(Identifier(doc["kind"], doc["value"])), doc)
                for doc in part["records"]
            ]
            # No read of the touchpoints first: only an erasure deletes them, and it waits
            # (ProfileBusy) until the split is done.
            for move in part["touchpoints"]:
                fields = {"profile_id": move["profile_id"], "credit": move["credit"]}
                writes.append(Write(*self._touchpoint_ref(move["name"]), fields, "update"))
            request.cursor = n + 1
            return request, [*writes, Write(SPLITS, request_id, request.to_doc())]

        return self._transaction(body)

    def finish_split(self, request_id: str, audit: list[AuditEntry]) -> SplitRequest:
        """In one transaction: the kept profile's recomputed document, every resulting profile
        open to events again, tombstones pointing at the profile that took their evidence, the
        audit entries, the request ``done``; then the plan's chunks are deleted."""

        def body(get: Get) -> tuple[SplitRequest, list[Write]]:
            request = self._split_in(get, request_id)
            if request.state != "moving" or request.cursor != request.parts:
                return request, []
            kept = get([(SPLIT_PARTS, f"{request_id}.kept")])[(SPLIT_PARTS, f"{request_id}.kept")]
            losers = get([(PROFILES, loser) for loser in kept["tombstones"]]) if kept["tombstones"] else {}
            writes = [Write(PROFILES, request.profile_id, {**kept["profile"], "splitting": None})]
            for profile_id in request.result.get("profile_ids", []):
                if profile_id != request.profile_id:
                    writes.append(Write(PROFILES, profile_id, {"splitting": None}, "update"))
            for loser, target in kept["tombstones"].items():
                if (PROFILES, loser) in losers:
                    writes.append(Write(PROFILES, loser, {"merged_into": target}, "update"))
            writes += [Write(AUDIT, self.keys.audit(e), e.to_doc()) for e in audit]
            request.state = "done"
            # Every record is where the split put it: a fast-path write that read one before
            # lands within the grace period; the settling pass places it after that.
            request.settle_ms = to_ms(datetime.now(UTC)) + FAST_GRACE_MS + CLOCK_MARGIN_MS
            return request, [*writes, Write(SPLITS, request_id, request.to_doc())]

        request = self._transaction(body)
        if request.state == "done":
            names = [*map(str, range(max(request.parts, 0))), "kept"]
            self._commit([Write(SPLIT_PARTS, f"{request_id}.{name}", None, "delete") for name in names])
        return request
