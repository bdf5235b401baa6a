"""The warehouse side: the messages process_event publishes for the BigQuery subscriptions match
the table schemas in infra/bigquery/, and the attribution view over those tables — the same SQL,
run by DuckDB — gives the numbers `svyaz report attribution` gives on the same data.

The data: the seed's two journeys (`svyaz demo`) and customers that exercise what the view must
get right: an order that arrives before the ad click that explains it (a merge afterwards), a
refunded and a cancelled order, direct-only visits, a touch older than the look-back window, an
erased customer, and duplicate deliveries."""

from __future__ import annotations

import json
import pathlib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from svyaz.adapters.queue import LocalQueue, erase_message, event_message
from svyaz.adapters.store.memory import MemoryStore
from svyaz.app import runtime
from svyaz.app.config import Settings
from svyaz.app.reports import attribution
from svyaz.dev.demo import JOURNEYS
from svyaz.domain.events import Event
from svyaz.domain.model import Identifier
from svyaz.entrypoints.process import apply_message
from tests.conftest import PEPPER

duckdb = pytest.importorskip("duckdb")

BIGQUERY = pathlib.Path(__file__).resolve().parents[3] / "infra" / "bigquery"
UPDATES, TOUCHES = "svyaz-profile-updates", "svyaz-touchpoints"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def ev(event_id: str, type_: str, days: float, ids: dict, channel="web", ad=None, **properties) -> Event:
    return Event(
        event_id=event_id,
        type=type_,
        timestamp=at(days),
        channel=channel,
        identifiers=ids,
        context=ad or {},
        properties=properties,
    )


YANDEX = {"source": "yandex", "medium": "cpc", "campaign": "sofas"}
VK = {"source": "vk", "medium": "social", "campaign": "kitchens"}


def more_customers() -> list[Event]:
    return [
        # Olga: buys at the till by phone first; a day later the call-tracking notice of her call
        # from a site session (that had clicked a Yandex ad the week before) links both.
        ev("olga-order", "order", 10, {"phone": "+79031112233"}, "store", order_id="T-1", amount="50000.00"),
        ev("olga-ad", "page", 3, {"client_id": "olga-c", "session_id": "s-olga"}, ad=YANDEX),
        ev("olga-call", "call", 9, {"phone": "+79031112233", "session_id": "s-olga"}, "calltracking"),
        # Ivan: a direct visit and an order online, then a second order he cancels.
        ev("ivan-page", "page", 2, {"client_id": "ivan-c"}, ad={"source": "direct"}),
        ev("ivan-o1", "order", 2.1, {"client_id": "ivan-c"}, order_id="W-7", amount="1990.50"),
        ev("ivan-o2", "order", 4, {"client_id": "ivan-c"}, order_id="W-8", amount="700", status="new"),
        ev("ivan-o2x", "order", 5, {"client_id": "ivan-c"}, order_id="W-8", amount="700", status="cancelled"),
        # Nina: a VK click long ago (outside the 90-day window for the last touch) and a recent
        # Yandex click; a paid till order, later refunded... and a second one kept.
        ev("nina-old", "page", -120, {"client_id": "nina-c"}, ad=VK),
        ev("nina-new", "page", 20, {"client_id": "nina-c", "phone": "+79035550000"}, ad=YANDEX),
        ev(
            "nina-o1",
            "order",
            21,
            {"phone": "+79035550000"},
            "crm",
            order_id="C-1",
            amount="30000",
            currency="RUB",
        ),
        ev(
            "nina-o1r",
            "order",
            22,
            {"phone": "+79035550000"},
            "crm",
            order_id="C-1",
            amount="30000",
            status="refunded",
        ),
        ev(
            "nina-o2",
            "order",
            23,
            {"phone": "+79035550000"},
            "crm",
            order_id="C-2",
            amount="12000",
            currency="EUR",
        ),
        # Pavel: an ad, an order, and then he asks to be forgotten.
        ev("pavel-ad", "page", 5, {"client_id": "pavel-c"}, ad=VK),
        ev("pavel-o", "order", 6, {"client_id": "pavel-c"}, order_id="W-9", amount="999"),
    ]


def run_pipeline() -> tuple[runtime.Runtime, list[dict], list[dict]]:
    """Every event through process_event's own code, twice for some (redelivery); the messages
    the BigQuery subscriptions would receive, with the metadata columns they add."""
    settings = Settings(touchpoints_topic=TOUCHES, profile_updates_topic=UPDATES)
    rt = runtime.build(settings, store=MemoryStore(PEPPER), publisher=LocalQueue())
    events = [e for journey in JOURNEYS.values() for e in journey()] + more_customers()
    for event in events:
        apply_message(event_message(event), rt)
    for event in events[:3]:  # duplicate deliveries
        apply_message(event_message(event), rt)
    run_follow_ups(rt)
    pavel = rt.store.lookup(Identifier("client_id", "pavel-c"))
    apply_message(erase_message(pavel.profile_id), rt)
    return rt, rows(rt.publisher, UPDATES), rows(rt.publisher, TOUCHES)


