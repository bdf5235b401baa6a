"""What each journal page costs in Firestore reads, measured on the emulator: every billed read
the page's requests make, counted at the Firestore API (documents returned by a get or a query,
a query that returns none, an aggregation query), 40 customers in the store.

The numbers are the table in docs/journal.md ("What each page costs"); this test compares them,
so the page says what the code does. ``-s`` prints the measured table."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from svyaz.app import runtime
from svyaz.dev.journal_shots import FAMILY_PHONE, population
from svyaz.domain.events import Event
from svyaz.domain.model import Identifier
from tests.conftest import make_firestore_store
from tests.pipeline_support import client, deliver_all, install

pytestmark = pytest.mark.emulator
HTTPS = "https://localhost"
KEY = "journal-reads"
DOC = Path(__file__).resolve().parents[2] / "docs" / "journal.md"


class ReadCounter:
    """Wraps the Firestore client's API calls that read, counting as Firestore bills: one read
    per document a get or query returns (a missing document asked by a get too), one for a
    query that returns nothing, and one per aggregation query (per 1,000 index entries it scans:
    fewer than 1,000 customers here)."""

    def __init__(self, api: Any) -> None:
        self.reads = 0
        for name, count in (
            ("batch_get_documents", self._gets),
            ("run_query", self._query),
            ("run_aggregation_query", self._aggregation),
        ):
            setattr(api, name, self._counting(getattr(api, name), count))

    def _counting(self, call, count):
        def wrapped(*args: Any, **kwargs: Any) -> Iterator[Any]:
            return count(call(*args, **kwargs))

        return wrapped

    def _gets(self, responses: Iterator[Any]) -> Iterator[Any]:
        for response in responses:
            self.reads += response._pb.WhichOneof("result") in ("found", "missing")
            yield response

    def _query(self, responses: Iterator[Any]) -> Iterator[Any]:
        documents = 0
        for response in responses:
            documents += bool(response._pb.HasField("document"))
            yield response
        self.reads += max(documents, 1)

    def _aggregation(self, responses: Iterator[Any]) -> Iterator[Any]:
        yield from responses
        self.reads += 1


def _event(event_id: str, type: str, at, identifiers: dict, **fields: Any) -> Event:
    return Event(event_id=event_id, type=type, timestamp=at, identifiers=identifiers, **fields)


def customers() -> list[Event]:
    """40 customers: the screenshots' sample (the seed's Ekaterina and Vasily, Anna and Boris
    joined by their family phone, ten more), 27 visitors with a lead and some an order, and
    one (Lev) with 120 page views."""
    events = population()
    start = events[0].timestamp
    for n in range(27):
        at = start + timedelta(hours=7 * n)
        ids = {"client_id": f"visitor-{n}"}
        events.append(_event(f"v{n}", "page", at, ids))
        contact = {**ids, "phone": f"+7916{4000000 + n}"}
        name = {"first_name": f"Гость {n}"}
        events.append(_event(f"v{n}-lead", "lead", at + timedelta(minutes=5), contact, traits=name))
        if n % 3 == 0:
            properties = {"order_id": f"V-{n}", "amount": "4990.00"}
            events.append(_event(f"v{n}-order", "order", at + timedelta(days=1), ids, properties=properties))
    lev = {"client_id": "lev"}
    events.append(
        _event("lev-lead", "lead", start, {**lev, "email": "lev@example.ru"}, traits={"first_name": "Лев"})
    )
    for n in range(119):
        page = {"page_url": f"https://shop.example/{n}"}
        events.append(_event(f"lev-{n}", "page", start + timedelta(minutes=n + 1), lev, context=page))
    return events


def form_token(page) -> str:
    return re.search(r'name="csrf" value="([^"]*)"', page.get_data(as_text=True))[1]


@pytest.fixture(scope="module")
def journal(firestore_emulator):
    rt = install(make_firestore_store(firestore_emulator), journal_keys=[KEY])
    for event in customers():
        rt.service.apply(event)
    deliver_all(rt)  # the follow-up jobs: order credit, merges' repointing, the fold of the aggregates
    web = client("profiles")
    form = web.get("/journal/signin", base_url=HTTPS)
    web.post("/journal/signin", data={"csrf": form_token(form), "key": KEY}, base_url=HTTPS)
    yield rt, web
    runtime.install(None)


def measured(rt, request) -> tuple[int, Any]:
    counter = ReadCounter(rt.store.client._firestore_api)
    try:
        answer = request()
    finally:
        api = rt.store.client._firestore_api
        for name in ("batch_get_documents", "run_query", "run_aggregation_query"):
            delattr(api, name)  # back to the class's method
    assert answer.status_code in (200, 303), answer.get_data(as_text=True)[:500]
    shown = re.search(r'<span id="reads">(\d+)</span>', answer.get_data(as_text=True))
    if shown:  # the list's footer says what its page cost: what Firestore billed
        assert int(shown[1]) == counter.reads
    return counter.reads, answer


def pages(rt, web) -> dict[str, int]:
    """Each page a marketer opens, in the order of docs/journal.md's table."""
    get = lambda path: lambda: web.get(path, base_url=HTTPS)  # noqa: E731
    token = form_token(web.get("/journal/", base_url=HTTPS))
    reads: dict[str, int] = {}
    reads["sign-in form"], _ = measured(rt, get("/journal/signin"))
    reads["totals and the first page of the list"], first = measured(rt, get("/journal/"))
    after = re.search(r'href="(/journal/\?after=[^"]+)"', first.get_data(as_text=True))[1].replace(
        "&amp;", "&"
    )
    assert 'id="reads"' in first.get_data(as_text=True)  # the footer was compared
    reads["the next page of the list"], _ = measured(rt, get(after))
    reads["the list filtered (source=vk, with orders)"], _ = measured(rt, get("/journal/?source=vk&orders=1"))
    reads["the list of a period (from, to)"], _ = measured(rt, get("/journal/?from=2026-11-01&to=2026-11-10"))
    search = lambda q: lambda: web.post("/journal/search", data={"csrf": token, "q": q}, base_url=HTTPS)  # noqa: E731
    reads["search by a phone"], _ = measured(rt, search("8 (916) 555-01-02"))
    reads["search by a name"], _ = measured(rt, search("Екатерина"))
    ekaterina = rt.store.lookup(Identifier("phone", "+79165550102")).profile_id
    reads["Ekaterina's card (5 touches, 4 identifiers)"], _ = measured(
        rt, get(f"/journal/customers/{ekaterina}")
    )
    family = rt.store.lookup(Identifier("phone", FAMILY_PHONE)).profile_id
    reads["Anna and Boris's card (merged; 8 touches, 5 identifiers)"], _ = measured(
        rt, get(f"/journal/customers/{family}")
    )
    lev = rt.store.lookup(Identifier("client_id", "lev")).profile_id
    reads["Lev's card (120 touches): first page"], card = measured(rt, get(f"/journal/customers/{lev}"))
    older = re.search(r'id="older" href="([^"]+)"', card.get_data(as_text=True))[1].replace("&amp;", "&")
    reads["Lev's card: the next page of touches"], _ = measured(rt, get(older))
    reads["split confirmation (Anna and Boris)"], confirm = measured(
        rt, get(f"/journal/customers/{family}/split")
    )
    html = confirm.get_data(as_text=True)
    phone = re.search(r'name="block" value="(\w+)" required> <span><strong>Телефон', html)[1]
    form = {"csrf": token, "confirm": family, "block": phone, "reason": "общий телефон"}
    reads["split: the POST that queues it"], done = measured(
        rt, lambda: web.post(f"/journal/customers/{family}/split", data=form, base_url=HTTPS)
    )
    reads["split: its page while queued"], _ = measured(rt, get(done.headers["Location"]))
    deliver_all(rt)
    reads["split: its page when done (2 customers)"], _ = measured(rt, get(done.headers["Location"]))
    reads["erase confirmation"], _ = measured(rt, get(f"/journal/customers/{ekaterina}/erase"))
    reads["erase: the POST that queues it"], _ = measured(
        rt,
        lambda: web.post(
            f"/journal/customers/{ekaterina}/erase",
            data={"csrf": token, "confirm": ekaterina},
            base_url=HTTPS,
        ),
    )
    return reads


def documented() -> dict[str, int]:
    """The table of docs/journal.md: | page | reads |."""
    section = DOC.read_text().split("## What each page costs", 1)[1].split("\n## ", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| (.+?) \| (\d+) \|", section, re.M)}


def test_docs_state_the_reads_each_journal_page_costs(journal):
    rt, web = journal
    reads = pages(rt, web)
    for page, n in reads.items():
        print(f"| {page} | {n} |")
    assert reads == documented()
