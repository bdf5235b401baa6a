"""What any accepted event must satisfy so that every store can hold it: the one validation
shared by the entry points and the worker.

Two parts, both pure:

* :func:`storable_problems` checks the *shape* of free-form values (properties, traits,
  context text): nesting depth, key names, integer range, finite numbers, string lengths,
  arrays in arrays, invalid Unicode. :class:`~svyaz.domain.events.Event` runs it in its own
  validators, so every path that builds an event gets it: ``/collect``, every channel parser
  (``channels.build_event``), bulk import, and the worker decoding a queued message.
* :class:`TimeWindow` bounds the event time (configurable: ``SVYAZ_EVENT_TIME_EARLIEST`` and
  ``SVYAZ_EVENT_TIME_FUTURE_HOURS``). It depends on the clock and the settings, so it is called
  explicitly: by ``entrypoints.http.accept_events`` (every HTTP channel) and by the worker
  (``entrypoints.process``), through :func:`check_event_time`.

New channels call nothing extra: building their events with ``channels.build_event`` and
queuing them through ``entrypoints.http.enqueue`` applies both parts.

The rules follow Firestore's limits (https://firebase.google.com/docs/firestore/quotas): map
keys may not be empty or match ``__.*__``; maps nest at most 20 levels in a document (a
touchpoint keeps ``properties`` one level down); integers are 64-bit; an array may not hold an
array directly. Dots, slashes and other punctuation in property keys are kept as they are:
the stores write whole maps, where a key is a literal name, never a field path. Trait names
are stricter (:data:`TRAIT_NAME`: letters, digits, ``_`` and ``-``) because a profile's traits
are addressed by name.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_DEPTH = 10  # maps and arrays below ``properties`` (Firestore allows 20 in a document)
MAX_KEY_LENGTH = 128  # characters of a property key or trait name
MAX_TEXT_LENGTH = 16_384  # characters of one string in properties (their whole is capped too)
MAX_TRAIT_TEXT_LENGTH = 1000
MIN_INT, MAX_INT = -(2**63), 2**63 - 1  # Firestore integers are signed 64-bit
RESERVED_KEY = re.compile(r"^__.*__$")  # Firestore's reserved field names
# Trait names: letters of any script, digits, underscore, hyphen (no dots, slashes, spaces):
# a name is a profile field, kept addressable on every store.
TRAIT_NAME = re.compile(r"^\w[\w-]{0,127}$")
SURROGATE = re.compile(r"[\ud800-\udfff]")
# Firestore timestamps and our epoch-millisecond fields stay well inside these hard bounds, so
# no time arithmetic (offsets, lookback windows) can overflow whatever the configured window.
HARD_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
HARD_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def invalid_text(text: str) -> str | None:
    """Why a string cannot be stored (lone surrogates: not valid Unicode), or None."""
    return "is not valid Unicode (lone surrogate)" if SURROGATE.search(text) else None


# Nesting of any JSON a sender sends (a body, or JSON inside a form field): an event with its
# deepest properties is far below it, and the parser and every later step (pydantic, the queue,
# the stores) stay far from recursion limits.
MAX_JSON_DEPTH = 32


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(data: str | bytes) -> Any:
    """JSON text as a value, or ``ValueError`` whose reason quotes no input: invalid JSON
    or UTF-8, ``NaN``/``Infinity``, nesting deeper than ``MAX_JSON_DEPTH`` (the parser's own
    recursion is caught too), text that is not valid Unicode (lone surrogates). Every JSON a
    sender sends is read through it: HTTP bodies (``entrypoints.http.parse_json``) and JSON
    carried in a form (Mango's ``json`` field)."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:  # the parser's own stack, long before our depth check could run
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({type(exc).__name__})") from None
    if (reason := json_problem(value)) is not None:
        raise ValueError(reason)
    return value


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a parsed JSON value is refused (too deep, invalid Unicode), or None. Iterative."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if invalid_text(item):
                return "text that is not valid Unicode (a lone surrogate)"
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)
    return None


def key_problem(key: object) -> str | None:
    """Why a map key cannot be stored as a field name on every store, or None."""
    if not isinstance(key, str):
        return "keys must be strings"
    if not key:
        return "empty key"
    if len(key) > MAX_KEY_LENGTH:
        return f"key longer than {MAX_KEY_LENGTH} characters"
    if RESERVED_KEY.match(key):
        return "keys of the form __name__ are reserved"
    return invalid_text(key)


