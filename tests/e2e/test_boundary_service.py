"""Issue 11 against a real local server (``svyaz serve``'s ``LocalService``): what reaches the
access log, malformed HTTP framing, and what ``svyaz serve`` prints."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from svyaz.dev.local import LocalService
from tests.pipeline_support import WRITE_KEY, build, served

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
