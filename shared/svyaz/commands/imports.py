"""``svyaz import SOURCE``: a customer base or orders (CSV / JSON Lines, local or s3://) into the
pipeline. See ``svyaz.imports`` and docs/connecting.md."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..imports import ImportFailed, default_via, open_source, parse_columns, run_import
    from ..queue import LocalQueue
    from ..runtime import build

    if args.store:
        os.environ["SVYAZ_STORE"] = args.store
    via = args.via or default_via()
    try:
        columns = parse_columns(args.column)
        rt = build()
    except (ConfigError, ValueError) as exc:
        print(f"svyaz import: {exc}", file=sys.stderr)
        return 2
    if via == "queue" and isinstance(rt.publisher, LocalQueue) and not args.dry_run:
        print(
            "svyaz import: --via queue needs Pub/Sub (SVYAZ_ENV=production or PUBSUB_EMULATOR_HOST); "
            "without it nothing would read the queue. Use --via direct.",
            file=sys.stderr,
        )
        return 2
    try:
        source = open_source(args.source, rt.settings.s3_endpoint_url)
        stats = run_import(
            source,
            rt,
            via=via,
            batch_size=args.batch_size,
            encoding=args.encoding,
            tz=args.tz,
            columns=columns,
            source_id=args.source_id,
            workers=args.workers,
            dry_run=args.dry_run,
            progress=False if args.no_progress else None,
        )
    except ImportFailed as exc:
        print(f"svyaz import: {exc}", file=sys.stderr)
        return 1
    finally:
        rt.publisher.close()
    print(stats.summary())
    if args.report:
        print()
        print(_run_report(stats, rt, args))
    return 0


def _run_report(stats, rt, args: argparse.Namespace) -> str:
    from .report import attribution_text

    if stats.first_order_at is None:
        return "no orders in this import: nothing to attribute"
    if stats.via == "queue" or stats.dry_run:
        return "the events are not applied yet: run `svyaz report attribution --store firestore` later"
    first = stats.first_order_at.astimezone(args.tz).date()
    last = stats.last_order_at.astimezone(args.tz).date()
    return attribution_text(rt.store, first, last, args.tz, args.by, False)


def register(commands: argparse._SubParsersAction) -> None:
    from .report import parse_tz

    parser = commands.add_parser(
        "import",
        help="import customers or orders from CSV / JSON Lines (local path or s3://bucket/key)",
        description="Stream a customer base or orders into the pipeline. A file with an order_id "
        "column is orders, any other a customer base. Bad rows go to <source>.rejects.csv; re-running "
        "a file changes nothing.",
    )
    parser.add_argument("source", help="a local .csv/.jsonl (optionally .gz) or s3://bucket/key.csv")
    parser.add_argument(
        "--via",
        choices=["direct", "queue"],
        default=None,
        help="apply here (direct) or publish to the events topic (queue); default: queue when "
        "SVYAZ_ENV=production or PUBSUB_EMULATOR_HOST is set, else direct",
    )
    parser.add_argument(
        "--store", choices=["memory", "firestore"], default=None, help="default: SVYAZ_STORE or memory"
    )
    parser.add_argument("--batch-size", type=int, default=500, help="events per batch (default: 500)")
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel applies in direct mode (Firestore: try 8)"
    )
    parser.add_argument("--encoding", default="utf-8", help="text encoding (e.g. cp1251; default utf-8)")
    parser.add_argument(
        "--tz", type=parse_tz, default=UTC, help="zone of times written without an offset (default UTC)"
    )
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="HEADER=column",
        help="map a header of the file to a column of the format, e.g. 'Номер заказа=order_id'",
    )
    parser.add_argument("--source-id", help="identity of the source for event ids (default: its path/URI)")
    parser.add_argument("--dry-run", action="store_true", help="validate and write rejects only")
    parser.add_argument("--report", action="store_true", help="print the attribution report of the run")
    parser.add_argument("--by", choices=["first_touch", "last_touch"], default="first_touch")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
