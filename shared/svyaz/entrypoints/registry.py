"""The one list of svyaz's functions and the paths they answer.

Everything else is derived from it: the Cloud Functions targets of ``functions/main.py``, the
routes of ``svyaz serve``, the secrets each deployed function checks at start-up, the development
values ``svyaz serve`` fills in, and (checked by ``tests/infra``) the Terraform function table.

A new webhook channel with its own function takes six files written by hand and one generated:
its parser in ``svyaz.channels``; its entry point (a ``handle`` built on
``svyaz.entrypoints.webhook``); one ``Function`` entry here; its secret fields in
``svyaz/app/config.py``; its row in ``infra/function_table.tf`` (Terraform holds literals only, so
the row is written, and ``tests/infra`` fails until it says what the entry says); its paths in
``entrypoints/openapi.json`` (``tests/unit/test_openapi.py`` fails until they are described).
``infra/lb_routes.tf`` is regenerated from this list by ``svyaz package --routes``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote


@dataclass(frozen=True)
class Function:
    target: str  # the Cloud Functions entry point (a name in functions/main.py)
    handler: str  # "module:function" under svyaz.entrypoints, imported when first used
    doc: str  # one line, shown by `svyaz serve` and the docs
    paths: tuple[str, ...] = ()  # path prefixes on the brand's domain (the load balancer) and locally
    trigger: Literal["http", "pubsub"] = "http"
    settings: tuple[str, ...] = ()  # settings fields a deployed function refuses to start without
    optional: tuple[str, ...] = ()  # secret settings it mounts but can run without
    development: dict[str, str] = field(default_factory=dict)  # SVYAZ_* values `svyaz serve` fills in
    public: bool = True  # anyone may invoke it (it authenticates senders itself)
    # Whether it reads paths below its own (profiles, QR codes, vendor presets, event names, a
    # secret in the path): the others
    # answer a JSON 404 there, never the framework's page nor a silent accept.
    subpaths: bool = False
    # Whether senders put a secret in the path below its own (a vendor that signs nothing and
    # takes a URL only): access logs keep ``<prefix>/<secret>`` (``loggable_path``), and
    # infra/logging.tf keeps those request log entries out of Cloud Logging.
    secret_in_path: bool = False
    publishes_to: tuple[str, ...] = ("events",)  # topics (keys of local.topics in infra/pubsub.tf)
    project_roles: tuple[str, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        """The environment variables (Secret Manager secrets in production) behind ``settings``."""
        return tuple(f"SVYAZ_{name.upper()}" for name in (*self.settings, *self.optional))

    def load(self) -> Callable[..., Any]:
        module, _, name = self.handler.partition(":")
        return getattr(importlib.import_module(f"svyaz.entrypoints.{module}"), name)


FUNCTIONS: tuple[Function, ...] = (
    Function(
        "collect",
        "collect:handle",
        "web and app events (svyaz's own; Segment / RudderStack tracking API at /v1/*); site tag /svyaz.js",
        # /svyaz.js, /v1/* and /beacon/v1/batch are the paths the tag and the SDKs use.
        paths=("/collect", "/svyaz.js", "/v1", "/beacon"),
        settings=("write_keys",),
        development={"SVYAZ_WRITE_KEYS": "dev-write-key"},
        subpaths=True,  # it answers a JSON 404 itself for any other path
    ),
    Function(
        "process_event",
        "process:handle_cloud_event",
        "applies queued events to the identity graph (Pub/Sub push from the events topic)",
        trigger="pubsub",
        settings=("pepper",),
        public=False,
        # events: a split too long for one invocation queues its own continuation;
        # touchpoints: the warehouse rows (when SVYAZ_TOUCHPOINTS_TOPIC is set)
        publishes_to=("profile_updates", "events", "touchpoints"),
        project_roles=("roles/datastore.user",),
    ),
    Function(
        "profiles",
        "profiles:handle",
        "profile read API and explanation; erasure and split requests (queued on the events topic); "
        "the blocklist; the customer journal",
        paths=("/profiles", "/splits", "/blocklist", "/journal", "/openapi.json"),  # the API description too
        settings=("api_keys", "pepper", "journal_secret"),
        optional=("journal_keys",),  # journal passwords; API keys sign in too
        development={
            "SVYAZ_API_KEYS": "dev-api-key",
            "SVYAZ_JOURNAL_KEYS": "dev-journal-key",
            "SVYAZ_JOURNAL_SECRET": "dev-journal-secret-0123456789abcdef",
        },
        # user, not viewer: it stores split requests and removes blocklist entries
        project_roles=("roles/datastore.user",),
        subpaths=True,
    ),
    Function(
        "qr_landing",
        "qr:handle",
        "QR / NFC landing in offline stores: records the visit, redirects",
        paths=("/qr",),
        settings=("qr_signing_key",),
        development={
            "SVYAZ_QR_SIGNING_KEY": "dev-qr-signing-key",
            "SVYAZ_QR_ALLOWED_HOSTS": "shop.example,localhost,127.0.0.1",
        },
        subpaths=True,
    ),
    Function(
        "whatsapp_webhook",
        "whatsapp:handle",
        "WhatsApp Business Cloud API webhook",
        paths=("/webhooks/whatsapp",),
        settings=("whatsapp_app_secret", "whatsapp_verify_token"),
        development={
            "SVYAZ_WHATSAPP_APP_SECRET": "dev-whatsapp-app-secret",
            "SVYAZ_WHATSAPP_VERIFY_TOKEN": "dev-whatsapp-verify-token",
        },
    ),
    Function(
        "telegram_webhook",
        "telegram:handle",
        "Telegram bot webhook (/start deep links)",
        paths=("/webhooks/telegram",),
        settings=("telegram_secret_token",),
        development={"SVYAZ_TELEGRAM_SECRET_TOKEN": "dev-telegram-secret"},
    ),
    Function(
        "calltracking_webhook",
        "calltracking:handle",
        "call-tracking webhooks (Calltouch, UIS/CoMagic, a configurable field map)",
        paths=("/webhooks/calltracking",),
        settings=("calltracking_token",),
        development={"SVYAZ_CALLTRACKING_TOKEN": "dev-calltracking-token"},
        subpaths=True,
    ),
    Function(
        "mango_webhook",
        "mango:handle",
        "Mango Office VPBX API Realtime events (a call summary is a call touch)",
        paths=("/webhooks/calltracking/mango",),
        settings=("mango_api_key", "mango_api_salt"),
        development={
            "SVYAZ_MANGO_API_KEY": "dev-mango-api-key",
            "SVYAZ_MANGO_API_SALT": "dev-mango-api-salt",
        },
        subpaths=True,
    ),
    Function(
        "amocrm_webhook",
        "crm_deals:handle_amocrm",
        "amoCRM deal webhooks (deals and contacts read back through the amoCRM API)",
        paths=("/webhooks/crm/amocrm",),
        settings=("amocrm_webhook_secret", "amocrm_base_url", "amocrm_token"),
        development={"SVYAZ_AMOCRM_WEBHOOK_SECRET": "dev-amocrm-secret"},
        subpaths=True,
        secret_in_path=True,
    ),
    Function(
        "bitrix24_webhook",
        "crm_deals:handle_bitrix24",
        "Bitrix24 deal webhooks (deals and contacts read back through the Bitrix24 REST API)",
        paths=("/webhooks/crm/bitrix24",),
        settings=("bitrix24_application_token", "bitrix24_rest_url"),
        # the secret of the old handler URLs /webhooks/crm/bitrix24/<secret> (deprecated)
        optional=("bitrix24_webhook_secret",),
        development={
            "SVYAZ_BITRIX24_WEBHOOK_SECRET": "dev-bitrix24-secret",
            "SVYAZ_BITRIX24_APPLICATION_TOKEN": "dev-bitrix24-application-token",
        },
        subpaths=True,
        secret_in_path=True,  # the deprecated handler URLs
    ),
    Function(
        "crm_webhook",
        "crm:handle",
        "CRM deals and store-till orders",
        paths=("/webhooks/crm",),
        settings=("crm_keys",),
        development={"SVYAZ_CRM_KEYS": "dev-crm-key"},
    ),
    Function(
        "export_conversions",
        "exports:handle_schedule",
        "daily offline conversions to Yandex Metrica (Cloud Scheduler via the conversions-schedule topic)",
        trigger="pubsub",
        settings=("pepper", "metrica_oauth_token"),
        public=False,
        publishes_to=(),
        project_roles=("roles/datastore.user",),
    ),
)

BY_TARGET: dict[str, Function] = {f.target: f for f in FUNCTIONS}


def routes() -> dict[str, str]:
    """Path prefix -> target, longest prefix first (the order a router must try them in)."""
    pairs = [(path, f.target) for f in FUNCTIONS for path in f.paths]
    return dict(sorted(pairs, key=lambda pair: -len(pair[0])))


def route(path: str) -> str | None:
    """The target serving ``path``, by longest matching prefix."""
    for prefix, target in routes().items():
        if path == prefix or path.startswith(prefix + "/"):
            return target
    return None


REDACTED = "<secret>"  # what stands for a secret path segment in logs
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*")


def loggable_path(target: str) -> str:
    """A request target as logs may keep it: without its query string (phones, e-mails, tokens)
    and with whatever follows a secret-in-path prefix replaced by ``<secret>``, matched on the
    decoded path that routing sees (``%2F`` is a slash there too)."""
    path = _ABSOLUTE.sub("", target.split("?", 1)[0])  # "http://host/path" is a request target too
    decoded = unquote(path)
    for function in FUNCTIONS:
        for prefix in function.paths if function.secret_in_path else ():
            if decoded.startswith(prefix + "/") and decoded != prefix + "/":
                return f"{prefix}/{REDACTED}"
    return path


def cloud_function(function: Function) -> Callable[..., Any]:
    """The functions-framework target for ``function``: its entry point with the process's
    runtime, inside the one error and logging handler."""
    import functions_framework

    from svyaz.app import runtime
    from svyaz.entrypoints.http import background, endpoint, require_path

    handler = function.load()
    if function.trigger == "pubsub":

        def deliver(cloud_event: Any) -> None:
            handler(cloud_event.data, cloud_event["id"], runtime.current())

        deliver.__name__ = function.target
        return functions_framework.cloud_event(background(deliver))

    def serve(request: Any) -> Any:
        if not function.subpaths:
            require_path(request, *function.paths)
        return handler(request, runtime.current())

    serve.__name__ = function.target
    return functions_framework.http(endpoint(serve))


def development_values() -> dict[str, str]:
    return {name: value for f in FUNCTIONS for name, value in f.development.items()}
