"""``/local/*``: what the command line asks a running ``svyaz serve`` (never deployed).

The memory store lives in the service's process, so ``svyaz import`` and ``svyaz report`` talk to
it over HTTP instead of opening an empty store of their own. Authenticated with an API key of the
service (``SVYAZ_API_KEYS``), like ``/profiles``.

* ``GET /local/status``: the worker's counters (applied, pending, given up with their ids).
* ``POST /local/apply`` ``{"batch": [canonical events]}``: applies each now with the code
  ``process_event`` runs and answers, per event, ``applied``, ``duplicate`` or ``refused``
  (with the reason) -- what ``svyaz import --via direct`` reports, on the service's own store.
* ``POST /local/export`` ``{"target", "from", "to", "tz", "again", "upload"}``: ``svyaz export
  conversions`` on the service's store and ledger; answers the summary, the files and the orders.
"""

from __future__ import annotations

import os
from typing import Any

import flask
from pydantic import ValidationError

from svyaz.adapters.queue import event_message
from svyaz.adapters.store.base import StoreError
from svyaz.domain.events import Event
from svyaz.entrypoints.http import (
    HttpError,
    allow_methods,
    endpoint,
    json_response,
    parse_json,
    read_body,
    require_key,
)

PREFIX = "/local"
MAX_APPLY = 1000


def create_app(service: Any) -> flask.Flask:
    """The admin app of ``service`` (a ``LocalService``), mounted under ``/local``."""
    app = flask.Flask("svyaz.local")

    @endpoint
    def status(request: flask.Request) -> flask.Response:
        allow_methods(request, "GET")
        require_key(request, service.rt.settings.api_keys, "API key")
        worker = service.worker
        return json_response(
            {
                "service": "svyaz serve",
                "pid": os.getpid(),
                "store": service.rt.settings.store,
                "applied": worker.applied,
                "pending": worker.pending(),
                "given_up": worker.given_up,
            }
        )

    @endpoint
    def apply(request: flask.Request) -> flask.Response:
        allow_methods(request, "POST")
        require_key(request, service.rt.settings.api_keys, "API key")
        body = parse_json(read_body(request, 64 * 1024 * 1024))
        items = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) > MAX_APPLY:
            raise HttpError(400, "invalid_payload", f'expected {{"batch": [at most {MAX_APPLY} events]}}')
        return json_response({"results": [_apply_one(item, service.rt) for item in items]})

    @endpoint
    def export(request: flask.Request) -> flask.Response:
        allow_methods(request, "POST")
        require_key(request, service.rt.settings.api_keys, "API key")
        return json_response(_export(parse_json(read_body(request, 64 * 1024)), service.rt))

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    app.add_url_rule("/export", "export", lambda: export(flask.request), methods=methods)
    app.add_url_rule("/status", "status", lambda: status(flask.request), methods=methods)
    app.add_url_rule("/apply", "apply", lambda: apply(flask.request), methods=methods)
    return app


def _export(body: Any, rt: Any) -> dict[str, Any]:
    import argparse
    from datetime import date

    from svyaz.cli.exports import export_on
    from svyaz.cli.reports import parse_tz

    try:
        if not isinstance(body, dict) or body.get("target") not in ("metrica", "google-ads"):
            raise ValueError("target must be metrica or google-ads")
        first, last = date.fromisoformat(str(body["from"])), date.fromisoformat(str(body["to"]))
        tz = parse_tz(str(body.get("tz") or "UTC"))
    except (KeyError, ValueError, argparse.ArgumentTypeError) as exc:
        raise HttpError(400, "invalid_payload", f"invalid export request: {exc}") from None
    try:
        return export_on(
            rt, body["target"], first, last, tz, bool(body.get("again")), bool(body.get("upload"))
        )
    except ValueError as exc:  # e.g. Metrica not configured for --upload
        raise HttpError(400, "invalid_payload", str(exc)) from None


def _apply_one(item: Any, rt: Any) -> dict[str, Any]:
    from svyaz.entrypoints.process import PoisonMessage, apply_message

    try:
        event = Event.model_validate(item)
    except ValidationError as exc:
        reason = f"invalid event ({exc.error_count()} errors)"
        return {"event_id": None, "result": "refused", "reason": reason}
    try:
        outcome = apply_message(event_message(event), rt)
    except PoisonMessage as exc:
        return {"event_id": event.event_id, "result": "refused", "reason": str(exc)}
    except StoreError as exc:
        raise HttpError(503, "store_unavailable", f"the store failed: {type(exc).__name__}") from None
    duplicate = bool(outcome and outcome.duplicate)
    return {"event_id": event.event_id, "result": "duplicate" if duplicate else "applied"}
