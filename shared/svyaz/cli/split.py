"""``svyaz explain`` and ``svyaz split``: why a customer's profile holds what it holds, and
undoing a wrong merge by blocking a value and splitting the profile from its evidence.

Both read and write the store the service uses: run them with ``--store firestore`` (or
``SVYAZ_STORE=firestore``); the memory store of a fresh process is empty.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _runtime(store: str | None):
    from svyaz.app.config import ConfigError
    from svyaz.app.runtime import build

    if store:
        os.environ["SVYAZ_STORE"] = store
    try:
        rt = build()
        rt.store  # noqa: B018 - built now: a missing secret stops here, named
    except (ConfigError, ValueError) as exc:
        raise SystemExit(f"svyaz: cannot start: {exc}") from None
    return rt


def _identifier(rt, kind: str, value: str):
    from svyaz.domain.model import Identifier
    from svyaz.identity.normalize import Rejected, normalize
    from svyaz.identity.policy import UnknownKind

    try:
        return Identifier(kind, normalize(rt.policy, kind, value))
    except (UnknownKind, Rejected) as exc:
        raise SystemExit(f"svyaz: {kind}: {getattr(exc, 'reason', exc)}") from None


def run_explain(args: argparse.Namespace) -> int:
    from svyaz.app.explain import explain, path
    from svyaz.domain.explain import render_tree

    rt = _runtime(args.store)
    identifier = _identifier(rt, args.kind, args.value)
    profile = rt.store.lookup(identifier)
    if profile is None:
        print("no profile holds this identifier", file=sys.stderr)
        return 1
    if args.to:
        kind, _, value = args.to.partition("=")
        answer = path(rt.store, profile, identifier, _identifier(rt, kind, value))
        if args.json:
            print(json.dumps(answer, ensure_ascii=False, indent=2))
        elif answer["path"] is None:
            print("no evidence joins them")
        else:
            for step in answer["path"]:
                a, b = step["joined"]
                how = f"{step.get('type')} via {step.get('channel')}, {step.get('at')}"
                joined = f"{a['kind']}:{a['value']} -> {b['kind']}:{b['value']}"
                print(f"{joined}  event {step['event_id']} ({how})")
        return 0
    view = explain(rt.store, profile)
    print(json.dumps(view, ensure_ascii=False, indent=2) if args.json else render_tree(view))
    return 0


def run_split(args: argparse.Namespace) -> int:
    from svyaz.app.splits import Splitter, new_request

    kind, sep, value = args.block.partition("=")
    if not sep:
        print("svyaz split: --block KIND=VALUE, e.g. --block phone=+79091234567", file=sys.stderr)
        return 2
    rt = _runtime(args.store)
    identifier = _identifier(rt, kind, value)
    profile = rt.store.resolve(args.profile)
    if profile is None:
        print("svyaz split: no such profile", file=sys.stderr)
        return 1
    request = new_request(profile.profile_id, identifier, args.reason)
    rt.store.create_split(request)
    splitter = Splitter(rt.store, rt.policy)
    while (done := splitter.run(request.request_id)) is None:
        pass
    print(json.dumps(done.view(), ensure_ascii=False, indent=2))
    return 0 if done.state == "done" else 1


def register(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain",
        help="why a profile holds each identifier (events, merges, moves, conflicts, splits)",
        description="The profile holding KIND/VALUE as a tree: each identifier under the one it was "
        "linked through, with the event that linked it; then its merge history. With --to, the chain "
        "of events joining the two identifiers.",
    )
    explain.add_argument("--kind", required=True, help="identifier kind, e.g. phone")
    explain.add_argument("--value", required=True, help="identifier value, written any way")
    explain.add_argument("--to", metavar="KIND=VALUE", help="show the evidence path to this identifier")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.add_argument(
        "--store", choices=["memory", "firestore"], default=None, help="default: SVYAZ_STORE or memory"
    )
    explain.set_defaults(run=run_explain)

    split = commands.add_parser(
        "split",
        help="block a value and split the profile from its evidence",
        description="Put KIND=VALUE on the blocklist (it never links anything again) and re-partition "
        "the profile into the customers its remaining evidence connects.",
    )
    split.add_argument("--profile", required=True, metavar="PROFILE_ID", help="the profile to split")
    split.add_argument(
        "--block", required=True, metavar="KIND=VALUE", help="the identifier value to block and split on"
    )
    split.add_argument(
        "--reason", default="blocked with svyaz split", help="why (kept with the block; default: %(default)s)"
    )
    split.add_argument(
        "--store", choices=["memory", "firestore"], default=None, help="default: SVYAZ_STORE or memory"
    )
    split.set_defaults(run=run_split)
