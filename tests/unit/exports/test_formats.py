"""The conversion files, row by row, against the formats the ad systems document
(tests/fixtures/conversions/README.md cites each)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from svyaz.domain.model import Identifier, Touchpoint
from svyaz.exports import formats
from svyaz.exports.formats import CallConversion, OrderConversion
from svyaz.exports.service import click_ids

NOW = datetime(2026, 12, 1, tzinfo=UTC)
AT = datetime(2026, 11, 10, 10, 14, 24, tzinfo=UTC)


def order(key="order:S-77", **fields) -> OrderConversion:
    base = dict(
        key=key, order_id=key[6:], at=AT, amount=Decimal("129000.00"), currency="RUB", channel="store"
    )
    return OrderConversion(**(base | fields))


def test_metrica_orders_file_is_the_documented_csv():
    rows = formats.metrica_orders([order(ym_client_id="1702385561118374409")], "offline_order", NOW)
    assert rows.to_bytes().decode() == (
        "ClientId,Target,DateTime,Price,Currency\n"
        f"1702385561118374409,offline_order,{int(AT.timestamp())},129000.00,RUB\n"
    )
    assert int(AT.timestamp()) == 1794305664  # Unix time stamp, UTC
    assert rows.keys == ["order:S-77"] and rows.refused == []


def test_metrica_gets_the_site_user_id_only_when_neither_client_id_nor_yclid_is_known():
    rows = formats.metrica_orders(
        [
            order("order:A", ym_client_id="111", user_id="crm-1"),
            order("order:B", yclid="9876543210", user_id="crm-2"),
            order("order:C", user_id="crm-3"),
        ],
        "offline_order",
        NOW,
    )
    assert rows.header == ["ClientId", "Yclid", "UserId", "Target", "DateTime", "Price", "Currency"]
    assert [r[:3] for r in rows.rows] == [["111", "", ""], ["", "9876543210", ""], ["", "", "crm-3"]]


def test_rows_metrica_cannot_take_are_refused_with_a_reason_and_no_personal_data():
    rows = formats.metrica_orders(
        [
            order("order:none", email="katya@example.ru", phone="+79165550102"),
            order("order:future", ym_client_id="1", at=NOW + timedelta(hours=1)),
            order("order:money", ym_client_id="1", currency="руб"),
        ],
        "offline_order",
        NOW,
    )
    assert rows.rows == []
    assert [(r.key, r.reason) for r in rows.refused] == [
        ("order:none", "no Metrica ClientID, yclid or UserID known"),
        ("order:future", "conversion time is in the future"),
        ("order:money", "currency is not an ISO 4217 code"),
    ]
    assert all("katya" not in r.reason and "7916" not in r.reason for r in rows.refused)


def test_metrica_calls_file():
    calls = [
        CallConversion("call:1", AT, duration=212, missed=False, static=False, ym_client_id="111"),
        CallConversion("call:2", AT, duration=None, missed=True, static=True, ym_client_id="222"),
        CallConversion("call:3", AT, duration=30, missed=False, static=True),
    ]
    rows = formats.metrica_calls(calls, NOW)
    ts = str(int(AT.timestamp()))
    assert rows.to_bytes().decode().splitlines() == [
        "ClientId,DateTime,StaticCall,TalkDuration,CallMissed",
        f"111,{ts},0,212,0",
        f"222,{ts},1,,1",
    ]
    assert [r.key for r in rows.refused] == ["call:3"]


def test_google_ads_click_id_rows_and_enhanced_rows_with_normalized_sha256_hashes():
    by_click, enhanced = formats.google_ads(
        [
            order("order:G", gclid="Cj0KCQiA", email="x@example.ru"),
            order("order:E", email=" Katya.Ivanova@GMail.com ", phone="+7 916 555-01-02"),
            order("order:P", phone="+79165550102"),
            order("order:none", ym_client_id="1"),
        ],
        "Offline order",
        NOW,
    )
    assert by_click.to_bytes().decode().splitlines() == [
        "Parameters:TimeZone=+0000",
        "Google Click ID,Conversion Name,Conversion Time,Conversion Value,Conversion Currency",
        "Cj0KCQiA,Offline order,2026-11-10 10:14:24,129000.00,RUB",
    ]
    email = hashlib.sha256(b"katyaivanova@gmail.com").hexdigest()
    phone = hashlib.sha256(b"+79165550102").hexdigest()
    assert enhanced.header[:2] == ["Email", "Phone Number"]
    assert enhanced.rows == [
        [email, phone, "Offline order", "2026-11-10 10:14:24", "129000.00", "RUB"],
        ["", phone, "Offline order", "2026-11-10 10:14:24", "129000.00", "RUB"],
    ]
    assert [r.key for r in by_click.refused] == ["order:none"]
    assert "Katya" not in enhanced.to_bytes().decode()


def test_google_email_normalization_keeps_dots_outside_gmail():
    assert formats.google_email(" A.B@Example.RU") == "a.b@example.ru"
    assert formats.google_email("a.b.c@googlemail.com") == "abc@googlemail.com"


def test_click_ids_come_from_the_landing_url_or_the_properties():
    def touch(url="", **properties):
        return Touchpoint(
            "e",
            "p",
            "page",
            "web",
            AT,
            {},
            {"page_url": url} if url else {},
            [Identifier("client_id", "c")],
            properties,
        )

    assert click_ids(touch("https://shop.example/?utm_source=yandex&yclid=123456789")) == {
        "yclid": "123456789"
    }
    assert click_ids(touch(gclid="Cj0KCQiA")) == {"gclid": "Cj0KCQiA"}
    assert click_ids(touch("https://shop.example/sofas")) == {}
