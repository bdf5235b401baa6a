"""``/profiles``: read unified profiles, their touch history and their explanation; queue
erasure and split requests. ``/splits/<request id>`` and ``/blocklist`` live here too."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import flask

from svyaz.adapters.queue import QueueUnavailable, erase_message
from svyaz.app.explain import explain, path
from svyaz.app.reports import BY, attribution_for_days
from svyaz.app.runtime import Runtime
from svyaz.app.splits import queue_split
from svyaz.app.views import history, profile_view, render_html, touchpoint_view
from svyaz.domain.model import Identifier
from svyaz.domain.validation import HARD_EARLIEST, HARD_LATEST
from svyaz.entrypoints import journal
from svyaz.entrypoints.http import (
    HttpError,
    allow_methods,
    json_response,
    openapi_response,
    parse_json,
    read_body,
    require_key,
    subpath,
)
from svyaz.identity.normalize import Rejected, normalize
from svyaz.identity.policy import UnknownKind

PROFILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENTRY_ID = re.compile(r"^[0-9a-f]{64}$")
MAX_PAGE = 200
MAX_SPLIT_BODY = 4096
MAX_REASON = 500


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    if subpath(request, "/profiles") == "/openapi.json":  # public: it describes, it holds no data
        allow_methods(request, "GET", "HEAD")
        return openapi_response()
    if journal.is_journal(request):  # the customer journal for people (its own sign-in)
        return journal.handle(request, runtime)
    allow_methods(request, "GET", "DELETE", "POST")
    require_key(request, runtime.settings.api_keys, "API key")
    parts = [p for p in subpath(request, "/profiles").split("/") if p]
    if parts[:1] == ["splits"]:
        return _split_state(request, parts[1:], runtime)
    if parts[:1] == ["blocklist"]:
        return _blocklist(request, parts[1:], runtime)
    if request.method == "POST" and parts == ["lookup"]:
        return _lookup(request, runtime)
    if request.method == "POST" and len(parts) == 2 and parts[1] == "explain":
        return _explain(request, parts[0], runtime)
    if request.method == "POST":
        if len(parts) != 2 or parts[1] != "split":
            raise HttpError(404, "not_found", "POST /profiles/<id>/split or /profiles/<id>/explain")
        return _split(request, parts[0], runtime)
    if request.method == "DELETE":
        if len(parts) != 1:
            raise HttpError(404, "not_found", "DELETE /profiles/<id>")
        return _erase(parts[0], runtime)
    return _read(request, parts, runtime)


def _read(request: flask.Request, parts: list[str], runtime: Runtime) -> flask.Response:
    if parts == ["lookup"]:
        return _lookup(request, runtime)
    if parts == ["reports", "attribution"]:
        return _attribution(request, runtime)
    if len(parts) == 1:
        return json_response(profile_view(_profile(parts[0], runtime)))
    if len(parts) == 2 and parts[1] == "touchpoints":
        return _touchpoints(request, parts[0], runtime)
    if len(parts) == 2 and parts[1] == "journal":
        return _journal(parts[0], runtime)
    if len(parts) == 2 and parts[1] == "explain":
        return _explain(request, parts[0], runtime)
    raise HttpError(
        404,
        "not_found",
        "unknown path; see POST /profiles/lookup, /profiles/<id>, /profiles/<id>/touchpoints",
    )


def _identifier(kind: object, value: object, runtime: Runtime, what: str = "kind and value") -> Identifier:
    """An identifier as the engine sees it (normalized), or a 400 naming what is wrong."""
    if not isinstance(kind, str) or not kind or not isinstance(value, str):
        raise HttpError(400, "invalid_query", f"{what} are required")
    try:
        return Identifier(kind, normalize(runtime.policy, kind, value))
    except UnknownKind as exc:
        raise HttpError(400, "unknown_kind", str(exc)) from None
    except Rejected as exc:
        raise HttpError(400, "invalid_value", f"{kind}: {exc.reason}") from None


def _lookup_query(request: flask.Request, runtime: Runtime) -> tuple[object, object]:
    """``kind`` and ``value`` from the JSON body of ``POST /profiles/lookup`` (personal data
    stays out of URLs and request logs), or from the query string of the older GET form."""
    if request.method == "GET":
        return request.args.get("kind"), request.args.get("value")
    body = parse_json(read_body(request, runtime.settings.max_body_bytes))
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_query", 'expected {"kind": ..., "value": ...}')
    return body.get("kind"), body.get("value")


def _lookup(request: flask.Request, runtime: Runtime) -> flask.Response:
    identifier = _identifier(*_lookup_query(request, runtime), runtime)
    profile = runtime.store.lookup(identifier)
    if profile is None:
        raise HttpError(404, "not_found", "no profile holds this identifier")
    return json_response(profile_view(profile))


def _attribution(request: flask.Request, runtime: Runtime) -> flask.Response:
    """``GET /profiles/reports/attribution?from=YYYY-MM-DD&to=YYYY-MM-DD[&tz=Europe/Moscow][&by=]``:
    orders and revenue of the period by credited ad source (what ``svyaz report`` prints)."""
    try:
        first = date.fromisoformat(request.args.get("from", ""))
        last = date.fromisoformat(request.args.get("to", ""))
    except ValueError:
        raise HttpError(400, "invalid_query", "from and to are required, as YYYY-MM-DD") from None
    if last < first:
        raise HttpError(400, "invalid_query", "to is before from")
    if first < HARD_EARLIEST.date() or last >= HARD_LATEST.date():
        raise HttpError(400, "invalid_query", "from and to are out of range")
    by = request.args.get("by", "first_touch")
    if by not in BY:
        raise HttpError(400, "invalid_query", f"by must be one of {', '.join(BY)}")
    report = attribution_for_days(runtime.store, first, last, _zone(request.args.get("tz", "UTC")), by)
    return json_response(report.as_dict())


def _zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HttpError(400, "invalid_query", "tz must be a time zone name such as Europe/Moscow") from None


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
    try:
        before = before.astimezone(UTC) if before is not None else None
    except OverflowError:  # past year 9999 or before year 1 in UTC: out of range either way
        raise HttpError(400, "invalid_query", "before is out of range") from None
    if before is not None and not HARD_EARLIEST <= before <= HARD_LATEST:
        raise HttpError(400, "invalid_query", "before is out of range")
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


def _explain(request: flask.Request, profile_id: str, runtime: Runtime) -> flask.Response:
    """``GET /profiles/<id>/explain``: the explanation; with ``?kind=&value=&to_kind=&to_value=``
    (or the same fields as the JSON body of a POST, which keeps the values out of URLs and
    access logs) the chain of events joining two identifiers of the profile."""
    profile = _profile(profile_id, runtime)
    args: Any = request.args
    if request.method == "POST":
        args = parse_json(read_body(request, MAX_SPLIT_BODY))
        if not isinstance(args, dict):
            raise HttpError(400, "invalid_query", 'expected {"kind", "value", "to_kind", "to_value"}')
    if not any(k in args for k in ("kind", "value", "to_kind", "to_value")):
        return json_response(explain(runtime.store, profile))
    start = _identifier(args.get("kind"), args.get("value"), runtime)
    end = _identifier(args.get("to_kind"), args.get("to_value"), runtime, "to_kind and to_value")
    return json_response(path(runtime.store, profile, start, end))


def _split(request: flask.Request, profile_id: str, runtime: Runtime) -> flask.Response:
    body = parse_json(read_body(request, MAX_SPLIT_BODY))
    block = body.get("block") if isinstance(body, dict) else None
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(block, dict):
        raise HttpError(400, "invalid_body", 'expected {"block": {"kind": ..., "value": ...}, "reason": ...}')
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise HttpError(400, "invalid_body", f"reason: a non-empty text of at most {MAX_REASON} characters")
    identifier = _identifier(block.get("kind"), block.get("value"), runtime, "block.kind and block.value")
    if not runtime.policy.kind(identifier.kind).links:
        raise HttpError(400, "invalid_body", f"{identifier.kind} never links profiles: nothing to block")
    profile = _profile(profile_id, runtime)
    try:
        split = queue_split(
            runtime.store,
            runtime.publisher,
            runtime.settings.events_topic,
            profile.profile_id,
            identifier,
            reason.strip(),
        )
    except QueueUnavailable:
        raise HttpError(503, "queue_unavailable", "the split could not be queued; retry later") from None
    return json_response(split.view(), 202, {"Location": f"/splits/{split.request_id}"})


def _split_state(request: flask.Request, parts: list[str], runtime: Runtime) -> flask.Response:
    if request.method != "GET" or len(parts) != 1 or not PROFILE_ID.match(parts[0]):
        raise HttpError(404, "not_found", "GET /splits/<request id>")
    split = runtime.store.get_split(parts[0])
    if split is None:
        raise HttpError(404, "not_found", "no such split request")
    return json_response(split.view())


def _blocklist(request: flask.Request, parts: list[str], runtime: Runtime) -> flask.Response:
    """``GET /blocklist``: every blocked value with its entry id; ``DELETE /blocklist/<entry id>``
    unblocks one (the id is a keyed hash: no value in the URL). Unblocking re-merges nothing."""
    entries = {runtime.store.keys.identifier(e.identifier): e for e in runtime.store.blocklist()}
    if request.method == "GET" and not parts:
        items = [
            {"id": key, **_entry_view(entry)}
            for key, entry in sorted(entries.items(), key=lambda item: item[1].at)
        ]
        return json_response({"blocklist": items})
    if request.method == "DELETE" and len(parts) == 1 and ENTRY_ID.match(parts[0]):
        entry = entries.get(parts[0])
        if entry is None or not runtime.store.unblock(entry.identifier):
            raise HttpError(404, "not_found", "no such blocklist entry")
        return json_response({"id": parts[0], "unblocked": True, **_entry_view(entry)})
    raise HttpError(404, "not_found", "GET /blocklist or DELETE /blocklist/<entry id>")


def _entry_view(entry) -> dict:
    return {
        "kind": entry.identifier.kind,
        "value": entry.identifier.value,
        "reason": entry.reason,
        "at": entry.at.isoformat().replace("+00:00", "Z"),
        "request_id": entry.request_id,
    }
