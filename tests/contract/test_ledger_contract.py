"""The export ledger, one contract on both implementations (memory; Firestore on the emulator)."""

from __future__ import annotations

import threading

import pytest

from svyaz.adapters.ledger import FirestoreLedger, MemoryLedger, StoreLedger
from svyaz.adapters.store.base import LEDGER
from svyaz.adapters.store.journal import JournaledStore
from tests.conftest import PEPPER, PROJECT


@pytest.fixture(params=["memory", "memory+journal", pytest.param("firestore", marks=pytest.mark.emulator)])
def ledger(request):
    if request.param == "memory":
        return MemoryLedger(PEPPER)
    if request.param == "memory+journal":  # svyaz serve --data-dir: the store's own documents
        return StoreLedger(PEPPER, request.getfixturevalue("journaled_store"))
    from google.cloud import firestore

    request.getfixturevalue("firestore_emulator").reset_firestore(PROJECT)
    return FirestoreLedger(PEPPER, firestore.Client(project=PROJECT))


@pytest.fixture
def journaled_store(tmp_path):
    """The journaled store of ``tests/conftest.py``'s ``store`` (read back at the test's end)."""
    store = JournaledStore(PEPPER, tmp_path)
    yield store
    live = {collection: dict(docs) for collection, docs in store.docs.items()}
    store.reopen()
    assert store.docs == live and len(live[LEDGER]) == len(store.docs[LEDGER])
    store.close()


def test_claims_survive_a_restart_of_the_data_directory(tmp_path):
    store = JournaledStore(PEPPER, tmp_path)
    StoreLedger(PEPPER, store).claim("metrica", ["order:1", "order:2"], "b1")
    store.close()
    reopened = JournaledStore(PEPPER, tmp_path)
    assert StoreLedger(PEPPER, reopened).claim("metrica", ["order:2", "order:3"], "b2") == {"order:3"}
    reopened.close()


def test_a_key_is_claimed_once_per_target(ledger):
    assert ledger.claim("metrica", ["order:1", "order:2"], "b1") == {"order:1", "order:2"}
    assert ledger.claim("metrica", ["order:2", "order:3"], "b2") == {"order:3"}
    assert ledger.claim("google-ads", ["order:1"], "b3") == {"order:1"}


def test_release_gives_back_only_the_batch_s_own_claims(ledger):
    ledger.claim("metrica", ["order:1"], "b1")
    ledger.claim("metrica", ["order:2"], "b2")
    ledger.release("metrica", ["order:1", "order:2"], "b2")
    assert ledger.claim("metrica", ["order:1", "order:2"], "b3") == {"order:2"}


def test_forget_lets_a_key_be_exported_again(ledger):
    ledger.claim("metrica", ["order:1"], "b1")
    ledger.forget("metrica", ["order:1"])
    assert ledger.claim("metrica", ["order:1"], "b2") == {"order:1"}


def test_concurrent_runs_never_both_take_a_key(ledger):
    keys = [f"order:{n}" for n in range(20)]
    taken: list[set[str]] = []
    threads = [
        threading.Thread(target=lambda b=b: taken.append(ledger.claim("metrica", keys, b))) for b in "ab"
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken[0].isdisjoint(taken[1]) and taken[0] | taken[1] == set(keys)


def test_entry_ids_hold_no_order_id(ledger):
    assert "S-77" not in ledger.entry_id("metrica", "order:S-77")
