"""The export ledger: which conversions went to which ad system, so a re-run (the daily schedule,
a retried function, a second `svyaz export`) never sends one twice.

A conversion is *claimed* (created only if absent, so two concurrent runs cannot both take it)
before its file is written or uploaded, and *released* if the upload fails. Entries are keyed by a
keyed hash of target and touchpoint name: no order id or other customer data in a document path.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any


class Ledger(ABC):
    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper

    def entry_id(self, target: str, key: str) -> str:
        return hmac.new(self._pepper, f"export:{target}:{key}".encode(), hashlib.sha256).hexdigest()

    @abstractmethod
    def claim(self, target: str, keys: Iterable[str], batch: str) -> set[str]:
        """Record each key not yet recorded for the target; return those this call recorded."""

    @abstractmethod
    def release(self, target: str, keys: Iterable[str], batch: str) -> None:
        """Forget keys this batch claimed (its upload failed): the next run takes them again."""

    @abstractmethod
    def forget(self, target: str, keys: Iterable[str]) -> None:
        """Forget keys whatever batch took them (``svyaz export --again``)."""


class MemoryLedger(Ledger):
    def __init__(self, pepper: bytes = b"svyaz-memory") -> None:
        super().__init__(pepper)
        self._lock = threading.Lock()
        self.entries: dict[str, dict[str, Any]] = {}

    def claim(self, target: str, keys: Iterable[str], batch: str) -> set[str]:
        claimed = set()
        with self._lock:
            for key in keys:
                entry = self.entry_id(target, key)
                if entry not in self.entries:
                    self.entries[entry] = {"target": target, "batch": batch, "at": datetime.now(UTC)}
                    claimed.add(key)
        return claimed

    def release(self, target: str, keys: Iterable[str], batch: str) -> None:
        with self._lock:
            for key in keys:
                entry = self.entry_id(target, key)
                if self.entries.get(entry, {}).get("batch") == batch:
                    del self.entries[entry]

    def forget(self, target: str, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self.entries.pop(self.entry_id(target, key), None)


class FirestoreLedger(Ledger):
    """``conversion_exports/{keyed hash}``: target, batch, time. ``create`` is the claim."""

    COLLECTION = "conversion_exports"

    def __init__(self, pepper: bytes, client: Any) -> None:
        super().__init__(pepper)
        self._client = client
        self._entries = client.collection(self.COLLECTION)

    def claim(self, target: str, keys: Iterable[str], batch: str) -> set[str]:
        from google.api_core import exceptions

        claimed = set()
        for key in keys:
            try:
                self._entries.document(self.entry_id(target, key)).create(
                    {"target": target, "batch": batch, "at": datetime.now(UTC)}
                )
            except exceptions.AlreadyExists:
                continue
            claimed.add(key)
        return claimed

    def release(self, target: str, keys: Iterable[str], batch: str) -> None:
        for key in keys:
            ref = self._entries.document(self.entry_id(target, key))
            snapshot = ref.get()
            if snapshot.exists and (snapshot.to_dict() or {}).get("batch") == batch:
                ref.delete(option=self._client.write_option(last_update_time=snapshot.update_time))

    def forget(self, target: str, keys: Iterable[str]) -> None:
        for key in keys:
            self._entries.document(self.entry_id(target, key)).delete()
