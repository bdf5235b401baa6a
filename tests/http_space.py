"""The HTTP API as ``entrypoints/openapi.json`` describes it, for the tests that check the code
against it: every documented operation, a concrete request for it, and the functions-framework
test client of the function that serves its path (the registry's routing)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from svyaz.entrypoints.http import openapi_document
from svyaz.entrypoints.registry import route
from tests.pipeline_support import API_KEY, WRITE_KEY, client

CRM_KEY = "fuzz-crm-key"
TG_SECRET = "fuzz-telegram-secret"  # noqa: S105 - test values
WA_SECRET = "fuzz-whatsapp-app-secret"  # noqa: S105
WA_VERIFY = "fuzz-whatsapp-verify"  # noqa: S105
CT_TOKEN = "fuzz-calltracking-token"  # noqa: S105
METHODS = ("get", "post", "delete", "head", "options", "put", "patch")
SETTINGS = {
    "crm_keys": [CRM_KEY],
    "telegram_secret_token": TG_SECRET,
    "whatsapp_app_secret": WA_SECRET,
    "whatsapp_verify_token": WA_VERIFY,
    "calltracking_token": CT_TOKEN,
    "qr_signing_key": "fuzz-qr-signing-key",
    "qr_allowed_hosts": ["shop.example"],
    "mango_api_key": "fuzz-mango-key",
    "mango_api_salt": "fuzz-mango-salt",
    "amocrm_webhook_secret": "fuzz-amocrm-secret",
    "bitrix24_webhook_secret": "fuzz-bitrix24-secret",
    "bitrix24_application_token": "fuzz-bitrix24-token",
}


@cache
def spec() -> dict[str, Any]:
    return json.loads(openapi_document())


@dataclass(frozen=True)
class Operation:
    template: str
    method: str

    @property
    def doc(self) -> dict[str, Any]:
        return spec()["paths"][self.template][self.method]

    @property
    def statuses(self) -> set[int]:
        return {int(code) for code in self.doc["responses"]}

    def media(self, status: int) -> set[str]:
        return set(self.doc["responses"].get(str(status), {}).get("content", {}))

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.template)

    def path(self, values: dict[str, str]) -> str:
        path = self.template
        for name in self.params:
            path = path.replace("{" + name + "}", values[name])
        return path

    def target(self, path: str) -> str:
        target = route(path)
        assert target is not None, f"{path} is routed to no function"
        return target


def operations() -> list[Operation]:
    return [Operation(t, m) for t, item in spec()["paths"].items() for m in item if m in METHODS]


def example_value(operation: Operation, name: str) -> str:
    """A plausible value of a path parameter (the first of its enum, else a well-formed id)."""
    for param in spec()["paths"][operation.template].get("parameters", []):
        if param["name"] == name and "enum" in param["schema"]:
            return param["schema"]["enum"][0]
    return {"entry_id": "0" * 64, "event": "summary", "secret": "wrong-secret"}.get(name, "abc123")


def auth_headers(operation: Operation, raw: bytes) -> dict[str, str]:
    """Valid credentials for the operation's first security scheme (none for public ones)."""
    schemes = [name for requirement in operation.doc.get("security", []) for name in requirement]
    scheme = schemes[0] if schemes else None
    bearer = {"apiKey": API_KEY, "writeKey": WRITE_KEY, "crmKey": CRM_KEY}
    if scheme in bearer:
        return {"Authorization": f"Bearer {bearer[scheme]}"}
    if scheme == "writeKeyBasic":
        return {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    if scheme == "telegramSecret":
        return {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    if scheme == "hubSignature":
        digest = hmac.new(WA_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={digest}"}
    if scheme == "callTrackingHeader":
        return {"X-Svyaz-Token": CT_TOKEN}
    return {}


def call(operation: Operation, path: str, method: str, raw: bytes, headers: dict[str, str], query: str = ""):
    test_client = client(operation.target(path))
    return test_client.open(
        path + (f"?{query}" if query else ""), method=method.upper(), data=raw, headers=headers
    )
