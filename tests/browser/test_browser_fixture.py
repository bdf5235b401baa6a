"""The browser ring's own fixture: a page on the customer's site reaches ``svyaz serve``."""

from __future__ import annotations

import json

import pytest

from svyaz.domain.model import Identifier
from tests.pipeline_support import WRITE_KEY

pytestmark = pytest.mark.browser


def test_a_page_on_another_origin_posts_an_event_to_collect(svyaz_service, site, page, page_errors):
    site.add("/", "<!doctype html><title>shop</title><p>hello</p>")
    page.goto(site.url("/"))
    event = {"event_id": "fixture-1", "type": "page", "identifiers": {"client_id": "browser-c1"}}
    answer = page.evaluate(
        """async ([url, key, event]) => {
            const r = await fetch(url, {method: 'POST', body: JSON.stringify(event),
                headers: {'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'}});
            return {status: r.status, body: await r.text()};
        }""",
        [f"{svyaz_service.url}/collect", WRITE_KEY, event],
    )
    assert answer["status"] == 202 and json.loads(answer["body"]) == {"accepted": ["fixture-1"]}
    assert svyaz_service.worker.wait_idle(10)
    profile = svyaz_service.rt.store.lookup(Identifier("client_id", "browser-c1"))
    assert profile is not None and page_errors == []
