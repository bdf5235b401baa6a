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

from svyaz.adapters.store.base import LEDGER, Conflict, Duplicate, Store, Write


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


class StoreLedger(Ledger):
    """The ledger as documents of the memory store (``conversion_exports``, as on Firestore),
    so ``svyaz serve --data-dir`` keeps it in its data directory with the graph."""

    def __init__(self, pepper: bytes, store: Store) -> None:
        super().__init__(pepper)
        self._store = store

    def claim(self, target: str, keys: Iterable[str], batch: str) -> set[str]:
        claimed = set()
        for key in keys:
            entry = {"target": target, "batch": batch, "at": datetime.now(UTC)}
            try:
                self._store._commit([Write(LEDGER, self.entry_id(target, key), entry, "create")])
            except Duplicate:
                continue
            claimed.add(key)
        return claimed

    def release(self, target: str, keys: Iterable[str], batch: str) -> None:
        for key in keys:
            ref = (LEDGER, self.entry_id(target, key))
            found = self._store._get_found(ref)
            if found is not None and found.doc.get("batch") == batch:
                try:
                    self._store._commit([Write(*ref, None, "delete", found.revision)])
                except Conflict:
                    pass  # taken again meanwhile: no longer this batch's

    def forget(self, target: str, keys: Iterable[str]) -> None:
        for key in keys:
            self._store._commit([Write(LEDGER, self.entry_id(target, key), None, "delete")])


class FirestoreLedger(Ledger):
    """``conversion_exports/{keyed hash}``: target, batch, time. ``create`` is the claim."""

    COLLECTION = LEDGER

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
