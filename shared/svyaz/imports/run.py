"""The import run: rows streamed from a source, mapped to events, applied directly or queued in
batches, rejects written next to the source, with a progress bar and a summary."""

from __future__ import annotations

import csv
import gzip
import os
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from svyaz.adapters.queue import QueueUnavailable, event_message
from svyaz.adapters.store.base import StoreError
from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError
from svyaz.channels.crm import IDENTIFIER_FIELDS
from svyaz.domain.events import Event
from svyaz.domain.merge import InvalidEvent, observe
from svyaz.imports.mapping import RowMapper, validation_rejects
from svyaz.imports.rows import (
    Counting,
    Lines,
    Reject,
    Row,
    RowError,
    csv_rows,
    file_format,
    header_name,
    jsonl_rows,
    physical_lines,
)
from svyaz.imports.sources import ImportFailed, LocalSource, Source

Via = Literal["direct", "queue", "url"]
PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal
DEFAULT_BATCH = 500
REJECT_COLUMNS = ("line", "field", "reason")


@dataclass
class ImportStats:
    source: str
    via: Via
    kind: str = "unknown"  # "orders" or "customers", decided by the first row
    rows: int = 0  # data rows read (blank lines and the CSV header excluded)
    queued: int = 0
    applied: int = 0  # events applied now (direct)
    duplicates: int = 0  # events the pipeline had already applied (a re-run)
    rejected: int = 0
    valid: int = 0  # rows that passed validation
    dry_run: bool = False
    ignored_values: Counter = field(default_factory=Counter)  # kind -> values dropped on kept rows
    seconds: float = 0.0
    rejects_location: str | None = None
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    first_reject: Reject | None = None
    undated: int = 0  # customer rows without a time, dated ``default_time``
    default_time: datetime | None = None

    @property
    def events(self) -> int:
        return self.queued if self.via == "queue" else self.applied + self.duplicates

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        if self.dry_run:
            done = f"valid: {self.valid:,} (dry run: nothing applied)"
        elif self.via == "queue":
            done = f"events queued: {self.queued:,}"
        else:
            done = f"events applied: {self.applied:,} (already applied before: {self.duplicates:,})"
        lines = [
            f"import of {self.source} ({self.kind}, via {self.via})",
            f"  rows read: {self.rows:,}; {done}; rejected: {self.rejected:,}",
            f"  seconds: {self.seconds:.1f} ({self.rows_per_second:,.0f} rows/s)",
        ]
        if self.undated and self.default_time is not None:
            dated = self.default_time.astimezone(UTC)
            lines.append(
                f"  rows without a time: {self.undated:,}, dated {dated:%Y-%m-%dT%H:%M:%SZ} "
                "(--time, else the file's modification time)"
            )
        if self.ignored_values:
            ignored = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.ignored_values.items()))
            lines.append(f"  identifier values ignored on imported rows (invalid or placeholder): {ignored}")
        if self.rejects_location:
            lines.append(f"  rejects: {self.rejects_location}")
        return "\n".join(lines)

    def reject_note(self) -> str | None:
        """One line for stderr when rows were rejected (the command then exits non-zero)."""
        if not self.rejected:
            return None
        text = f"{self.rejected:,} of {self.rows:,} rows of {self.source} rejected"
        if first := self.first_reject:
            where = f"line {first.line}" + (f", {first.field}" if first.field else "")
            text += f" (first: {where}: {first.reason})"
        return text + (f"; all in {self.rejects_location}" if self.rejects_location else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "via": self.via,
            "kind": self.kind,
            "rows": self.rows,
            "queued": self.queued,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "ignored_values": dict(self.ignored_values),
            "seconds": round(self.seconds, 3),
            "rejects": self.rejects_location,
        }


# --- sources ----------------------------------------------------------------------------------


