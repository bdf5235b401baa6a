"""``svyaz erase``: queue the erasure of a customer (152-FZ / GDPR), on a running service or a store."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from svyaz.cli.target import CommandError, open_target
    from svyaz.dev.client import ServiceError

    if args.kind and not args.value:
        print("svyaz erase: --kind needs --value", file=sys.stderr)
        return 2
    try:
        opened = open_target(args)
        if opened.client is not None:
            profile_id = args.profile_id or opened.client.lookup(args.kind, args.value)["profile_id"]
            answer = opened.client.erase(profile_id)
            print(f"erasure of profile {answer['profile_id']} queued on {opened.target.url}")
            return 0
        return _erase_here(opened.rt, args)
    except (CommandError, ServiceError) as exc:
        print(f"svyaz erase: {exc}", file=sys.stderr)
        return 2


def _erase_here(rt, args: argparse.Namespace) -> int:
    """Directly on the store: the erasure ``process_event`` would run, now (and its final
    sweep, once due)."""
    import time

    from svyaz.adapters.store.base import Later
    from svyaz.domain.model import Identifier
    from svyaz.identity.normalize import Rejected, normalize

    if args.profile_id:
        profile = rt.store.resolve(args.profile_id)
    else:
        try:
            profile = rt.store.lookup(Identifier(args.kind, normalize(rt.policy, args.kind, args.value)))
        except Rejected as exc:
            print(f"svyaz erase: {args.kind}: {exc.reason}", file=sys.stderr)
            return 2
    if profile is None:
        print("svyaz erase: no such profile", file=sys.stderr)
        return 1
    report = rt.store.erase(profile.profile_id)
    while report is not None:  # a running service's write in flight lands within the grace period
        try:
            rt.store.sweep(report.root_id, final=True)
            break
        except Later:
            time.sleep(1.0)
    identifiers, touchpoints = (report.identifiers, report.touchpoints) if report else (0, 0)
    print(f"erased profile {profile.profile_id}: {identifiers} identifier records, {touchpoints} touchpoints")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    from svyaz.cli.target import add_options

    parser = commands.add_parser(
        "erase",
        help="erase a customer's profile (by id, or by one of its identifiers)",
        description="Queue the erasure of a unified profile on the service (DELETE /profiles/<id>), or "
        "carry it out on a store directly (--store). The profile, its identifiers, touches and merged "
        "profiles are deleted; an 'erased' record remains.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--profile-id", help="the profile id (a merged id erases its survivor)")
    which.add_argument("--kind", help="identifier kind to find the profile by (with --value), e.g. phone")
    parser.add_argument("--value", help="identifier value (with --kind), written any way")
    add_options(parser)
    parser.set_defaults(run=run)
