"""``entrypoints/openapi.json`` is valid OpenAPI 3.1, is served at ``GET /openapi.json``, and
describes the code: every function's paths are in it, and every operation it lists is routed
to a function that answers it (not an unknown path, not a wrong method) with a documented status."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app import runtime
from svyaz.entrypoints.http import openapi_document
from svyaz.entrypoints.registry import FUNCTIONS
from tests.conftest import PEPPER
from tests.helpers import event
from tests.http_space import SETTINGS, auth_headers, call, example_value, operations, spec
from tests.pipeline_support import client, install


@pytest.fixture
def rt():
    yield install(MemoryStore(PEPPER), **SETTINGS)
    runtime.install(None)


def test_the_description_is_valid_openapi_3_1():
    validate(spec())
    assert spec()["openapi"].startswith("3.1")


def test_it_is_served_at_get_openapi_json_without_a_key(rt):
    answer = client("profiles").get("/openapi.json")
    assert answer.status_code == 200 and answer.data == openapi_document()


def test_every_path_of_every_function_is_described():
    described = list(spec()["paths"])
    for function in FUNCTIONS:
        for prefix in function.paths:
            assert any(p == prefix or p.startswith(prefix + "/") for p in described), prefix


@pytest.mark.parametrize("operation", operations(), ids=lambda o: f"{o.method.upper()} {o.template}")
def test_every_described_operation_is_answered_by_the_code(rt, operation):
    path = operation.path({name: example_value(operation, name) for name in operation.params})
    raw = b"{}" if operation.method in ("post", "put", "patch") else b""
    answer = call(operation, path, operation.method, raw, auth_headers(operation, raw))
    assert answer.status_code != 405, f"{operation} is not a method the code takes"
    if answer.status_code == 404 and answer.is_json:
        assert not answer.json["reason"].startswith("unknown path"), f"{operation} is not routed"
    assert answer.status_code in operation.statuses, (answer.status_code, answer.data[:200])


@pytest.mark.parametrize("template", sorted({o.template for o in operations()}))
def test_no_method_the_code_takes_is_left_out(rt, template):
    """A method openapi.json does not list for a path is one the code refuses (405, or 404 for a
    path it serves under another method only): the description leaves out nothing a sender can
    use (POST /profiles/<id>/explain once was)."""
    described = [o for o in operations() if o.template == template]
    operation = described[0]
    outcome = rt.service.apply(event({"client_id": "visitor-1"}))  # a profile the paths can name
    values = {name: example_value(operation, name) for name in operation.params}
    path = operation.path(values | {"profile_id": outcome.profile_id})
    for method in ("get", "post", "delete", "put", "patch"):
        if method in {o.method for o in described}:
            continue
        answer = call(operation, path, method, b"{}", auth_headers(operation, b"{}"))
        assert answer.status_code in (404, 405), (method, answer.status_code, answer.data[:200])
