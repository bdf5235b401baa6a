"""What a block-and-split costs: documents read and written, transactions and commits, counted
at the Firestore RPC level on the emulator, for profiles of growing size.

    python3 -m svyaz.bench.split --identifiers 10 1000 10000

Each profile is two customers merged by one shared phone, each with half of the identifiers
(one email and session ids) and five touchpoints per identifier, written straight into the
store (populating 50,000 touchpoints event by event would measure the engine, not the split).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from svyaz.adapters.store.base import Store
from svyaz.app.splits import Splitter, new_request
from svyaz.domain.model import Identifier, IdentifierRecord, Profile, Touchpoint
from svyaz.identity.policy import Policy

PHONE = Identifier("phone", "+79091234567")
START = datetime(2026, 1, 1, tzinfo=UTC)
# Sessions without a practical limit: a 10,000-identifier profile is beyond the default limits.
BIG = Policy.from_mapping({"kinds": {"session_id": {"limit": 100_000}}})


class RpcCounter:
    """Wraps a Firestore client's API object: counts documents read (BatchGet found, RunQuery
    results), documents written (Commit writes), transactions begun and commits."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        api = client._firestore_api  # noqa: SLF001 - the one place every RPC passes through
        counts = self.counts

        def counting_stream(method: Any, name: str, field: str) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                for response in method(*args, **kwargs):
                    if getattr(response, field, None):
                        counts[name] += 1
                    yield response

            return call

        def counting_commit(method: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                request = kwargs.get("request") or (args[0] if args else {})
                writes = request.get("writes", []) if isinstance(request, dict) else request.writes
                counts["documents_written"] += len(writes)
                counts["commits"] += 1
                return method(*args, **kwargs)

            return call

        def counting(method: Any, name: str) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                counts[name] += 1
                return method(*args, **kwargs)

            return call

        api.batch_get_documents = counting_stream(api.batch_get_documents, "documents_read", "found")
        api.run_query = counting_stream(api.run_query, "documents_read", "document")
        api.commit = counting_commit(api.commit)
        api.begin_transaction = counting(api.begin_transaction, "transactions")


def populate(store: Store, identifiers: int, profile_id: str = "merged0000") -> str:
    """One profile of ``identifiers`` identifiers (two customers sharing PHONE) and five
    touchpoints per identifier, written in batches."""
    profile = Profile(profile_id, "active", START, START)
    records: list[IdentifierRecord] = []
    touchpoints: list[Touchpoint] = []
    half = max(1, (identifiers - 3) // 2)
    for customer in range(2):
        email = Identifier("email", f"customer{customer}@mail.ru")
        sessions = [Identifier("session_id", f"s{customer}-{i}") for i in range(half)]
        for n in range(5 * (half + 1)):
            at = START + timedelta(minutes=customer * 10 * identifiers + n)
            carried = [email, sessions[n % half]] + ([PHONE] if n == 0 else [])
            touchpoints.append(
                Touchpoint(f"c{customer}-e{n}", profile_id, "page", "web", at, {}, {}, carried, {})
            )
        for identifier in [email, *sessions] + ([PHONE] if customer == 0 else []):
            at = START + timedelta(minutes=customer * 10 * identifiers)
            records.append(IdentifierRecord(identifier, profile_id, at, at, f"c{customer}-e0", email))
    for record in records:
        profile.add(record.identifier)
    profile.last_seen = touchpoints[-1].timestamp
    profile.counters = {"events": len(touchpoints), "type_page": len(touchpoints)}
    _write(store, profile, records, touchpoints)
    return profile_id


def _write(
    store: Store, profile: Profile, records: list[IdentifierRecord], touchpoints: list[Touchpoint]
) -> None:
    from svyaz.adapters.store.memory import MemoryStore

    if isinstance(store, MemoryStore):
        store.profiles[profile.profile_id] = profile.to_doc()
        for record in records:
            store.identifiers[store.keys.identifier(record.identifier)] = record.to_doc()
        for touchpoint in touchpoints:
            store.touchpoint_docs[store.keys.event(touchpoint.name)] = touchpoint.to_doc()
        return
    client = store.client  # type: ignore[attr-defined]
    docs = [(client.collection("profiles").document(profile.profile_id), profile.to_doc())]
    docs += [
        (client.collection("identifiers").document(store.keys.identifier(r.identifier)), r.to_doc())
        for r in records
    ]
    docs += [
        (client.collection("touchpoints").document(store.keys.event(t.name)), t.to_doc()) for t in touchpoints
    ]
    for start in range(0, len(docs), 400):
        batch = client.batch()
        for ref, doc in docs[start : start + 400]:
            batch.set(ref, doc)
        batch.commit()


def measure(store: Store, identifiers: int, budget: float = 40.0) -> dict[str, Any]:
    profile_id = populate(store, identifiers)
    counter = RpcCounter(store.client) if hasattr(store, "client") else None
    request = new_request(profile_id, PHONE, "bench")
    store.create_split(request)
    splitter, invocations, started = Splitter(store, BIG), 1, time.perf_counter()
    while (done := splitter.run(request.request_id, budget)) is None:
        invocations += 1
    elapsed = time.perf_counter() - started
    return {
        "identifiers": identifiers,
        "touchpoints": 5 * identifiers,
        "state": done.state,
        "profiles": len(done.result["profile_ids"]),
        "chunks": done.parts,
        "invocations": invocations,
        "seconds": round(elapsed, 2),
        **(dict(counter.counts) if counter else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m svyaz.bench.split", description=__doc__)
    parser.add_argument("--identifiers", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--budget", type=float, default=40.0, help="seconds per invocation")
    args = parser.parse_args(argv)
    from google.cloud import firestore

    from svyaz.adapters.store.firestore import FirestoreStore
    from svyaz.dev.emulators import Emulator

    columns = ["identifiers", "touchpoints", "chunks", "transactions", "commits"]
    columns += ["documents_read", "documents_written", "invocations", "seconds"]
    print(" | ".join(columns))
    with Emulator("firestore") as emulator:
        emulator.export()
        for n in args.identifiers:
            emulator.reset_firestore("svyaz-bench")
            store = FirestoreStore(
                b"bench-pepper-0123456789abcdef", client=firestore.Client(project="svyaz-bench")
            )
            row = measure(store, n, args.budget)
            print(" | ".join(str(row.get(c, 0)) for c in columns), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
