"""``svyaz demo``: the two customer journeys of the seed talk, sent through the real HTTP
endpoints of a local service, and the unified profiles read back through the profile API."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping
from urllib.parse import quote

from svyaz.dev.client import ServiceClient


def run(args: argparse.Namespace) -> int:
    from svyaz.app.runtime import build
    from svyaz.cli.serve import development_defaults, local_settings

    filled = development_defaults()
    if getattr(args, "url", None):  # a `svyaz serve` already running: its journal shows them
        send_journeys(args.url.rstrip("/"), local_settings(filled).write_keys[0])
        print(f"Open the customer journal: {args.url.rstrip('/')}/journal/")
        return 0
    settings = local_settings(filled, store=getattr(args, "store", None) or "memory")
    return run_on(build(settings), port=args.port, keep=args.keep, filled=filled)


def run_on(runtime, *, port: int = 0, keep: bool = False, filled: Mapping[str, str] | None = None) -> int:
    """The demo on a given runtime (its store keeps the journeys for later commands); ``filled``:
    the development settings filled in, whose journal password the sign-in hint may show."""
    from svyaz.app.views import render_text
    from svyaz.dev.demo import JOURNEYS
    from svyaz.dev.local import LocalService

    service = LocalService("127.0.0.1", port, runtime, quiet=True).start()
    logging.getLogger("svyaz").setLevel(logging.WARNING)  # the demo prints its own story
    try:
        where = "in-memory store" if runtime.settings.store == "memory" else "Firestore"
        print(f"local service on {service.url} ({where})\n")
        send_journeys(service.url, runtime.settings.write_keys[0])
        service.worker.wait_idle(30)
        print()
        api_key = runtime.settings.api_keys[0]
        profiles = ServiceClient(service.url, api_key)
        for name, journey in JOURNEYS.items():
            kind, value = next(iter(journey()[0].identifiers.items()))
            query = {"kind": kind, "value": value}
            profile = profiles.lookup(kind, value)
            touches = profiles.ok("GET", f"/profiles/{quote(profile['profile_id'], safe='')}/touchpoints")
            print(f"== {name}'s unified profile (POST /profiles/lookup {json.dumps(query)})")
            print(render_text(profile, touches["touchpoints"]))
            print()
        if keep:
            _keep_serving(service, api_key, filled or {})
    finally:
        service.stop()
    return 0


def _keep_serving(service, api_key: str, filled: Mapping[str, str]) -> None:
    """Leave the service up (and findable by `svyaz report`, `svyaz import`...) until Ctrl-C."""
    import signal
    import threading

    from svyaz.cli.serve import journal_hint
    from svyaz.dev import client

    # Ctrl-C is caught before anyone is told the service is there: a prompt one stops it cleanly.
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    client.announce(service.url, service.rt.settings.store)
    print(
        f"the service keeps running on {service.url} with these profiles; e.g.\n"
        f"  curl -s -X POST {service.url}/profiles/lookup -H 'Authorization: Bearer {api_key}' "
        f"-d '{{\"kind\": \"phone\", \"value\": \"+79165550102\"}}'\n"
        f"{journal_hint(service.url, service.rt, filled)}\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        client.withdraw()


def send_journeys(url: str, write_key: str) -> None:
    """POST the seed's journeys to ``url``/collect, printing each answer."""
    from svyaz.dev.demo import JOURNEYS

    service = ServiceClient(url)
    for name, journey in JOURNEYS.items():
        print(f"== {name}: POST {url}/collect")
        for event in journey():
            answer = service.ok("POST", "/collect", json.loads(event.to_json()), key=write_key)
            print(f"   {event.event_id:<12} {event.type:<9} {event.channel:<6} -> 202 {answer['accepted']}")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="send the two customer journeys of the seed through a local service"
    )
    parser.add_argument(
        "--store",
        choices=["memory", "firestore"],
        default=None,
        help="memory (default: gone when the demo ends) or firestore (the emulator when "
        "FIRESTORE_EMULATOR_HOST is set): keeps the journeys for `svyaz report` / `svyaz export`",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the service running afterwards (until Ctrl-C), so its profiles can be opened",
    )
    parser.add_argument("--port", type=int, default=0, help="port of the local service (default: a free one)")
    parser.add_argument(
        "--url",
        help="send the journeys to a running `svyaz serve` (e.g. http://127.0.0.1:8080) instead of "
        "a service of its own, then open its customer journal",
    )
    parser.set_defaults(run=run)
