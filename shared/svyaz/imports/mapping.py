"""Rows to canonical events: a customer base row becomes an ``identify`` event, an orders row
is validated as the CRM webhook's own ``Order`` and becomes an ``order`` event. Event ids are
``import:<source key>:<row hash>``, so re-running a file changes nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from svyaz.channels import build_event, drop_empty, russian_date, text_or_none
from svyaz.channels.crm import IDENTIFIER_FIELDS, Order
from svyaz.domain.events import Context, Event, describe_validation_error
from svyaz.imports.rows import Reject, RowError

TRAIT_COLUMNS = ("name", "first_name", "last_name", "city", "gender", "birthday")
ATTRIBUTION_COLUMNS = ("source", "medium", "campaign", "content", "term")  # or utm_source, ...


class Customer(BaseModel):
    """One row of a customer base. Unknown columns are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    time: datetime | None = None
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    loyalty_card: str | None = Field(default=None, max_length=128)
    user_id: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=200)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=200)
    gender: str | None = Field(default=None, max_length=20)
    birthday: str | None = Field(default=None, max_length=20)
    # Where the customer came from, when the CRM kept it (the lead's UTM tags): the first touch.
    source: str | None = Field(
        default=None, max_length=200, validation_alias=AliasChoices("utm_source", "source")
    )
    medium: str | None = Field(
        default=None, max_length=200, validation_alias=AliasChoices("utm_medium", "medium")
    )
    campaign: str | None = Field(
        default=None, max_length=500, validation_alias=AliasChoices("utm_campaign", "campaign")
    )
    content: str | None = Field(
        default=None, max_length=500, validation_alias=AliasChoices("utm_content", "content")
    )
    term: str | None = Field(default=None, max_length=500, validation_alias=AliasChoices("utm_term", "term"))

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return text_or_none(value)

    @field_validator("time", mode="before")
    @classmethod
    def _russian_date(cls, value: object) -> object:
        if isinstance(value, str) and value.isdigit():
            return int(value)  # unix seconds
        return russian_date(value)

    @model_validator(mode="after")
    def _has_customer(self) -> Customer:
        if not any(getattr(self, name) for name in IDENTIFIER_FIELDS):
            raise ValueError("needs a customer identifier: phone, email, loyalty_card or user_id")
        return self


def validation_rejects(exc: ValidationError, line: int) -> list[Reject]:
    # A row-level rule (no customer identifier) has no field of its own: it is the identifiers'.
    return [Reject(line, d["field"] or "identifiers", d["reason"]) for d in describe_validation_error(exc)]


def row_key(values: dict[str, Any]) -> str:
    """A hash of the row's content (column names and values, whatever their order)."""
    canonical = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass
class RowMapper:
    """Turns a file's rows into canonical events with stable ids."""

    source_id: str
    default_time: datetime
    tz: tzinfo = UTC  # the zone of times written without an offset
    extra_kinds: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # file header -> canonical column

    def __post_init__(self) -> None:
        self.source_key = hashlib.sha256(self.source_id.encode()).hexdigest()[:16]

    def rename(self, values: dict[str, Any]) -> dict[str, Any]:
        if not self.columns:
            return values
        return {self.columns.get(name, name): value for name, value in values.items()}

    def _aware(self, at: datetime) -> datetime:
        return at.replace(tzinfo=self.tz) if at.tzinfo is None else at

    def event(self, kind: str, values: dict[str, Any]) -> Event:
        """The row's event. Raises ``ValidationError``, ``ChannelError`` or ``RowError``."""
        event_id = f"import:{self.source_key}:{row_key(values)}"
        present = {k: v for k, v in values.items() if text_or_none(v) is not None}
        extra = {k: present[k] for k in self.extra_kinds if k in present}
        if kind == "orders":
            order = Order.model_validate(present)
            if order.time is None:
                raise RowError("time", "required for imported orders")
            order.time = self._aware(order.time)
            event = order.to_event().model_copy(update={"event_id": event_id})
            event.identifiers.update(extra)
            return event
        customer = Customer.model_validate(present)
        identifiers = {name: value for name in IDENTIFIER_FIELDS if (value := getattr(customer, name))}
        return build_event(
            event_id=event_id,
            type="identify",
            timestamp=self._aware(customer.time) if customer.time else self.default_time,
            channel="import",
            identifiers={**identifiers, **extra},
            traits=drop_empty({name: getattr(customer, name) for name in TRAIT_COLUMNS}),
            context=Context(**{name: getattr(customer, name) for name in ATTRIBUTION_COLUMNS}),
        )


# --- the import -------------------------------------------------------------------------------
