"""The files the ad systems take for offline conversions. Pure: conversions in, bytes out.

Yandex Metrica (feeds Yandex Direct's automatic strategies):
  * orders: "Passing offline conversions",
    https://yandex.com/dev/metrika/en/management/offline-conv.md — CSV, column names on the first
    line, at least one of ``ClientId`` / ``UserId`` / ``Yclid`` per row, ``Target`` (the goal's
    identifier), ``DateTime`` (Unix time stamp, only in the past), optional ``Price`` (dot as the
    decimal separator) and ``Currency`` (ISO 4217, three letters); UTF-8.
  * calls: "Sending call data", https://yandex.com/dev/metrika/en/management/calls.md — the same
    identifiers and ``DateTime`` (UTC), optional ``StaticCall`` (1 static, 0 dynamic: a number
    shown to one site session), ``TalkDuration`` (seconds) and ``CallMissed`` (1 missed).
Google Ads ("Import conversions from ad clicks into Google Ads using files",
https://support.google.com/google-ads/answer/7014069):
  * a ``Parameters:TimeZone=+0000`` line, then ``Google Click ID,Conversion Name,Conversion
    Time,Conversion Value,Conversion Currency`` (times ``yyyy-MM-dd HH:mm:ss``);
  * enhanced conversions for leads: ``Email`` and ``Phone Number`` instead of the click id, each
    normalized and SHA-256 hashed as https://developers.google.com/google-ads/api/docs/conversions/upload-identifiers
    says (trim, lower case, no dots before ``@gmail.com`` / ``@googlemail.com``; phones in E.164).

Personal data: each file carries only what its format needs. Metrica gets its own visitor id
(or the Direct click id, or the site's user id when neither is known); Google Ads gets its click
id, else the hashed e-mail and phone. Nothing else of the customer leaves svyaz.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

CENTS = Decimal("0.01")
CURRENCY = re.compile(r"^[A-Z]{3}$")
GOOGLE_MAIL_DOMAINS = ("gmail.com", "googlemail.com")


@dataclass(frozen=True)
class Refused:
    """A conversion that cannot go into the file, and why (no personal data in the reason)."""

    key: str
    reason: str


@dataclass
class OrderConversion:
    """One counted order and the customer identifiers the ad systems can match it by."""

    key: str  # the order touchpoint's name ("order:<id>"): what the export ledger remembers
    order_id: str
    at: datetime
    amount: Decimal
    currency: str
    channel: str
    credit: dict[str, dict[str, str]] = field(default_factory=dict)
    ym_client_id: str | None = None
    yclid: str | None = None
    user_id: str | None = None
    gclid: str | None = None
    email: str | None = None  # normalized by svyaz (lower case); hashed only in the Google file
    phone: str | None = None  # E.164


@dataclass
class CallConversion:
    key: str  # the call touchpoint's event id
    at: datetime
    duration: int | None
    missed: bool
    static: bool  # no site session was known for the call: a static number
    ym_client_id: str | None = None
    yclid: str | None = None
    user_id: str | None = None


@dataclass
class Rows:
    """Header and rows of one file, the ledger keys of its rows, and what was refused."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    preamble: list[str] = field(default_factory=list)  # lines before the header (Google Ads)

    def to_bytes(self) -> bytes:
        out = io.StringIO()
        for line in self.preamble:
            out.write(line + "\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue().encode("utf-8")


def money(amount: Decimal) -> str:
    return format(amount.quantize(CENTS), "f")


def _common_refusal(key: str, at: datetime, now: datetime) -> Refused | None:
    if at > now:
        return Refused(key, "conversion time is in the future")
    return None


def _order_refusal(conversion: OrderConversion, now: datetime) -> Refused | None:
    if (refused := _common_refusal(conversion.key, conversion.at, now)) is not None:
        return refused
    if conversion.amount < 0:
        return Refused(conversion.key, "negative amount")
    if not CURRENCY.match(conversion.currency):
        return Refused(conversion.key, "currency is not an ISO 4217 code")
    return None


def _metrica_ids(conversion: OrderConversion | CallConversion) -> dict[str, str]:
    """ClientId and Yclid when known; the site's UserId only when neither is."""
    ids = {"ClientId": conversion.ym_client_id, "Yclid": conversion.yclid}
    found = {column: value for column, value in ids.items() if value}
    if not found and conversion.user_id:
        found["UserId"] = conversion.user_id
    return found


def _with_id_columns(rows: list[tuple[str, dict[str, str], list[str]]], tail: list[str]) -> Rows:
    """Only the identifier columns some row uses, in the documented order."""
    used = [c for c in ("ClientId", "Yclid", "UserId") if any(c in ids for _, ids, _ in rows)]
    out = Rows(header=[*used, *tail])
    for key, ids, values in rows:
        out.rows.append([*(ids.get(c, "") for c in used), *values])
        out.keys.append(key)
    return out


def metrica_orders(conversions: Iterable[OrderConversion], goal: str, now: datetime) -> Rows:
    kept: list[tuple[str, dict[str, str], list[str]]] = []
    refused: list[Refused] = []
    for conversion in conversions:
        ids = _metrica_ids(conversion)
        problem = _order_refusal(conversion, now) or (
            None if ids else Refused(conversion.key, "no Metrica ClientID, yclid or UserID known")
        )
        if problem is not None:
            refused.append(problem)
            continue
        values = [goal, str(int(conversion.at.timestamp())), money(conversion.amount), conversion.currency]
        kept.append((conversion.key, ids, values))
    rows = _with_id_columns(kept, ["Target", "DateTime", "Price", "Currency"])
    rows.refused = refused
    return rows


def metrica_calls(conversions: Iterable[CallConversion], now: datetime) -> Rows:
    kept: list[tuple[str, dict[str, str], list[str]]] = []
    refused: list[Refused] = []
    for call in conversions:
        ids = _metrica_ids(call)
        problem = _common_refusal(call.key, call.at, now) or (
            None if ids else Refused(call.key, "no Metrica ClientID, yclid or UserID known")
        )
        if problem is not None:
            refused.append(problem)
            continue
        values = [
            str(int(call.at.timestamp())),
            "1" if call.static else "0",
            "" if call.duration is None else str(call.duration),
            "1" if call.missed else "0",
        ]
        kept.append((call.key, ids, values))
    rows = _with_id_columns(kept, ["DateTime", "StaticCall", "TalkDuration", "CallMissed"])
    rows.refused = refused
    return rows


def google_email(email: str) -> str:
    """Google's normalization before hashing: trimmed, lower case, and no dots in the local part
    of gmail.com / googlemail.com addresses."""
    local, _, domain = email.strip().lower().partition("@")
    if domain in GOOGLE_MAIL_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def google_phone(phone: str) -> str:
    """E.164: ``+`` and digits only (svyaz already stores phones so)."""
    digits = re.sub(r"\D", "", phone)
    return f"+{digits}"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def google_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


GOOGLE_PREAMBLE = ["Parameters:TimeZone=+0000"]
GOOGLE_TAIL = ["Conversion Name", "Conversion Time", "Conversion Value", "Conversion Currency"]


def google_ads(
    conversions: Iterable[OrderConversion], conversion_name: str, now: datetime
) -> tuple[Rows, Rows]:
    """(rows with a Google click id, enhanced-conversions rows with hashed e-mail / phone)."""
    by_click = Rows(header=["Google Click ID", *GOOGLE_TAIL], preamble=list(GOOGLE_PREAMBLE))
    enhanced = Rows(header=["Email", "Phone Number", *GOOGLE_TAIL], preamble=list(GOOGLE_PREAMBLE))
    for conversion in conversions:
        problem = _order_refusal(conversion, now)
        if problem is None and not (conversion.gclid or conversion.email or conversion.phone):
            problem = Refused(conversion.key, "no gclid, e-mail or phone known")
        if problem is not None:
            by_click.refused.append(problem)
            continue
        tail = [conversion_name, google_time(conversion.at), money(conversion.amount), conversion.currency]
        if conversion.gclid:
            by_click.rows.append([conversion.gclid, *tail])
            by_click.keys.append(conversion.key)
            continue
        email = sha256_hex(google_email(conversion.email)) if conversion.email else ""
        phone = sha256_hex(google_phone(conversion.phone)) if conversion.phone else ""
        enhanced.rows.append([email, phone, *tail])
        enhanced.keys.append(conversion.key)
    return by_click, enhanced
