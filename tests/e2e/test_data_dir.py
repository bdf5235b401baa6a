"""``svyaz serve --data-dir``: a ``kill -9`` loses neither the graph nor the events it answered
202 for. The real command in a subprocess, killed with SIGKILL (no shutdown code runs), then
started again on the same directory."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from svyaz.dev.client import ServiceClient
from tests.pipeline_support import API_KEY, WRITE_KEY, svyaz_running

KEYS = {"SVYAZ_WRITE_KEYS": WRITE_KEY, "SVYAZ_API_KEYS": API_KEY}


@contextmanager
def serve(data_dir):
    """``svyaz serve --data-dir`` started; its output read on (a full pipe would block it)."""
    args = ("serve", "--port", "0", "--data-dir", str(data_dir))
    with svyaz_running(*args, until="Ctrl-C stops", **KEYS) as (process, lines):
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        yield process, lines


def client_of(lines: list[str]) -> ServiceClient:
    url = next(line for line in lines if line.startswith("svyaz serving on")).split()[3]
    client = ServiceClient(url, API_KEY, timeout=30)
    client.write_key = WRITE_KEY
    return client


def applied(client: ServiceClient, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (status := client.status())["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status["pending"] == 0, status
    return status


def killed(process) -> None:
    process.kill()  # SIGKILL: no handler, no drain, no close
    process.wait(timeout=30)


def event(n: int, identifiers: dict, type_: str = "page", minute: int = 0) -> dict:
    at = f"2026-11-02T10:{minute:02d}:00Z"
    return {"event_id": f"ev-{n}", "type": type_, "timestamp": at, "identifiers": identifiers}


def test_a_profile_applied_before_a_kill_9_is_there_after_the_restart(tmp_path):
    with serve(tmp_path) as (process, lines):
        client = client_of(lines)
        accepted = client.collect(
            [
                event(1, {"client_id": "c-42", "session_id": "s-1"}, minute=1),
                event(2, {"session_id": "s-1", "phone": "+79091234567"}, "lead", minute=2),
                event(3, {"client_id": "c-42"}, minute=3),
            ]
        )
        assert accepted == ["ev-1", "ev-2", "ev-3"]
        applied(client)
        before = client.lookup("phone", "+79091234567")
        killed(process)

    with serve(tmp_path) as (process, lines):
        client = client_of(lines)
        found = next(line for line in lines if "Data directory:" in line)
        assert "(1 customers, 3 identifiers, 3 touches; 0 accepted events to apply)" in found
        after = client.lookup("client_id", "c-42")
        assert after["profile_id"] == before["profile_id"]
        assert after["identifiers"] == {
            "client_id": ["c-42"],
            "phone": ["+79091234567"],
            "session_id": ["s-1"],
        }
        touches = client.ok("GET", f"/profiles/{after['profile_id']}/touchpoints")
        assert sorted(t["event_id"] for t in touches["touchpoints"]) == ["ev-1", "ev-2", "ev-3"]
        assert after["counters"] == before["counters"]
        # And it goes on: a redelivered event is still a duplicate, a new one is applied.
        assert client.collect([event(3, {"client_id": "c-42"}, minute=3)]) == ["ev-3"]
        assert client.collect([event(4, {"client_id": "c-42"}, minute=4)]) == ["ev-4"]
        applied(client)
        touches = client.ok("GET", f"/profiles/{after['profile_id']}/touchpoints")
        assert sorted(t["event_id"] for t in touches["touchpoints"]) == ["ev-1", "ev-2", "ev-3", "ev-4"]
        process.terminate()
        assert process.wait(timeout=60) == 0


def test_events_answered_202_but_not_yet_applied_at_a_kill_9_are_applied_after_the_restart(tmp_path):
    customers = 300
    with serve(tmp_path) as (process, lines):
        client = client_of(lines)
        batch = [event(n, {"client_id": f"c-{n}", "phone": f"+7909{n:07d}"}) for n in range(customers)]
        assert len(client.collect(batch)) == customers  # 202: every one accepted
        killed(process)  # at once: the worker has applied few of them

    with serve(tmp_path) as (process, lines):
        client = client_of(lines)
        line = next(line for line in lines if "Data directory:" in line)
        waiting = int(line.split("touches; ")[1].split()[0])
        assert waiting > 0, line  # the queue's journal had them
        assert applied(client)["given_up"] == []
        found = {client.lookup("phone", f"+7909{n:07d}")["profile_id"] for n in range(customers)}
        assert len(found) == customers
