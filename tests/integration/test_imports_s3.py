"""`svyaz import` against a real S3 protocol server (moto in server mode on 127.0.0.1): orders
with bad rows and their rejects file next to the object, re-runs, a customer base, queue mode,
the CLI, and the throughput of a 100,000-row file."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from decimal import Decimal

import pytest

from svyaz.adapters.queue import LocalQueue, Message, QueueUnavailable
from svyaz.cli import main
from svyaz.domain.model import Identifier
from svyaz.entrypoints.process import apply_message
from svyaz.imports import ImportFailed, S3Source, open_source, run_import
from tests.pipeline_support import FIXTURES, build

ORDERS = FIXTURES / "calls_orders" / "orders_till_export.csv"
CUSTOMERS = FIXTURES / "calls_orders" / "customers.jsonl"
MSK = __import__("zoneinfo").ZoneInfo("Europe/Moscow")

EXPECTED_REJECTS = [
    ["line", "field", "reason"],
    ["4", "amount", "Input should be a valid decimal"],
    ["5", "identifiers", "needs a customer identifier: phone, email, loyalty_card or user_id"],
    ["6", "status", "Input should be 'new', 'paid', 'completed', 'cancelled' or 'refunded'"],
    ["7", "time", "required for imported orders"],
    ["8", "", "expected 12 columns, found 5"],
    ["9", "identifiers", "no usable identifier (phone: placeholder value; email: blocklisted value)"],
    ["11", "email", "blocklisted value; value ignored, row imported"],
]


def upload(s3, key: str, data: bytes) -> str:
    s3.put_object(Bucket=s3.bucket, Key=key, Body=data)
    return f"s3://{s3.bucket}/{key}"


def download(s3, key: str) -> str:
    return s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read().decode("utf-8")


def profile(rt, kind: str, value: str):
    found = rt.store.lookup(Identifier(kind, value))
    assert found is not None, f"no profile for {kind}"
    return found


def test_orders_with_bad_rows_from_s3(s3, s3_endpoint, rt):
    uri = upload(s3, "exports/2026-03/orders.csv", ORDERS.read_bytes())
    stats = run_import(S3Source(uri, s3_endpoint), rt, tz=MSK, progress=False)
    assert (stats.kind, stats.rows, stats.applied, stats.duplicates, stats.rejected) == (
        "orders",
        10,
        4,
        0,
        6,
    )
    assert stats.ignored_values == {"email": 1}
    assert stats.rejects_location == uri + ".rejects.csv"
    text = download(s3, "exports/2026-03/orders.csv.rejects.csv")
    assert list(csv.reader(io.StringIO(text))) == EXPECTED_REJECTS
    for secret in ("+79161234500", "сто", "Аноним", "test@test.com", "ЦБ-"):  # no row content
        assert secret not in text

    katya = profile(rt, "phone", "+79091234567")
    assert (katya.counters["orders"], katya.counters["revenue"]) == (1, 129000.0)
    [order] = rt.store.touchpoints([katya.profile_id], 10)
    assert order.properties["order_id"] == "ЦБ-000451" and order.channel == "store"
    assert order.timestamp.isoformat() == "2026-03-29T12:20:00+00:00"  # 15:20 Moscow time
    assert order.event_id.startswith("import:")
    maria = profile(rt, "loyalty_card", "2900001234567")
    assert maria.identifiers["email"] == ["maria@example.ru"]
    assert profile(rt, "user_id", "crm-501").counters["revenue"] == 5000.0  # kept, bad email ignored


def test_a_rerun_changes_nothing(s3, s3_endpoint, rt):
    uri = upload(s3, "orders.csv", ORDERS.read_bytes())
    run_import(S3Source(uri, s3_endpoint), rt, tz=MSK, progress=False)
    before = {p.profile_id: (p.counters, p.version) for p in rt.store.iter_profiles()}
    touchpoints_before = len(rt.store.touchpoint_docs)

    again = run_import(S3Source(uri, s3_endpoint), rt, tz=MSK, progress=False)
    assert (again.applied, again.duplicates, again.rejected) == (0, 4, 6)
    assert {p.profile_id: (p.counters, p.version) for p in rt.store.iter_profiles()} == before
    assert len(rt.store.touchpoint_docs) == touchpoints_before
    assert list(csv.reader(io.StringIO(download(s3, "orders.csv.rejects.csv")))) == EXPECTED_REJECTS


def test_a_customer_base_then_orders_join_the_same_profiles(s3, s3_endpoint, rt):
    customers = upload(s3, "crm/customers.jsonl", CUSTOMERS.read_bytes())
    stats = run_import(S3Source(customers, s3_endpoint), rt, progress=False)
    assert (stats.kind, stats.rows, stats.applied, stats.rejected) == ("customers", 7, 4, 3)
    assert list(csv.reader(io.StringIO(download(s3, "crm/customers.jsonl.rejects.csv")))) == [
        ["line", "field", "reason"],
        ["3", "identifiers", "no usable identifier (email: not a valid email address)"],
        ["5", "", "not valid JSON: Expecting value"],
        ["6", "", "expected a JSON object"],
    ]
    vasily = profile(rt, "user_id", "crm-77120")
    assert vasily.identifiers["phone"] == ["+79031112233"]
    assert {name: t.value for name, t in vasily.traits.items()} == {"first_name": "Василий", "city": "Москва"}
    maria = profile(rt, "email", "maria@example.ru")
    assert maria.identifiers["ym_client_id"] == ["1772358812104712345"]  # any kind of the policy links
    assert "segment" not in maria.traits
    late = profile(rt, "phone", "+79165550199")
    [touch] = rt.store.touchpoints([late.profile_id], 5)
    assert (touch.type, touch.channel, touch.timestamp.isoformat()) == (
        "identify",
        "import",
        "2025-12-31T23:59:00+00:00",
    )

    orders = upload(s3, "crm/orders.csv", ORDERS.read_bytes())
    run_import(S3Source(orders, s3_endpoint), rt, tz=MSK, progress=False)
    assert profile(rt, "email", "maria@example.ru").counters["revenue"] == 2490.5  # by phone, same profile
    assert profile(rt, "phone", "+79031112233").counters["revenue"] == 45990.0  # by user_id


def test_queue_mode_publishes_the_same_events_that_direct_mode_applies(s3, s3_endpoint, rt):
    uri = upload(s3, "orders.csv", ORDERS.read_bytes())
    stats = run_import(S3Source(uri, s3_endpoint), rt, via="queue", tz=MSK, progress=False, batch_size=2)
    assert (stats.queued, stats.applied, stats.rejected) == (4, 0, 6)
    messages = rt.publisher.drain(rt.settings.events_topic)
    assert [m.attributes["kind"] for m in messages] == ["event"] * 4
    outcomes = [apply_message(m, rt) for m in messages]
    assert all(not o.duplicate for o in outcomes)

    run_import(S3Source(uri, s3_endpoint), rt, via="queue", tz=MSK, progress=False)
    # (the follow-up jobs the first application queued are left out: events only)
    again = [m for m in rt.publisher.drain(rt.settings.events_topic) if m.attributes["kind"] == "event"]
    assert [m.attributes["event_id"] for m in again] == [m.attributes["event_id"] for m in messages]
    assert all(apply_message(m, rt).duplicate for m in again)  # a re-run is deduplicated


def test_the_queue_down_stops_the_import_and_leaves_no_half_rejects_file(s3, s3_endpoint):
    class Down(LocalQueue):
        def publish(self, topic: str, messages: list[Message]) -> None:
            raise QueueUnavailable("down for the test")

    rt = build(publisher=Down())
    uri = upload(s3, "orders.csv", ORDERS.read_bytes())
    with pytest.raises(ImportFailed, match="events topic is unavailable"):
        run_import(S3Source(uri, s3_endpoint), rt, via="queue", tz=MSK, progress=False, retries=0)
    listed = s3.list_objects_v2(Bucket=s3.bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == ["orders.csv"]


def test_a_missing_object_is_a_clear_error(s3, s3_endpoint):
    with pytest.raises(ImportFailed, match=r"cannot read s3://.*/nope\.csv: ClientError \(404\)"):
        open_source(f"s3://{s3.bucket}/nope.csv", s3_endpoint)


def test_the_cli_imports_from_s3_and_prints_the_summary_and_report(s3, s3_endpoint, capsys, monkeypatch):
    monkeypatch.setenv("SVYAZ_S3_ENDPOINT_URL", s3_endpoint)
    for name in ("SVYAZ_ENV", "PUBSUB_EMULATOR_HOST", "SVYAZ_STORE"):
        monkeypatch.delenv(name, raising=False)
    uri = upload(s3, "orders.csv", ORDERS.read_bytes())
    assert main(["import", uri, "--tz", "Europe/Moscow", "--report", "--no-progress"]) == 1  # bad rows
    out = capsys.readouterr().out
    assert f"import of {uri} (orders, via direct)" in out
    assert "rows read: 10; events applied: 4 (already applied before: 0); rejected: 6" in out
    assert f"rejects: {uri}.rejects.csv" in out
    assert "Revenue by first touch ad source, 2026-03-02 .. 2026-03-31 (Europe/Moscow)" in out
    assert "182480.50" in out

    assert main(["import", f"s3://{s3.bucket}/missing.csv"]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["import", uri, "--via", "queue"]) == 2  # no Pub/Sub here: refused, not lost
    assert "needs Pub/Sub" in capsys.readouterr().err


ROWS = 100_000
BAD_EVERY = 1_000


def big_orders_csv() -> tuple[bytes, Decimal]:
    out = io.StringIO()
    out.write("order_id,time,amount,currency,status,store_id,phone,email,loyalty_card,user_id,name\n")
    total = Decimal("0")
    for i in range(ROWS):
        if i % BAD_EVERY == 999:
            amount = "n/a"  # a bad row
        else:
            amount = f"{1000 + i % 997}.{i % 100:02d}"
            total += Decimal(amount)
        day = 1 + i % 28
        out.write(
            f"T-{i},2026-02-{day:02d}T{10 + i % 9}:{i % 60:02d}:00+03:00,{amount},RUB,paid,"
            f"msk-{i % 40:03d},+7915{i:07d},,,,\n"
        )
    return out.getvalue().encode(), total


def test_a_100k_row_file_streams_through_and_its_throughput_is_printed(s3, s3_endpoint, rt, capsys):
    logging.getLogger("svyaz.app.service").setLevel(logging.WARNING)  # no log line per event
    try:
        data, total = big_orders_csv()
        uri = upload(s3, "big/orders-100k.csv", data)
        started = time.monotonic()
        stats = run_import(S3Source(uri, s3_endpoint), rt, progress=False)
        elapsed = time.monotonic() - started
    finally:
        logging.getLogger("svyaz.app.service").setLevel(logging.NOTSET)
    with capsys.disabled():
        print(
            f"\n[import throughput] {stats.rows:,} rows ({len(data) / 1e6:.1f} MB) from S3 (moto server) "
            f"in {elapsed:.1f} s: {stats.rows / elapsed:,.0f} rows/s (direct, memory store)"
        )
    bad = ROWS // BAD_EVERY
    assert (stats.rows, stats.applied, stats.rejected) == (ROWS, ROWS - bad, bad)
    revenue = sum(Decimal(str(p.counters.get("revenue", 0))) for p in rt.store.iter_profiles())
    assert revenue == total
    rejects = download(s3, "big/orders-100k.csv.rejects.csv").splitlines()
    assert len(rejects) == bad + 1 and rejects[1] == "1001,amount,Input should be a valid decimal"
    assert json.dumps(stats.as_dict())  # the summary is JSON-ready
