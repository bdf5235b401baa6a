"""Reading rows: a byte stream as numbered lines, then as CSV (delimiter from the header line)
or JSON Lines rows; a row that cannot be read becomes a ``Reject`` (line, field, reason; never
the row's content)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from svyaz.imports.sources import ImportFailed

CHUNK = 1 << 20
MAX_ROW_CHARS = 64 * 1024


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


class Counting:
    """Counts the raw bytes read (for the progress bar), whatever decompression follows."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.count = raw, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.raw.close()


def physical_lines(read: Callable[[int], bytes]) -> Iterator[bytes]:
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
class Row:
    line: int
    values: dict[str, Any] | None
    problem: Reject | None = None


# Bytes never found in text (tabs, CR, LF, FF and ESC are): a file starting with them is binary.
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
BINARY_PROBE = 8192  # bytes at the start of the file checked for them


class Lines:
    """Decoded lines with their 1-based numbers; lines that do not decode are remembered."""

    def __init__(self, raw: Iterator[bytes], encoding: str) -> None:
        self.raw, self.encoding = raw, encoding
        self.number = 0
        self.consumed = 0  # bytes of the lines handed out so far
        self.undecodable: set[int] = set()
        self.binary = False  # control bytes in the first BINARY_PROBE bytes: not a text file

    def __iter__(self) -> Iterator[str]:
        wide = self.encoding.lower().replace("-", "").startswith(("utf16", "utf32"))
        for data in self.raw:
            self.number += 1
            self.consumed += len(data)
            if self.consumed - len(data) < BINARY_PROBE and not wide and _CONTROL.search(data):
                self.binary = True
            try:
                text = data.decode(self.encoding)
            except UnicodeDecodeError:
                self.undecodable.add(self.number)
                text = data.decode(self.encoding, errors="replace")
            if self.number == 1:
                text = text.lstrip("\ufeff")  # Excel's byte order mark
            yield text


def header_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def csv_rows(lines: Lines) -> Iterator[Row]:
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        return
    # Russian spreadsheet exports use ";", others ",", some tabs: the header line tells.
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(_chain(first, iterator), delimiter=delimiter)
    header_start = lines.number
    try:
        header = [header_name(h) for h in next(reader)]
    except (csv.Error, StopIteration):
        yield Row(header_start, None, Reject(header_start, "", "the header line is not valid CSV"))
        return
    if not any(header):
        yield Row(header_start, None, Reject(header_start, "", "the header line is empty"))
        return
    while True:
        start = lines.number + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(start, None, Reject(start, "", f"not valid CSV: {exc}"))
            continue
        if not record or all(not value.strip() for value in record):
            continue  # a blank line
        if any(n in lines.undecodable for n in range(start, lines.number + 1)):
            yield Row(start, None, Reject(start, "", f"not valid {lines.encoding} text (see --encoding)"))
            continue
        if len(record) != len(header):
            reason = f"expected {len(header)} columns, found {len(record)}"
            yield Row(start, None, Reject(start, "", reason))
            continue
        yield Row(start, {name: value for name, value in zip(header, record, strict=True) if name})


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def jsonl_rows(lines: Lines) -> Iterator[Row]:
    for text in lines:
        number = lines.number
        if not text.strip():
            continue
        if number in lines.undecodable:
            yield Row(number, None, Reject(number, "", f"not valid {lines.encoding} text (see --encoding)"))
            continue
        if len(text) > MAX_ROW_CHARS:
            yield Row(number, None, Reject(number, "", f"longer than {MAX_ROW_CHARS} characters"))
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            reason = f"not valid JSON: {getattr(exc, 'msg', type(exc).__name__)}"
            yield Row(number, None, Reject(number, "", reason))
            continue
        if not isinstance(value, dict):
            yield Row(number, None, Reject(number, "", "expected a JSON object"))
            continue
        yield Row(number, {header_name(str(k)): v for k, v in value.items()})


def file_format(uri: str) -> Literal["csv", "jsonl"]:
    name = uri.lower().removesuffix(".gz")
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise ImportFailed("the source must end in .csv or .jsonl (optionally .gz)")
