"""``svyaz qr create``: a signed QR code for a store, as a landing URL, a PNG and an SVG.

The signing key and the allow-list of redirect hosts come from the same settings the
``qr_landing`` function uses (``SVYAZ_QR_SIGNING_KEY``, ``SVYAZ_QR_ALLOWED_HOSTS``), so a code
printed here is accepted there, and a target outside the allow-list is refused before anything
is printed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

DAY = 24 * 3600


class QrCommandError(Exception):
    """A mistake the user can fix; printed without a traceback (exit status 2)."""


def _settings():
    from svyaz.app.config import Settings

    return Settings()


def _check_target(target: str, allowed_hosts: list[str]) -> None:
    """Clear messages for the usual mistakes, before the signer's generic refusal."""
    from svyaz.channels.qr import target_allowed

    try:
        parts = urlsplit(target)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise QrCommandError(f"--target {target!r} is not a URL") from None
    if parts.scheme.lower() not in ("https", "http") or not host:
        raise QrCommandError(f"--target {target!r} must be an absolute https:// URL")
    if not target_allowed(target, allowed_hosts):
        if parts.scheme.lower() == "http" and host not in ("localhost", "127.0.0.1"):
            raise QrCommandError(f"--target must use https (http is allowed only on localhost): {target}")
        raise QrCommandError(
            f"target host {host!r} is not allowed: SVYAZ_QR_ALLOWED_HOSTS={','.join(allowed_hosts)} "
            "(add the host, or a parent domain, to print codes that lead there)"
        )


def _file_stem(store_id: str, campaign: str, offer: str) -> str:
    """``qr-<store>-<campaign>-<offer>`` with only file-name-safe characters."""
    parts = [
        re.sub(r"[^\w.-]+", "_", p, flags=re.UNICODE).strip("._") or "x" for p in (store_id, campaign, offer)
    ]
    return "qr-" + "-".join(parts)[:150]


def create(args: argparse.Namespace) -> int:
    from svyaz.channels import ChannelError
    from svyaz.channels.qr import QrCode, landing_url, render, sign_code, verify_code

    settings = _settings()
    key = settings.qr_signing_key.get_secret_value()
    if not key:
        raise QrCommandError(
            "SVYAZ_QR_SIGNING_KEY is not set: use the same secret as the deployed qr_landing function"
        )
    allowed = list(settings.qr_allowed_hosts)
    if not allowed:
        raise QrCommandError("SVYAZ_QR_ALLOWED_HOSTS is not set: list the hosts codes may redirect to")
    _check_target(args.target, allowed)
    if args.expires_days is not None and args.expires_days < 1:
        raise QrCommandError("--expires-days must be at least 1")
    expires_at = int(time.time()) + args.expires_days * DAY if args.expires_days else None
    code = QrCode(args.store_id, args.campaign, args.offer, args.target, expires_at)
    base_url = args.base_url or "{0.scheme}://{0.netloc}".format(urlsplit(args.target))
    try:
        token = sign_code(code, key.encode(), allowed_hosts=allowed)
        url = landing_url(base_url, token)
    except ChannelError as exc:
        raise QrCommandError(str(exc)) from None
    assert verify_code(token, key.encode(), time.time(), allowed_hosts=allowed) == code

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = _file_stem(args.store_id, args.campaign, args.offer)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    render(url, png, svg)
    print(url, flush=True)  # before the details on stderr, whatever stdout is
    expiry = (
        datetime.fromtimestamp(expires_at, UTC).isoformat().replace("+00:00", "Z") if expires_at else "never"
    )
    print(f"  store {args.store_id}, campaign {args.campaign}, offer {args.offer}", file=sys.stderr)
    print(f"  redirects to {args.target}; expires {expiry}", file=sys.stderr)
    print(
        f"  wrote {png} ({png.stat().st_size:,} bytes) and {svg} ({svg.stat().st_size:,} bytes)",
        file=sys.stderr,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return create(args)
    except QrCommandError as exc:
        print(f"svyaz qr create: error: {exc}", file=sys.stderr)
        return 2


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("qr", help="signed QR codes for offline stores")
    actions = parser.add_subparsers(dest="qr_command", required=True, metavar="ACTION")
    create_parser = actions.add_parser(
        "create",
        help="sign a code, print its landing URL, write PNG and SVG",
        description="Needs SVYAZ_QR_SIGNING_KEY and SVYAZ_QR_ALLOWED_HOSTS (the qr_landing function's own).",
    )
    create_parser.add_argument("--store-id", required=True, help="the store the code is printed for")
    create_parser.add_argument("--campaign", required=True, help="campaign name (the touch's utm_campaign)")
    create_parser.add_argument("--offer", required=True, help="what the code offers (warranty, wifi, ...)")
    create_parser.add_argument(
        "--target", required=True, help="https URL the scan redirects to (allow-listed)"
    )
    create_parser.add_argument("--expires-days", type=int, default=None, help="days the code stays valid")
    create_parser.add_argument(
        "--base-url",
        default=None,
        help="where /qr/<code> is served, the brand's own domain (default: the target's origin)",
    )
    create_parser.add_argument("--out", default=".", help="folder for the PNG and SVG (default: %(default)s)")
    create_parser.set_defaults(run=run)
