"""The one canonical event that every channel (web, QR, WhatsApp, Telegram, calls, CRM, import)
produces and the pipeline applies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scalar = str | int | float | bool | None
IdentifierValues = str | int | list[str | int]

MAX_IDENTIFIERS = 50
MAX_TRAITS = 50
MAX_PROPERTIES_BYTES = 16_384


class Context(BaseModel):
    """Attribution and technical context of the touch."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, max_length=200)
    medium: str | None = Field(default=None, max_length=200)
    campaign: str | None = Field(default=None, max_length=500)
    content: str | None = Field(default=None, max_length=500)
    term: str | None = Field(default=None, max_length=500)
    referrer: str | None = Field(default=None, max_length=2048)
    page_url: str | None = Field(default=None, max_length=2048)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=1024)

    def attribution(self) -> dict[str, str]:
        """The ad-source part, without empty fields."""
        fields = ("source", "medium", "campaign", "content", "term")
        return {name: value for name in fields if (value := getattr(self, name))}


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    type: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    timestamp: datetime
    channel: str = Field(default="web", max_length=40, pattern=r"^[a-z][a-z0-9_]*$")
    identifiers: dict[str, IdentifierValues] = Field(default_factory=dict)
    traits: dict[str, Scalar] = Field(default_factory=dict)
    context: Context = Field(default_factory=Context)
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # Naive times are taken as UTC so ordering by event time is well defined.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("identifiers")
    @classmethod
    def _bounded_identifiers(cls, value: dict[str, IdentifierValues]) -> dict[str, IdentifierValues]:
        count = sum(len(v) if isinstance(v, list) else 1 for v in value.values())
        if count > MAX_IDENTIFIERS:
            raise ValueError(f"at most {MAX_IDENTIFIERS} identifier values per event")
        return value

    @field_validator("traits")
    @classmethod
    def _bounded_traits(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        if len(value) > MAX_TRAITS:
            raise ValueError(f"at most {MAX_TRAITS} traits per event")
        for name, trait in value.items():
            if isinstance(trait, str) and len(trait) > 1000:
                raise ValueError(f"trait {name!r} is longer than 1000 characters")
        return value

    @model_validator(mode="after")
    def _bounded_properties(self) -> Event:
        if len(json.dumps(self.properties, default=str)) > MAX_PROPERTIES_BYTES:
            raise ValueError(f"properties exceed {MAX_PROPERTIES_BYTES} bytes")
        return self

    def identifier_pairs(self) -> list[tuple[str, object]]:
        """Every (kind, raw value) the event carries, lists flattened."""
        pairs: list[tuple[str, object]] = []
        for kind, values in self.identifiers.items():
            for value in values if isinstance(values, list) else [values]:
                pairs.append((kind, value))
        return pairs

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_defaults=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        return cls.model_validate_json(data)


def describe_validation_error(exc: Exception, where: str = "") -> list[dict[str, str]]:
    """Pydantic errors as ``[{"field": "identifiers.phone", "reason": "..."}]`` for 4xx answers
    and rejects files: field paths under ``where``, never the input (it may be personal data).
    A rule of the whole object (no field of its own) is reported on ``where``."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return [{"field": where, "reason": str(exc)}]
    described = []
    for error in errors(include_url=False, include_input=False, include_context=False):
        path = ".".join(str(part) for part in error["loc"])
        field = f"{where}.{path}" if where and path else path or where
        described.append({"field": field, "reason": error["msg"].removeprefix("Value error, ")})
    return described


def utcnow() -> datetime:
    return datetime.now(UTC)
