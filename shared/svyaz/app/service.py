"""The application service: apply one canonical event to the identity graph, and run the
follow-up jobs events leave behind.

This is the one code path every entry point uses (the Pub/Sub function, the local worker,
bulk import, the benchmark): observe the event; a no-change event takes the fast path (read
its identifier records, create its touchpoint, check its profile is still the active owner);
anything else runs the merge engine inside one store transaction. Follow-up jobs (re-pointing,
order credit) go to a ``JobSink``: in a deployment, messages on the events topic.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from svyaz.adapters.store.base import (
    CLOCK_MARGIN_MS,
    FAST_GRACE_MS,
    FOLD_INTERVAL_MS,
    Duplicate,
    ErasureReport,
    FirstRead,
    Later,
    Store,
    StoreError,
    Unstorable,
)
from svyaz.domain.events import Event
from svyaz.domain.merge import (
    ChainTooLong,
    InvalidEvent,
    Observation,
    Plan,
    fast_path_owner,
    fast_path_verdict,
    may_take_fast_path,
    observe,
    plan_event,
    replay_plan,
    touchpoint_for,
)
from svyaz.domain.model import Job, Outcome, Touchpoint, to_ms
from svyaz.identity.policy import Policy

log = logging.getLogger("svyaz.app.service")
Applied = tuple[Outcome, list[Job]]


def new_profile_id() -> str:
    return uuid.uuid4().hex


class JobSink(Protocol):
    def publish(self, jobs: list[Job]) -> None:
        """Hand follow-up jobs over; raise if they could not be (the event is retried, and its
        redelivery publishes them again from the idempotency record)."""


class RunAfterEvent:
    """Runs the jobs right after the event, in the caller's thread: for scripts, tests and the
    benchmark's growth probe. A deployment publishes them instead (``runtime``). A failed job is
    logged and left: jobs only catch up (reads follow chains, aggregates are derived)."""

    def __init__(self) -> None:
        self.service: IdentityService | None = None

    def publish(self, jobs: list[Job]) -> None:
        assert self.service is not None
        for job in jobs:
            try:
                self.service.run_job(job, debounce=False)
            except (StoreError, ChainTooLong) as exc:
                log.warning("follow-up job failed: %s", type(exc).__name__, extra={"svyaz": job.as_dict()})


class PendingJobs:
    """Keeps the jobs until someone runs them (``run_all``): a test of what reads see before
    the follow-up work has run, or a queue of the caller's own."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def publish(self, jobs: list[Job]) -> None:
        self.jobs.extend(jobs)

    def run_all(self, service: IdentityService) -> int:
        """Run every job; one that fails goes back at the end, as Pub/Sub redelivers it (a fold
        behind a long chain succeeds once the repoint jobs shortened it)."""
        ran, failed_in_a_row = 0, 0
        while self.jobs and failed_in_a_row <= len(self.jobs):
            job = self.jobs.pop(0)
            try:
                service.run_job(job, debounce=False)
            except (StoreError, ChainTooLong):
                self.jobs.append(job)
                failed_in_a_row += 1
                continue
            ran, failed_in_a_row = ran + 1, 0
        if self.jobs:
            raise StoreError(f"{len(self.jobs)} follow-up jobs keep failing")
        return ran


