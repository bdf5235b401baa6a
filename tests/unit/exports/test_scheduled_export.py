"""The scheduled function (export_conversions): what Cloud Scheduler's daily message does, through
the CloudEvent Pub/Sub pushes, against the local stand-in of Metrica's API."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import SecretStr

from svyaz.adapters.queue import Message, cloud_event_for
from svyaz.entrypoints.exports import UploadFailed, handle_schedule
from svyaz.entrypoints.registry import BY_TARGET
from tests.unit.exports.test_export_conversions import (  # noqa: F401 - fixtures
    COUNTER,
    EKATERINA_YM,
    TOKEN,
    demo_runtime,
    metrica,
)


def delivery(body: dict | str) -> dict:
    data = body if isinstance(body, str) else json.dumps(body)
    return cloud_event_for(Message(data.encode()), "p", "svyaz-conversions-schedule", "export")["data"]


@pytest.fixture
def scheduled(demo_runtime, metrica):  # noqa: F811
    url, stand_in = metrica
    demo_runtime.settings = demo_runtime.settings.model_copy(
        update={
            "metrica_counter_id": COUNTER,
            "metrica_oauth_token": SecretStr(TOKEN),
            "metrica_api_url": url,
        }
    )
    return demo_runtime, stand_in


class Records(logging.Handler):
    """The svyaz log records (svyaz's logger does not propagate once functions/main.py configured
    it, as the local service does, so logs cannot see them)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(f"{r.getMessage()} {getattr(r, 'svyaz', '')}" for r in self.records)


@pytest.fixture
def logs():
    logger = logging.getLogger("svyaz")
    level, handler = logger.level, Records()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


DAILY = {"target": "metrica", "days": 60}  # the demo's orders are weeks old


def test_the_function_is_declared_in_the_registry():
    function = BY_TARGET["export_conversions"]
    assert function.trigger == "pubsub" and not function.public and function.load() is handle_schedule
    assert set(function.secrets) == {"SVYAZ_PEPPER", "SVYAZ_METRICA_OAUTH_TOKEN"}


def test_the_daily_run_uploads_new_orders_once_and_reports_counts(scheduled, logs):
    rt, stand_in = scheduled
    run = handle_schedule(delivery(DAILY), "m-1", rt)
    assert run.exported == 2 and run.refused == []
    (request,) = stand_in.received
    assert request["path"].startswith(f"/management/v1/counter/{COUNTER}/offline_conversions/upload?comment=")
    assert EKATERINA_YM in request["csv"]
    again = handle_schedule(delivery(DAILY), "m-1", rt)  # a redelivery, or the next day's run
    assert again.exported == 0 and again.exported_before == 2
    assert len(stand_in.received) == 1
    summaries = [r.svyaz for r in logs.records if r.getMessage() == "conversions exported"]
    assert [s["exported"] for s in summaries] == [2, 0] and summaries[1]["exported_before"] == 2
    assert EKATERINA_YM not in logs.text and "79165550102" not in logs.text


def test_a_failed_upload_fails_the_delivery_and_the_redelivery_sends_the_rows(scheduled):
    rt, stand_in = scheduled
    stand_in.fail_with = 500
    with pytest.raises(UploadFailed):
        handle_schedule(delivery(DAILY), "m-2", rt)
    stand_in.fail_with = None
    assert handle_schedule(delivery(DAILY), "m-2", rt).exported == 2


def test_without_metrica_settings_nothing_is_exported(demo_runtime, metrica, logs):  # noqa: F811
    _, stand_in = metrica
    assert handle_schedule(delivery(DAILY), "m-3", demo_runtime) is None
    assert stand_in.received == [] and "not configured" in logs.text


@pytest.mark.parametrize("body", ["not json", {"target": "google-ads"}, {"target": "metrica", "days": 0}])
def test_a_bad_schedule_message_is_acknowledged_and_logged(scheduled, body, logs):
    rt, stand_in = scheduled
    assert handle_schedule(delivery(body), "m-4", rt) is None
    assert stand_in.received == [] and "schedule message dropped" in logs.text
