"""``svyaz import SOURCE``: a customer base or orders (CSV / JSON Lines, local or s3://) into the
pipeline. See ``svyaz.imports`` and docs/connecting.md."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC


def run(args: argparse.Namespace) -> int:
    from svyaz.adapters.queue import LocalQueue
    from svyaz.app.config import ConfigError
    from svyaz.app.runtime import build
    from svyaz.imports import ImportFailed, default_via, open_source, parse_columns, run_import

    if args.store:
        os.environ["SVYAZ_STORE"] = args.store
    via = args.via or default_via()
    try:
        columns = parse_columns(args.column)
        rt = build()
        if via == "direct" and not args.dry_run:
            rt.service  # noqa: B018 - builds the store now: a missing secret stops here, named
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
    if args.source_id and len(args.sources) > 1:
        print("svyaz import: --source-id names one source", file=sys.stderr)
        return 2
    done = []
    try:
        for uri in args.sources:
            source = open_source(uri, rt.settings.s3_endpoint_url)
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
            print(stats.summary(), flush=True)
            done.append(stats)
    except ImportFailed as exc:
        print(f"svyaz import: {exc}", file=sys.stderr)
        return 1
    finally:
        rt.publisher.close()
    if args.report:
        print()
        print(_run_report(done, rt, args))
    return 0


def _run_report(done: list, rt, args: argparse.Namespace) -> str:
    """The attribution report over the days of the orders these imports carried."""
    from svyaz.cli.reports import attribution_text

    times = [at for stats in done for at in (stats.first_order_at, stats.last_order_at) if at is not None]
    if not times:
        return "no orders in this import: nothing to attribute"
    if args.dry_run or any(stats.via == "queue" for stats in done):
        return "the events are not applied yet: run `svyaz report attribution --store firestore` later"
    first, last = (at.astimezone(args.tz).date() for at in (min(times), max(times)))
    return attribution_text(rt.store, first, last, args.tz, args.by, False)


def register(commands: argparse._SubParsersAction) -> None:
    from svyaz.cli.reports import parse_tz

    parser = commands.add_parser(
        "import",
        help="import customers or orders from CSV / JSON Lines (local path or s3://bucket/key)",
        description="Stream a customer base or orders into the pipeline. A file with an order_id "
        "column is orders, any other a customer base. Bad rows go to <source>.rejects.csv; re-running "
        "a file changes nothing.",
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="local .csv/.jsonl (optionally .gz) or s3://bucket/key.csv; several are imported in order",
    )
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
