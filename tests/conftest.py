"""Test rings: unit tests first, then the contract suite on memory, then the real browser (marked
``browser``: Debian's Chromium through Playwright), then infra, then everything that needs the
real emulators (marked ``emulator``; the session starts them once and stops them)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from svyaz.adapters.store.journal import JournaledStore
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app import runtime
from svyaz.app.service import IdentityService
from svyaz.dev.emulators import Emulator
from svyaz.identity.policy import Policy

# Commands under test never find a developer's running `svyaz serve` (svyaz.dev.client.discover).
os.environ["SVYAZ_STATE_DIR"] = tempfile.mkdtemp(prefix="svyaz-test-state-")
os.environ.pop("SVYAZ_URL", None)

PROJECT = "svyaz-test"
PEPPER = b"test-pepper-0123456789abcdef0123456789"


def _ring(item: pytest.Item) -> int:
    path = str(item.path)
    if item.get_closest_marker("emulator"):
        return 4
    if "/unit/" in path:
        return 0
    if item.get_closest_marker("browser"):
        return 2
    if "/infra/" in path:
        return 3
    return 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_ring)  # stable: keeps file order inside a ring


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[Emulator]:
    with Emulator("firestore") as emulator:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host
        yield emulator


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[Emulator]:
    with Emulator("pubsub") as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        yield emulator


def make_firestore_store(emulator: Emulator, **options: object):
    from google.cloud import firestore

    from svyaz.adapters.store.firestore import FirestoreStore

    emulator.reset_firestore(PROJECT)
    return FirestoreStore(PEPPER, client=firestore.Client(project=PROJECT), **options)


@pytest.fixture
def firestore_store(firestore_emulator: Emulator):
    return make_firestore_store(firestore_emulator)


@pytest.fixture(params=["memory", "memory+journal", pytest.param("firestore", marks=pytest.mark.emulator)])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Each store of the contract suite. ``memory+journal`` (``svyaz serve --data-dir``): at the
    test's end the store is read back from its directory and must hold the same documents (tests
    may also ``restart(store)`` before their assertions)."""
    if request.param == "memory":
        yield MemoryStore(PEPPER)
    elif request.param == "memory+journal":
        store = JournaledStore(PEPPER, tmp_path_factory.mktemp("data"), compact_bytes=64 * 1024)
        yield store
        live = {collection: dict(docs) for collection, docs in store.docs.items()}
        store.reopen()
        assert store.docs == live, "the data directory reads back other documents than the live store's"
        store.close()
    else:
        yield make_firestore_store(request.getfixturevalue("firestore_emulator"))


def restart(store) -> None:
    """What a restart of ``svyaz serve --data-dir`` does to the store (nothing for the others)."""
    if isinstance(store, JournaledStore):
        store.reopen()


@pytest.fixture
def policy() -> Policy:
    return Policy.default()


@pytest.fixture
def service(store, policy: Policy) -> IdentityService:
    return IdentityService(store, policy)


@pytest.fixture
def memory_service(policy: Policy) -> IdentityService:
    return IdentityService(MemoryStore(PEPPER), policy)


@pytest.fixture(autouse=True)
def _no_runtime_outlives_its_test() -> Iterator[None]:
    """Whatever runtime a test installed for the functions is gone before the next test."""
    yield
    runtime.install(None)


def _settings_overrides(request: pytest.FixtureRequest) -> dict:
    """``svyaz_settings`` markers merged, a test's over its class's over its module's."""
    overrides: dict = {}
    for marker in reversed(list(request.node.iter_markers("svyaz_settings"))):
        overrides.update(marker.kwargs)
    return overrides


@pytest.fixture
def rt(request: pytest.FixtureRequest) -> runtime.Runtime:
    """The functions' runtime, installed: the test settings of ``tests.pipeline_support`` (keys
    ``WRITE_KEY`` / ``API_KEY``) with ``@pytest.mark.svyaz_settings(...)``'s overrides, a memory
    store and an in-process queue."""
    from tests.pipeline_support import install

    return install(**_settings_overrides(request))


@pytest.fixture
def svyaz_service(request: pytest.FixtureRequest) -> Iterator:
    """``svyaz serve`` on a free port (every function under its path and the worker) over a
    runtime like ``rt``'s, not installed: requests reach it over real HTTP only."""
    from tests.pipeline_support import build, served

    with served(build(**_settings_overrides(request))) as service:
        yield service
