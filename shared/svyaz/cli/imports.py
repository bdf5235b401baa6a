"""``svyaz import SOURCE``: a customer base or orders (CSV / JSON Lines, local or s3://) into the
pipeline. See ``svyaz.imports`` and docs/connecting.md."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from svyaz.app.reports import BY


def run(args: argparse.Namespace) -> int:
    from svyaz.cli.target import CommandError
    from svyaz.dev.client import ServiceError
    from svyaz.imports import ImportFailed, parse_columns

    if args.source_id and len(args.sources) > 1:
        print("svyaz import: --source-id names one source", file=sys.stderr)
        return 2
    try:
        columns = parse_columns(args.column)
        via, rt, remote = _open(args)
    except (CommandError, ServiceError, ValueError) as exc:
        print(f"svyaz import: {exc}", file=sys.stderr)
        return 2
    done = []
    try:
        for uri in args.sources:
            stats = _import_one(uri, rt, via, remote, columns, args)
            print(stats.summary(), flush=True)
            done.append(stats)
    except (ImportFailed, ServiceError) as exc:
        print(f"svyaz import: {exc}", file=sys.stderr)
        return 1
    finally:
        rt.publisher.close()
    if args.report:
        print()
        print(_run_report(done, rt, args))
    notes = [note for stats in done if (note := stats.reject_note())]
    for note in notes:
        print(f"svyaz import: {note}", file=sys.stderr)
    return 1 if notes else 0


def _import_one(uri: str, rt, via: str, remote, columns: dict[str, str], args: argparse.Namespace):
    from svyaz.imports import open_source, run_import

    return run_import(
        open_source(uri, rt.settings.s3_endpoint_url),
        rt,
        via=via,  # type: ignore[arg-type]
        batch_size=args.batch_size,
        encoding=args.encoding,
        tz=args.tz,
        columns=columns,
        source_id=args.source_id,
        workers=args.workers,
        dry_run=args.dry_run,
        progress=False if args.no_progress else None,
        default_time=args.time,
        remote=remote,
    )


def _open(args: argparse.Namespace):
    """(via, runtime, remote apply or None): where the rows go. Raises ``CommandError``."""
    from svyaz.adapters.queue import LocalQueue
    from svyaz.app.config import ConfigError
    from svyaz.app.runtime import build
    from svyaz.cli.target import CommandError, open_target
    from svyaz.imports import default_via

    via = args.via
    if via is None and (
        args.url or args.store or os.environ.get("SVYAZ_URL") or os.environ.get("SVYAZ_STORE")
    ):
        via = "direct"
    via = via or default_via()
    if via == "queue" or args.dry_run:
        try:
            rt = build()
        except (ConfigError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if via == "queue" and isinstance(rt.publisher, LocalQueue) and not args.dry_run:
            raise CommandError(
                "--via queue needs Pub/Sub (SVYAZ_ENV=production or PUBSUB_EMULATOR_HOST); without it "
                "nothing would read the queue. Use --via direct."
            )
        return via, rt, None
    opened = open_target(args)
    if opened.client is None:
        return "direct", opened.rt, None
    if not opened.client.is_local():
        raise CommandError(
            f"{opened.target.url} is not a local `svyaz serve`: import into a deployment with --via queue"
        )
    try:
        rt = build()  # the policy checks rows here as the service will; the service applies them
    except (ConfigError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    return "url", rt, _remote(opened.client)


def _remote(client):
    """Apply a batch on the running service; per event: duplicate?, or the Reject."""
    from svyaz.imports import Reject

    def apply(events: list) -> list:
        results = client.apply([json.loads(event.to_json()) for event in events])
        return [
            Reject(0, "", f"refused by the pipeline: {r.get('reason')}")
            if r["result"] == "refused"
            else r["result"] == "duplicate"
            for r in results
        ]

    return apply


def _run_report(done: list, rt, args: argparse.Namespace) -> str:
    """The attribution report over the days of the orders these imports carried."""
    from svyaz.cli.reports import attribution_text

    times = [at for stats in done for at in (stats.first_order_at, stats.last_order_at) if at is not None]
    if not times:
        return "no orders in this import: nothing to attribute"
    if args.dry_run or any(stats.via == "queue" for stats in done):
        return "the events are not applied yet: run `svyaz report attribution` later"
    first, last = (at.astimezone(args.tz).date() for at in (min(times), max(times)))
    if any(stats.via == "url" for stats in done):
        from svyaz.app.reports import AttributionReport
        from svyaz.cli.reports import render, tz_name
        from svyaz.cli.target import open_target

        client = open_target(args, quiet=True).client
        answer = client.attribution(str(first), str(last), tz_name(args.tz), args.by)
        return render(AttributionReport.from_dict(answer), first, last, args.tz, False)
    return attribution_text(rt.store, first, last, args.tz, args.by, False)


def _parse_time(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def register(commands: argparse._SubParsersAction) -> None:
    from svyaz.cli.reports import parse_tz
    from svyaz.cli.target import add_options

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
        help="apply now, on the running service or --store (direct), or publish to the events topic "
        "(queue); default: queue when SVYAZ_ENV=production or PUBSUB_EMULATOR_HOST is set, else direct",
    )
    add_options(parser)
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
    parser.add_argument(
        "--time",
        type=_parse_time,
        default=None,
        metavar="ISO-TIME",
        help="time of customer rows without a time column (default: the file's modification time)",
    )
    parser.add_argument("--source-id", help="identity of the source for event ids (default: its path/URI)")
    parser.add_argument("--dry-run", action="store_true", help="validate and write rejects only")
    parser.add_argument("--report", action="store_true", help="print the attribution report of the run")
    parser.add_argument(
        "--by",
        choices=BY,
        default="first_touch",
        help="credit of the --report (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    parser.set_defaults(run=run)
