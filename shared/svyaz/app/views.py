"""Read models: the unified profile and its touch history as JSON-ready dicts, and as text.

The profile API, the customer journal page and the CLI all render from here."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from svyaz.adapters.store.base import Store
from svyaz.domain.events import client_event_id, namespace_of
from svyaz.domain.model import Profile, Touch, Touchpoint


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


def _touch(touch: Touch | None) -> dict[str, Any] | None:
    if touch is None:
        return None
    return {"at": _iso(touch.at), "type": touch.type, "channel": touch.channel, **touch.attribution}


def profile_view(profile: Profile) -> dict[str, Any]:
    return {
        "profile_id": profile.profile_id,
        "status": profile.status,
        "identifiers": {kind: sorted(values) for kind, values in sorted(profile.identifiers.items())},
        "traits": {name: trait.value for name, trait in sorted(profile.traits.items())},
        "first_seen": _iso(profile.first_seen),
        "last_seen": _iso(profile.last_seen),
        "first_touch": _touch(profile.first_touch),
        "last_touch": _touch(profile.last_touch),
        "counters": {name: _number(value) for name, value in sorted(profile.counters.items())},
        "merged_profile_ids": sorted(profile.merged_from),
        "version": profile.version,
    }


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def touchpoint_view(touchpoint: Touchpoint) -> dict[str, Any]:
    # A client's event shows the id it sent, and which sender (write key namespace) sent it.
    sender = namespace_of(touchpoint.event_id)
    return {
        "event_id": client_event_id(touchpoint.event_id),
        **({"sender": sender} if sender else {}),
        "type": touchpoint.type,
        "channel": touchpoint.channel,
        "timestamp": _iso(touchpoint.timestamp),
        "attribution": dict(touchpoint.attribution),
        "identifiers": [{"kind": i.kind, "value": i.value} for i in touchpoint.identifiers],
        "properties": dict(touchpoint.properties),
        **({"credit": {k: dict(v) for k, v in touchpoint.credit.items()}} if touchpoint.credit else {}),
    }


def history(
    store: Store, profile: Profile, limit: int = 50, before: datetime | None = None
) -> list[Touchpoint]:
    """Touch history of a profile including every profile merged into it, newest first."""
    return store.touchpoints([profile.profile_id, *profile.merged_from], limit, before)


def profile_totals(store: Store, profile_id: str) -> dict[str, Any] | None:
    """The aggregates of a customer (the profile a possibly merged id resolves to), derived
    from its family's touchpoints at read time: counters (events, per type, orders, revenue),
    first / last seen, first / last touch. None for an unknown or erased profile.

    Cost: the family's tombstones (one query per level), then one masked query over the
    family's touchpoints: one document read per touchpoint (see docs/performance.md)."""
    profile = store.active_profile(profile_id)
    if profile is None:
        return None
    family = store.family(profile.profile_id)
    totals = store.aggregates(family)
    return {
        "profile_id": profile.profile_id,
        "merged_profile_ids": sorted(family[1:]),
        "counters": {name: _number(value) for name, value in sorted(totals.counters.items())},
        "first_seen": _iso(min(profile.first_seen, totals.first_seen or profile.first_seen)),
        "last_seen": _iso(max(profile.last_seen, totals.last_seen or profile.last_seen)),
        "first_touch": _touch(totals.first_touch),
        "last_touch": _touch(totals.last_touch),
    }


def render_text(view: dict[str, Any], touches: list[dict[str, Any]]) -> str:
    """A profile (``profile_view``) and its history (``touchpoint_view``s, newest first) as a
    person reads them in a terminal."""
    lines = [
        f"Profile {view['profile_id']}  (first seen {view['first_seen']}, last seen {view['last_seen']})"
    ]
    for kind, values in view["identifiers"].items():
        lines.append(f"  {kind:<14} {', '.join(values)}")
    if view["traits"]:
        lines.append("  traits         " + ", ".join(f"{k}={v}" for k, v in view["traits"].items()))
    for label in ("first_touch", "last_touch"):
        touch = view[label]
        if touch:
            lines.append(
                f"  {label.replace('_', ' '):<14} {_source(touch)}  ({touch['type']} via {touch['channel']})"
            )
    lines.append("  counters       " + ", ".join(f"{k}={v}" for k, v in view["counters"].items()))
    lines.append("  touch history (oldest first):")
    for touch in reversed(touches):
        when = touch["timestamp"][:19] + "Z"
        extra = [
            f"{k}={v}" for k, v in touch["properties"].items() if k in ("store_id", "order_id", "amount")
        ]
        extra += [f"credited {k.split('_')[0]}: {_source(v)}" for k, v in touch.get("credit", {}).items()]
        source = _source(touch["attribution"]) or "-"
        lines.append(
            f"    {when}  {touch['type']:<12} {touch['channel']:<12} {source:<26} {', '.join(extra)}".rstrip()
        )
    return "\n".join(lines)


def _source(attribution: dict[str, Any]) -> str:
    return "/".join(str(attribution[k]) for k in ("source", "medium", "campaign") if attribution.get(k))


def render_html(view: dict[str, Any], touches: list[dict[str, Any]]) -> str:
    """The customer journal page: one profile and its touch history, for a person."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(t['timestamp'][:19].replace('T', ' '))}</td>"
        f"<td>{e(t['type'])}</td><td>{e(t['channel'])}</td>"
        f"<td>{e(_source(t['attribution']) or '—')}</td>"
        f"<td>{e(', '.join(f'{k}: {_source(v)}' for k, v in t.get('credit', {}).items()))}</td></tr>"
        for t in reversed(touches)
    )
    ids = "".join(
        f"<tr><th>{e(k)}</th><td>{e(', '.join(v))}</td></tr>" for k, v in view["identifiers"].items()
    )
    traits = ", ".join(f"{e(k)}={e(str(v))}" for k, v in view["traits"].items()) or "—"
    touch = {k: e(_source(view[k]) if view[k] else "—") for k in ("first_touch", "last_touch")}
    counters = ", ".join(f"{e(k)}={v}" for k, v in view["counters"].items())
    return (
        "<!doctype html><html lang='ru'><meta charset='utf-8'><title>svyaz: customer journal</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style>"
        f"<h1>Customer {e(view['profile_id'])}</h1>"
        f"<p>First seen {e(view['first_seen'] or '')}, last seen {e(view['last_seen'] or '')}. "
        f"First touch: {touch['first_touch']}. Last touch: {touch['last_touch']}.</p>"
        f"<p>Traits: {traits}. Counters: {counters}.</p>"
        f"<h2>Identifiers</h2><table>{ids}</table>"
        "<h2>Touch history</h2><table><tr><th>time (UTC)</th><th>type</th><th>channel</th>"
        f"<th>source / medium / campaign</th><th>credited</th></tr>{rows}</table></html>"
    )
