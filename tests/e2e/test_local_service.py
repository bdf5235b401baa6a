"""``svyaz serve`` as a user runs it: real HTTP on a local port, the worker, clean shutdown."""

from __future__ import annotations

import signal
import time
import urllib.parse

import pytest

from svyaz.adapters.queue import PubSubPublisher
from svyaz.dev.emulators import free_port
from svyaz.dev.local import LocalService
from tests.conftest import PROJECT, make_firestore_store
from tests.pipeline_support import API_KEY, WRITE_KEY, build, http, served, svyaz_running


def call(url: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    answer = http(url, body, key=key)
    return answer.status, answer.json


def page_view(n: int, **identifiers: str) -> dict:
    return {
        "event_id": f"view-{n}",
        "type": "page",
        "timestamp": f"2026-11-02T10:{n % 60:02d}:00Z",
        "identifiers": identifiers,
    }


def lookup(service: LocalService, kind: str, value: str) -> tuple[int, dict]:
    query = urllib.parse.urlencode({"kind": kind, "value": value})
    return call(f"{service.url}/profiles/lookup?{query}", API_KEY)


def test_every_function_answers_under_its_path_and_stop_applies_what_was_accepted():
    rt = build()
    service = LocalService("127.0.0.1", 0, rt, quiet=True).start()
    try:
        for n in range(200):
            status, _ = call(
                f"{service.url}/collect", WRITE_KEY, page_view(n, client_id="c1", session_id=f"s{n}")
            )
            assert status == 202
        for path in ("/webhooks/whatsapp", "/webhooks/telegram", "/webhooks/calltracking", "/webhooks/crm"):
            status, body = call(f"{service.url}{path}", "nope", {})
            assert status in (401, 403, 503) and body["error"]
        assert call(f"{service.url}/nowhere", API_KEY)[0] == 404
    finally:
        left = service.stop()  # right after the last request: the worker drains first
    assert left == 0 and service.worker.applied == 200
    profile = rt.store.lookup(
        __import__("svyaz.domain.model", fromlist=["Identifier"]).Identifier("client_id", "c1")
    )
    assert profile.counters["events"] == 200 and len(profile.identifiers["session_id"]) == 200


def test_svyaz_serve_prints_its_urls_and_stops_cleanly_on_ctrl_c():
    port = free_port()
    with svyaz_running("serve", "--port", str(port), until="Ctrl-C") as (process, banner):
        text = "".join(banner)
        assert f"http://127.0.0.1:{port}/collect" in text and "curl -s -X POST" in text
        status, body = call(
            f"http://127.0.0.1:{port}/collect", "dev-write-key", page_view(1, phone="89091234567")
        )
        assert status == 202 and body == {"accepted": ["view-1"]}
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "stopped: 1 events applied, 0 rejected, 0 given up, 0 left unapplied" in out


@pytest.mark.emulator
def test_the_local_service_on_both_emulators(firestore_emulator, pubsub_emulator):
    store = make_firestore_store(firestore_emulator)
    rt = build(store, PubSubPublisher(PROJECT), gcp_project=PROJECT)
    # A subscription of its own: other tests' local services consume the default one.
    with served(rt, subscription="svyaz-events-local-e2e") as service:
        assert (
            call(f"{service.url}/collect", WRITE_KEY, page_view(1, client_id="web-1", session_id="s-9"))[0]
            == 202
        )
        assert (
            call(f"{service.url}/collect", WRITE_KEY, page_view(2, session_id="s-9", phone="+79091234567"))[0]
            == 202
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = lookup(service, "phone", "8 909 123 45 67")
            if status == 200 and "client_id" in body["identifiers"]:
                break
            time.sleep(0.2)
        assert status == 200 and body["identifiers"]["client_id"] == ["web-1"]
