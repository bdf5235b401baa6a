"""The store ``svyaz bench`` measures: a fresh memory store, or Firestore (an emulator, emptied
first, or a real project the benchmark may fill with synthetic data)."""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Iterator

from svyaz.adapters.store.base import Store

BENCH_PROJECT = "svyaz-bench"
BENCH_PEPPER = b"svyaz-bench-pepper-not-a-secret"


def reset_emulator(host: str, project: str) -> None:
    """Delete every document of ``project`` on the Firestore emulator at ``host``."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass


@contextlib.contextmanager
def open_store(kind: str, *, project: str = BENCH_PROJECT, start_emulator: bool = False) -> Iterator[Store]:
    """The store to benchmark. Firestore: the emulator at ``FIRESTORE_EMULATOR_HOST`` (its
    ``project`` is emptied first), else one started here with ``start_emulator``, else the real
    Firestore of ``project``."""
    if kind == "memory":
        from svyaz.adapters.store.memory import MemoryStore

        yield MemoryStore(BENCH_PEPPER)
        return
    if kind != "firestore":
        raise ValueError(f"unknown store {kind!r} (memory or firestore)")
    from google.cloud import firestore

    from svyaz.adapters.store.firestore import FirestoreStore
    from svyaz.dev.emulators import Emulator

    emulator = None
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if not previous and start_emulator:
        emulator = Emulator("firestore").start()
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
    try:
        host = os.environ.get("FIRESTORE_EMULATOR_HOST")
        if host:
            reset_emulator(host, project)
        yield FirestoreStore(BENCH_PEPPER, client=firestore.Client(project=project))
    finally:
        if emulator is not None:
            emulator.stop()
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
