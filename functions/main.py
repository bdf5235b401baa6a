"""Cloud Functions entry points: one deployed function per target (``--target``/``entry_point``).

Each target is a few lines: hand the request to its entry point in ``svyaz.entrypoints``
with the process's runtime. Authentication, parsing and error answers live there.
"""

from __future__ import annotations

import os

import flask
import functions_framework
from cloudevents.http import CloudEvent

from svyaz.app import logs, runtime
from svyaz.entrypoints import calltracking as calltracking_entry
from svyaz.entrypoints import collect as collect_entry
from svyaz.entrypoints import crm as crm_entry
from svyaz.entrypoints import process as process_entry
from svyaz.entrypoints import profiles as profiles_entry
from svyaz.entrypoints import qr as qr_entry
from svyaz.entrypoints import telegram as telegram_entry
from svyaz.entrypoints import whatsapp as whatsapp_entry
from svyaz.entrypoints.http import endpoint

logs.configure()

# The secrets each target needs: a deployed function checks its own at start-up.
REQUIRED_SETTINGS = {
    "collect": ("write_keys",),
    "process_event": ("pepper",),
    "profiles": ("api_keys", "pepper"),
    "qr_landing": ("qr_signing_key",),
    "whatsapp_webhook": ("whatsapp_app_secret", "whatsapp_verify_token"),
    "telegram_webhook": ("telegram_secret_token",),
    "calltracking_webhook": ("calltracking_token",),
    "crm_webhook": ("crm_keys",),
}
if (target := os.environ.get("FUNCTION_TARGET")) in REQUIRED_SETTINGS:
    runtime.current().settings.require(*REQUIRED_SETTINGS[target])


@functions_framework.http
@endpoint
def collect(request: flask.Request) -> flask.Response:
    return collect_entry.handle(request, runtime.current())


@functions_framework.cloud_event
def process_event(cloud_event: CloudEvent) -> None:
    process_entry.handle_cloud_event(cloud_event.data, cloud_event["id"], runtime.current())


@functions_framework.http
@endpoint
def profiles(request: flask.Request) -> flask.Response:
    return profiles_entry.handle(request, runtime.current())


@functions_framework.http
@endpoint
def qr_landing(request: flask.Request) -> flask.Response:
    return qr_entry.handle(request, runtime.current())


@functions_framework.http
@endpoint
def whatsapp_webhook(request: flask.Request) -> flask.Response:
    return whatsapp_entry.handle(request, runtime.current())


@functions_framework.http
@endpoint
def telegram_webhook(request: flask.Request) -> flask.Response:
    return telegram_entry.handle(request, runtime.current())


@functions_framework.http
@endpoint
def calltracking_webhook(request: flask.Request) -> flask.Response:
    return calltracking_entry.handle(request, runtime.current())


@functions_framework.http
@endpoint
def crm_webhook(request: flask.Request) -> flask.Response:
    return crm_entry.handle(request, runtime.current())
