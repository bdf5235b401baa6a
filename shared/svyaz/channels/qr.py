"""Signed QR codes printed in offline stores, and the scan that lands on ``/qr/<token>``.

A token is ``<payload>.<tag>``: the payload is base64url (no padding) of a compact JSON object
``{"s": store_id, "c": campaign, "o": offer, "t": target, "e": expires_at}``, the tag is the
base64url of HMAC-SHA256(key, ``"svyaz-qr-v1." + payload``) truncated to 16 bytes. Codes can't
be forged or enumerated without the key, and the redirect target is signed with the code (and
checked against the allow-list when signing), so ``/qr/`` is never an open redirect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from os import PathLike
from typing import Any
from urllib.parse import urlsplit

from svyaz.channels import ChannelError, build_event, clip, printable_id
from svyaz.domain.events import Context, Event

MAX_TOKEN_LENGTH = 1024
MAX_FIELD_LENGTH = 100
MAX_URL_LENGTH = 2048
TAG_BYTES = 16
_DOMAIN = b"svyaz-qr-v1."
_B64 = re.compile(r"^[A-Za-z0-9_-]+$")
_HOST = re.compile(r"^[a-z0-9.-]+$")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")


class InvalidQrCode(ChannelError):
    """The token is malformed, tampered with or expired."""


@dataclass(frozen=True)
class QrCode:
    store_id: str
    campaign: str
    offer: str
    target: str
    expires_at: int | None = None  # unix seconds


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64.match(text):
        raise InvalidQrCode("malformed code")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidQrCode("malformed code") from None


def _tag(payload: str, key: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + payload.encode("ascii"), hashlib.sha256).digest()[:TAG_BYTES]


def _allowed_list(allowed_hosts: Iterable[str] | str) -> list[str]:
    if isinstance(allowed_hosts, str):  # a comma-separated setting passed as is
        allowed_hosts = allowed_hosts.split(",")
    hosts = []
    for entry in allowed_hosts:
        if isinstance(entry, str):
            entry = entry.strip().lower().removeprefix("*.").strip(".")
            if entry:
                hosts.append(entry)
    return hosts


def _ascii_host(host: str) -> str | None:
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return host if _HOST.match(host) and ".." not in host else None


def target_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    """True for an https URL (http only on localhost) whose host is an allowed host or its subdomain."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH or _CONTROL.search(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not url[len(scheme) :].startswith("://"):
        return False
    netloc = parts.netloc
    if not netloc or "@" in netloc or "%" in netloc or "[" in netloc:
        return False
    host = _ascii_host(parts.hostname or "")
    if host is None or host.endswith("."):
        return False
    if scheme == "http" and host not in _LOCAL_HOSTS:
        return False
    return any(host == allowed or host.endswith("." + allowed) for allowed in _allowed_list(allowed_hosts))


def _check_field(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ChannelError(f"{name}: must be a non-empty string")
    if len(value) > MAX_FIELD_LENGTH or re.search(r"[\x00-\x1f\x7f]", value):
        raise ChannelError(f"{name}: at most {MAX_FIELD_LENGTH} characters, no control characters")
    return value


def sign_code(code: QrCode, key: bytes, *, allowed_hosts: Iterable[str]) -> str:
    """A compact signed token for ``code``; refuses a target outside ``allowed_hosts``."""
    if not key:
        raise ChannelError("QR signing key is empty")
    payload: dict[str, Any] = {
        "s": _check_field("store_id", code.store_id),
        "c": _check_field("campaign", code.campaign),
        "o": _check_field("offer", code.offer),
        "t": code.target,
    }
    if not target_allowed(code.target, allowed_hosts):
        raise ChannelError("target: not an https URL on an allowed host")
    if code.expires_at is not None:
        if isinstance(code.expires_at, bool) or not isinstance(code.expires_at, int) or code.expires_at < 0:
            raise ChannelError("expires_at: must be unix seconds")
        payload["e"] = code.expires_at
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    body = _b64encode(data)
    token = f"{body}.{_b64encode(_tag(body, key))}"
    if len(token) > MAX_TOKEN_LENGTH:
        raise ChannelError("code is too long for a QR token")
    return token


def verify_code(token: str, key: bytes, now: float, *, allowed_hosts: Iterable[str] | None = None) -> QrCode:
    """The code a token carries; ``InvalidQrCode`` on bad format, tampering or expiry.

    ``allowed_hosts``, when given, re-checks the signed target (an allow-list that shrank after
    the codes were printed still wins).
    """
    if not key:
        raise InvalidQrCode("QR signing key is empty")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidQrCode("malformed code")
    body, dot, tag_text = token.partition(".")
    if not dot or not body or not tag_text:
        raise InvalidQrCode("malformed code")
    tag = _b64decode(tag_text)
    _b64decode(body)  # charset check before spending an HMAC on it
    if len(tag) != TAG_BYTES or _b64encode(tag) != tag_text:
        raise InvalidQrCode("malformed code")
    if not hmac.compare_digest(tag, _tag(body, key)):
        raise InvalidQrCode("bad signature")
    try:
        data = json.loads(_b64decode(body).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidQrCode("malformed code") from None
    if not isinstance(data, dict):
        raise InvalidQrCode("malformed code")
    fields = (data.get("s"), data.get("c"), data.get("o"), data.get("t"))
    expires_at = data.get("e")
    if not all(isinstance(f, str) and f for f in fields) or not (
        expires_at is None or (isinstance(expires_at, int) and not isinstance(expires_at, bool))
    ):
        raise InvalidQrCode("malformed code")
    if expires_at is not None and now >= expires_at:
        raise InvalidQrCode("code expired")
    code = QrCode(*fields, expires_at=expires_at)  # type: ignore[arg-type]
    if allowed_hosts is not None and not target_allowed(code.target, allowed_hosts):
        raise InvalidQrCode("target no longer allowed")
    return code


def landing_url(base_url: str, token: str) -> str:
    """``<base>/qr/<token>``: the URL to print."""
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/?#\s]+", base_url):
        raise ChannelError("base_url must be an http(s) URL")
    if not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token):
        raise ChannelError("malformed token")
    return f"{base_url.rstrip('/')}/qr/{token}"


def render(url: str, png_path: str | PathLike[str], svg_path: str | PathLike[str]) -> None:
    """Write a printable PNG (10 px modules, 4-module quiet zone) and an SVG of the QR code."""
    import segno  # imported here: only the CLI that prints codes needs it

    qrcode = segno.make(url, error="m", micro=False)
    qrcode.save(png_path, kind="png", scale=10, border=4)
    qrcode.save(svg_path, kind="svg", scale=10, border=4)


def landing_event(
    code: QrCode, cookies: Mapping[str, str], visitor_id: str, now: datetime, scan_id: str
) -> Event:
    """The offline visit a scan records for the browser's profile."""
    visitor = clip(visitor_id, 512)
    if not visitor:
        raise ChannelError("visitor_id: missing")
    identifiers: dict[str, str] = {"client_id": visitor}
    for cookie, kind in (("_ym_uid", "ym_client_id"), ("_ga", "ga_client_id")):
        value = clip(cookies.get(cookie), 512)
        if value:
            identifiers[kind] = value
    return build_event(
        event_id="qr:" + printable_id(scan_id, "scan_id", max_length=190),
        type="qr_scan",
        timestamp=now,
        channel="qr",
        identifiers=identifiers,
        context=Context(source="store", medium="qr", campaign=clip(code.campaign, 500)),
        properties={"store_id": code.store_id, "offer": code.offer},
    )
