import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from svyaz.app.config import ConfigError, Settings
from svyaz.app.runtime import build
from svyaz.identity.policy import PolicyError
from tests.pipeline_support import MAIN


def test_lists_are_comma_separated(monkeypatch):
    monkeypatch.setenv("SVYAZ_WRITE_KEYS", " site-a , app-b,,")
    assert Settings().write_keys == ["site-a", "app-b"]


def test_production_names_the_missing_secret():
    settings = Settings(env="production", write_keys=["k"])
    settings.require("write_keys")
    with pytest.raises(ConfigError, match="SVYAZ_API_KEYS, SVYAZ_PEPPER"):
        settings.require("api_keys", "pepper")
    with pytest.raises(ConfigError, match="SVYAZ_PEPPER"):
        _ = settings.pepper_bytes  # never the development pepper in production


def test_a_short_pepper_is_refused_in_production():
    with pytest.raises(ValidationError, match="32 characters"):
        Settings(env="production", pepper="short")


def test_a_bad_policy_file_stops_start_up_naming_the_key(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("[kinds.phone]\nlimit = -1\n")
    with pytest.raises(PolicyError, match=r"kinds\.phone\.limit"):
        build(Settings(policy_file=str(path)))


def test_a_deployed_function_refuses_to_start_without_its_secrets(tmp_path):
    env = {"SVYAZ_ENV": "production", "FUNCTION_TARGET": "collect", "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # a checkout other than the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    code = f"import functions_framework; functions_framework.create_app('collect', {MAIN!r})"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "production mode needs SVYAZ_WRITE_KEYS" in result.stderr
    env["SVYAZ_WRITE_KEYS"] = "k"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_policy_can_be_given_as_toml_text_the_way_terraform_deploys_it(monkeypatch):
    from svyaz.app.config import ConfigError, Settings

    settings = Settings(policy='[kinds.email]\nlimit = 3\n[kinds.bonus_card]\nlimit = 2\npriority = 4\n')
    assert settings.identity_policy.kind("email").limit == 3
    assert settings.identity_policy.kind("bonus_card").priority == 4
    with pytest.raises(Exception, match="SVYAZ_POLICY is not valid TOML"):
        _ = Settings(policy="[kinds.email\n").identity_policy
    with pytest.raises(ConfigError, match="not both"):
        _ = Settings(policy="default_region = 'RU'", policy_file="policy.toml").identity_policy
