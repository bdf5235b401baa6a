"""``svyaz export conversions``: the period's offline conversions as the files Yandex Metrica and
Google Ads take, optionally uploaded to Metrica. See ``svyaz.exports`` and docs/conversions.md.

Like ``svyaz report``, it reads the service's store: ``--store firestore`` (or
``SVYAZ_STORE=firestore``). The export ledger lives next to it, so a conversion is exported once
whichever run (this command or the scheduled function) takes it first.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from datetime import UTC, datetime

from svyaz.cli.reports import parse_day, parse_tz, period


def _label(credit: dict[str, str] | None) -> str:
    if not credit:
        return "(none)"
    return " / ".join(v for v in (credit.get("source"), credit.get("medium"), credit.get("campaign")) if v)


def render(run, written: list[tuple[str, pathlib.Path, int]], title: str) -> str:
    out = [title]
    for kind, path, count in written:
        out.append(f"  {kind} file: {path} ({count} conversion{'s' if count != 1 else ''})")
    if not written:
        out.append("  no file written: nothing new to export")
    out.append(
        f"  exported: {run.exported}; exported before: {run.exported_before}; refused: {len(run.refused)}"
        + (f"; upload failed: {run.failed}" if run.failed else "")
    )
    for export_file in run.files:
        if export_file.upload is not None:
            upload = export_file.upload
            out.append(f"  uploaded {export_file.kind}: id {upload.get('id')}, status {upload.get('status')}")
        if export_file.error:
            out.append(f"  upload of {export_file.kind} failed (kept for the next run): {export_file.error}")
    for refused in run.refused:
        out.append(f"  refused {refused.key}: {refused.reason}")
    if run.orders:
        out.append("  orders exported (credited first touch | last touch):")
        for order in run.orders:
            out.append(
                f"    {order.order_id:<10} {order.at.isoformat().replace('+00:00', 'Z')}  "
                f"{order.amount} {order.currency}  {order.channel:<6} "
                f"{_label(order.credit.get('first_touch'))} | {_label(order.credit.get('last_touch'))}"
            )
    return "\n".join(out)


def _uploader(rt, target: str):
    from svyaz.exports.metrica import MetricaClient

    if target != "metrica":
        raise ValueError(
            "--upload sends to Metrica only; import the Google Ads file in Google Ads "
            "(Goals > Conversions > Uploads) or from a scheduled file source"
        )
    settings = rt.settings
    client = MetricaClient(
        settings.metrica_oauth_token.get_secret_value(), settings.metrica_counter_id, settings.metrica_api_url
    )
    return client.uploader("svyaz export conversions")


def run(args: argparse.Namespace) -> int:
    from svyaz.app.config import ConfigError
    from svyaz.app.runtime import build

    if args.last < args.first:
        print("svyaz export: --to is before --from", file=sys.stderr)
        return 2
    if args.store:
        os.environ["SVYAZ_STORE"] = args.store
    try:
        rt = build()
        rt.store  # noqa: B018 - built now: a missing secret stops here, named
        uploader = _uploader(rt, args.target) if args.upload else None
    except (ConfigError, ValueError) as exc:
        print(f"svyaz export: cannot start: {exc}", file=sys.stderr)
        return 2
    if rt.settings.store == "memory":
        print(
            "note: the memory store of this process is empty; export the service's data with "
            "--store firestore (SVYAZ_STORE=firestore)",
            file=sys.stderr,
        )
    return export_with(rt, args, uploader)


def export_with(rt, args: argparse.Namespace, uploader=None) -> int:
    """The command on a given runtime (tests and `svyaz demo` share one store with it)."""
    from svyaz.exports.service import Options, export

    settings = rt.settings
    start, end = period(args.first, args.last, args.tz)
    options = Options(settings.metrica_goal, settings.google_ads_conversion_name, again=args.again)
    result = export(rt.store, rt.ledger, args.target, start, end, datetime.now(UTC), options, uploader)
    out_dir = pathlib.Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for export_file in result.files:
        if not export_file.rows.rows or export_file.error:
            continue
        path = out_dir / f"{args.target}-{export_file.kind}-{args.first}_{args.last}.csv"
        path.write_bytes(export_file.rows.to_bytes())
        written.append((export_file.kind, path, len(export_file.rows.rows)))
    if args.json:
        summary = result.summary() | {"written": {kind: str(path) for kind, path, _ in written}}
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        zone = getattr(args.tz, "key", "UTC")
        title = f"Offline conversions for {args.target}, {args.first} .. {args.last} ({zone})"
        print(render(result, written, title))
    return 1 if result.failed else 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="offline conversions for Yandex Metrica / Google Ads")
    exports = parser.add_subparsers(dest="export", required=True, metavar="WHAT")
    sub = exports.add_parser(
        "conversions",
        help="the period's orders (and calls) as the files Metrica / Google Ads import",
        description="Orders of the period as offline conversions in the file format of the ad system "
        "(Metrica: orders and calls CSV; Google Ads: click-id and enhanced-conversions CSV), each "
        "conversion exported once (the ledger). Reads --store firestore (or SVYAZ_STORE).",
    )
    sub.add_argument(
        "--target", choices=["metrica", "google-ads"], required=True, help="the ad system to export for"
    )
    sub.add_argument(
        "--from", dest="first", type=parse_day, required=True, metavar="YYYY-MM-DD", help="first day"
    )
    sub.add_argument(
        "--to", dest="last", type=parse_day, required=True, metavar="YYYY-MM-DD", help="inclusive"
    )
    sub.add_argument("--tz", type=parse_tz, default=UTC, help="time zone of the dates (default: UTC)")
    sub.add_argument("--upload", action="store_true", help="upload to Metrica's management API")
    sub.add_argument("--out", default=".", help="directory for the files (default: here)")
    sub.add_argument("--again", action="store_true", help="export conversions exported before too")
    sub.add_argument("--json", action="store_true", help="machine-readable summary")
    sub.add_argument(
        "--store", choices=["memory", "firestore"], default=None, help="default: SVYAZ_STORE or memory"
    )
    sub.set_defaults(run=run)
