"""Bulk import of a customer base or of orders from CSV or JSON Lines, local or on S3-compatible
object storage (AWS S3, Yandex Object Storage), into the same pipeline as every other channel.

* The file is streamed (chunks of the object, one row at a time); nothing holds the whole file.
* A file whose header (CSV) or first object (JSONL) has ``order_id`` is an **orders** file: each
  row is validated as a CRM order (:class:`svyaz.channels.crm.Order`, the webhook's own model)
  and becomes an ``order`` event. Any other file is a **customer base**: each row becomes an
  ``identify`` event (identifiers and traits, no touch).
* Each row is validated as the pipeline will validate it (schema, identifier normalization);
  a bad row is written to the rejects file (line number, field, reason; never the row's
  content) and skipped. A row is one event, so a row is applied whole or not at all.
* Event ids are ``import:<source key>:<row hash>`` (the source's identity and a hash of the
  row's content): re-running the same file is deduplicated by the pipeline and changes nothing.
* ``via="direct"`` applies each event with :func:`svyaz.entrypoints.process.apply_message`, the
  code ``process_event`` runs; ``via="queue"`` publishes to the events topic.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import zlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from svyaz.adapters.queue import QueueUnavailable, event_message
from svyaz.adapters.store.base import StoreError
from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, build_event, drop_empty
from svyaz.channels.crm import IDENTIFIER_FIELDS, Order
from svyaz.domain.events import Context, Event
from svyaz.domain.merge import InvalidEvent, observe

Via = Literal["direct", "queue"]
CHUNK = 1 << 20
DEFAULT_BATCH = 500
MAX_ROW_CHARS = 64 * 1024
TRAIT_COLUMNS = ("name", "first_name", "last_name", "city", "gender", "birthday")
ATTRIBUTION_COLUMNS = ("source", "medium", "campaign", "content", "term")  # or utm_source, ...
REJECT_COLUMNS = ("line", "field", "reason")
_RU_DATE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


class ImportFailed(RuntimeError):
    """The import cannot go on (unreadable source, queue or store down). What was applied stays
    applied; re-running the file is safe (it is deduplicated)."""


class RowError(ValueError):
    """One field of a row is unusable (beyond what the row models check)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass
class Reject:
    line: int
    field: str
    reason: str


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
        if self.ignored_values:
            ignored = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.ignored_values.items()))
            lines.append(f"  identifier values ignored on imported rows (invalid or placeholder): {ignored}")
        if self.rejects_location:
            lines.append(f"  rejects: {self.rejects_location}")
        return "\n".join(lines)

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


class Source(ABC):
    """Where the rows come from, and where the rejects file goes (next to it)."""

    uri: str
    size: int | None = None
    modified: datetime | None = None

    @abstractmethod
    def open(self) -> BinaryIO: ...

    @property
    def rejects_uri(self) -> str:
        return self.uri + ".rejects.csv"

    @abstractmethod
    def put_rejects(self, local_path: Path) -> str:
        """Store the finished rejects file next to the source; returns where it went."""


