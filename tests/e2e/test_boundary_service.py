"""Issue 11 against a real local server (``svyaz serve``'s ``LocalService``): what reaches the
access log, malformed HTTP framing, and what ``svyaz serve`` prints."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from svyaz.dev.local import LocalService
from tests.pipeline_support import WRITE_KEY, build, http, served

CALL_TOKEN = "call-tracking-token-for-the-log-test"  # noqa: S105 - a test value


@pytest.fixture
def service():
    with served(build(calltracking_token=CALL_TOKEN), quiet=False) as service:
        yield service


def raw_request(service: LocalService, data: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_access_log_keeps_no_query_string_no_token_no_phone(service, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    query = f"token={CALL_TOKEN}&callId=77&callerNumber=%2B79091234567&phoneNumber=%2B74950000000"
    status, _ = raw_request(service, f"GET /webhooks/calltracking?{query} HTTP/1.0\r\n\r\n".encode())
    assert status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("GET /webhooks/calltracking HTTP/1.0" in line for line in lines), lines
    assert not any(CALL_TOKEN in line or "9091234567" in line or "?" in line for line in lines)


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n{}\r\n0\r\n\r\n",  # a chunk size that is not hex
        b"2\r\n{}\r\n-1\r\n\r\n",  # a negative size after a good chunk
        b"2\r\n{}XX0\r\n\r\n",  # a chunk not ended by CRLF
    ],
)
def test_a_malformed_chunked_body_is_a_json_4xx(service, body):
    head = (
        "POST /collect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"Authorization: Bearer {WRITE_KEY}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    )
    status, answer = raw_request(service, head.encode() + body)
    assert 400 <= status < 500, answer
    assert "error" in json.loads(answer)


def test_svyaz_serve_prints_only_development_keys(monkeypatch):
    from svyaz.cli.serve import development_defaults, examples, local_settings

    monkeypatch.setenv("SVYAZ_WRITE_KEYS", "a-real-site-key")
    monkeypatch.setenv("SVYAZ_API_KEYS", "a-real-api-key")
    text = examples("http://127.0.0.1:8080", local_settings(development_defaults()))
    assert "a-real-site-key" not in text and "a-real-api-key" not in text
    assert "<your write key>" in text and "<your API key>" in text
    assert "/profiles/lookup?" not in text  # the lookup example keeps personal data out of URLs
    monkeypatch.setenv("SVYAZ_WRITE_KEYS", "dev-write-key")
    assert "dev-write-key" in examples("http://127.0.0.1:8080", local_settings(development_defaults()))


AMO_SECRET = "amocrm-capability-secret-for-the-log-test"  # noqa: S105 - a test value


@pytest.mark.parametrize(
    "target",
    [
        f"/webhooks/crm/amocrm/{AMO_SECRET}",
        f"/webhooks/crm/amocrm/{AMO_SECRET}/",
        f"/webhooks/crm/amocrm%2F{AMO_SECRET}",  # routed like the plain path once decoded
        f"/webhooks/crm/amocrm/wrong-{AMO_SECRET}",  # a guess is no less secret for being wrong
        f"/webhooks/crm/bitrix24/{AMO_SECRET}",  # the deprecated Bitrix24 URL
        f"http://127.0.0.1/webhooks/crm/amocrm/{AMO_SECRET}",  # the absolute form of a target
    ],
)
def test_a_secret_in_a_webhook_url_reaches_no_log(target, caplog):
    """amoCRM's webhooks are unsigned, so its URL holds the secret: neither the access log of
    ``svyaz serve`` nor svyaz's own log lines may keep it."""
    caplog.set_level(logging.DEBUG)
    body = "leads%5Bstatus%5D%5B0%5D%5Bid%5D=25476081&account%5Bsubdomain%5D=shopexample"
    request = (
        f"POST {target} HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    with served(
        build(amocrm_webhook_secret=AMO_SECRET, bitrix24_webhook_secret=AMO_SECRET), quiet=False
    ) as svc:
        status, _ = raw_request(svc, request.encode())
    assert status in (401, 503)  # refused, or authenticated without a configured amoCRM API
    lines = [record.getMessage() for record in caplog.records]
    access = [line for line in lines if '"POST /webhooks/crm/' in line]
    assert len(access) == 1 and "/<secret> HTTP/1.0" in access[0], lines
    assert not any(AMO_SECRET in line for line in lines), lines


def test_a_chunked_body_that_never_completes_is_cut_off_while_others_are_served(caplog):
    """A sender that starts a chunked body and then sends nothing more (a broken client, or a
    slow-body attack) holds one handler thread only until the request timeout: then it is
    answered or closed, and meanwhile every other request is served. No traceback is logged
    for it: it is the sender's fault, not the service's."""
    caplog.set_level(logging.ERROR)
    with served(build(), request_timeout=1.0) as service:
        stalled = socket.create_connection(("127.0.0.1", service.port), timeout=10)
        head = (
            "POST /collect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"Authorization: Bearer {WRITE_KEY}\r\nContent-Type: application/json\r\n\r\n"
        )
        stalled.sendall(head.encode() + b'40\r\n{"event_id": ')  # and never the rest
        started = time.monotonic()
        # Served while the stalled body waits: a whole event from another sender.
        event = {"event_id": "e-1", "type": "page", "identifiers": {"client_id": "v-1"}}
        assert http(f"{service.url}/collect", event, key=WRITE_KEY, timeout=5).status == 202
        answer = b""
        while chunk := stalled.recv(65536):  # until the server closes it
            answer += chunk
        waited = time.monotonic() - started
        stalled.close()
    assert waited < 5, f"the stalled request held its connection {waited:.1f} s"
    if answer:  # answered before closing: a JSON 4xx naming the unreadable body
        head, _, body = answer.partition(b"\r\n\r\n")
        assert 400 <= int(head.split()[1]) < 500 and json.loads(body)["error"] == "invalid_body", answer
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
