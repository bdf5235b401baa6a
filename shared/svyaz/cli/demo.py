"""``svyaz demo``: the two customer journeys of the seed talk, sent through the real HTTP
endpoints of a local service, and the unified profiles read back through the profile API."""

from __future__ import annotations

import argparse
import json
import logging
import os
import urllib.parse
import urllib.request
from typing import Any


def _call(url: str, key: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body, default=str).encode()
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")  # noqa: S310
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our own local service
        return json.loads(answer.read())


def run(args: argparse.Namespace) -> int:
    from svyaz.app.runtime import build
    from svyaz.app.views import render_text
    from svyaz.cli.serve import development_defaults
    from svyaz.dev.demo import JOURNEYS
    from svyaz.dev.local import LocalService

    development_defaults()
    write_key = os.environ["SVYAZ_WRITE_KEYS"].split(",")[0]
    api_key = os.environ["SVYAZ_API_KEYS"].split(",")[0]
    os.environ["SVYAZ_STORE"] = "memory"
    service = LocalService("127.0.0.1", 0, build(), quiet=True).start()
    logging.getLogger("svyaz").setLevel(logging.WARNING)  # the demo prints its own story
    try:
        print(f"local service on {service.url} (in-memory store)\n")
        for name, journey in JOURNEYS.items():
            print(f"== {name}: POST {service.url}/collect")
            for event in journey():
                answer = _call(f"{service.url}/collect", write_key, json.loads(event.to_json()))
                print(
                    f"   {event.event_id:<12} {event.type:<9} {event.channel:<6} -> 202 {answer['accepted']}"
                )
        service.worker.wait_idle(30)
        print()
        for name, journey in JOURNEYS.items():
            kind, value = next(iter(journey()[0].identifiers.items()))
            query = urllib.parse.urlencode({"kind": kind, "value": value})
            profile = _call(f"{service.url}/profiles/lookup?{query}", api_key)
            touches = _call(f"{service.url}/profiles/{profile['profile_id']}/touchpoints", api_key)
            print(f"== {name}'s unified profile (GET /profiles/lookup?{query})")
            print(render_text(profile, touches["touchpoints"]))
            print()
    finally:
        service.stop()
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="send the two customer journeys of the seed through a local service"
    )
    parser.set_defaults(run=run)
