"""Read models: the unified profile and its touch history as JSON-ready dicts, and as text.

The profile API, the customer journal page and the CLI all render from here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .domain.model import Profile, Touch, Touchpoint
from .store.base import Store


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
    return {
        "event_id": touchpoint.event_id,
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
