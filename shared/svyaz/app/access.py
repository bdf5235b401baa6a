"""One-time sign-in links for the customer journal (``svyaz serve`` prints one).

A link is a random token; only its hash is kept, in this process, until it is used once or
expires. That is what makes it one-time, and also why links exist only where the process that
issued them serves the journal (``svyaz serve``): a deployed function signs people in with a
journal key or behind Identity-Aware Proxy.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

LINK_TTL_SECONDS = 15 * 60


class SignInLinks:
    def __init__(self, ttl_seconds: float = LINK_TTL_SECONDS, clock=time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._open: dict[str, float] = {}  # sha256 of the token -> expiry

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._open[_digest(token)] = self.clock() + self.ttl
        return token

    def redeem(self, token: str) -> bool:
        """True once for a token issued here and not expired; False ever after."""
        with self._lock:
            expiry = self._open.pop(_digest(token), None)
        return expiry is not None and self.clock() < expiry


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