class LocalSource(Source):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise ImportFailed(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        if not self.path.is_file():
            raise ImportFailed(f"{path} is not a file")
        self.uri = str(self.path.resolve())
        self.size = stat.st_size
        self.modified = datetime.fromtimestamp(stat.st_mtime, UTC)

    def open(self) -> BinaryIO:
        return self.path.open("rb")

    @property
    def rejects_uri(self) -> str:
        return str(self.path) + ".rejects.csv"

    def put_rejects(self, local_path: Path) -> str:
        os.replace(local_path, self.rejects_uri)
        return self.rejects_uri


class S3Source(Source):
    """``s3://bucket/key`` through boto3; ``endpoint_url`` for Yandex Object Storage
    (``https://storage.yandexcloud.net``) or any S3-compatible server. Credentials come from
    the usual AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, roles)."""

    def __init__(self, uri: str, endpoint_url: str | None = None, client: Any = None) -> None:
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or not key:
            raise ImportFailed("an S3 source is s3://<bucket>/<key>")
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.client, self.bucket, self.key, self.uri = client, bucket, key, uri
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise ImportFailed(f"cannot read {uri}: {_s3_error(exc)}") from None
        self.size = int(head.get("ContentLength") or 0) or None
        self.modified = head.get("LastModified")

    def open(self) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
        except Exception as exc:
            raise ImportFailed(f"cannot read {self.uri}: {_s3_error(exc)}") from None

    def put_rejects(self, local_path: Path) -> str:
        key = self.key + ".rejects.csv"
        try:
            self.client.upload_file(str(local_path), self.bucket, key, ExtraArgs={"ContentType": "text/csv"})
        except Exception as exc:
            raise ImportFailed(f"cannot write s3://{self.bucket}/{key}: {_s3_error(exc)}") from None
        finally:
            local_path.unlink(missing_ok=True)
        return f"s3://{self.bucket}/{key}"


def _s3_error(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return f"{type(exc).__name__}{f' ({code})' if code else ''}"


def open_source(uri: str, endpoint_url: str | None = None) -> Source:
    if uri.startswith("s3://"):
        return S3Source(uri, endpoint_url)
    return LocalSource(uri[len("file://") :] if uri.startswith("file://") else uri)


# --- reading rows -----------------------------------------------------------------------------


class _Counting:
    """Counts the raw bytes read (for the progress bar), whatever decompression follows."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.count = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.raw.close()


def _physical_lines(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """The stream's lines (with their ``\\n``), read a chunk at a time."""
    pending = b""
    while chunk := read(CHUNK):
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) != -1:
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
    if pending:
        yield pending


@dataclass
class _Row:
    line: int
    values: dict[str, Any] | None
    problem: Reject | None = None


class _Lines:
    """Decoded lines with their 1-based numbers; lines that do not decode are remembered."""

    def __init__(self, raw: Iterator[bytes], encoding: str) -> None:
        self.raw, self.encoding = raw, encoding
        self.number = 0
        self.consumed = 0  # bytes of the lines handed out so far
        self.undecodable: set[int] = set()

    def __iter__(self) -> Iterator[str]:
        for data in self.raw:
            self.number += 1
            self.consumed += len(data)
            try:
                text = data.decode(self.encoding)
            except UnicodeDecodeError:
                self.undecodable.add(self.number)
                text = data.decode(self.encoding, errors="replace")
            if self.number == 1:
                text = text.lstrip("\ufeff")  # Excel's byte order mark
            yield text


def _header_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def _csv_rows(lines: _Lines) -> Iterator[_Row]:
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        return
    # Russian spreadsheet exports use ";", others ",", some tabs: the header line tells.
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(_chain(first, iterator), delimiter=delimiter)
    header_start = lines.number
    try:
        header = [_header_name(h) for h in next(reader)]
    except (csv.Error, StopIteration):
        yield _Row(header_start, None, Reject(header_start, "", "the header line is not valid CSV"))
        return
    if not any(header):
        yield _Row(header_start, None, Reject(header_start, "", "the header line is empty"))
        return
    while True:
        start = lines.number + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Row(start, None, Reject(start, "", f"not valid CSV: {exc}"))
            continue
        if not record or all(not value.strip() for value in record):
            continue  # a blank line
        if any(n in lines.undecodable for n in range(start, lines.number + 1)):
            yield _Row(start, None, Reject(start, "", f"not valid {lines.encoding} text (see --encoding)"))
            continue
        if len(record) != len(header):
            reason = f"expected {len(header)} columns, found {len(record)}"
            yield _Row(start, None, Reject(start, "", reason))
            continue
        yield _Row(start, {name: value for name, value in zip(header, record, strict=True) if name})


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _jsonl_rows(lines: _Lines) -> Iterator[_Row]:
    for text in lines:
        number = lines.number
        if not text.strip():
            continue
        if number in lines.undecodable:
            yield _Row(number, None, Reject(number, "", f"not valid {lines.encoding} text (see --encoding)"))
            continue
        if len(text) > MAX_ROW_CHARS:
            yield _Row(number, None, Reject(number, "", f"longer than {MAX_ROW_CHARS} characters"))
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            reason = f"not valid JSON: {getattr(exc, 'msg', type(exc).__name__)}"
            yield _Row(number, None, Reject(number, "", reason))
            continue
        if not isinstance(value, dict):
            yield _Row(number, None, Reject(number, "", "expected a JSON object"))
            continue
        yield _Row(number, {_header_name(str(k)): v for k, v in value.items()})


def file_format(uri: str) -> Literal["csv", "jsonl"]:
    name = uri.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ImportFailed("the source must end in .csv or .jsonl (optionally .gz)")


# --- rows to events ---------------------------------------------------------------------------


def _blank_to_none(value: object) -> object:
    if isinstance(value, str):
        return value.strip() or None
    return value


class Customer(BaseModel):
    """One row of a customer base. Unknown columns are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    time: datetime | None = None
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    loyalty_card: str | None = Field(default=None, max_length=128)
    user_id: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=200)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=200)
    gender: str | None = Field(default=None, max_length=20)
    birthday: str | None = Field(default=None, max_length=20)
    # Where the customer came from, when the CRM kept it (the lead's UTM tags): the first touch.
    source: str | None = Field(
        default=None, max_length=200, validation_alias=AliasChoices("utm_source", "source")
    )
    medium: str | None = Field(
        default=None, max_length=200, validation_alias=AliasChoices("utm_medium", "medium")
    )
    campaign: str | None = Field(
        default=None, max_length=500, validation_alias=AliasChoices("utm_campaign", "campaign")
    )
    content: str | None = Field(
        default=None, max_length=500, validation_alias=AliasChoices("utm_content", "content")
    )
    term: str | None = Field(default=None, max_length=500, validation_alias=AliasChoices("utm_term", "term"))

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return _blank_to_none(value)

    @field_validator("time", mode="before")
    @classmethod
    def _russian_date(cls, value: object) -> object:
        if isinstance(value, str) and (match := _RU_DATE.match(value)):
            day, month, year, hour, minute, second = match.groups()
            return f"{year}-{month}-{day}T{int(hour or 0):02d}:{minute or '00'}:{second or '00'}"
        if isinstance(value, str) and value.isdigit():
            return int(value)  # unix seconds
        return value

    @model_validator(mode="after")
    def _has_customer(self) -> Customer:
        if not any(getattr(self, name) for name in IDENTIFIER_FIELDS):
            raise ValueError("needs a customer identifier: phone, email, loyalty_card or user_id")
        return self


def _pydantic_rejects(exc: ValidationError, line: int) -> list[Reject]:
    rejects = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        # A row-level rule (no customer identifier) has no field of its own.
        where = ".".join(str(part) for part in error["loc"]) or "identifiers"
        reason = error["msg"].removeprefix("Value error, ")
        rejects.append(Reject(line, where, reason))
    return rejects


def row_key(values: dict[str, Any]) -> str:
    """A hash of the row's content (column names and values, whatever their order)."""
    canonical = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass
class RowMapper:
    """Turns a file's rows into canonical events with stable ids."""

    source_id: str
    default_time: datetime
    tz: tzinfo = UTC  # the zone of times written without an offset
    extra_kinds: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # file header -> canonical column

    def __post_init__(self) -> None:
        self.source_key = hashlib.sha256(self.source_id.encode()).hexdigest()[:16]

    def rename(self, values: dict[str, Any]) -> dict[str, Any]:
        if not self.columns:
            return values
        return {self.columns.get(name, name): value for name, value in values.items()}

    def _aware(self, at: datetime) -> datetime:
        return at.replace(tzinfo=self.tz) if at.tzinfo is None else at

    def event(self, kind: str, values: dict[str, Any]) -> Event:
        """The row's event. Raises ``ValidationError``, ``ChannelError`` or ``RowError``."""
        event_id = f"import:{self.source_key}:{row_key(values)}"
        present = {k: v for k, v in values.items() if _blank_to_none(v) is not None}
        extra = {k: present[k] for k in self.extra_kinds if k in present}
        if kind == "orders":
            order = Order.model_validate(present)
            if order.time is None:
                raise RowError("time", "required for imported orders")
            order.time = self._aware(order.time)
            event = order.to_event().model_copy(update={"event_id": event_id})
            event.identifiers.update(extra)
            return event
        customer = Customer.model_validate(present)
        identifiers = {name: value for name in IDENTIFIER_FIELDS if (value := getattr(customer, name))}
        return build_event(
            event_id=event_id,
            type="identify",
            timestamp=self._aware(customer.time) if customer.time else self.default_time,
            channel="import",
            identifiers={**identifiers, **extra},
            traits=drop_empty({name: getattr(customer, name) for name in TRAIT_COLUMNS}),
            context=Context(**{name: getattr(customer, name) for name in ATTRIBUTION_COLUMNS}),
        )


# --- the import -------------------------------------------------------------------------------


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


def default_via(env: str | None = None) -> Via:
    """Queue in production or next to the Pub/Sub emulator; else apply directly."""
    env = env if env is not None else os.environ.get("SVYAZ_ENV", "development")
    return "queue" if env == "production" or os.environ.get("PUBSUB_EMULATOR_HOST") else "direct"


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
) -> ImportStats:
    """Stream ``source`` into the pipeline of ``rt``; write the rejects file next to it.

    ``progress``: None shows a bar on stderr only when it is a terminal. Raises
    ``ImportFailed`` when the source cannot be read or the queue or the store stays down."""
    from tqdm import tqdm

    started = time.monotonic()
    stats = ImportStats(source.uri, via, dry_run=dry_run)
    fmt = file_format(source.uri)
    policy = rt.policy  # queue mode needs neither the store nor the pepper
    reserved = {"order_id", "time", *IDENTIFIER_FIELDS}
    mapper = RowMapper(
        source_id or source.uri,
        source.modified or datetime.now(UTC),
        tz=tz,
        extra_kinds=tuple(k for k in policy.kinds if k not in reserved),
        columns={_header_name(k): _header_name(v) for k, v in (columns or {}).items()},
    )
    raw = _Counting(source.open())
    try:
        rejects = _RejectsFile(source.path.parent if isinstance(source, LocalSource) else None)
    except OSError as exc:
        raw.close()
        raise ImportFailed(f"cannot write the rejects file: {exc.strerror or type(exc).__name__}") from None
    packed = source.uri.lower().endswith(".gz")
    stream: Any = gzip.GzipFile(fileobj=raw) if packed else raw
    lines = _Lines(_physical_lines(stream.read), encoding)
    rows = _csv_rows(lines) if fmt == "csv" else _jsonl_rows(lines)
    bar = tqdm(
        total=source.size,
        unit="B",
        unit_scale=True,
        desc=f"import {source.uri.rsplit('/', 1)[-1]}",
        file=sys.stderr,
        disable=None if progress is None else not progress,
    )
    batch: list[tuple[int, Event]] = []
    reported = 0

    def reject(*items: Reject) -> None:
        stats.rejected += 1
        for item in items:
            rejects.write(item)

    def flush() -> None:
        nonlocal reported
        if batch and not dry_run:
            if via == "queue":
                _publish(rt, [e for _, e in batch], retries)
                stats.queued += len(batch)
            else:
                for (line, _), result in zip(batch, _apply_all(rt, batch, workers, retries), strict=True):
                    if isinstance(result, Reject):
                        reject(Reject(line, result.field, result.reason))
                    elif result:
                        stats.duplicates += 1
                    else:
                        stats.applied += 1
                _drain_local_updates(rt)
        batch.clear()
        position = raw.count if packed else lines.consumed  # compressed: chunks read
        bar.update(position - reported)
        reported = position

    try:
        for row in rows:
            stats.rows += 1
            if row.values is None:
                reject(row.problem or Reject(row.line, "", "unreadable row"))
                continue
            values = mapper.rename(row.values)
            if stats.kind == "unknown":
                stats.kind = "orders" if "order_id" in values else "customers"
            try:
                event = mapper.event(stats.kind, values)
                observation = observe(event, policy)
            except ValidationError as exc:
                reject(*_pydantic_rejects(exc, row.line))
                continue
            except RowError as exc:
                reject(Reject(row.line, exc.field, exc.reason))
                continue
            except ChannelError as exc:
                reject(*(Reject(row.line, d["field"], d["reason"]) for d in exc.details))
                continue
            except InvalidEvent as exc:
                reject(Reject(row.line, "identifiers", str(exc)))
                continue
            for dropped in observation.dropped:
                stats.ignored_values[dropped.kind] += 1
                rejects.write(
                    Reject(row.line, dropped.kind, f"{dropped.reason}; value ignored, row imported")
                )
            stats.valid += 1
            if event.type == "order":
                at = event.timestamp
                stats.first_order_at = min(stats.first_order_at or at, at)
                stats.last_order_at = max(stats.last_order_at or at, at)
            batch.append((row.line, event))
            if len(batch) >= batch_size:
                flush()
        flush()
    except (OSError, EOFError, zlib.error) as exc:  # a broken stream or a corrupt .gz
        rejects.close()
        rejects.path.unlink(missing_ok=True)
        where = f"{source.uri} after line {lines.number}"
        raise ImportFailed(f"cannot read {where}: {type(exc).__name__}") from None
    except BaseException:
        rejects.close()
        rejects.path.unlink(missing_ok=True)  # a failed run leaves no half rejects file behind
        raise
    finally:
        bar.close()
        stream.close()
        raw.close()
    rejects.close()
    stats.rejects_location = source.put_rejects(rejects.path)
    stats.seconds = time.monotonic() - started
    return stats


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
    """Direct mode publishes each outcome to the profile-updates topic; the in-process queue
    has no reader in a CLI run, so it is emptied to keep memory flat."""
    from svyaz.adapters.queue import LocalQueue

    if isinstance(rt.publisher, LocalQueue):
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