class _RejectsFile:
    def __init__(self, directory: Path | None) -> None:
        handle, name = tempfile.mkstemp(prefix=".svyaz-rejects-", suffix=".csv", dir=directory)
        self.path = Path(name)
        self.file = os.fdopen(handle, "w", encoding="utf-8", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(REJECT_COLUMNS)

    def write(self, reject: Reject) -> None:
        self.writer.writerow([reject.line, reject.field, reject.reason])

    def close(self) -> None:
        self.file.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def default_via(env: str | None = None) -> Via:
    """Queue in production or next to the Pub/Sub emulator; else apply directly."""
    env = env if env is not None else os.environ.get("SVYAZ_ENV", "development")
    return "queue" if env == "production" or os.environ.get("PUBSUB_EMULATOR_HOST") else "direct"


@dataclass
class _Reader:
    """The source opened as rows; ``position`` is how far the progress bar may go."""

    raw: Counting
    stream: Any
    lines: Lines
    rows: Iterator[Row]
    packed: bool

    @classmethod
    def open(cls, source: Source, encoding: str) -> _Reader:
        raw = Counting(source.open())
        packed = source.uri.lower().endswith(".gz")
        stream: Any = gzip.GzipFile(fileobj=raw) if packed else raw
        lines = Lines(physical_lines(stream.read), encoding)
        rows = csv_rows(lines) if file_format(source.uri) == "csv" else jsonl_rows(lines)
        return cls(raw, stream, lines, rows, packed)

    @property
    def position(self) -> int:
        return self.raw.count if self.packed else self.lines.consumed  # compressed: chunks read

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


@dataclass
class _Run:
    """One import in progress: validated rows gather in a batch that is applied or queued whole."""

    rt: Runtime
    stats: ImportStats
    mapper: RowMapper
    rejects: _RejectsFile
    via: Via
    workers: int
    retries: int
    dry_run: bool
    remote: Callable[[list[Event]], list[bool | Reject]] | None = None
    batch: list[tuple[int, Event]] = field(default_factory=list)

    def reject(self, *items: Reject) -> None:
        self.stats.rejected += 1
        self.stats.first_reject = self.stats.first_reject or items[0]
        for item in items:
            self.rejects.write(item)

    def take(self, row: Row) -> None:
        """Validate one row as the pipeline will; a good one joins the batch."""
        self.stats.rows += 1
        if row.values is None:
            self.reject(row.problem or Reject(row.line, "", "unreadable row"))
            return
        values = self.mapper.rename(row.values)
        if self.stats.kind == "unknown":
            self.stats.kind = "orders" if "order_id" in values else "customers"
        try:
            event = self.mapper.event(self.stats.kind, values)
            observation = observe(event, self.rt.policy)
        except (ValidationError, RowError, ChannelError, InvalidEvent) as exc:
            self.reject(*_rejects_of(exc, row.line))
            return
        for dropped in observation.dropped:
            self.stats.ignored_values[dropped.kind] += 1
            reason = f"{dropped.reason}; value ignored, row imported"
            self.rejects.write(Reject(row.line, dropped.kind, reason))
        self.stats.valid += 1
        if event.type == "identify" and values.get("time") in (None, ""):
            self.stats.undated += 1
        if event.type == "order":
            at = event.timestamp
            self.stats.first_order_at = min(self.stats.first_order_at or at, at)
            self.stats.last_order_at = max(self.stats.last_order_at or at, at)
        self.batch.append((row.line, event))

    def flush(self) -> None:
        if self.batch and not self.dry_run:
            if self.via == "queue":
                _publish(self.rt, [e for _, e in self.batch], self.retries)
                self.stats.queued += len(self.batch)
            else:
                self._apply_batch()
        self.batch.clear()

    def _apply_batch(self) -> None:
        if self.remote is not None:  # a running service applies them (via url)
            results: Iterable[bool | Reject] = self.remote([e for _, e in self.batch])
        else:
            results = _apply_all(self.rt, self.batch, self.workers, self.retries)
        for (line, _), result in zip(self.batch, results, strict=True):
            if isinstance(result, Reject):
                self.reject(Reject(line, result.field, result.reason))
            elif result:
                self.stats.duplicates += 1
            else:
                self.stats.applied += 1
        _drain_local_updates(self.rt)


def _rejects_of(exc: Exception, line: int) -> list[Reject]:
    if isinstance(exc, ValidationError):
        return validation_rejects(exc, line)
    if isinstance(exc, RowError):
        return [Reject(line, exc.field, exc.reason)]
    if isinstance(exc, ChannelError):
        return [Reject(line, d["field"], d["reason"]) for d in exc.details]
    return [Reject(line, "identifiers", str(exc))]


def run_import(
    source: Source,
    rt: Runtime,
    *,
    via: Via = "direct",
    batch_size: int = DEFAULT_BATCH,
    encoding: str = "utf-8",
    tz: tzinfo = UTC,
    columns: dict[str, str] | None = None,
    source_id: str | None = None,
    workers: int = 1,
    dry_run: bool = False,
    progress: bool | None = None,
    retries: int = 3,
    default_time: datetime | None = None,
    remote: Callable[[list[Event]], list[bool | Reject]] | None = None,
) -> ImportStats:
    """Stream ``source`` into the pipeline of ``rt``; write the rejects file next to it.

    ``progress``: None shows a bar on stderr when it is a terminal, else a line every
    ``PROGRESS_EVERY`` seconds; False nothing. ``default_time`` dates customer rows without a
    time (default: the file's modification time). ``remote`` applies a batch elsewhere
    (``via="url"``: a running ``svyaz serve``). Raises ``ImportFailed`` when the source cannot be
    read, is not text, or the queue, the store or the service stays down."""
    started = time.monotonic()
    reserved = {"order_id", "time", *IDENTIFIER_FIELDS}
    default_time = default_time or source.modified or datetime.now(UTC)
    mapper = RowMapper(
        source_id or source.uri,
        default_time,
        tz=tz,
        extra_kinds=tuple(k for k in rt.policy.kinds if k not in reserved),  # queue mode: no store needed
        columns={header_name(k): header_name(v) for k, v in (columns or {}).items()},
    )
    reader = _Reader.open(source, encoding)
    try:
        rejects = _RejectsFile(source.path.parent if isinstance(source, LocalSource) else None)
    except OSError as exc:
        reader.close()
        raise ImportFailed(f"cannot write the rejects file: {exc.strerror or type(exc).__name__}") from None
    stats = ImportStats(source.uri, via, dry_run=dry_run, default_time=default_time)
    run = _Run(rt, stats, mapper, rejects, via, workers, retries, dry_run, remote)
    bar = Progress(f"import {source.uri.rsplit('/', 1)[-1]}", progress)
    try:
        _stream(run, reader, batch_size, bar)
    except (OSError, EOFError, zlib.error) as exc:  # a broken stream or a corrupt .gz
        rejects.discard()
        where = f"{source.uri} after line {reader.lines.number}"
        raise ImportFailed(f"cannot read {where}: {type(exc).__name__}") from None
    except BaseException:
        rejects.discard()  # a failed run leaves no half rejects file behind
        raise
    finally:
        bar.close()
        reader.close()
    rejects.close()
    run.stats.rejects_location = source.put_rejects(rejects.path)
    run.stats.seconds = time.monotonic() - started
    return run.stats


def _stream(run: _Run, reader: _Reader, batch_size: int, bar: Progress) -> None:
    for row in reader.rows:
        if run.stats.rows == 0:
            _check_text(reader.lines, run.stats.source)
        run.take(row)
        if len(run.batch) >= batch_size:
            run.flush()
            bar.update(run.stats.rows)
    _check_text(reader.lines, run.stats.source)
    run.flush()
    bar.update(run.stats.rows)


def _check_text(lines: Lines, uri: str) -> None:
    """Stop at once on a file that is not text, or whose CSV header is not in the given encoding,
    rather than reject every row (or read none) and finish as if all went well."""
    if lines.binary:
        raise ImportFailed(f"{uri} is not a text file (binary data at its start)")
    if file_format(uri) == "csv" and 1 in lines.undecodable:
        raise ImportFailed(
            f"the header of {uri} is not valid {lines.encoding} text: give the file's encoding with "
            "--encoding (e.g. --encoding cp1251)"
        )


class Progress:
    """Rows done, on stderr: a bar on a terminal, else a line every ``PROGRESS_EVERY`` seconds (a
    log or CI shows a long import is alive); ``enabled=False``: nothing."""

    def __init__(self, label: str, enabled: bool | None, stream: Any = None) -> None:
        self.label, self.stream = label, stream or sys.stderr
        self.started = self.last = time.monotonic()
        terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.lines = enabled is not False and not terminal
        self.bar = None
        if enabled is not False and terminal:
            from tqdm import tqdm

            self.bar = tqdm(desc=label, unit=" rows", file=self.stream)
        self.done = 0

    def update(self, rows: int) -> None:
        if self.bar is not None:
            self.bar.update(rows - self.done)
        self.done = rows
        now = time.monotonic()
        if self.lines and now - self.last >= PROGRESS_EVERY:
            self.last = now
            rate = rows / (now - self.started)
            print(f"{self.label}: {rows:,} rows ({rate:,.0f} rows/s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _publish(rt: Runtime, events: list[Event], retries: int) -> None:
    messages = [event_message(e) for e in events]
    for attempt in range(retries + 1):
        try:
            rt.publisher.publish(rt.settings.events_topic, messages)
            return
        except QueueUnavailable as exc:
            if attempt == retries:
                raise ImportFailed(f"the events topic is unavailable: {exc}") from None
            time.sleep(0.5 * 2**attempt)


def _apply_all(
    rt: Runtime, batch: list[tuple[int, Event]], workers: int, retries: int
) -> Iterable[bool | Reject]:
    """Per event: True if it was applied before (a duplicate), False if applied now, a
    ``Reject`` if the pipeline refused it."""
    if workers <= 1:
        return [_apply_one(rt, event, retries) for _, event in batch]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda item: _apply_one(rt, item[1], retries), batch))


