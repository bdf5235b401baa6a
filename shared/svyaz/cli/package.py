"""``svyaz package``: the Cloud Functions source archive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from svyaz.dev.artifact import (
        LB_ROUTES,
        ArtifactError,
        _find_repo_root,
        build_function_source,
        lb_routes_tf,
        write_lock,
    )

    try:
        if args.routes:
            routes = _find_repo_root() / LB_ROUTES
            routes.write_text(lb_routes_tf(), encoding="utf-8")
            print(f"wrote {routes}")
        if args.lock:
            lock = write_lock(_find_repo_root())
            print(f"wrote {lock}")
        path = build_function_source(Path(args.out))
    except ArtifactError as exc:
        print(f"svyaz package: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("package", help="build the Cloud Functions source archive")
    parser.add_argument(
        "--out", default="dist/functions.zip", help="where to write the zip (default: %(default)s)"
    )
    parser.add_argument(
        "--lock",
        action="store_true",
        help="first regenerate functions/requirements.lock (pip-compile --generate-hashes, pinned to the "
        "installed versions) after a dependency change",
    )
    parser.add_argument(
        "--routes",
        action="store_true",
        help="first regenerate infra/lb_routes.tf (the load balancer's paths) from the channel registry",
    )
    parser.set_defaults(run=run)
