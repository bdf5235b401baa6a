"""Export offline conversions of a period: read the orders (and calls) through the store's query
helpers, find the identifiers each ad system matches by in the customer's touch history, format
the files, take the rows no earlier run exported (the ledger), and optionally upload them.

Used by ``svyaz export conversions`` and by the scheduled ``export_conversions`` function.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlsplit

from svyaz.adapters.ledger import Ledger
from svyaz.adapters.store.base import Store
from svyaz.domain.merge import order_value
from svyaz.domain.model import Touchpoint
from svyaz.exports import formats
from svyaz.exports.formats import CallConversion, OrderConversion, Refused, Rows

log = logging.getLogger("svyaz.exports")
TARGETS = ("metrica", "google-ads")
TOUCHES_SCANNED = 1000  # the latest touches of a customer searched for their identifiers
CLICK_ID_DAYS = 90  # a click id older than this before the conversion is not sent

# (target, file kind, rows) -> the ad system's answer; raises on failure.
Uploader = Callable[[str, str, Rows], dict[str, Any]]


@dataclass
class ExportFile:
    kind: str  # metrica: "orders", "calls"; google-ads: "gclid", "enhanced"
    rows: Rows
    upload: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class ExportRun:
    target: str
    start: datetime
    end: datetime
    batch: str
    files: list[ExportFile] = field(default_factory=list)
    orders: list[OrderConversion] = field(default_factory=list)
    exported_before: int = 0
    refused: list[Refused] = field(default_factory=list)

    @property
    def exported(self) -> int:
        return sum(len(f.rows.rows) for f in self.files if f.error is None)

    @property
    def failed(self) -> int:
        return sum(len(f.rows.rows) for f in self.files if f.error is not None)

    def summary(self) -> dict[str, Any]:
        """Counts and reasons only: logged by the scheduled function, so no personal data."""
        reasons: dict[str, int] = {}
        for refused in self.refused:
            reasons[refused.reason] = reasons.get(refused.reason, 0) + 1
        return {
            "target": self.target,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "batch": self.batch,
            "exported": self.exported,
            "exported_before": self.exported_before,
            "refused": len(self.refused),
            "refused_reasons": reasons,
            "upload_failed": self.failed,
            "files": {f.kind: len(f.rows.rows) for f in self.files},
            "uploads": {f.kind: f.upload for f in self.files if f.upload is not None},
        }


def _credit_dict(credit: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {
        by: {k: v for k, v in c.items() if k in ("source", "medium", "campaign")} for by, c in credit.items()
    }


def run_details(run: ExportRun) -> dict[str, Any]:
    """The summary with the files' content and the exported orders: what ``svyaz export`` writes
    and prints (it holds the customers' ad-system ids: for the operator, never logged)."""
    return run.summary() | {
        "file_contents": {
            f.kind: f.rows.to_bytes().decode() for f in run.files if f.rows.rows and f.error is None
        },
        "errors": {f.kind: f.error for f in run.files if f.error},
        "refused_rows": [{"key": r.key, "reason": r.reason} for r in run.refused],
        "orders": [
            {
                "order_id": o.order_id,
                "at": o.at.isoformat().replace("+00:00", "Z"),
                "amount": formats.money(o.amount),
                "currency": o.currency,
                "channel": o.channel,
                "credit": _credit_dict(o.credit),
            }
            for o in run.orders
        ],
    }


def click_ids(touchpoint: Touchpoint) -> dict[str, str]:
    """``yclid`` / ``gclid`` the touch carried: in its landing page URL or its properties."""
    found: dict[str, str] = {}
    query = parse_qs(urlsplit(touchpoint.context.get("page_url") or "").query)
    for name in ("yclid", "gclid"):
        value = touchpoint.properties.get(name) or (query.get(name) or [None])[0]
        if isinstance(value, str | int) and str(value).strip():
            found[name] = str(value).strip()
    return found


class Customers:
    """The touch history of each customer, read once per export run."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._history: dict[str, list[Touchpoint] | None] = {}

    def history(self, profile_id: str) -> list[Touchpoint] | None:
        """Touchpoints of the customer's whole merged family, newest first; None once erased."""
        if profile_id not in self._history:
            profile = self.store.resolve(profile_id)
            if profile is None:
                self._history[profile_id] = None
            else:
                family = [profile.profile_id, *profile.merged_from]
                self._history[profile_id] = self.store.touchpoints(family, TOUCHES_SCANNED)
        return self._history[profile_id]

    @staticmethod
    def latest(history: list[Touchpoint], kind: str, at: datetime) -> str | None:
        """The identifier of ``kind`` on the latest touch up to ``at``, else on any touch."""
        fallback = None
        for touchpoint in history:  # newest first
            value = next((i.value for i in touchpoint.identifiers if i.kind == kind), None)
            if value is None:
                continue
            if touchpoint.timestamp <= at:
                return value
            fallback = value
        return fallback

    @staticmethod
    def click(history: list[Touchpoint], name: str, at: datetime) -> str | None:
        oldest = at - timedelta(days=CLICK_ID_DAYS)
        for touchpoint in history:
            if oldest <= touchpoint.timestamp <= at and (value := click_ids(touchpoint).get(name)):
                return value
        return None


def _amount(properties: dict[str, Any]) -> Decimal | None:
    try:
        return Decimal(str(properties.get("amount") or 0)).quantize(formats.CENTS)
    except (InvalidOperation, ValueError):
        return None


def order_conversions(
    store: Store, orders: Iterable[Touchpoint], customers: Customers
) -> tuple[list[OrderConversion], list[Refused]]:
    conversions, refused = [], []
    for order in sorted(orders, key=lambda t: t.timestamp):
        counts, _ = order_value(order.type, order.properties)
        if not counts:
            continue  # cancelled or refunded: not a conversion
        history = customers.history(order.profile_id)
        amount = _amount(order.properties)
        if history is None:
            refused.append(Refused(order.name, "customer erased"))
            continue
        if amount is None:
            refused.append(Refused(order.name, "amount is not a number"))
            continue
        at = order.timestamp
        conversions.append(
            OrderConversion(
                key=order.name,
                order_id=str(order.properties.get("order_id") or order.event_id),
                at=at,
                amount=amount,
                currency=str(order.properties.get("currency") or "RUB").upper(),
                channel=order.channel,
                credit=order.credit,
                ym_client_id=Customers.latest(history, "ym_client_id", at),
                yclid=Customers.click(history, "yclid", at),
                user_id=Customers.latest(history, "user_id", at),
                gclid=Customers.click(history, "gclid", at),
                email=Customers.latest(history, "email", at),
                phone=Customers.latest(history, "phone", at),
            )
        )
    return conversions, refused


def call_conversions(
    calls: Iterable[Touchpoint], customers: Customers
) -> tuple[list[CallConversion], list[Refused]]:
    conversions, refused = [], []
    for call in sorted(calls, key=lambda t: t.timestamp):
        history = customers.history(call.profile_id)
        if history is None:
            refused.append(Refused(call.event_id, "customer erased"))
            continue
        duration = call.properties.get("duration")
        conversions.append(
            CallConversion(
                key=call.event_id,
                at=call.timestamp,
                duration=int(duration) if isinstance(duration, int | float) else None,
                missed=call.properties.get("successful") is False,
                static=not any(i.kind == "session_id" for i in call.identifiers),
                ym_client_id=Customers.latest(history, "ym_client_id", call.timestamp),
                yclid=Customers.click(history, "yclid", call.timestamp),
                user_id=Customers.latest(history, "user_id", call.timestamp),
            )
        )
    return conversions, refused


@dataclass
class Options:
    metrica_goal: str = "offline_order"
    google_ads_conversion_name: str = "Offline order"
    again: bool = False  # export rows the ledger has seen before (and record them again)


def build_files(
    store: Store, target: str, start: datetime, end: datetime, now: datetime, options: Options
) -> tuple[list[ExportFile], list[OrderConversion], list[Refused]]:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}")
    customers = Customers(store)
    orders, refused = order_conversions(store, store.touchpoints_between("order", start, end), customers)
    if target == "metrica":
        calls, refused_calls = call_conversions(store.touchpoints_between("call", start, end), customers)
        files = [
            ExportFile("orders", formats.metrica_orders(orders, options.metrica_goal, now)),
            ExportFile("calls", formats.metrica_calls(calls, now)),
        ]
        refused += refused_calls
    else:
        by_click, enhanced = formats.google_ads(orders, options.google_ads_conversion_name, now)
        files = [ExportFile("gclid", by_click), ExportFile("enhanced", enhanced)]
    for export_file in files:
        refused += export_file.rows.refused
    return files, orders, refused


