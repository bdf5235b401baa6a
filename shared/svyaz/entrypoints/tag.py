"""``GET /svyaz.js``: the site tag, served by the collect function.

``/svyaz.js`` (the one-line install) is cached for an hour and revalidated by its ETag, so a new
version reaches every site within the hour; ``/svyaz.js?v=<content hash>`` (what ``svyaz serve``
prints, for sites that template their pages) is immutable and cached for a year.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import flask

from svyaz.app.runtime import Runtime
from svyaz.entrypoints.http import allow_methods

SOURCE = Path(__file__).resolve().parents[1] / "web" / "svyaz.js"
COOKIE_LINE = 'var COOKIE = "svyaz_id";'
SHORT_CACHE = "public, max-age=3600, stale-while-revalidate=86400"
LONG_CACHE = "public, max-age=31536000, immutable"


@functools.lru_cache(maxsize=8)
def tag_body(cookie_name: str) -> tuple[bytes, str]:
    """The tag as served (the configured cookie name set in its one line) and its content hash."""
    text = SOURCE.read_text(encoding="utf-8")
    if COOKIE_LINE not in text:
        raise RuntimeError(f"{SOURCE} lost its cookie line {COOKIE_LINE!r}")
    body = text.replace(COOKIE_LINE, f"var COOKIE = {json.dumps(cookie_name)};", 1).encode()
    return body, hashlib.sha256(body).hexdigest()[:16]


def versioned_path(cookie_name: str) -> str:
    return f"/svyaz.js?v={tag_body(cookie_name)[1]}"


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    allow_methods(request, "GET", "HEAD")
    body, digest = tag_body(runtime.settings.cookie_name)
    etag = f'"{digest}"'
    headers = {
        "Cache-Control": LONG_CACHE if request.args.get("v") == digest else SHORT_CACHE,
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # Any site may load it (it is public, like the write key it is used with).
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return flask.Response(status=304, headers=headers)
    response = flask.Response(
        b"" if request.method == "HEAD" else body,
        200,
        headers=headers,
        content_type="application/javascript; charset=utf-8",
    )
    response.headers["Content-Length"] = str(len(body))
    return response
