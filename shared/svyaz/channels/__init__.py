"""Channel parsers: vendor payloads in, canonical :class:`~svyaz.domain.events.Event` out.

Every function in this package is pure (no network, no storage, no HTTP framework): the thin
HTTP functions authenticate the sender (``svyaz.entrypoints.webhook``), hand the parsed body to a
``parse_*`` function and queue the events it returns.

Parsers put *raw* identifier values in ``Event.identifiers``; normalization happens later in the
engine. They never store message text or other free text a customer typed.

Errors: anything a sender got wrong raises :class:`ChannelError` (a ``ValueError``) whose
``reason`` is short, names the offending field and never contains personal data (no phone
numbers, no message text). ``details`` optionally lists ``{"field", "reason"}`` pairs for a 4xx
JSON answer. Configuration mistakes on our side (a bad regex in the settings, say) are *not*
``ChannelError``: they are server faults.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from svyaz.domain.events import Event, describe_validation_error

__all__ = [
    "ChannelError",
    "build_event",
    "clip",
    "day_first_iso",
    "drop_empty",
    "from_unix",
    "printable_id",
    "russian_date",
    "secret_matches",
    "text_or_none",
]

PRINTABLE_ASCII = re.compile(r"^[\x21-\x7e]+$")


def _day_first(separators: str) -> re.Pattern[str]:
    sep = f"[{separators}]"
    clock = r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?"
    return re.compile(rf"^(\d{{2}}){sep}(\d{{2}}){sep}(\d{{4}}){clock}$")


# dd.mm.yyyy [HH:MM[:SS]], as 1C, tills and Russian spreadsheets write dates.
RUSSIAN_DATE = _day_first(".")
# Calltouch's call journal writes dd/mm/yyyy HH:MM:SS (dots accepted too).
CALLTOUCH_DATE = _day_first("/.")
# Event times outside this window are sender bugs (milliseconds sent as seconds, zeros, ...).
MIN_UNIX = 946_684_800  # 2000-01-01
MAX_UNIX = 4_102_444_800  # 2100-01-01


class ChannelError(ValueError):
    """The sender's payload cannot be accepted. ``reason`` is safe to log and to answer with."""

    def __init__(self, reason: str, *, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details: list[dict[str, str]] = details or [{"field": "", "reason": reason}]


def secret_matches(given: object, expected: str) -> bool:
    """A sender's token against ours, in constant time; never true when ours is unset."""
    if not expected or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def build_event(**fields: Any) -> Event:
    """Construct an :class:`Event`, turning pydantic's errors into a :class:`ChannelError`."""
    try:
        return Event(**fields)
    except ValidationError as exc:
        details = describe_validation_error(exc)
        summary = "; ".join(f"{d['field']}: {d['reason']}" for d in details[:3])
        raise ChannelError(f"event is invalid: {summary}", details=details) from None


def from_unix(value: object, where: str) -> datetime:
    """Unix seconds (int or digit string) as an aware UTC datetime."""
    if isinstance(value, bool):
        raise ChannelError(f"{where}: expected unix seconds")
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,12}\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise ChannelError(f"{where}: expected unix seconds")
    if not MIN_UNIX <= value <= MAX_UNIX:
        raise ChannelError(f"{where}: unix time out of range")
    return datetime.fromtimestamp(value, UTC)


def printable_id(value: object, where: str, *, max_length: int = 150) -> str:
    """An external id usable inside an event id: printable ASCII without spaces."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ChannelError(f"{where}: missing")
    value = value.strip()
    if len(value) > max_length or not PRINTABLE_ASCII.match(value):
        raise ChannelError(f"{where}: must be 1-{max_length} printable ASCII characters")
    return value


def clip(value: object, max_length: int) -> str | None:
    """A stripped non-empty string cut to ``max_length``, or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:max_length] or None


def day_first_iso(value: str, pattern: re.Pattern[str] = RUSSIAN_DATE) -> str | None:
    """A day-first date (``dd.mm.yyyy [HH:MM[:SS]]``, or as ``pattern`` separates it) as ISO 8601
    text without an offset; None when the value is not one."""
    match = pattern.match(value.strip())
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    return f"{year}-{month}-{day}T{int(hour or 0):02d}:{minute or '00'}:{second or '00'}"


def russian_date(value: object) -> object:
    """``dd.mm.yyyy [HH:MM[:SS]]`` as ISO 8601 text for pydantic; anything else unchanged."""
    if isinstance(value, str) and (iso := day_first_iso(value)):
        return iso
    return value


def text_or_none(value: object) -> object:
    """Numbers as text (CRMs and spreadsheets send numeric ids), blank text as missing; other
    values are left to validation."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return value


def drop_empty(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping without None values and empty strings."""
    return {key: value for key, value in mapping.items() if value is not None and value != ""}
