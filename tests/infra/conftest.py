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


# entry point -> (public, secrets it mounts, topics it publishes to, project roles): what the
# registry says each function may do; Terraform's function table must say the same.
def _expected_functions() -> dict[str, dict]:
    from svyaz.entrypoints.registry import FUNCTIONS

    return {
        f.target: {
            "public": f.public,
            "secrets": set(f.secrets),
            "publishes_to": set(f.publishes_to),
            "project_roles": set(f.project_roles),
        }
        for f in FUNCTIONS
    }


EXPECTED_FUNCTIONS = _expected_functions()


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def expected_functions() -> dict[str, dict]:
    return EXPECTED_FUNCTIONS
