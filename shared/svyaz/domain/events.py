"""The one canonical event that every channel (web, QR, WhatsApp, Telegram, calls, CRM, import)
produces and the pipeline applies."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

from svyaz.domain import validation

Scalar = str | int | float | bool | None
# Strict: JSON ``true`` is not the identifier "1", nor 1.0 the identifier "1".
IdentifierValues = StrictStr | StrictInt | list[StrictStr | StrictInt]

MAX_IDENTIFIERS = 50
MAX_TRAITS = 50
MAX_PROPERTIES_BYTES = 16_384
MAX_IDENTIFIER_LENGTH = 512  # characters of one identifier value (normalization's own bound)
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


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

    @field_validator("*")
    @classmethod
    def _valid_unicode(cls, value: str | None) -> str | None:
        if value is not None and (reason := validation.invalid_text(value)):
            raise ValueError(reason)
        return value

    def attribution(self) -> dict[str, str]:
        """The ad-source part, without empty fields."""
        fields = ("source", "medium", "campaign", "content", "term")
        return {name: value for name in fields if (value := getattr(self, name))}


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Room for a sender namespace (``web-<key id>:``) in front of a 200-character client id.
    event_id: str = Field(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")
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
        try:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
            raise ValueError("timestamp is out of range") from None
        if not validation.HARD_EARLIEST <= value < validation.HARD_LATEST:
            raise ValueError("timestamp is out of range")
        return value

    @field_validator("identifiers")
    @classmethod
    def _bounded_identifiers(cls, value: dict[str, IdentifierValues]) -> dict[str, IdentifierValues]:
        count = sum(len(v) if isinstance(v, list) else 1 for v in value.values())
        if count > MAX_IDENTIFIERS:
            raise ValueError(f"at most {MAX_IDENTIFIERS} identifier values per event")
        for kind, values in value.items():
            if not re.match(KIND_PATTERN, kind):
                raise ValueError("identifier kinds are 1-40 lower-case letters, digits or '_'")
            for item in values if isinstance(values, list) else [values]:
                if isinstance(item, str) and len(item) > MAX_IDENTIFIER_LENGTH:
                    raise ValueError(f"{kind}: a value is longer than {MAX_IDENTIFIER_LENGTH} characters")
                if isinstance(item, str) and (reason := validation.invalid_text(item)):
                    raise ValueError(f"{kind}: a value {reason}")
                if isinstance(item, int) and not validation.MIN_INT <= item <= validation.MAX_INT:
                    raise ValueError(f"{kind}: integer outside the 64-bit range")
        return value

    @field_validator("traits")
    @classmethod
    def _bounded_traits(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        if len(value) > MAX_TRAITS:
            raise ValueError(f"at most {MAX_TRAITS} traits per event")
        validation.raise_on(validation.trait_problems(value))
        return value

    @field_validator("properties")
    @classmethod
    def _storable_properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        validation.raise_on(validation.storable_problems(value, "properties"))
        return value

    @model_validator(mode="after")
    def _order_amount(self) -> Event:
        if self.type == "order":
            validation.raise_on(validation.order_problems(self.properties))
        return self

    @model_validator(mode="after")
    def _bounded_properties(self) -> Event:
        if len(json.dumps(self.properties, default=str, ensure_ascii=False).encode()) > MAX_PROPERTIES_BYTES:
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


# --- sender namespaces -----------------------------------------------------------------------
# Event ids are the idempotency keys. Channel parsers derive theirs from the vendor's own ids
# under a fixed channel prefix (``order:``, ``tg:``, ``wa:``, ``call:``, ``qr:``, ``import:``).
# Ids a client makes up (``/collect`` and any API taking client ids) are put under the
# namespace of the key that authenticated them, so a sender can only ever collide with its own
# past events: never with another channel's, never with another write key's.
# ``<channel>-<10 hex>:``: no channel prefix has this form.
SENDER_NAMESPACE = re.compile(r"^([a-z][a-z0-9_]*-[0-9a-f]{10}):")


def sender_namespace(credential: str, channel: str = "web") -> str:
    """The namespace of one client sender: its channel and a short digest of the key it
    authenticated with (the key itself is never stored). Rotating a key starts a new namespace."""
    digest = hashlib.sha256(credential.encode()).hexdigest()[:10]
    return f"{channel}-{digest}"


def namespaced_event_id(namespace: str, client_event_id: str) -> str:
    """The stored event id of a client's ``event_id`` (its redeliveries map to the same id)."""
    return f"{namespace}:{client_event_id}"


def namespace_of(event_id: str) -> str | None:
    """The client sender's namespace of an event id, None for channel-derived ids."""
    match = SENDER_NAMESPACE.match(event_id)
    return match.group(1) if match else None


def client_event_id(event_id: str) -> str:
    """The id the client sent, for answers: a namespaced id without its namespace."""
    namespace = namespace_of(event_id)
    return event_id[len(namespace) + 1 :] if namespace else event_id


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
