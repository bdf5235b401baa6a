"""``svyaz package``: the Cloud Functions source archive."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from svyaz.dev.artifact import build_function_source

    path = build_function_source(Path(args.out))
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("package", help="build the Cloud Functions source archive")
    parser.add_argument(
        "--out", default="dist/functions.zip", help="where to write the zip (default: %(default)s)"
    )
    parser.set_defaults(run=run)
