"""Drive a vendor fixture through the deployed functions: functions-framework test clients on
functions/main.py, the memory store, and, for the CRMs, a local HTTP server started here that
answers the CRM REST calls with the documented JSON of the fixture's ``.rest.json``."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from svyaz.app import runtime
from svyaz.app.config import Settings
from svyaz.entrypoints.registry import development_values
from tests.pipeline_support import FIXTURES, client, install, queued

VENDOR_FIXTURES = FIXTURES / "vendors"
AMOCRM_TOKEN = "dev-amocrm-token"  # noqa: S105 - a test value
BITRIX24_REST_PATH = "/rest/1/dev-inbound-code/"
# Static tracking number of the fixtures' ad campaign (Mango calls carry no ad source).
NUMBER_SOURCES = {"74951112233": {"source": "yandex", "medium": "cpc", "campaign": "sofas"}}


class CrmRest:
    """A local stand-in for amoCRM's and Bitrix24's REST APIs, serving fixed documented JSON."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests.append((self.path, self.headers.get("Authorization")))
                key = self.path.removeprefix(BITRIX24_REST_PATH)
                authorized = key != self.path or self.headers.get("Authorization") == f"Bearer {AMOCRM_TOKEN}"
                body = outer.routes.get(key) if authorized else None
                status = 200 if body is not None else (401 if not authorized else 404)
                data = json.dumps(body if body is not None else {"error": "not found"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CrmRest:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def vendor_runtime(crm: CrmRest | None = None, **overrides: Any) -> Iterator[Any]:
    """A runtime with the registry's development secrets, the memory store and a local queue."""
    values = {k.removeprefix("SVYAZ_").lower(): v for k, v in development_values().items()}
    values.update(
        amocrm_token=AMOCRM_TOKEN,
        amocrm_base_url=crm.url if crm else "http://127.0.0.1:9",
        bitrix24_rest_url=(crm.url if crm else "http://127.0.0.1:9") + BITRIX24_REST_PATH,
        calltracking_number_sources=NUMBER_SOURCES,
        crm_api_timeout_seconds=5,
    )
    values.update(overrides)
    try:
        yield install(config=Settings(**values))
    finally:
        runtime.install(None)


def call(target: str, method: str, path: str, headers: Mapping[str, str], body: str | bytes) -> Any:
    data = body.encode() if isinstance(body, str) else body
    return client(target).open(path, method=method, headers=dict(headers), data=data)


def sign_whatsapp(headers: Mapping[str, str], body: str) -> dict[str, str]:
    """Fill the ``{hub_signature}`` placeholder with Meta's HMAC of the body (development secret)."""
    secret = development_values()["SVYAZ_WHATSAPP_APP_SECRET"].encode()
    signature = "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    return {k: signature if v == "{hub_signature}" else v for k, v in headers.items()}


def run_fixture(request: Mapping[str, Any], rest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Send one ``.request.json``; the answer and the canonical events it queued."""
    with CrmRest() as crm:
        crm.routes.update(rest or {})
        with vendor_runtime(crm) as rt:
            headers = sign_whatsapp(request.get("headers", {}), request.get("body", ""))
            answer = call(
                request["target"], request["method"], request["path"], headers, request.get("body", "")
            )
            events = queued(rt)
    return {"status": answer.status_code, "answer": answer.get_json(), "events": events}
