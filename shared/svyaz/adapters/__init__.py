"""Adapters to the outside: the store (memory and Firestore behind one interface) and the queue
(Pub/Sub and the in-process queue)."""