def run_follow_ups(rt: runtime.Runtime) -> None:
    """The follow-up jobs the events queued (order credit, re-pointing, folds), as the
    function receives them from the events topic."""
    while messages := rt.publisher.drain(rt.settings.events_topic):
        for message in messages:
            apply_message(message, rt)


def rows(queue: LocalQueue, topic: str) -> list[dict]:
    out = []
    for n, message in enumerate(queue.drain(topic)):
        row = json.loads(message.data)
        row |= {
            "subscription_name": f"projects/p/subscriptions/{topic}-bigquery",
            "message_id": message.message_id,
            "publish_time": int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1e6) + n,
            "attributes": json.dumps(message.attributes),
        }
        out.append(row)
    return out


@pytest.fixture(scope="module")
def warehouse():
    rt, updates, touches = run_pipeline()
    yield rt, updates, touches
    runtime.install(None)


# --------------------------------------------------------------------------- messages vs schemas


def schema(name: str) -> list[dict]:
    return json.loads((BIGQUERY / f"{name}.json").read_text())


def check(value: Any, field: dict, where: str) -> None:
    kind, mode = field["type"], field.get("mode", "NULLABLE")
    if mode == "REPEATED":  # absent is an empty array
        assert value is None or isinstance(value, list), where
        for n, item in enumerate(value or []):
            check(item, {**field, "mode": "REQUIRED"}, f"{where}[{n}]")
        return
    if value is None:
        assert mode != "REQUIRED", f"{where} is required"
        return
    if kind == "RECORD":
        check_row(value, field["fields"], where)
    elif kind == "STRING":
        assert isinstance(value, str), where
    elif kind in ("INTEGER", "TIMESTAMP"):  # TIMESTAMP: microseconds since the epoch
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "NUMERIC":
        assert isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d{1,9})?", value), where
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    else:
        raise AssertionError(f"{where}: type {kind} not covered")


def check_row(row: dict, fields: list[dict], where: str) -> None:
    names = {f["name"] for f in fields}
    assert set(row) <= names, f"{where}: columns not in the table: {sorted(set(row) - names)}"
    for field in fields:
        check(row.get(field["name"]), field, f"{where}.{field['name']}")


def test_every_message_matches_its_table_schema(warehouse):
    _, updates, touches = warehouse
    for n, row in enumerate(touches):
        check_row(row, schema("touchpoints"), f"touchpoints[{n}]")
    for n, row in enumerate(updates):
        check_row(row, schema("profile_updates"), f"profile_updates[{n}]")
    statuses = {u["status"] for u in updates}
    assert {"created", "merged", "erased", "unchanged"} <= statuses  # every shape was checked
    assert any(u.get("duplicate") for u in updates)


def test_touchpoint_rows_carry_no_personal_data(warehouse):
    _, _, touches = warehouse
    text = json.dumps(touches, ensure_ascii=False)
    for value in ("79165550102", "+7903", "1702385561118374409", "Екатерина", "Vasily", "shop.example"):
        assert value not in text


# --------------------------------------------------------------------------- the view in DuckDB

DUCK_TYPES = {
    "STRING": "VARCHAR",
    "TIMESTAMP": "TIMESTAMP",
    "NUMERIC": "DECIMAL(38, 9)",
    "INTEGER": "BIGINT",
    "BOOLEAN": "BOOLEAN",
}


def duck_type(field: dict) -> str:
    if field["type"] == "RECORD":
        inner = ", ".join(f"{f['name']} {duck_type(f)}" for f in field["fields"])
        base = f"STRUCT({inner})"
    else:
        base = DUCK_TYPES[field["type"]]
    return f"{base}[]" if field.get("mode") == "REPEATED" else base


def duck_value(value: Any, field: dict) -> Any:
    if field.get("mode") == "REPEATED":
        return [duck_value(v, {**field, "mode": "REQUIRED"}) for v in value or []]
    if value is None:
        return None
    if field["type"] == "TIMESTAMP":
        return datetime.fromtimestamp(value / 1e6, tz=UTC).replace(tzinfo=None)
    if field["type"] == "NUMERIC":
        return Decimal(value)
    if field["type"] == "RECORD":
        return {f["name"]: duck_value(value.get(f["name"]), f) for f in field["fields"]}
    return value


