"""Files of ``svyaz serve --data-dir``: append-only JSON-lines logs with group commit, files
replaced atomically, and a lock so that one process at a time owns a directory.

Why JSON lines and not SQLite: the memory store already funnels every commit through one path
(a batch of document writes, checked before it is applied), so persisting it is appending that
batch, one line, and replaying the lines at start; the documents stay the dicts the contract
suite tests, with no second data model to keep equal to them. A line is written whole or, after
a crash mid-write, is the torn last line of its file: ignored with a warning, as the commit it
held never returned. Lines are readable with any JSON tool.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("svyaz.adapters.datadir")


class DataDirError(RuntimeError):
    """The data directory cannot be used (locked by another process, corrupt, another pepper)."""


# --- values: JSON plus datetimes -------------------------------------------------------------
# A datetime is {"$dt": iso}; a stored dict whose only key is a tag (a sender may send one in an
# event's properties) is escaped as {"$map": [[key, value]]}, so decoding never invents a datetime.
_TAGS = ("$dt", "$map")


def _encoded(value: Any) -> Any:
    if isinstance(value, dict):
        items = {k: _encoded(v) for k, v in value.items()}
        if len(items) == 1 and next(iter(items)) in _TAGS:
            return {"$map": [[k, v] for k, v in items.items()]}
        return items
    if isinstance(value, list | tuple):
        return [_encoded(v) for v in value]
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


def _decoded(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "$dt" in obj:
            return datetime.fromisoformat(obj["$dt"])
        if "$map" in obj:
            return {k: v for k, v in obj["$map"]}
    return obj


def encode(value: Any) -> bytes:
    return json.dumps(_encoded(value), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> Any:
    return json.loads(line, object_hook=_decoded)


# --- files -------------------------------------------------------------------------------------
def read_lines(path: Path, each: Callable[[Any], None]) -> int:
    """Pass each record of a log to ``each``; the length of the log's valid part. A torn last
    line (a crash while it was written: its commit never returned) is left out with a warning;
    a bad line before the last means the file was damaged otherwise, and nothing is guessed."""
    valid = 0
    with path.open("rb") as file:
        for n, line in enumerate(file, 1):
            if not line.endswith(b"\n"):  # the last line, cut short (even if its JSON is whole)
                log.warning("%s: ignoring a torn last line (%d bytes) left by a crash", path.name, len(line))
                break
            try:
                record = decode(line)
            except ValueError:
                raise DataDirError(f"{path}: line {n} is damaged; restore it from a copy") from None
            each(record)
            valid += len(line)
    return valid


def write_atomic(path: Path, lines: Iterable[Any]) -> None:
    """Write a whole file or nothing: a temporary file, synced, then renamed over ``path``."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        for line in lines:
            file.write(encode(line))
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """A rename or a new file is durable once its directory is synced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AppendLog:
    """One append-only log file. ``append`` returns once its records are on disk; appends of
    concurrent threads share an fsync (group commit: a thread finding its records synced by
    another's fsync does not sync again)."""

    def __init__(self, path: Path, *, sync: bool = True, valid: int | None = None) -> None:
        self.path = path
        self.sync = sync
        self._file: IO[bytes] = path.open("ab")
        if valid is not None and self._file.tell() > valid:
            self._file.truncate(valid)  # the torn last line (``read_lines``): appends follow valid ones
            self._file.seek(valid)
        self.size = self._file.tell()
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._synced = self.size
        self.syncs = self.lines = self.bytes = 0  # since opened (benchmarks)
        if path.stat().st_size == 0:
            sync_directory(path.parent)  # a new file: its name must survive a crash too

    def append(self, records: list[Any]) -> None:
        self.sync_to(self.write(records))

    def write(self, records: list[Any]) -> int:
        """Hand the records to the OS (not yet durable: ``sync_to`` the returned offset)."""
        data = b"".join(encode(r) for r in records)
        with self._write_lock:
            start = self.size
            try:
                self._file.write(data)
                self._file.flush()
            except OSError:
                self._cut(start)  # no half line for the next append to follow
                raise
            self.size = start + len(data)
            self.lines += len(records)
            self.bytes += len(data)
            return self.size

    def _cut(self, size: int) -> None:
        try:
            self._file.truncate(size)
            self._file.seek(size)
        except OSError:
            log.error("%s: could not cut a failed write off; the next start ignores it", self.path.name)

    def sync_to(self, end: int) -> None:
        if not self.sync:
            return
        with self._sync_lock:
            if self._synced >= end:
                return  # another thread's fsync covered these bytes
            with self._write_lock:
                target = self.size
            os.fsync(self._file.fileno())
            self._synced = target
            self.syncs += 1

    def close(self) -> None:
        with self._write_lock:
            if not self._file.closed:
                self._file.flush()
                if self.sync:
                    os.fsync(self._file.fileno())
                self._file.close()


class DirectoryLock:
    """An exclusive lock on a directory for this process's lifetime (``flock``: released by
    the kernel when the process dies, so a ``kill -9`` leaves no stale lock)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._file = (directory / "LOCK").open("a")
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise DataDirError(f"{directory} is in use by another process (svyaz serve?)") from None

    def release(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()


