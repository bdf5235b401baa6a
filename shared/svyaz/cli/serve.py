"""``svyaz serve``: the whole service on one local port."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from svyaz.entrypoints import registry

if TYPE_CHECKING:
    from svyaz.app.config import Settings


def development_defaults(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The registry's development values of the secrets ``environ`` leaves unset, by variable
    (none in production mode). A command passes them to :func:`local_settings`; nothing is
    written to the environment."""
    if environ.get("SVYAZ_ENV", "development") == "production":
        return {}
    return {name: value for name, value in registry.development_values().items() if not environ.get(name)}


def local_settings(filled: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """The settings of a local command: the environment's, with the ``filled`` development
    values and the command's own choices (``store=...``) as explicit overrides."""
    from svyaz.app.config import Settings

    values = {name.removeprefix("SVYAZ_").lower(): value for name, value in (filled or {}).items()}
    return Settings(**(values | overrides))


def site_tag(url: str, key: str, settings: Settings) -> str:
    """The one line a site puts on every page (with the tag's content hash: cached for a year)."""
    from svyaz.entrypoints.tag import versioned_path

    path = versioned_path(settings.cookie_name)
    return f'<script async src="{url}{path}" data-write-key="{key}"></script>'


def shown_key(keys: list[str], name: str, placeholder: str) -> str:
    """A key for the printed examples: the development value, never a configured one."""
    value = keys[0] if keys else ""
    return value if value == registry.development_values().get(name) else placeholder


def examples(url: str, settings: Settings) -> str:
    key = shown_key(settings.write_keys, "SVYAZ_WRITE_KEYS", "<your write key>")
    api = shown_key(settings.api_keys, "SVYAZ_API_KEYS", "<your API key>")
    return f"""The site tag, one line on every page of the site:
  {site_tag(url, key, settings)}
Try it:
  curl -s -X POST {url}/collect -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"event_id": "ev-1", "type": "page", "identifiers": {{"client_id": "c-42", "session_id": "1980094328"}},
         "context": {{"source": "yandex", "medium": "cpc", "campaign": "sofas"}}}}'
  curl -s -X POST {url}/collect -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"event_id": "ev-2", "type": "lead", "identifiers": {{"session_id": "1980094328", "phone": "8 (909) 123-45-67"}}}}'
  curl -s -X POST {url}/profiles/lookup -H 'Authorization: Bearer {api}' -H 'Content-Type: application/json' \\
    -d '{{"kind": "phone", "value": "8 (909) 123-45-67"}}'
  curl -s '{url}/profiles/<profile_id>/touchpoints' -H 'Authorization: Bearer {api}'"""


def journal_hint(url: str, rt, filled: Mapping[str, str]) -> str:
    """Where people open the customer journal, and a one-time sign-in link (this process only).
    The password is shown only when it is the development value filled in here."""
    settings = rt.settings
    if settings.journal_auth != "key":
        return f"Customer journal: {url}/journal/  (signed in by Identity-Aware Proxy)"
    shown = "SVYAZ_JOURNAL_KEYS" in filled and settings.journal_keys
    password = f"password {settings.journal_keys[0]}" if shown else "a journal password or API key"
    return (
        f"Customer journal: {url}/journal/  (sign in with {password})\n"
        f"  one-time sign-in link (15 min): {url}/journal/signin/{rt.sign_in_links.issue()}"
    )


def run(args: argparse.Namespace) -> int:
    filled = development_defaults()
    from svyaz.adapters.datadir import DataDirError
    from svyaz.app.config import ConfigError
    from svyaz.app.runtime import build
    from svyaz.dev import client, preflight
    from svyaz.dev.local import LocalService

    chosen = {"data_dir": args.data_dir} if args.data_dir else {}
    try:
        rt = build(local_settings(filled, store=args.store, **chosen))
        # Refuse to start rather than accept events that could never be applied.
        preflight.check(rt.settings)
        rt.store  # noqa: B018 - built now: a bad setting stops here, named
        rt.publisher  # noqa: B018 - idem (and --data-dir's queue re-queues what was accepted)
    except (ConfigError, ValueError, preflight.Unavailable, DataDirError) as exc:
        print(f"svyaz serve: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        service = LocalService(args.host, args.port, rt).start()
    except OSError as exc:
        print(f"svyaz serve: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    client.announce(service.url, args.store)
    queue = type(rt.publisher).__name__
    print(f"svyaz serving on {service.url}  (store: {args.store}, queue: {queue})")
    if rt.settings.data_dir:
        print(data_dir_line(rt))
    for function in registry.FUNCTIONS:
        for prefix in function.paths:
            print(f"  {service.url}{prefix:<24} -> {function.target}")
    if filled:
        print(
            "Development secrets (set SVYAZ_* to change): "
            + ", ".join(f"{name}={value}" for name, value in filled.items())
        )
    print(journal_hint(service.url, rt, filled))
    print(examples(service.url, rt.settings))
    print("Ctrl-C stops; queued events are applied first.", flush=True)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background job ignores Ctrl-C otherwise
        signal.signal(signum, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    print("\nstopping: no new requests, applying queued events...", flush=True)
    client.withdraw()
    left = service.stop()
    rt.store.close()
    print(stop_summary(service.worker, left, getattr(rt.publisher, "refused", 0)), flush=True)
    return 0 if left == 0 and not service.worker.given_up else 1


def data_dir_line(rt) -> str:
    """What a restart found in the data directory (counts only)."""
    store, queue = rt.store, rt.publisher
    profiles = sum(1 for doc in store.profiles.values() if doc.get("status") == "active")
    waiting = getattr(queue, "recovered", 0)
    return (
        f"Data directory: {rt.settings.data_dir}  ({profiles} customers, {len(store.identifiers)} "
        f"identifiers, {len(store.touchpoint_docs)} touches; {waiting} accepted events to apply)"
    )


def _ids(labels: list[str]) -> str:
    return ", ".join(labels[:20]) + (f" and {len(labels) - 20} more" if len(labels) > 20 else "")


def stop_summary(worker, left: int, refused: int = 0) -> str:
    """What happened to every event: applied, rejected as poison (acknowledged, never
    applicable), given up after retries (by id), left in the queue, or refused."""
    given_up = worker.given_up
    rejected = worker.rt.rejected
    text = (
        f"stopped: {worker.applied} events applied, {rejected.count} rejected, "
        f"{len(given_up)} given up, {left} left unapplied"
    )
    if rejected.count:
        text += f"\n  rejected (can never apply; reasons in the log above): {_ids(rejected.labels())}"
    if given_up:
        text += f"\n  given up (not applied; see the log above for why): {_ids(given_up)}"
    if refused:
        text += f"\n  {refused} events refused with 503 while the queue was full (their senders retry)"
    return text


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run every function on one local port, with a worker")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 for all)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default: %(default)s; 0 picks a free one)"
    )
    parser.add_argument(
        "--store",
        choices=["memory", "firestore"],
        default="memory",
        help="memory (default, no cloud) or firestore (the emulator when FIRESTORE_EMULATOR_HOST is set)",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the memory store's data and the accepted events in DIR across restarts "
        "(default: SVYAZ_DATA_DIR, else memory only)",
    )
    parser.set_defaults(run=run)