class IdentityService:
    clock = staticmethod(time.monotonic)  # measures the fast path against the grace period

    def __init__(
        self,
        store: Store,
        policy: Policy,
        id_factory: Callable[[], str] = new_profile_id,
        jobs: JobSink | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.id_factory = id_factory
        if jobs is None:
            jobs = RunAfterEvent()
            jobs.service = self
        self.jobs = jobs
        # Where corrections go (a settled fast-path write, its new profile): downstream systems
        # heard the first outcome (``entrypoints.process`` publishes them; None: nobody listens).
        self.updates: Callable[[list[tuple[Touchpoint, str]]], None] | None = None
        self.stats = {"fast_path": 0, "fast_path_fallbacks": 0, "transactions": 0, "duplicates": 0, "jobs": 0}

    def apply(self, event: Event) -> Outcome:
        """Apply an event exactly once. Raises only ``InvalidEvent`` for an event that can never
        apply (including one the store refuses to hold for good, ``Unstorable``), ``ProfileBusy``
        while a profile it changes is being split, and ``StoreError`` (``Contention``) or
        ``ChainTooLong`` for a transient failure: retry later. Any other exception is a bug: the
        worker lets the queue redeliver it and finally dead-letter it."""
        try:
            return self._apply(event)
        except Unstorable as exc:
            raise InvalidEvent(str(exc)) from exc

    def _apply(self, event: Event) -> Outcome:
        observation = observe(event, self.policy)
        applied, first = self._fast_path(observation) if may_take_fast_path(observation) else (None, None)
        outcome, jobs = applied if applied is not None else self._transaction(observation, first)
        if outcome.duplicate:
            self.stats["duplicates"] += 1  # (its fold job is among ``jobs``: ``_refold``)
        elif outcome.profile_id:
            # The profile document's aggregates catch up off the event's path (debounced).
            jobs = [*jobs, Job("fold", outcome.profile_id, str(to_ms(datetime.now(UTC))))]
        if log.isEnabledFor(logging.INFO):  # the line's fields are built only for a reader
            log.info(
                "event applied",
                extra={"svyaz": {k: v for k, v in outcome.as_dict().items() if k != "dropped"}},
            )
        if jobs:
            self.jobs.publish(jobs)
        return outcome

    # --- the fast path: one read round, one create (and a state check when it was slow) -------
    def _fast_path(self, observation: Observation) -> tuple[Applied | None, FirstRead | None]:
        """The event applied, or None and (when nothing was written) its read round, which
        the transaction starts from: a linking event costs two read rounds and one commit."""
        event = observation.event
        started, written_ms = self.clock(), to_ms(datetime.now(UTC))
        first = self.store.first_read(observation.all_linking, event.event_id)
        snapshot = first.snapshot
        replay = replay_plan(observation, snapshot)
        if replay is not None:
            return self._replayed(replay, snapshot.applied), None
        owner = fast_path_owner(observation, snapshot.records)
        if owner is None:
            return None, first
        touchpoint = touchpoint_for(observation, owner)
        try:
            self.store.create_touchpoint(touchpoint, written_ms)
        except Duplicate:
            return None, None  # applied meanwhile: the transaction answers as a duplicate
        if (self.clock() - started) * 1000 < FAST_GRACE_MS:
            # The grace argument (docs/identity-graph.md): a merge, erasure or split its read
            # missed is caught by the job's last pass, a late touch's order credit by its fold.
            self.stats["fast_path"] += 1
            return (Outcome(event.event_id, "unchanged", owner, dropped=list(observation.dropped)), []), None
        verdict, jobs = fast_path_verdict(observation, self.store.profile_state(owner))
        if verdict != "applied":
            # Merged away or erased between the read and the write: no write stays on it.
            self.store.withdraw_touchpoint(touchpoint)
            self.stats["fast_path_fallbacks"] += 1
            return None, None
        self.stats["fast_path"] += 1
        return (Outcome(event.event_id, "unchanged", owner, dropped=list(observation.dropped)), jobs), None

    def _replayed(self, replay: Plan, applied: Touchpoint | None) -> Applied:
        """A redelivery. A fast-path touchpoint whose profile was erased before the write was
        checked (the worker died in between) is erased now, so nothing outlives an erasure."""
        if applied is not None and applied.profile_id:
            state = self.store.profile_state(applied.profile_id)
            if state is not None and state.status == "merged":  # history of a profile merged away
                state = self.store.active_profile(applied.profile_id)  # names the customer now
                replay.outcome.profile_id = None if state is None else state.profile_id
            if state is None or state.status == "erased":
                self.store.erase_touchpoint(replay.outcome.event_id)
                replay.outcome.profile_id = None
        return replay.outcome, [*replay.jobs, *self._refold(replay)]

    @staticmethod
    def _refold(replay: Plan) -> list[Job]:
        """A redelivery's fold job: the delivery that applied the event may have failed to
        publish its own. Stamped with when the first application was committed (as read with
        the duplicate's record), so a fold that started after it (it read the event) covers it
        and the job skips with one read; unknown, the redelivery's own time."""
        if not replay.outcome.profile_id:
            return []
        now = to_ms(datetime.now(UTC))
        stamp = now if replay.written_ms is None else min(now, replay.written_ms)
        return [Job("fold", replay.outcome.profile_id, str(stamp))]

    # --- the transaction ----------------------------------------------------------------------
    def _transaction(self, observation: Observation, first: FirstRead | None = None) -> Applied:
        new_id = self.id_factory()
        plan = self.store.transact(
            observation.all_linking,
            observation.event.event_id,
            lambda snapshot: plan_event(observation, snapshot, self.policy, new_id),
            observation.touchpoint_name,
            first=first,
        )
        if plan.outcome.duplicate:
            return plan.outcome, [*plan.jobs, *self._refold(plan)]
        self.stats["transactions"] += 1
        return plan.outcome, plan.jobs

    # --- follow-up jobs -----------------------------------------------------------------------
    def run_job(self, job: Job, debounce: bool = True) -> None:
        """Run one follow-up job. Idempotent: it recomputes from what is stored. Raises
        ``StoreError`` on a transient failure, ``Later`` for a job that must wait (the
        message is redelivered). ``debounce=False``: fold now (scripts and tests, which have no
        redelivery)."""
        self.stats["jobs"] += 1
        if job.kind == "repoint":
            self.store.repoint(job.subject, job.target)
            # Every record of the loser points at the survivor from now on: a grace period later
            # no fast-path write that read one can still land (the settle job's due time).
            self.jobs.publish([Job("settle", job.subject, str(to_ms(datetime.now(UTC))))])
        elif job.kind == "settle":
            self.settle_merge(job.subject, int(job.target or 0), wait=debounce)
        elif job.kind == "credit":
            self.credit_orders(job.subject)
        elif job.kind == "sweep":
            self.store.sweep(job.subject, final=True, wait=debounce)
        elif job.kind == "fold":
            interval, lookback = FOLD_INTERVAL_MS if debounce else 0, self.policy.attribution_lookback_days
            self.store.fold(job.subject, int(job.target or 0), interval, lookback)
        else:  # pragma: no cover - Job.from_dict refuses other kinds
            raise ValueError(f"unknown job kind {job.kind!r}")

    def settle_merge(self, loser_id: str, repointed_ms: int, wait: bool = True) -> int:
        """The ``settle`` job: fast-path page views that read a record of ``loser_id`` before it
        was merged away or re-pointed landed on the tombstone, and their published outcome and
        warehouse row named it. Due a grace period after the last record was re-pointed (then
        none can land any more: the grace argument), each goes to the survivor, and downstream
        gets a correction first (``updates``: the runtime publishes it on profile-updates and the
        touchpoints topic), so a crash in between sends it again. Returns how many moved."""
        due = repointed_ms + FAST_GRACE_MS + CLOCK_MARGIN_MS
        if wait and to_ms(datetime.now(UTC)) < due:
            raise Later(f"merge settles in {due - to_ms(datetime.now(UTC))} ms")
        late = self.store.merged_late(loser_id)
        holder = self.store.active_profile(loser_id) if late else None
        if holder is None:
            return 0  # nothing landed, or the customer was erased: the erasure's sweep stubs them
        if holder.splitting:
            raise Later("the family is being split: its late writes settle after it")
        # Each goes where all its identifiers resolve now (the survivor, or after a split since,
        # the part that took them, as the split's own settling places them); else it stays.
        resolved = self.store.resolve_late(late, lambda i: self.policy.kind(i.kind).links)
        moves = {
            key: (touchpoint, resolved[key])
            for key, touchpoint in late
            if key in resolved and resolved[key] != touchpoint.profile_id
        }
        if moves and self.updates is not None:
            self.updates(list(moves.values()))
        self.store.move_touchpoints({key: target for key, (_, target) in moves.items()})
        log.info("merge settled late writes", extra={"svyaz": {"loser": loser_id, "moved": len(moves)}})
        return len(moves)

    def erase(self, profile_id: str) -> ErasureReport | None:
        """Erase the customer (``Store.erase``) and publish the final ``sweep`` of the family,
        which stubs what a fast-path write in flight left behind. None: unknown profile."""
        report = self.store.erase(profile_id)
        if report is not None:
            self.jobs.publish([Job("sweep", report.root_id)])
        return report

    def credit_orders(self, profile_id: str) -> int:
        """Credit every order of the profile's family with the touches that preceded it (the
        engine's ``order_credit``), whatever the arrival order. Returns how many changed."""
        return self.store.credit_orders(profile_id, self.policy.attribution_lookback_days)


__all__ = ["IdentityService", "JobSink", "PendingJobs", "RunAfterEvent", "StoreError", "new_profile_id"]
