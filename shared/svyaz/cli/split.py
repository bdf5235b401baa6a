"""``svyaz explain`` and ``svyaz split``: why a customer's profile holds what it holds, and
undoing a wrong merge by blocking a value and splitting the profile from its evidence.

Like ``svyaz erase`` they work on a running service (``--url``, ``SVYAZ_URL``, or the local
``svyaz serve``), or on a store directly (``--store firestore``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

POLL_SECONDS = 0.2
SPLIT_WAIT_SECONDS = 600.0


def _identifier(rt: Any, kind: str, value: str) -> Any:
    from svyaz.cli.target import CommandError
    from svyaz.domain.model import Identifier
    from svyaz.identity.normalize import Rejected, normalize
    from svyaz.identity.policy import UnknownKind

    try:
        return Identifier(kind, normalize(rt.policy, kind, value))
    except (UnknownKind, Rejected) as exc:
        raise CommandError(f"{kind}: {getattr(exc, 'reason', exc)}") from None


def _pair(text: str, option: str) -> tuple[str, str]:
    from svyaz.cli.target import CommandError

    kind, sep, value = text.partition("=")
    if not sep or not kind:
        raise CommandError(f"{option} KIND=VALUE, e.g. {option} phone=+79091234567")
    return kind, value


def _explain_data(opened: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The explanation (or, with --to, the evidence path) as the HTTP API answers it."""
    from svyaz.app.explain import explain, path
    from svyaz.cli.target import CommandError

    to = _pair(args.to, "--to") if args.to else None
    if opened.client is not None:
        profile_id = opened.client.lookup(args.kind, args.value)["profile_id"]
        query = {"kind": args.kind, "value": args.value, "to_kind": to[0], "to_value": to[1]} if to else None
        return opened.client.explain(profile_id, query)
    rt = opened.rt
    start = _identifier(rt, args.kind, args.value)
    profile = rt.store.lookup(start)
    if profile is None:
        raise CommandError("no profile holds this identifier")
    if to:
        return path(rt.store, profile, start, _identifier(rt, *to))
    return explain(rt.store, profile)


def _print_path(answer: dict[str, Any]) -> None:
    if answer["path"] is None:
        print("no evidence joins them")
        return
    for step in answer["path"]:
        a, b = step["joined"]
        how = f"{step.get('type')} via {step.get('channel')}, {step.get('at')}"
        print(f"{a['kind']}:{a['value']} -> {b['kind']}:{b['value']}  event {step['event_id']} ({how})")


def run_explain(args: argparse.Namespace) -> int:
    import json

    from svyaz.cli.target import CommandError, open_target
    from svyaz.dev.client import ServiceError
    from svyaz.domain.explain import render_tree

    try:
        answer = _explain_data(open_target(args, quiet=True), args)
    except (CommandError, ServiceError) as exc:
        print(f"svyaz explain: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    elif args.to:
        _print_path(answer)
    else:
        print(render_tree(answer))
    return 0


def _split_here(rt: Any, args: argparse.Namespace, kind: str, value: str) -> dict[str, Any]:
    """Directly on the store: the split ``process_event`` would run, now, to the end."""
    import time

    from svyaz.adapters.store.base import Later
    from svyaz.app.splits import Splitter, new_request
    from svyaz.cli.target import CommandError

    identifier = _identifier(rt, kind, value)
    profile = rt.store.resolve(args.profile)
    if profile is None:
        raise CommandError("no such profile")
    request = new_request(profile.profile_id, identifier, args.reason)
    rt.store.create_split(request)
    splitter = Splitter(rt.store, rt.policy, wait=True)  # a running service may write meanwhile
    while True:
        try:
            if (done := splitter.run(request.request_id)) is not None:
                return done.view()
        except Later:  # settling late page views: due a grace period after the records moved
            time.sleep(1.0)


def _split_on_service(client: Any, args: argparse.Namespace, kind: str, value: str) -> dict[str, Any]:
    """Queue the split on the service and wait until it is done (or failed)."""
    from svyaz.cli.target import CommandError

    state = client.split(args.profile, kind, value, args.reason)
    deadline = time.monotonic() + SPLIT_WAIT_SECONDS
    while state["state"] not in ("done", "failed"):
        if time.monotonic() > deadline:
            raise CommandError(f"split {state['request_id']} still {state['state']}; see GET /splits/<id>")
        time.sleep(POLL_SECONDS)
        state = client.split_state(state["request_id"])
    return state


def run_split(args: argparse.Namespace) -> int:
    from svyaz.cli.target import CommandError, open_target
    from svyaz.dev.client import ServiceError

    try:
        kind, value = _pair(args.block, "--block")
        opened = open_target(args, quiet=True)
        if opened.client is not None:
            state = _split_on_service(opened.client, args, kind, value)
        else:
            state = _split_here(opened.rt, args, kind, value)
    except (CommandError, ServiceError) as exc:
        print(f"svyaz split: {exc}", file=sys.stderr)
        return 2
    if state["state"] != "done":
        print(f"split {state['request_id']} failed: {state.get('error')}", file=sys.stderr)
        return 1
    profiles = len(state["profile_ids"])
    print(
        f"split of profile {state['profile_id']} done ({state['blocked_kind']} blocked): {profiles} profiles"
    )
    for part in state["components"]:
        print(f"  {part['profile_id']}  {part['identifiers']} identifiers, {part['touchpoints']} touchpoints")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    from svyaz.cli.target import add_options

    explain = commands.add_parser(
        "explain",
        help="why a profile holds each identifier (events, merges, moves, conflicts, splits)",
        description="The profile holding KIND/VALUE as a tree: each identifier under the one it was "
        "linked through, with the event that linked it; then its merge history. With --to, the chain "
        "of events joining the two identifiers.",
    )
    explain.add_argument("--kind", required=True, help="identifier kind to find the profile by, e.g. phone")
    explain.add_argument("--value", required=True, help="identifier value, written any way")
    explain.add_argument("--to", metavar="KIND=VALUE", help="show the evidence path to this identifier")
    explain.add_argument("--json", action="store_true", help="the API's JSON instead of the tree")
    add_options(explain)
    explain.set_defaults(run=run_explain)

    split = commands.add_parser(
        "split",
        help="block a value and split the profile from its evidence",
        description="Put KIND=VALUE on the blocklist (it never links anything again) and re-partition "
        "the profile into the customers its remaining evidence connects; waits until it is done.",
    )
    split.add_argument("--profile", required=True, metavar="PROFILE_ID", help="the profile to split")
    split.add_argument(
        "--block", required=True, metavar="KIND=VALUE", help="the value to block, e.g. phone=+7..."
    )
    split.add_argument("--reason", default="blocked with svyaz split", help="why (kept in the audit)")
    add_options(split)
    split.set_defaults(run=run_split)