def _scalar_problem(value: object, max_text: int) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if MIN_INT <= value <= MAX_INT else "integer outside the 64-bit range"
    if isinstance(value, float):
        return None if math.isfinite(value) else "numbers must be finite"
    if isinstance(value, str):
        if len(value) > max_text:
            return f"text longer than {max_text} characters"
        return invalid_text(value)
    return f"unsupported value of type {type(value).__name__}"


def _children(value: object, path: str) -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [(f"{path}.{key}", item) for key, item in value.items()]
    return [(f"{path}[{index}]", item) for index, item in enumerate(value)]  # type: ignore[arg-type]


def storable_problems(
    value: object, where: str, *, max_depth: int = MAX_DEPTH, max_text: int = MAX_TEXT_LENGTH
) -> list[tuple[str, str]]:
    """Every ``(path, reason)`` that keeps a JSON-like value from being stored; empty when it
    can be. Iterative (no recursion), so any nesting is checked safely. Paths name keys, never
    values (values may be personal data)."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[str, object, int, bool]] = [(where, value, 0, False)]
    while stack and len(problems) < 20:
        path, item, depth, in_array = stack.pop()
        if not isinstance(item, dict | list):
            if (reason := _scalar_problem(item, max_text)) is not None:
                problems.append((path, reason))
            continue
        if depth > max_depth:
            problems.append((path, f"nested deeper than {max_depth} levels"))
            continue
        if isinstance(item, list) and in_array:
            problems.append((path, "an array may not directly contain an array"))
            continue
        if isinstance(item, dict):
            for key in item:
                if (reason := key_problem(key)) is not None:
                    problems.append((path, reason))
        for child_path, child in _children(item, path):
            stack.append((child_path, child, depth + 1, isinstance(item, list)))
    return problems


def trait_problems(traits: dict[str, object]) -> list[tuple[str, str]]:
    """Trait names and scalar values a profile can keep."""
    problems = []
    for name, value in traits.items():
        if not TRAIT_NAME.match(name) or RESERVED_KEY.match(name):
            problems.append(
                ("traits", "trait names are 1-128 letters, digits, '_' or '-' (no dots, slashes, spaces)")
            )
            continue
        if (reason := _scalar_problem(value, MAX_TRAIT_TEXT_LENGTH)) is not None:
            problems.append((f"traits.{name}", reason))
    return problems


MAX_ORDER_AMOUNT = Decimal("9999999999999.99")  # 15 digits, as the CRM channel accepts


def order_problems(properties: dict[str, object]) -> list[tuple[str, str]]:
    """An order's amount is a non-negative finite decimal (text or number): revenue is never
    negative, whoever reports it."""
    amount = properties.get("amount")
    if amount is None:
        return []
    if isinstance(amount, bool) or not isinstance(amount, str | int | float):
        return [("properties.amount", "must be a number or decimal text")]
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        return [("properties.amount", "must be a number or decimal text")]
    if not value.is_finite() or not Decimal(0) <= value <= MAX_ORDER_AMOUNT:
        return [("properties.amount", f"must be between 0 and {MAX_ORDER_AMOUNT}")]
    return []


def raise_on(problems: list[tuple[str, str]]) -> None:
    """Pydantic validators: the problems as one ``ValueError`` (its text names paths only)."""
    if problems:
        raise ValueError("; ".join(f"{path}: {reason}" for path, reason in problems[:5]))


@dataclass(frozen=True)
class TimeWindow:
    """Event times accepted: from ``earliest`` to ``future`` past now. Outside it an event is a
    sender bug (milliseconds sent as seconds, a zero date, a clock years off) and is refused."""

    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    future: timedelta = timedelta(days=1)

    def problem(self, at: datetime, now: datetime) -> str | None:
        earliest = max(self.earliest, HARD_EARLIEST)
        latest = min(now + self.future, HARD_LATEST)
        if at < earliest:
            return f"timestamp is before {earliest.date().isoformat()}"
        if at > latest:
            return f"timestamp is more than {self.future} in the future"
        return None


def check_event_time(event: object, window: TimeWindow, now: datetime | None = None) -> str | None:
    """The reason an event's time is outside the window, or None. ``event`` is an ``Event``."""
    return window.problem(event.timestamp, now or datetime.now(UTC))  # type: ignore[attr-defined]
