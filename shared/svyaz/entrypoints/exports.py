"""The scheduled export: Cloud Scheduler publishes a message on the conversions-schedule topic
every day (``infra/export.tf``) and Pub/Sub pushes it here. The run exports the conversions of the
last ``SVYAZ_EXPORT_LOOKBACK_DAYS`` days that no earlier run (nor ``svyaz export``) exported — the
ledger makes a re-run, a redelivery or an overlapping window export nothing twice — uploads them
to Metrica, and logs the counts and the reasons of refused rows (never their content).

A failed upload raises, so Pub/Sub redelivers the message; the rows of that upload were released
from the ledger, the rest stay exported.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from svyaz.app.runtime import Runtime
from svyaz.entrypoints.process import PoisonMessage, decode
from svyaz.exports.metrica import MetricaClient
from svyaz.exports.service import ExportRun, Options, export

log = logging.getLogger("svyaz.exports.schedule")


class UploadFailed(RuntimeError):
    """Some conversions could not be uploaded; they are kept for the redelivery."""


def _request(data: dict[str, Any]) -> dict[str, Any]:
    message = decode(data)
    if not message.data.strip():
        return {}
    try:
        request = json.loads(message.data)
    except ValueError:
        raise PoisonMessage("the schedule message is not JSON") from None
    if not isinstance(request, dict):
        raise PoisonMessage("the schedule message is not a JSON object")
    return request


def run_schedule(request: dict[str, Any], runtime: Runtime, now: datetime | None = None) -> ExportRun | None:
    settings = runtime.settings
    target = request.get("target", "metrica")
    if target != "metrica":
        raise PoisonMessage(f"the scheduled export uploads to Metrica only, not {target!r}")
    token = settings.metrica_oauth_token.get_secret_value()
    if not (token and settings.metrica_counter_id):
        log.warning(
            "Metrica is not configured (SVYAZ_METRICA_COUNTER_ID, SVYAZ_METRICA_OAUTH_TOKEN): "
            "nothing exported"
        )
        return None
    now = now or datetime.now(UTC)
    days = request.get("days", settings.export_lookback_days)
    if not isinstance(days, int) or not 1 <= days <= 60:
        raise PoisonMessage("days must be a whole number from 1 to 60")
    client = MetricaClient(token, settings.metrica_counter_id, settings.metrica_api_url)
    options = Options(settings.metrica_goal, settings.google_ads_conversion_name)
    run = export(
        runtime.store,
        runtime.ledger,
        target,
        now - timedelta(days=days),
        now,
        now,
        options,
        client.uploader(f"svyaz scheduled export {now:%Y-%m-%d}"),
    )
    log.info("conversions exported", extra={"svyaz": run.summary()})
    if run.failed:
        raise UploadFailed(f"{run.failed} conversions not uploaded; they are retried on redelivery")
    return run


def handle_schedule(data: dict[str, Any], event_id: str, runtime: Runtime) -> ExportRun | None:
    try:
        return run_schedule(_request(data), runtime)
    except PoisonMessage as exc:
        log.error(
            "schedule message dropped (acknowledged): %s", exc, extra={"svyaz": {"message_id": event_id}}
        )
        return None
