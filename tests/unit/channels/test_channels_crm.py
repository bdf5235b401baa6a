import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from svyaz.channels import ChannelError
from svyaz.channels.crm import MAX_ORDERS, Order, parse_orders

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "channels"
NOW = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


def batch() -> dict:
    return json.loads((FIXTURES / "crm_orders.json").read_text(encoding="utf-8"))


def order(**fields) -> dict:
    return {"order_id": "A-1", "amount": "100.00", "phone": "+79091234567", **fields}


def test_store_order_from_batch():
    events = parse_orders(batch())
    assert len(events) == 2
    event = events[0]
    assert event.event_id == "order:%D0%A6%D0%91-000123:paid"
    assert event.type == "order"
    assert event.channel == "store"
    assert event.timestamp == datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    assert event.identifiers == {"phone": "8 (909) 123-45-67", "loyalty_card": "2900001234567"}
    assert event.traits == {"name": "Мария Иванова"}
    assert event.properties == {
        "order_id": "ЦБ-000123",
        "amount": "14990.00",
        "currency": "RUB",
        "status": "paid",
        "store_id": "msk-014",
    }


def test_crm_deal_with_numeric_id_and_lowercase_currency():
    event = parse_orders(batch())[1]
    assert event.event_id == "order:448812:new"
    assert event.channel == "crm"
    assert event.timestamp == datetime.fromtimestamp(1772450000, UTC)
    assert event.identifiers == {"email": "Maria.Ivanova@example.ru", "user_id": "crm-77120"}
    assert event.properties == {"order_id": "448812", "amount": "2490.50", "currency": "RUB", "status": "new"}
    assert event.traits == {}


def test_single_order_object_and_bare_list():
    assert [e.event_id for e in parse_orders(order())] == ["order:A-1:new"]
    events = parse_orders([order(), order(order_id="A-2")])
    assert [e.event_id for e in events] == ["order:A-1:new", "order:A-2:new"]


def test_status_update_is_a_new_event_same_status_is_the_same_event():
    paid = parse_orders(order(status="paid"))[0]
    again = parse_orders(order(status="PAID"))[0]
    refunded = parse_orders(order(status="refunded"))[0]
    assert paid.event_id == again.event_id == "order:A-1:paid"
    assert refunded.event_id == "order:A-1:refunded"


def test_defaults():
    event = parse_orders(order(), now=NOW)[0]
    assert event.timestamp == NOW
    assert event.properties["currency"] == "RUB"
    assert event.properties["status"] == "new"
    assert "store_id" not in event.properties


@pytest.mark.parametrize(
    "amount,expected",
    [
        ("1990", "1990.00"),
        ("1990.5", "1990.50"),
        ("1 990,50", "1990.50"),
        (19.99, "19.99"),
        (0, "0.00"),
        ("1E+3", "1000.00"),
    ],
)
def test_amount_formats(amount, expected):
    assert parse_orders(order(amount=amount))[0].properties["amount"] == expected


@pytest.mark.parametrize("amount", ["-1", "10.999", "abc", "NaN", "Infinity", True, [], "1.2.3"])
def test_bad_amounts_rejected_with_field_name(amount):
    with pytest.raises(ChannelError) as info:
        parse_orders({"orders": [order(), order(order_id="A-2", amount=amount)]})
    assert "orders[1].amount" in str(info.value)
    assert info.value.details[0]["field"] == "orders[1].amount"


def test_all_problems_reported_and_nothing_half_applied():
    payload = {"orders": [order(currency="рубли"), order(), order(status="shipped", order_id="")]}
    with pytest.raises(ChannelError) as info:
        parse_orders(payload)
    fields = {d["field"] for d in info.value.details}
    assert fields == {"orders[0].currency", "orders[2].status", "orders[2].order_id"}


def test_order_without_customer_identifier_rejected():
    with pytest.raises(ChannelError, match="customer identifier"):
        parse_orders({"order_id": "A-1", "amount": "1.00", "name": "Мария"})


def test_missing_order_id_rejected():
    with pytest.raises(ChannelError, match="order.order_id"):
        parse_orders({"amount": "1.00", "phone": "+79091234567"})


def test_rur_and_russian_dates():
    event = parse_orders(order(currency="RUR", time="02.03.2026 11:15:00"))[0]
    assert event.properties["currency"] == "RUB"
    assert event.timestamp == datetime(2026, 3, 2, 11, 15, tzinfo=UTC)


def test_errors_do_not_echo_personal_data():
    with pytest.raises(ChannelError) as info:
        parse_orders(order(phone="+79091234567" * 10, email=["x"]))
    assert "79091234567" not in str(info.value)


def test_batch_cap():
    with pytest.raises(ChannelError, match=str(MAX_ORDERS)):
        parse_orders({"orders": [order(order_id=f"A-{i}") for i in range(MAX_ORDERS + 1)]})
    assert len(parse_orders({"orders": [order(order_id=f"A-{i}") for i in range(MAX_ORDERS)]})) == MAX_ORDERS


@pytest.mark.parametrize("payload", [{"orders": "x"}, "order", 5, {"orders": [5]}])
def test_bad_shapes_rejected(payload):
    with pytest.raises(ChannelError):
        parse_orders(payload)


def test_very_long_non_ascii_order_id_gets_bounded_event_id():
    long_id = "Ж" * 100
    event = parse_orders(order(order_id=long_id))[0]
    assert len(event.event_id) <= 200
    assert event.event_id.startswith("order:sha256-")
    assert event.properties["order_id"] == long_id


def test_order_model_directly():
    parsed = Order.model_validate(order(canceled=True, status="canceled"))
    assert parsed.status == "cancelled"
