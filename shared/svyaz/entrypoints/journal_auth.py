"""Who is using the customer journal: signed session cookies and CSRF tokens, or the person
Identity-Aware Proxy signed in (docs/journal.md, "Signing in").

* ``key`` (default): a person signs in with a journal password (``SVYAZ_JOURNAL_KEYS``) or an API
  key, or once with a link ``svyaz serve`` prints; the session is a cookie holding
  ``{sid, sub, exp, key}`` signed with HMAC-SHA256 under ``SVYAZ_JOURNAL_SECRET`` (HttpOnly,
  Secure, SameSite=Strict, Path=/journal). ``key`` is a fingerprint of the key used, so removing
  a key from the configuration ends the sessions opened with it.
* ``iap``: every request carries IAP's signed JWT (``x-goog-iap-jwt-assertion``); it is verified
  (ES256 against Google's published IAP keys, issuer, audience = the backend service, expiry)
  and its email is the person. No cookie of ours.
* ``iap_header``: the ``x-goog-authenticated-user-email`` header is trusted as is. Only for a
  deployment where nothing but IAP can reach the function (ingress limited to the load
  balancer): anyone who reaches it directly could send the header.

CSRF: every POST carries a token bound to the session (HMAC of its id) in a hidden field, and a
cross-site ``Origin`` or ``Sec-Fetch-Site`` is refused; SameSite=Strict keeps the cookie off
cross-site requests besides.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from svyaz.entrypoints.http import key_matches

SESSION_COOKIE = "svyaz_journal"
SIGNIN_COOKIE = "svyaz_journal_signin"  # binds the sign-in form's token (no login CSRF)
COOKIE_PATH = "/journal"
IAP_JWT_HEADER = "x-goog-iap-jwt-assertion"
IAP_EMAIL_HEADER = "x-goog-authenticated-user-email"
IAP_ISSUER = "https://cloud.google.com/iap"
IAP_KEYS_URL = "https://www.gstatic.com/iap/verify/public_key"  # {key id: PEM public key}
IAP_KEYS_TTL = 3600.0


@dataclass(frozen=True)
class Person:
    name: str  # shown in the header: "key …a1b2", "sign-in link" or the IAP email
    sid: str  # what the CSRF token is bound to
    via: str  # "key", "link", "iap"


def now() -> float:
    """Seconds since the epoch (a seam: tests move time forward to expire sessions)."""
    return time.time()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signed, expiring tokens (sessions) and the tokens bound to them (CSRF)."""

    def __init__(self, secret: bytes, clock: Callable[[], float] | None = None) -> None:
        self._secret = secret
        self.clock = clock or (lambda: now())

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    def sign(self, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._mac('session', body))}"

    def open(self, token: str | None) -> dict[str, Any] | None:
        """The payload of a token signed here and not expired, else None."""
        if not token or token.count(".") != 1 or len(token) > 2048:
            return None
        body_text, mac_text = token.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
            if not hmac.compare_digest(mac, self._mac("session", body)):
                return None
            payload = json.loads(body)
        except (ValueError, TypeError):
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("exp"), int | float):
            return None
        return payload if payload["exp"] > self.clock() else None

    def bound(self, purpose: str, sid: str) -> str:
        return _b64(self._mac(purpose, sid.encode()))

    def check_bound(self, purpose: str, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.bound(purpose, sid).encode(), str(token).encode())

    def key_fingerprint(self, key: str) -> str:
        return _b64(self._mac("key", key.encode()))[:22]


class Sessions:
    """Key sign-in: a session per person, for ``minutes``."""

    def __init__(self, signer: Signer, minutes: int, keys: Callable[[], list[str]]) -> None:
        self.signer, self.minutes, self.keys = signer, minutes, keys

    def key_accepted(self, key: str | None) -> str | None:
        """The key if it is a configured journal password or API key (constant time)."""
        configured = self.keys()
        return key if key and configured and key_matches(key, configured) else None

    def open_for(self, key: str | None, via: str) -> str:
        """A new session cookie value (a link sign-in has no key)."""
        payload = {
            "sid": secrets.token_urlsafe(16),
            "exp": int(self.signer.clock() + self.minutes * 60),
            "via": via,
            "key": self.signer.key_fingerprint(key) if key else "",
        }
        return self.signer.sign(payload)

    def person(self, cookie: str | None) -> Person | None:
        payload = self.signer.open(cookie)
        if payload is None or not isinstance(payload.get("sid"), str):
            return None
        fingerprint = payload.get("key") or ""
        if fingerprint:
            # The key it was opened with must still be configured.
            if not any(hmac.compare_digest(fingerprint, self.signer.key_fingerprint(k)) for k in self.keys()):
                return None
            return Person(f"key …{fingerprint[-4:]}", payload["sid"], "key")
        return Person("link", payload["sid"], payload.get("via") or "link")


class IapVerifier:
    """IAP's signed header: ES256 JWT, Google's published keys, our backend as audience."""

    def __init__(self, audience: str, fetch_keys: Callable[[], dict[str, str]] | None = None) -> None:
        self.audience = audience
        self._fetch = fetch_keys or _fetch_iap_keys
        self._keys: dict[str, str] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _current_keys(self, refresh: bool = False) -> dict[str, str]:
        with self._lock:
            if refresh or not self._keys or time.monotonic() - self._fetched_at > IAP_KEYS_TTL:
                self._keys, self._fetched_at = self._fetch(), time.monotonic()
            return self._keys

    def email(self, assertion: str | None) -> str | None:
        if not assertion or len(assertion) > 8192:
            return None
        from google.auth import exceptions, jwt

        try:
            header = jwt.decode_header(assertion)
            keys = self._current_keys()
            if header.get("kid") not in keys:  # rotated: fetch once more
                keys = self._current_keys(refresh=True)
            claims = jwt.decode(assertion, certs=keys, audience=self.audience)
        except (exceptions.GoogleAuthError, ValueError, TypeError, KeyError):
            return None
        if header.get("alg") != "ES256" or claims.get("iss") != IAP_ISSUER:
            return None
        email = claims.get("email")
        return email if isinstance(email, str) and email else None


def _fetch_iap_keys() -> dict[str, str]:
    with urllib.request.urlopen(IAP_KEYS_URL, timeout=5) as answer:  # noqa: S310 - a fixed https URL
        keys = json.loads(answer.read())
    return {str(k): str(v) for k, v in keys.items()}


def iap_header_email(value: str | None) -> str | None:
    """``accounts.google.com:someone@example.com`` -> the email."""
    if not value:
        return None
    email = value.rpartition(":")[2].strip()
    return email or None