def load(connection, table: str, rows_: list[dict]) -> None:
    fields = schema(table)
    columns = ", ".join(f"{f['name']} {duck_type(f)}" for f in fields)
    connection.execute(f"CREATE TABLE {table} ({columns})")
    marks = ", ".join("?" for _ in fields)
    connection.executemany(
        f"INSERT INTO {table} VALUES ({marks})",
        [[duck_value(row.get(f["name"]), f) for f in fields] for row in rows_],
    )


def sql(name: str, **tables: str) -> str:
    """The file Terraform deploys, with its table references filled in; BigQuery's @parameters
    become DuckDB's $parameters (the only dialect difference)."""
    text = (BIGQUERY / f"{name}.sql").read_text()
    for placeholder, table in tables.items():
        text = text.replace("${" + placeholder + "}", table)
    assert "${" not in text
    return re.sub(r"@(\w+)", r"$\1", text)


@pytest.fixture(scope="module")
def duck(warehouse):
    _, updates, touches = warehouse
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    load(connection, "touchpoints", touches)
    load(connection, "profile_updates", updates)
    view = sql("attribution_orders", touchpoints="touchpoints", profile_updates="profile_updates")
    connection.execute(f"CREATE VIEW attribution_orders AS {view}")
    return connection


def view_report(duck, by: str, start: datetime, end: datetime) -> dict:
    query = sql("attribution_report", attribution_orders="attribution_orders")
    params = {"by": by, "start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)}
    result = duck.execute(query, params).fetchall()
    return {
        (source, medium, campaign, currency): (off_n, Decimal(off_rev), on_n, Decimal(on_rev))
        for source, medium, campaign, currency, off_n, off_rev, on_n, on_rev in result
    }


def cli_report(rt, by: str, start: datetime, end: datetime) -> dict:
    report = attribution(rt.store.touchpoints_between("order", start, end), by, start, end)  # type: ignore[arg-type]
    return {
        (line.source, line.medium, line.campaign, line.currency): (
            line.offline_orders,
            line.offline_revenue,
            line.online_orders,
            line.online_revenue,
        )
        for line in report.lines
    }


PERIODS = [
    (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)),  # everything
    (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 12, tzinfo=UTC)),  # the demo and Olga
    (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)),  # Nina
]


@pytest.mark.parametrize("by", ["first_touch", "last_touch"])
@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_the_bigquery_view_gives_the_numbers_of_svyaz_report_attribution(warehouse, duck, by, start, end):
    rt, _, _ = warehouse
    expected = cli_report(rt, by, start, end)
    assert expected, "the period must hold orders"
    assert view_report(duck, by, start, end) == expected


def test_the_data_exercises_what_the_view_must_get_right(warehouse, duck):
    rt, _, _ = warehouse
    start, end = PERIODS[0]
    first = cli_report(rt, "first_touch", start, end)
    last = cli_report(rt, "last_touch", start, end)
    # Olga's till order is credited to the Yandex click that only joined her profile later.
    assert first[("yandex", "cpc", "sofas", "RUB")][0] >= 1
    # Nina: first touch VK (long ago), last touch Yandex (VK is outside the 90-day window).
    assert first[("vk", "social", "kitchens", "EUR")] == (1, Decimal("12000.00"), 0, Decimal("0.00"))
    assert last[("yandex", "cpc", "sofas", "EUR")] == (1, Decimal("12000.00"), 0, Decimal("0.00"))
    # Ivan's direct visit is his first touch, but never a last touch.
    assert first[("direct", "", "", "RUB")] == (0, Decimal("0.00"), 1, Decimal("1990.50"))
    assert last[("(none)", "(none)", "", "RUB")][2] == 1
    # Pavel is erased: his order is in neither.
    assert ("vk", "social", "kitchens", "RUB") not in first
    uncounted = duck.execute(
        "SELECT COUNT(*) FROM attribution_orders WHERE NOT counted AND ordered_at >= $s AND ordered_at < $e",
        {"s": start.replace(tzinfo=None), "e": end.replace(tzinfo=None)},
    ).fetchone()[0]
    report = attribution(rt.store.touchpoints_between("order", start, end), "first_touch", start, end)
    assert uncounted == report.uncounted == 2


def test_no_touchpoint_rows_without_a_warehouse_topic():
    rt = runtime.build(Settings(), store=MemoryStore(PEPPER), publisher=LocalQueue())
    apply_message(event_message(more_customers()[0]), rt)
    # (the events topic holds the event's follow-up jobs)
    assert set(rt.publisher.topics) - {rt.settings.events_topic} == {rt.settings.profile_updates_topic}