def _keep_claimed(rows: Rows, claimed: set[str]) -> int:
    kept = [(k, r) for k, r in zip(rows.keys, rows.rows, strict=True) if k in claimed]
    dropped = len(rows.keys) - len(kept)
    rows.keys, rows.rows = [k for k, _ in kept], [r for _, r in kept]
    return dropped


def export(
    store: Store,
    ledger: Ledger,
    target: str,
    start: datetime,
    end: datetime,
    now: datetime,
    options: Options | None = None,
    uploader: Uploader | None = None,
) -> ExportRun:
    """Export the period's conversions no earlier run exported; upload them with ``uploader``."""
    options = options or Options()
    files, orders, refused = build_files(store, target, start, end, now, options)
    run = ExportRun(target, start, end, uuid.uuid4().hex[:12], refused=refused)
    for export_file in files:
        if options.again:
            ledger.forget(target, export_file.rows.keys)
        claimed = ledger.claim(target, export_file.rows.keys, run.batch)
        run.exported_before += _keep_claimed(export_file.rows, claimed)
        run.files.append(export_file)
    if uploader is not None:
        for export_file in run.files:
            if export_file.rows.rows:
                _upload(run, export_file, uploader, ledger)
    exported_keys = {k for f in run.files if f.error is None for k in f.rows.keys}
    run.orders = [o for o in orders if o.key in exported_keys]
    return run


def _upload(run: ExportRun, export_file: ExportFile, uploader: Uploader, ledger: Ledger) -> None:
    try:
        export_file.upload = uploader(run.target, export_file.kind, export_file.rows)
    except Exception as exc:  # any failure: the rows go back to the next run
        export_file.error = f"{type(exc).__name__}: {exc}"
        ledger.release(run.target, export_file.rows.keys, run.batch)
        log.error(
            "conversion upload failed; rows released for the next run",
            extra={
                "svyaz": {"target": run.target, "file": export_file.kind, "rows": len(export_file.rows.rows)}
            },
        )
