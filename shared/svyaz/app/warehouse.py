"""What the warehouse (BigQuery) receives: one message per applied event on the touchpoints
topic, next to the outcome on the profile-updates topic. Pub/Sub BigQuery subscriptions
(``infra/bigquery.tf``) write both into tables whose schemas are ``infra/bigquery/*.json``:
there is no warehouse code in the pipeline, only these two messages.

A touchpoint row carries what the attribution views need and nothing that identifies a person:
ids (svyaz's profile id, the event id, the order id), the type, the channel, the time, the ad
source (UTM fields) and the order's amount, currency, status and store. No identifier values, no
page URL, IP address or user agent; an erased customer's rows are deleted by profile id
(docs/warehouse.md).

Messages are JSON objects with exactly the table's columns (``use_table_schema``): times as
integer microseconds since the epoch (the BigQuery Storage Write API's TIMESTAMP), NUMERIC as a
decimal string. Pub/Sub delivers at least once: the views deduplicate by event and touchpoint.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from svyaz.adapters.queue import Message
from svyaz.domain.events import Event
from svyaz.domain.model import Outcome, Touchpoint, touchpoint_name

ATTRIBUTION_FIELDS = ("source", "medium", "campaign", "content", "term")
ORDER_FIELDS = ("order_id", "currency", "store_id")


def micros(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000 + at.microsecond


def _amount(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return format(amount.quantize(Decimal("0.01")), "f") if amount.is_finite() else None


def _text(value: Any, limit: int = 500) -> str | None:
    if value is None or value == "" or isinstance(value, dict | list):
        return None
    return str(value)[:limit]


def _row(  # noqa: PLR0913 - the table's columns
    event_id: str,
    name: str,
    profile_id: str,
    type_: str,
    channel: str,
    at: datetime,
    attribution: dict,
    properties: dict,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": event_id,
        "touchpoint": name,
        "profile_id": profile_id,
        "type": type_,
        "channel": channel,
        "occurred_at": micros(at),
    }
    row |= {field: attribution.get(field) for field in ATTRIBUTION_FIELDS}
    properties = properties if type_ == "order" else {}
    row |= {field: _text(properties.get(field)) for field in ORDER_FIELDS}
    row["amount"] = _amount(properties.get("amount")) if type_ == "order" else None
    row["order_status"] = _text(properties.get("status"))
    return {field: value for field, value in row.items() if value is not None}


def touchpoint_row(event: Event, outcome: Outcome) -> dict[str, Any] | None:
    """The touchpoints table row of an applied event (None when no profile took it)."""
    if outcome.profile_id is None:
        return None
    e, name = event, touchpoint_name(event.type, event.properties, event.event_id)
    ad = e.context.attribution()
    return _row(e.event_id, name, outcome.profile_id, e.type, e.channel, e.timestamp, ad, e.properties)


def settled_touchpoint_message(touchpoint: Touchpoint, profile_id: str) -> Message:
    """The row of a touchpoint given to another profile after its event's row was published (a
    fast-path write that raced a merge or a split, ``IdentityService.settle_merge``; the
    touchpoints a split moved): the same touchpoint with the profile it belongs to, published
    later, so the views' latest row per touchpoint names that profile."""
    t = touchpoint
    row = _row(t.event_id, t.name, profile_id, t.type, t.channel, t.timestamp, t.attribution, t.properties)
    return Message(json.dumps(row, ensure_ascii=False).encode(), {"type": t.type})


def touchpoint_message(event: Event, outcome: Outcome) -> Message | None:
    row = touchpoint_row(event, outcome)
    if row is None:
        return None
    return Message(json.dumps(row, ensure_ascii=False).encode(), {"type": event.type})
