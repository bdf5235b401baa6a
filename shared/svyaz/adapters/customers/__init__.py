"""The customer directory: the journal's read side over all customers (port and adapters)."""

from __future__ import annotations

from svyaz.adapters.customers.base import CustomerDirectory
from svyaz.adapters.store.base import Store


def directory_for(store: Store) -> CustomerDirectory:
    """The directory that answers over this store's documents."""
    from svyaz.adapters.store.memory import MemoryStore

    if isinstance(store, MemoryStore):
        from svyaz.adapters.customers.memory import MemoryDirectory

        return MemoryDirectory(store)
    from svyaz.adapters.customers.firestore import FirestoreDirectory

    return FirestoreDirectory(store)  # type: ignore[arg-type]