def test_the_erasure_query_deletes_every_row_of_the_erased_customer_and_nothing_else(warehouse):
    _, updates, touches = warehouse
    erased = {pid for u in updates if u["status"] == "erased" for pid in u["profile_ids"]}
    assert erased
    connection = duckdb.connect()
    load(connection, "touchpoints", touches)
    load(connection, "profile_updates", updates)
    before = connection.execute("SELECT COUNT(*) FROM touchpoints").fetchone()[0]
    connection.execute(sql("erase", touchpoints="touchpoints", profile_updates="profile_updates"))
    marks = ", ".join("?" for _ in erased)
    left = connection.execute(f"SELECT COUNT(*) FROM touchpoints WHERE profile_id IN ({marks})", list(erased))
    assert left.fetchone()[0] == 0
    updates_left = connection.execute(
        f"SELECT status FROM profile_updates WHERE profile_id IN ({marks})", list(erased)
    ).fetchall()
    assert updates_left == []  # the erasure row names them in profile_ids only
    kept = sum(1 for t in touches if t["profile_id"] not in erased)
    assert connection.execute("SELECT COUNT(*) FROM touchpoints").fetchone()[0] == kept < before
    statuses = [r[0] for r in connection.execute("SELECT status FROM profile_updates").fetchall()]
    assert statuses.count("erased") == 1


def test_a_page_view_racing_a_merge_ends_with_the_survivor_downstream():
    # The view's read saw its cookie on the profile about to be merged away: its first profile
    # update and touchpoint row name that profile. The merge's settle job tells both topics the
    # event belongs to the survivor; the warehouse's latest row of the touchpoint names it.
    import duckdb

    from tests.contract.test_races import Interleaved

    settings = Settings(touchpoints_topic=TOUCHES, profile_updates_topic=UPDATES)
    rt = runtime.build(settings, store=MemoryStore(PEPPER), publisher=LocalQueue())
    older = apply_message(event_message(ev("o-1", "page", 1, {"client_id": "old"})), rt).profile_id
    newer = apply_message(event_message(ev("n-1", "page", 2, {"client_id": "c1"})), rt).profile_id
    merge = ev("merge", "lead", 3, {"client_id": ["c1", "old"]})
    service = rt.service
    service.store = Interleaved(rt.store, create_touchpoint=lambda: apply_message(event_message(merge), rt))
    view = ev("racing-view", "page", 4, {"client_id": "c1"}, ad=VK)
    assert apply_message(event_message(view), rt).profile_id == newer
    service.store = rt.store
    run_follow_ups(rt)  # the merge's repoint, then its settle job (the embedded queue: at once)
    updates, touches = rows(rt.publisher, UPDATES), rows(rt.publisher, TOUCHES)
    for n, row in enumerate(touches):
        check_row(row, schema("touchpoints"), f"touchpoints[{n}]")
    for n, row in enumerate(updates):
        check_row(row, schema("profile_updates"), f"profile_updates[{n}]")
    mine = [u for u in updates if u["event_id"] == view.event_id]
    said = [(u["status"], u["profile_id"], u.get("previous_profile_id")) for u in mine]
    assert said == [("unchanged", newer, None), ("corrected", older, newer)]
    assert [t["profile_id"] for t in touches if t["event_id"] == view.event_id] == [newer, older]
    connection = duckdb.connect()
    load(connection, "touchpoints", touches)
    latest = connection.execute(
        "SELECT profile_id FROM touchpoints WHERE touchpoint = $t QUALIFY ROW_NUMBER() "
        "OVER (PARTITION BY touchpoint ORDER BY occurred_at DESC, publish_time DESC) = 1",
        {"t": view.event_id},
    ).fetchall()
    assert latest == [(older,)]
    runtime.install(None)


def test_a_touchpoint_given_to_another_profile_is_published_as_its_event_was():
    # What a split or a merge's settling publishes again: the row the event published, but for
    # the profile the touchpoint belongs to now (orders too: the split moves them).
    from svyaz.app.warehouse import settled_touchpoint_message, touchpoint_row

    rt = runtime.build(Settings(), store=MemoryStore(PEPPER), publisher=LocalQueue())
    for event in [
        ev("ad", "page", 1, {"client_id": "c9"}, ad=VK),
        ev("o", "order", 2, {"client_id": "c9"}, order_id="W-7", amount="10.5", currency="RUB", store_id="s"),
    ]:
        outcome = apply_message(event_message(event), rt)
        held = rt.store.touchpoints([outcome.profile_id], 10)
        [touchpoint] = [t for t in held if t.event_id == event.event_id]
        again = json.loads(settled_touchpoint_message(touchpoint, "another").data)
        assert again == touchpoint_row(event, outcome) | {"profile_id": "another"}
        check_row(again, schema("touchpoints"), event.event_id)
    runtime.install(None)
