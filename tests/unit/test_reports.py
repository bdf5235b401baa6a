"""The attribution report: pure aggregation over order touchpoints, numbers computed by hand."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from svyaz.app.reports import attribution
from svyaz.cli import main
from svyaz.cli.reports import period
from svyaz.domain.model import Touchpoint

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
YANDEX = {"source": "yandex", "medium": "cpc", "campaign": "sofas"}
VK = {"source": "vk", "medium": "social", "campaign": "kitchens"}


def order(n: int, channel: str, status: str, amount: str | None, currency="RUB", **credit) -> Touchpoint:
    properties = {"order_id": f"O-{n}", "status": status, "currency": currency}
    if amount is not None:
        properties["amount"] = amount
    return Touchpoint(
        event_id=f"order:O-{n}:{status}",
        profile_id=f"p{n}",
        type="order",
        channel=channel,
        timestamp=AT + timedelta(hours=n),
        attribution={},
        context={},
        identifiers=[],
        properties=properties,
        credit=credit,
    )


def touchpoints() -> list[Touchpoint]:
    page = order(0, "web", "paid", "999.00", first_touch=YANDEX)
    page.type = "page"  # not an order: never counted
    return [
        order(1, "store", "paid", "129000.00", first_touch=YANDEX, last_touch=VK),
        order(2, "web", "paid", "45990.00", first_touch=YANDEX, last_touch=YANDEX),
        order(3, "crm", "new", "2490.50", first_touch=VK),  # no ad touch in the look-back window
        order(4, "store", "refunded", "10000.00", first_touch=YANDEX, last_touch=YANDEX),
        order(5, "store", "completed", "1500.25"),  # a customer known only from the till
        order(6, "web", "paid", "100.00", currency="USD", first_touch=YANDEX, last_touch=YANDEX),
        order(7, "store", "cancelled", "5.00", first_touch=VK),
        page,
    ]


def table(report) -> list[tuple]:
    return [
        (
            line.source,
            line.medium,
            line.campaign,
            line.currency,
            line.offline_orders,
            str(line.offline_revenue),
            line.online_orders,
            str(line.online_revenue),
        )
        for line in report.lines
    ]


def test_by_first_touch():
    report = attribution(touchpoints(), "first_touch")
    assert table(report) == [
        ("yandex", "cpc", "sofas", "RUB", 1, "129000.00", 1, "45990.00"),
        ("vk", "social", "kitchens", "RUB", 1, "2490.50", 0, "0.00"),
        ("(none)", "(none)", "", "RUB", 1, "1500.25", 0, "0.00"),
        ("yandex", "cpc", "sofas", "USD", 0, "0.00", 1, "100.00"),
    ]
    rub, usd = report.totals
    assert (rub.currency, rub.offline_orders, rub.offline_revenue) == ("RUB", 3, Decimal("132990.75"))
    assert (rub.online_orders, rub.online_revenue, rub.revenue) == (
        1,
        Decimal("45990.00"),
        Decimal("178980.75"),
    )
    assert (usd.currency, usd.orders, usd.revenue) == ("USD", 1, Decimal("100.00"))
    assert report.uncounted == 2  # the refund and the cancellation


def test_by_last_touch():
    report = attribution(touchpoints(), "last_touch")
    assert table(report) == [
        ("vk", "social", "kitchens", "RUB", 1, "129000.00", 0, "0.00"),
        ("yandex", "cpc", "sofas", "RUB", 0, "0.00", 1, "45990.00"),
        ("(none)", "(none)", "", "RUB", 2, "3990.75", 0, "0.00"),
        ("yandex", "cpc", "sofas", "USD", 0, "0.00", 1, "100.00"),
    ]
    assert [t.revenue for t in report.totals] == [Decimal("178980.75"), Decimal("100.00")]


def test_money_is_summed_exactly_and_orders_without_amount_count():
    items = [
        order(i, "store", "paid", amount, first_touch=YANDEX) for i, amount in enumerate(["0.10", "0.20"])
    ]
    items.append(order(9, "store", "paid", None, first_touch=YANDEX))
    [line] = attribution(items).lines
    assert (line.offline_orders, str(line.offline_revenue)) == (3, "0.30")


def test_a_source_without_medium():
    [line] = attribution([order(1, "web", "paid", "10", first_touch={"source": "partner"})]).lines
    assert (line.source, line.medium, line.campaign, line.label) == ("partner", "", "", "partner")


def test_json_and_text_forms():
    report = attribution(touchpoints(), "first_touch", AT, AT + timedelta(days=1))
    data = json.loads(json.dumps(report.as_dict()))
    assert data["by"] == "first_touch" and data["cancelled_or_refunded"] == 2
    assert data["lines"][0] == {
        "source": "yandex",
        "medium": "cpc",
        "campaign": "sofas",
        "currency": "RUB",
        "offline": {"orders": 1, "revenue": "129000.00"},
        "online": {"orders": 1, "revenue": "45990.00"},
        "orders": 2,
        "revenue": "174990.00",
    }
    assert data["totals"][0]["offline"] == {"orders": 3, "revenue": "132990.75"}
    text = report.render_text("2026-03-10 .. 2026-03-10 (UTC)")
    lines = text.splitlines()
    assert lines[0] == "Revenue by first touch ad source, 2026-03-10 .. 2026-03-10 (UTC)"
    assert lines[2].split() == ["yandex", "/", "cpc", "/", "sofas", "RUB", "1", "129000.00", "1", "45990.00"]
    assert lines[-3].split() == ["total", "RUB", "3", "132990.75", "1", "45990.00"]
    assert "2 cancelled or refunded" in lines[-1]


def test_empty():
    report = attribution([])
    assert report.lines == [] and report.totals == []
    assert "no orders" in report.render_text()


def test_unknown_by_is_refused():
    with pytest.raises(ValueError):
        attribution([], "middle_touch")  # type: ignore[arg-type]


def test_period_is_whole_days_in_the_given_zone():
    start, end = period(date(2026, 3, 1), date(2026, 3, 31), ZoneInfo("Europe/Moscow"))
    assert start == datetime(2026, 2, 28, 21, 0, tzinfo=UTC)
    assert end == datetime(2026, 3, 31, 21, 0, tzinfo=UTC)
    assert period(date(2026, 3, 1), date(2026, 3, 1), UTC) == (
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 2, tzinfo=UTC),
    )


def test_the_command_on_the_memory_store_says_where_the_data_is(capsys, monkeypatch):
    monkeypatch.delenv("SVYAZ_STORE", raising=False)
    assert main(["report", "attribution", "--from", "2026-03-01", "--to", "2026-03-31"]) == 0
    out, err = capsys.readouterr()
    assert "no orders in this period" in out
    assert "--store firestore" in err
    assert main(["report", "attribution", "--from", "2026-03-01", "--to", "2026-03-31", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lines"] == []


def test_the_command_refuses_a_reversed_period(capsys):
    assert main(["report", "attribution", "--from", "2026-03-31", "--to", "2026-03-01"]) == 2
    with pytest.raises(SystemExit):
        main(["report", "attribution", "--from", "31.03.2026", "--to", "2026-03-01"])
