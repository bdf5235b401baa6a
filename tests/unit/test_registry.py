"""The function registry is the one list: targets, routes, secrets and the webhook pipeline
all follow from it, and every function answers errors the same way."""

from __future__ import annotations

import json
import logging

import pytest

from svyaz.app import logs
from svyaz.dev.local import build_wsgi_app
from svyaz.entrypoints import registry
from tests.pipeline_support import WRITE_KEY, client


def test_every_http_function_has_a_path_and_no_path_is_served_twice():
    paths = [path for f in registry.FUNCTIONS for path in f.paths]
    assert len(paths) == len(set(paths))
    for function in registry.FUNCTIONS:
        assert bool(function.paths) == (function.trigger == "http"), function.target
        assert callable(function.load()), function.target


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/collect", "collect"),
        ("/profiles/abc/touchpoints", "profiles"),
        ("/qr/token", "qr_landing"),
        ("/webhooks/crm", "crm_webhook"),
        ("/webhooks/crmx", None),  # a prefix matches whole path segments only
        ("/nothing", None),
    ],
)
def test_a_path_is_routed_by_its_longest_registered_prefix(path, target):
    assert registry.route(path) == target


def test_the_local_service_answers_unknown_paths_with_a_json_404(rt):
    from werkzeug.test import Client

    answer = Client(build_wsgi_app()).get("/nowhere")
    assert answer.status_code == 404
    assert json.loads(answer.get_data())["error"] == "not_found"


def test_an_unexpected_failure_in_collect_is_a_json_500_a_browser_can_read(rt):

    def broken(*args, **kwargs):
        raise RuntimeError("the queue client broke")

    rt.publisher.publish = broken
    answer = client("collect").post(
        "/",
        json={"event_id": "e1", "type": "page", "identifiers": {"client_id": "c1"}},
        headers={"Authorization": f"Bearer {WRITE_KEY}", "Origin": "https://shop.example"},
    )
    assert answer.status_code == 500
    assert answer.json == {"error": "internal", "reason": "internal error"}
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("telegram_webhook", {}),
        ("calltracking_webhook", {}),
        ("crm_webhook", {"Authorization": "Bearer x"}),
        ("whatsapp_webhook", {"X-Hub-Signature-256": "sha256=00"}),
    ],
)
@pytest.mark.svyaz_settings(
    telegram_secret_token="", calltracking_token="", crm_keys=[], whatsapp_app_secret=""
)
def test_a_webhook_whose_secret_is_not_configured_answers_503_not_401(rt, target, headers):
    answer = client(target).post("/", data=b"{}", headers={"Content-Type": "application/json", **headers})
    assert answer.status_code == 503 and answer.json["error"] == "not_configured"


def test_a_failed_delivery_is_logged_with_its_stack_and_redelivered(rt):

    def contended(event):
        phone = event.identifiers["phone"]
        raise TimeoutError(f"store busy for {phone}")

    rt.service.apply = contended
    from svyaz.adapters.queue import event_message
    from tests.helpers import event
    from tests.pipeline_support import deliver

    records: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.ERROR)
    catcher.emit = records.append
    logging.getLogger("svyaz").addHandler(catcher)
    try:
        answer = deliver(event_message(event({"phone": "+79091234567"})), rt)
    finally:
        logging.getLogger("svyaz").removeHandler(catcher)
    assert answer.status_code == 500  # the platform redelivers
    record = next(r for r in records if r.name == "svyaz.http")
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["exception"] == "TimeoutError"
    # where it failed, but not the message: it quotes the customer's phone
    assert "contended" in entry["stack_trace"] and "79091234567" not in json.dumps(entry)
