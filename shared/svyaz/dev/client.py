"""How the command line finds and talks to a running service (never deployed).

``svyaz serve`` announces itself in a small state file (its URL and process id, no secrets);
``svyaz import``, ``svyaz report`` and ``svyaz erase`` use, in this order: ``--url``, ``--store``,
``SVYAZ_URL``, ``SVYAZ_STORE``, then the announced local service if it is still running, then an
in-process memory store of their own (and say so).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEVELOPMENT_API_KEY = "dev-api-key"  # noqa: S105 - what `svyaz serve` fills in locally
DEVELOPMENT_WRITE_KEY = "dev-write-key"  # noqa: S105


class ServiceError(RuntimeError):
    """The service answered with an error, or could not be reached: one line for the user."""


def state_file() -> Path:
    """Where ``svyaz serve`` announces itself (``SVYAZ_STATE_DIR`` moves it, e.g. in tests)."""
    if explicit := os.environ.get("SVYAZ_STATE_DIR"):
        return Path(explicit) / "serve.json"
    if runtime_dir := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime_dir) / "svyaz" / "serve.json"
    return Path.home() / ".cache" / "svyaz" / "serve.json"


def announce(url: str, store: str) -> Path | None:
    path = state_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "store": store}))
        tmp.replace(path)
    except OSError:
        return None  # discovery is a convenience: --url / SVYAZ_URL still work
    return path


def withdraw() -> None:
    """Remove the announcement if it is this process's."""
    path = state_file()
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def discover() -> str | None:
    """The URL of the running local service announced in the state file, if it still runs."""
    try:
        state = json.loads(state_file().read_text())
        pid, url = int(state["pid"]), str(state["url"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return url
    except OSError:
        return None


@dataclass
class Target:
    """Where a command reads and writes: a service by URL, or a store opened in this process."""

    url: str | None = None
    store: str | None = None  # "memory" or "firestore" when direct
    discovered: bool = False

    def describe(self) -> str:
        return f"the service at {self.url}" if self.url else f"the {self.store} store"


def resolve(url: str | None, store: str | None) -> Target:
    if url:
        return Target(url=url.rstrip("/"))
    if store:
        return Target(store=store)
    if env_url := os.environ.get("SVYAZ_URL"):
        return Target(url=env_url.rstrip("/"))
    if env_store := os.environ.get("SVYAZ_STORE"):
        return Target(store=env_store)
    if found := discover():
        return Target(url=found, discovered=True)
    return Target(store="memory")


def _first(variable: str, default: str) -> str:
    keys = [k.strip() for k in os.environ.get(variable, "").split(",") if k.strip()]
    return keys[0] if keys else default


class ServiceClient:
    """The few calls the command line makes, authenticated with the service's API key."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key or _first("SVYAZ_API_KEYS", DEVELOPMENT_API_KEY)
        self.write_key = _first("SVYAZ_WRITE_KEYS", DEVELOPMENT_WRITE_KEY)
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body, ensure_ascii=False, default=str).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {key or self.api_key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                return answer.status, _json(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, _json(error.read())
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise ServiceError(f"{self.url} does not answer ({reason}): is `svyaz serve` running?") from None

    def ok(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        status, answer = self.call(method, path, body, key)
        if status >= 400:
            raise ServiceError(f"{method} {path}: HTTP {status}: {_reason(answer)}")
        return answer

    def is_local(self) -> bool:
        status, _ = self.call("GET", "/local/status")
        if status == 401:
            raise ServiceError(f"{self.url} refused the API key: set SVYAZ_API_KEYS to one of the service's")
        return status == 200

    def status(self) -> dict[str, Any]:
        return self.ok("GET", "/local/status")

    def apply(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.ok("POST", "/local/apply", {"batch": events})["results"]

    def collect(self, events: list[dict[str, Any]]) -> list[str]:
        return self.ok("POST", "/collect", {"batch": events}, key=self.write_key)["accepted"]

    def attribution(self, first: str, last: str, tz: str, by: str) -> dict[str, Any]:
        query = urllib.parse.urlencode({"from": first, "to": last, "tz": tz, "by": by})
        return self.ok("GET", f"/profiles/reports/attribution?{query}")

    def erase(self, profile_id: str) -> dict[str, Any]:
        return self.ok("DELETE", f"/profiles/{urllib.parse.quote(profile_id, safe='')}")

    def explain(self, profile_id: str, path: dict[str, str] | None = None) -> dict[str, Any]:
        # POST: the identifiers of a path query stay out of URLs and access logs.
        return self.ok("POST", f"/profiles/{urllib.parse.quote(profile_id, safe='')}/explain", path or {})

    def split(self, profile_id: str, kind: str, value: str, reason: str) -> dict[str, Any]:
        body = {"block": {"kind": kind, "value": value}, "reason": reason}
        return self.ok("POST", f"/profiles/{urllib.parse.quote(profile_id, safe='')}/split", body)

    def split_state(self, request_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/splits/{urllib.parse.quote(request_id, safe='')}")

    def lookup(self, kind: str, value: str) -> dict[str, Any]:
        # POST: the identifier stays out of URLs and access logs.
        return self.ok("POST", "/profiles/lookup", {"kind": kind, "value": value})


def _json(data: bytes) -> Any:
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {"reason": data[:200].decode(errors="replace")}


def _reason(answer: Any) -> str:
    if isinstance(answer, dict):
        return str(answer.get("reason") or answer.get("error") or answer)
    return str(answer)
