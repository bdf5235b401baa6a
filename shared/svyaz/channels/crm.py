"""CRM deals and store-till orders as canonical ``order`` events.

The event id is ``order:<order id>:<status>``: a status change (paid, then refunded) is a new
event, a duplicate delivery of the same status is deduplicated. A batch is validated as a whole:
one bad order rejects the request with every problem listed (``orders[3].amount: ...``), so a
batch is never half-applied.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from svyaz.channels import ChannelError, build_event, drop_empty, russian_date, text_or_none
from svyaz.domain.events import Event, describe_validation_error, utcnow

MAX_ORDERS = 500
Status = Literal["new", "paid", "completed", "cancelled", "refunded"]
Amount = Annotated[Decimal, Field(ge=0, decimal_places=2, max_digits=15)]
_SAFE_ID = re.compile(r"^[\x21-\x7e]+$")
IDENTIFIER_FIELDS = ("phone", "email", "loyalty_card", "user_id")


class Order(BaseModel):
    """One deal or till receipt. Unknown fields are ignored (CRMs send plenty)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    order_id: str = Field(min_length=1, max_length=100)
    time: datetime | None = None
    amount: Amount | None = None
    currency: str = Field(default="RUB", pattern=r"^[A-Z]{3}$")
    status: Status = "new"
    store_id: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    loyalty_card: str | None = Field(default=None, max_length=128)
    user_id: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=200)

    @field_validator("order_id", "store_id", "phone", "loyalty_card", "user_id", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: object) -> object:
        return text_or_none(value)

    @field_validator("email", "name", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("time", mode="before")
    @classmethod
    def _russian_date(cls, value: object) -> object:
        return russian_date(value)  # 1C and till exports write dd.mm.yyyy HH:MM:SS

    @field_validator("amount", mode="before")
    @classmethod
    def _decimal_comma(cls, value: object) -> object:
        # "1 990,50" as Russian spreadsheets write it.
        if isinstance(value, str):
            value = re.sub(r"[\s\u00a0\u202f]", "", value)
            if "," in value and "." not in value:
                value = value.replace(",", ".")
        return value

    @field_validator("currency", mode="before")
    @classmethod
    def _currency_code(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().upper()
            return "RUB" if value == "RUR" else value  # the pre-1998 code some systems still send
        return value

    @field_validator("status", mode="before")
    @classmethod
    def _status_case(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return "cancelled" if value == "canceled" else value
        return value

    @model_validator(mode="after")
    def _has_customer(self) -> Order:
        if not any(getattr(self, name) for name in IDENTIFIER_FIELDS):
            raise ValueError("needs a customer identifier: phone, email, loyalty_card or user_id")
        return self

    def event_id(self) -> str:
        key = self.order_id if _SAFE_ID.match(self.order_id) else quote(self.order_id, safe="")
        if len(key) > 150:  # long Cyrillic ids: a stable digest keeps the event id bounded
            key = "sha256-" + hashlib.sha256(self.order_id.encode()).hexdigest()[:40]
        return f"order:{key}:{self.status}"

    def to_event(self, now: datetime | None = None) -> Event:
        properties: dict[str, Any] = {
            "order_id": self.order_id,
            "amount": format(self.amount.quantize(Decimal("0.01")), "f") if self.amount is not None else None,
            "currency": self.currency,
            "status": self.status,
            "store_id": self.store_id,
        }
        identifiers = {name: value for name in IDENTIFIER_FIELDS if (value := getattr(self, name))}
        return build_event(
            event_id=self.event_id(),
            type="order",
            timestamp=self.time or now or utcnow(),
            channel="store" if self.store_id else "crm",
            identifiers=identifiers,
            traits={"name": self.name} if self.name else {},
            properties=drop_empty(properties),
        )


def parse_orders(payload: dict | list, *, now: datetime | None = None) -> list[Event]:
    """Events for one order object, ``{"orders": [...]}`` or a bare list (at most 500)."""
    if isinstance(payload, dict) and "orders" in payload:
        items, prefix = payload["orders"], "orders"
        if not isinstance(items, list):
            raise ChannelError("orders: expected a list")
    elif isinstance(payload, list):
        items, prefix = payload, "orders"
    elif isinstance(payload, dict):
        items, prefix = [payload], None
    else:
        raise ChannelError('expected an order object or {"orders": [...]}')
    if len(items) > MAX_ORDERS:
        raise ChannelError(f"at most {MAX_ORDERS} orders per request")

    orders: list[Order] = []
    details: list[dict[str, str]] = []
    for index, item in enumerate(items):
        where = f"{prefix}[{index}]" if prefix else "order"
        if not isinstance(item, dict):
            details.append({"field": where, "reason": "expected an object"})
            continue
        try:
            orders.append(Order.model_validate(item))
        except ValidationError as exc:
            details.extend(describe_validation_error(exc, where))
    if details:
        summary = "; ".join(f"{d['field']}: {d['reason']}" for d in details[:5])
        more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
        raise ChannelError(f"invalid orders: {summary}{more}", details=details)
    return [order.to_event(now) for order in orders]
