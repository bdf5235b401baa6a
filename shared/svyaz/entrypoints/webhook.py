"""One pipeline for every sender that pushes events: check the method, read the body (capped),
authenticate the sender, parse the payload into canonical events, queue them, answer.

A channel supplies an authentication strategy and a parser; the steps, the errors and the answer
shape are the same for all: ``{"accepted": [event ids], "ignored": [{"event_id", "reason"}]}``,
sent only once the events are safely queued (so a sender's retry of anything else is safe).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import flask

from svyaz.app.config import Settings
from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, secret_matches
from svyaz.domain.events import Event
from svyaz.entrypoints.http import (
    HttpError,
    allow_methods,
    channel_error,
    enqueue,
    json_response,
    read_body,
    require_key,
)


class Authentication(Protocol):
    """How a sender proves who it is. Raises ``HttpError`` (401, or 503 when svyaz has no secret
    configured for it: the sender is not at fault and may retry once it is set)."""

    def verify(self, request: flask.Request, raw: bytes, settings: Settings) -> None: ...


def configured_secret(settings: Settings, setting: str, what: str) -> str:
    value = getattr(settings, setting)
    secret = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    if not secret:
        raise HttpError(503, "not_configured", f"no {what} is configured on this service")
    return secret


@dataclass(frozen=True)
class BearerKey:
    """``Authorization: Bearer <key>``, any of the configured keys (one per source, revocable)."""

    setting: str
    what: str

    def verify(self, request: flask.Request, raw: bytes, settings: Settings) -> None:
        require_key(request, getattr(settings, self.setting), self.what)


@dataclass(frozen=True)
class SharedSecret:
    """A secret the vendor repeats on every call: in a header, or in the URL (``?param=``) for
    vendors whose webhook settings take only a URL."""

    setting: str
    what: str
    header: str | None = None
    param: str | None = None

    def verify(self, request: flask.Request, raw: bytes, settings: Settings) -> None:
        expected = configured_secret(settings, self.setting, self.what)
        given = (request.headers.get(self.header) if self.header else None) or (
            request.args.get(self.param) if self.param else None
        )
        if not secret_matches(given, expected):
            where = " or ".join(w for w in (self.header, self.param and f"?{self.param}=") if w)
            raise HttpError(401, "unauthorized", f"a valid {self.what} is required ({where})")


@dataclass(frozen=True)
class BodySignature:
    """An HMAC the vendor computes over the raw body with a shared secret (Meta's
    ``X-Hub-Signature-256``): ``check(raw, header value, secret)`` decides, in constant time."""

    setting: str
    what: str
    header: str
    check: Callable[[bytes, str | None, bytes], bool]

    def verify(self, request: flask.Request, raw: bytes, settings: Settings) -> None:
        secret = configured_secret(settings, self.setting, self.what)
        if not self.check(raw, request.headers.get(self.header), secret.encode()):
            raise HttpError(401, "unauthorized", f"{self.header} is missing or wrong")


Parser = Callable[[flask.Request, bytes, Runtime], Iterable[Event]]


def accepted_response(
    accepted: list[str], ignored: list[dict[str, Any]], status: int = 200, headers: dict | None = None
) -> flask.Response:
    return json_response({"accepted": accepted, "ignored": ignored}, status, headers)


def receive(
    request: flask.Request,
    runtime: Runtime,
    *,
    methods: tuple[str, ...],
    authentication: Authentication,
    parse: Parser,
    status: int = 200,
) -> flask.Response:
    """The whole pipeline for one webhook call (see the module docstring)."""
    allow_methods(request, *methods)
    raw = read_body(request, runtime.settings.max_body_bytes) if request.method == "POST" else b""
    authentication.verify(request, raw, runtime.settings)
    try:
        events = list(parse(request, raw, runtime))
    except ChannelError as exc:
        raise channel_error(exc) from None
    accepted, ignored = enqueue(runtime, events)
    return accepted_response(accepted, ignored, status)
