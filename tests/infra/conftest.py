"""Shared facts for the infrastructure tests: where the repository is, and the function table the
service is specified with (entry point -> what it may do). The Terraform map, functions/main.py and
these expectations must all agree."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

# The tests import svyaz.dev; make the checkout importable when the package is not installed.
if importlib.util.find_spec("svyaz") is None:
    sys.path.insert(0, str(REPO_ROOT / "shared"))

# entry point -> (public, secrets it mounts, topics it publishes to, project roles)
EXPECTED_FUNCTIONS: dict[str, dict] = {
    "collect": {
        "public": True,
        "secrets": {"SVYAZ_WRITE_KEYS"},
        "publishes_to": {"events"},
        "project_roles": set(),
    },
    "process_event": {
        "public": False,
        "secrets": {"SVYAZ_PEPPER"},
        "publishes_to": {"profile_updates"},
        "project_roles": {"roles/datastore.user"},
    },
    "profiles": {
        "public": True,
        "secrets": {"SVYAZ_API_KEYS", "SVYAZ_PEPPER"},
        "publishes_to": {"events"},
        "project_roles": {"roles/datastore.viewer"},
    },
    "qr_landing": {
        "public": True,
        "secrets": {"SVYAZ_QR_SIGNING_KEY"},
        "publishes_to": {"events"},
        "project_roles": set(),
    },
    "whatsapp_webhook": {
        "public": True,
        "secrets": {"SVYAZ_WHATSAPP_APP_SECRET", "SVYAZ_WHATSAPP_VERIFY_TOKEN"},
        "publishes_to": {"events"},
        "project_roles": set(),
    },
    "telegram_webhook": {
        "public": True,
        "secrets": {"SVYAZ_TELEGRAM_SECRET_TOKEN"},
        "publishes_to": {"events"},
        "project_roles": set(),
    },
    "calltracking_webhook": {
        "public": True,
        "secrets": {"SVYAZ_CALLTRACKING_TOKEN"},
        "publishes_to": {"events"},
        "project_roles": set(),
    },
    "crm_webhook": {
        "public": True,
        "secrets": {"SVYAZ_CRM_KEYS"},
        "publishes_to": {"events"},
        "project_roles": set(),
    },
}


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def expected_functions() -> dict[str, dict]:
    return EXPECTED_FUNCTIONS
