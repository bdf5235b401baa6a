"""``svyaz report attribution``: revenue and orders by credited ad source, offline vs online.

The report reads what the service holds: a running service by URL (``--url``, ``SVYAZ_URL``, or
the local ``svyaz serve`` it finds), or a store directly (``--store firestore``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from svyaz.app.reports import BY, period

__all__ = ["attribution_text", "parse_day", "parse_tz", "period", "render"]


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def parse_tz(text: str) -> tzinfo:
    if text.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r} (e.g. Europe/Moscow)") from None


def attribution_text(store, first: date, last: date, tz: tzinfo, by: str, as_json: bool) -> str:
    from svyaz.app.reports import attribution_for_days

    return render(attribution_for_days(store, first, last, tz, by), first, last, tz, as_json)  # type: ignore[arg-type]


def render(report, first: date, last: date, tz: tzinfo, as_json: bool) -> str:
    if as_json:
        return json.dumps(report.as_dict(), ensure_ascii=False, indent=2)
    return report.render_text(f"{first} .. {last} ({tz_name(tz)})")


def tz_name(tz: tzinfo) -> str:
    return getattr(tz, "key", "UTC")


def add_period(parser: argparse.ArgumentParser) -> None:
    """--from, --to and --tz: the days of a report or an export, in a time zone."""
    parser.add_argument(
        "--from",
        dest="first",
        type=parse_day,
        required=True,
        metavar="YYYY-MM-DD",
        help="first day of the period (in --tz)",
    )
    parser.add_argument(
        "--to",
        dest="last",
        type=parse_day,
        required=True,
        metavar="YYYY-MM-DD",
        help="last day of the period, inclusive",
    )
    parser.add_argument("--tz", type=parse_tz, default=UTC, help="time zone of the dates (default: UTC)")


def note_if_empty(opened) -> None:
    """A command reading this process's own memory store reads nothing: say so."""
    if opened.client is None and opened.target.store == "memory":
        print(
            "note: no svyaz serve is running, so this reads the empty memory store of this process; "
            "start `svyaz serve` (or `svyaz demo --keep`), or use --url / --store firestore",
            file=sys.stderr,
        )


def run_attribution(args: argparse.Namespace) -> int:
    from svyaz.app.reports import AttributionReport
    from svyaz.cli.target import CommandError, open_target
    from svyaz.dev.client import ServiceError

    if args.last < args.first:
        print("svyaz report: --to is before --from", file=sys.stderr)
        return 2
    try:
        opened = open_target(args)
        note_if_empty(opened)
        if opened.client is not None:
            answer = opened.client.attribution(str(args.first), str(args.last), tz_name(args.tz), args.by)
            text = render(AttributionReport.from_dict(answer), args.first, args.last, args.tz, args.json)
        else:
            text = attribution_text(opened.rt.store, args.first, args.last, args.tz, args.by, args.json)
    except (CommandError, ServiceError) as exc:
        print(f"svyaz report: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    from svyaz.cli.target import add_options

    parser = commands.add_parser("report", help="reports over the touch history (attribution of sales)")
    reports = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
    sub = reports.add_parser(
        "attribution",
        help="revenue and orders by credited source/medium/campaign, offline vs online",
        description="Revenue and orders of the period by the ad source credited with each order, "
        "split offline (channel crm/store) vs online. Reads the running service (--url, SVYAZ_URL or "
        "the local svyaz serve) or a store (--store).",
    )
    add_period(sub)
    sub.add_argument(
        "--by",
        choices=BY,
        default="first_touch",
        help="which credited touch a sale goes to (default: %(default)s)",
    )
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    add_options(sub)
    sub.set_defaults(run=run_attribution)