def _apply_one(rt: Runtime, event: Event, retries: int) -> bool | Reject:
    from svyaz.entrypoints.process import PoisonMessage, apply_message

    for attempt in range(retries + 1):
        try:
            outcome = apply_message(event_message(event), rt)
            return bool(outcome and outcome.duplicate)
        except PoisonMessage as exc:
            return Reject(0, "", f"refused by the pipeline: {exc}")
        except (StoreError, QueueUnavailable) as exc:
            if attempt == retries:
                raise ImportFailed(
                    f"the store is unavailable ({type(exc).__name__}); re-run to resume"
                ) from None
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _drain_local_updates(rt: Runtime) -> None:
    """Direct mode publishes each outcome to the profile-updates topic and the events' follow-up
    jobs to the events topic; the in-process queue has no reader in a CLI run, so the jobs are
    run here (after the batch, as a worker would) and the updates dropped to keep memory flat."""
    from svyaz.adapters.queue import LocalQueue
    from svyaz.entrypoints.process import apply_message

    if isinstance(rt.publisher, LocalQueue):
        while jobs := rt.publisher.drain(rt.settings.events_topic):
            for job in jobs:
                apply_message(job, rt)
        rt.publisher.drain(rt.settings.profile_updates_topic)


def parse_columns(pairs: Iterable[str]) -> dict[str, str]:
    """``--column HEADER=canonical`` options as a mapping (file header -> canonical column)."""
    mapping = {}
    for pair in pairs:
        header, sep, canonical = pair.partition("=")
        if not sep or not header.strip() or not canonical.strip():
            raise ValueError(f"--column expects HEADER=column, got {pair!r}")
        mapping[header.strip()] = canonical.strip()
    return mapping
