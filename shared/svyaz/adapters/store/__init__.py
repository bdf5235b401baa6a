"""One store interface (``base.Store``), two implementations: in-memory and Firestore."""

from svyaz.adapters.store.base import Contention, Store, StoreError

__all__ = ["Contention", "Store", "StoreError"]
