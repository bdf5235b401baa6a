"""Normalization and validation of identifier values, one rule per kind.

``normalize(policy, kind, raw)`` returns the canonical value or raises ``Rejected`` with a
short reason. Reasons never contain the value itself (no personal data in logs).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from svyaz.identity.policy import Policy


class Rejected(ValueError):
    """The value can never be used as an identifier of this kind."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# PostHog's lesson: these strings arrive as ids from broken clients and glue giant profiles together.
GARBAGE = frozenset(
    {
        "",
        "undefined",
        "null",
        "none",
        "nan",
        "0",
        "-1",
        "anonymous",
        "guest",
        "unknown",
        "test",
        "[object object]",
        "true",
        "false",
        "nil",
        "n/a",
        "na",
    }
)
ONLY_ZEROS_OR_DASHES = re.compile(r"^[0\-]*$")
MAX_VALUE_LENGTH = 512


def _strip_quotes(value: str) -> str:
    value = value.strip()
    while len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
        value = value[1:-1].strip()
    return value


def is_garbage(value: str) -> bool:
    bare = _strip_quotes(value).lower()
    return bare in GARBAGE or bool(ONLY_ZEROS_OR_DASHES.match(bare))


def _phone(value: str, region: str) -> str:
    digits = re.sub(r"\D", "", value)
    # Russian habit: 8 instead of +7, and 11 digits written without the plus.
    if region == "RU" and not value.lstrip().startswith("+") and len(digits) == 11 and digits[0] in "78":
        value = "+7" + digits[1:]
    elif not value.lstrip().startswith("+") and len(digits) > 10:
        value = "+" + digits
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise Rejected("not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise Rejected("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _email(value: str, region: str) -> str:
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise Rejected("not a valid email address") from exc
    return checked.normalized.lower()


GA_COOKIE = re.compile(r"^GA\d+\.\d+\.(\d+\.\d+)$", re.IGNORECASE)
GA_CID = re.compile(r"^\d+\.\d+$")


def _ga_client_id(value: str, region: str) -> str:
    match = GA_COOKIE.match(value)
    if match:
        return match.group(1)
    if GA_CID.match(value):
        return value
    raise Rejected("not a Google Analytics client id (_ga cookie or cid)")


def _digits(what: str) -> Callable[[str, str], str]:
    def rule(value: str, region: str) -> str:
        if not value.isdigit():
            raise Rejected(f"{what} must be digits")
        return value.lstrip("0") or "0"

    return rule


def _telegram_id(value: str, region: str) -> str:
    if not re.fullmatch(r"-?\d{1,20}", value):
        raise Rejected("telegram id must be an integer")
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise Rejected("telegram id must fit in 64 bits")
    return str(number)


MAC = re.compile(r"^[0-9a-f]{12}$")


def _mac(value: str, region: str) -> str:
    hexdigits = re.sub(r"[:\-.\s]", "", value.lower())
    if not MAC.match(hexdigits):
        raise Rejected("not a MAC address")
    if hexdigits in ("000000000000", "ffffffffffff"):
        raise Rejected("placeholder MAC address")
    return ":".join(hexdigits[i : i + 2] for i in range(0, 12, 2))


def _advertising_id(value: str, region: str) -> str:
    lowered = value.lower()
    if re.fullmatch(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", lowered) is None:
        raise Rejected("advertising id must be a UUID (IDFA/AAID)")
    if set(lowered) <= {"0", "-"}:
        raise Rejected("all-zero advertising id (tracking limited)")
    hexdigits = lowered.replace("-", "")
    return f"{hexdigits[:8]}-{hexdigits[8:12]}-{hexdigits[12:16]}-{hexdigits[16:20]}-{hexdigits[20:]}"


def _text(value: str, region: str) -> str:
    return value


def _lower(value: str, region: str) -> str:
    return value.lower()


NORMALIZERS: dict[str, Callable[[str, str], str]] = {
    "phone": _phone,
    "email": _email,
    "ga_client_id": _ga_client_id,
    "ym_client_id": _digits("Yandex Metrica client id"),
    "telegram_id": _telegram_id,
    "whatsapp_id": _text,
    "mac": _mac,
    "advertising_id": _advertising_id,
    "device_id": _lower,
    "text": _text,
    "lower": _lower,
    "digits": _digits("value"),
}


def normalize(policy: Policy, kind: str, raw: object) -> str:
    """Canonical value of ``raw`` for ``kind``; ``UnknownKind`` or ``Rejected`` otherwise."""
    rules = policy.kind(kind)
    if isinstance(raw, bool) or raw is None:
        raise Rejected("placeholder value")
    if isinstance(raw, int):
        raw = str(raw)
    if not isinstance(raw, str):
        raise Rejected("value must be a string or an integer")
    value = _strip_quotes(raw)
    if len(value) > MAX_VALUE_LENGTH:
        raise Rejected(f"longer than {MAX_VALUE_LENGTH} characters")
    if is_garbage(value):
        raise Rejected("placeholder value")
    rule = NORMALIZERS.get(rules.normalizer or kind, _text)
    canonical = rule(value, policy.default_region)
    if is_garbage(canonical) or policy.blocked_by_config(kind, canonical):
        raise Rejected("blocklisted value")
    return canonical
