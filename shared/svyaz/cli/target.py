"""Where ``svyaz import``, ``svyaz report`` and ``svyaz erase`` work: a running service by URL
(by default the local ``svyaz serve`` when one runs), or a store opened in this process."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from svyaz.dev.client import ServiceClient, Target, resolve


class CommandError(RuntimeError):
    """The command cannot run; the message is one line (exit status 2)."""


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=None,
        help="a running svyaz service (e.g. http://127.0.0.1:8080; default: SVYAZ_URL, else the "
        "local `svyaz serve` if one runs, else the store of --store)",
    )
    parser.add_argument(
        "--store",
        choices=["memory", "firestore"],
        default=None,
        help="work on this store directly instead of a service (default: SVYAZ_STORE); memory is "
        "this process's own, empty store",
    )


@dataclass
class Opened:
    target: Target
    client: ServiceClient | None = None
    rt: Any = None  # svyaz.app.runtime.Runtime when direct


def open_target(args: argparse.Namespace, *, store_needed: bool = True, quiet: bool = False) -> Opened:
    """Resolve and check the target of a command. Raises ``CommandError`` with one line."""
    target = resolve(getattr(args, "url", None), getattr(args, "store", None))
    if target.url:
        client = ServiceClient(target.url)
        if target.discovered and not quiet:
            note = f"(svyaz serve at {target.url})"
            print(note, file=sys.stderr)
        return Opened(target, client=client)

    from svyaz.app.config import ConfigError, Settings
    from svyaz.app.runtime import build
    from svyaz.dev import preflight

    try:
        rt = build(Settings(store=target.store or "memory"))
        if store_needed:
            preflight.check(rt.settings, queue=False)
            rt.store  # noqa: B018 - built now: a missing secret stops here, named
    except (ConfigError, ValueError, preflight.Unavailable) as exc:
        raise CommandError(str(exc)) from None
    return Opened(target, rt=rt)
