"""``/profiles``: read unified profiles and their touch history; queue erasure requests."""

from __future__ import annotations

import re
from datetime import datetime

import flask

from svyaz.adapters.queue import QueueUnavailable, erase_message
from svyaz.app.runtime import Runtime
from svyaz.app.views import history, profile_view, render_html, touchpoint_view
from svyaz.domain.model import Identifier
from svyaz.entrypoints.http import HttpError, allow_methods, json_response, require_key, subpath
from svyaz.identity.normalize import Rejected, normalize
from svyaz.identity.policy import UnknownKind

PROFILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_PAGE = 200


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    allow_methods(request, "GET", "DELETE")
    require_key(request, runtime.settings.api_keys, "API key")
    parts = [p for p in subpath(request, "/profiles").split("/") if p]
    if request.method == "DELETE":
        if len(parts) != 1:
            raise HttpError(404, "not_found", "DELETE /profiles/<id>")
        return _erase(parts[0], runtime)
    if parts == ["lookup"]:
        return _lookup(request, runtime)
    if len(parts) == 1:
        return json_response(profile_view(_profile(parts[0], runtime)))
    if len(parts) == 2 and parts[1] == "touchpoints":
        return _touchpoints(request, parts[0], runtime)
    if len(parts) == 2 and parts[1] == "journal":
        return _journal(parts[0], runtime)
    raise HttpError(
        404, "not_found", "unknown path; see GET /profiles/lookup, /profiles/<id>, /profiles/<id>/touchpoints"
    )


def _lookup(request: flask.Request, runtime: Runtime) -> flask.Response:
    kind, value = request.args.get("kind"), request.args.get("value")
    if not kind or value is None:
        raise HttpError(400, "invalid_query", "kind and value are required")
    try:
        identifier = Identifier(kind, normalize(runtime.policy, kind, value))
    except UnknownKind as exc:
        raise HttpError(400, "unknown_kind", str(exc)) from None
    except Rejected as exc:
        raise HttpError(400, "invalid_value", f"{kind}: {exc.reason}") from None
    profile = runtime.store.lookup(identifier)
    if profile is None:
        raise HttpError(404, "not_found", "no profile holds this identifier")
    return json_response(profile_view(profile))


def _profile(profile_id: str, runtime: Runtime):
    if not PROFILE_ID.match(profile_id):
        raise HttpError(404, "not_found", "no such profile")
    profile = runtime.store.resolve(profile_id)  # a merged id answers with its survivor
    if profile is None:
        raise HttpError(404, "not_found", "no such profile")
    return profile


def _touchpoints(request: flask.Request, profile_id: str, runtime: Runtime) -> flask.Response:
    profile = _profile(profile_id, runtime)
    try:
        limit = int(request.args.get("limit", "50"))
        before_text = request.args.get("before")
        before = datetime.fromisoformat(before_text.replace("Z", "+00:00")) if before_text else None
    except ValueError:
        raise HttpError(400, "invalid_query", "limit must be an integer, before an ISO 8601 time") from None
    if not 1 <= limit <= MAX_PAGE:
        raise HttpError(400, "invalid_query", f"limit must be between 1 and {MAX_PAGE}")
    if before is not None and before.tzinfo is None:
        raise HttpError(400, "invalid_query", "before must carry a time zone (e.g. ...Z)")
    touches = history(runtime.store, profile, limit + 1, before)
    page = [touchpoint_view(t) for t in touches[:limit]]
    body = {"profile_id": profile.profile_id, "touchpoints": page}
    if len(touches) > limit:
        body["next_before"] = page[-1]["timestamp"]
    return json_response(body)


def _journal(profile_id: str, runtime: Runtime) -> flask.Response:
    """The customer journal page (HTML): the profile and its last 200 touches."""
    profile = _profile(profile_id, runtime)
    touches = [touchpoint_view(t) for t in history(runtime.store, profile, MAX_PAGE)]
    response = flask.Response(render_html(profile_view(profile), touches), 200, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def _erase(profile_id: str, runtime: Runtime) -> flask.Response:
    profile = _profile(profile_id, runtime)
    try:
        runtime.publisher.publish(runtime.settings.events_topic, [erase_message(profile.profile_id)])
    except QueueUnavailable:
        raise HttpError(503, "queue_unavailable", "the erasure could not be queued; retry later") from None
    return json_response({"profile_id": profile.profile_id, "erasure": "queued"}, 202)
