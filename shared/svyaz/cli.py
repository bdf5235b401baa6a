"""The ``svyaz`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from .demo import JOURNEYS
    from .domain.model import Identifier
    from .identity.policy import Policy
    from .service import IdentityService
    from .store.memory import MemoryStore
    from .views import history, render_text

    service = IdentityService(MemoryStore(), Policy.default())
    for name, journey in JOURNEYS.items():
        print(f"== {name}")
        for event in journey():
            outcome = service.apply(event)
            print(f"   {event.event_id:<12} {event.type:<9} -> {outcome.status}")
    print()
    for name, journey in JOURNEYS.items():
        first = journey()[0]
        kind, value = next(iter(first.identifiers.items()))
        profile = service.store.lookup(Identifier(kind, str(value)))
        print(f"== {name}'s unified profile")
        print(render_text(profile, history(service.store, profile)))
        print()
    return 0


def _package(args: argparse.Namespace) -> int:
    from .deploy.artifact import build_function_source

    path = build_function_source(Path(args.out))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svyaz", description="Identity stitching for online and offline touches"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="apply the two customer journeys of the seed and print the profiles"
    )
    demo.set_defaults(run=_demo)

    package = commands.add_parser("package", help="build the Cloud Functions source archive")
    package.add_argument("--out", default="dist/functions.zip")
    package.set_defaults(run=_package)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
