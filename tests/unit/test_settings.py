"""Settings, each declared once: the object, the local defaults, the missing-setting
lines, the service views and the configuration page all come from the declarations."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from shared.config import LOCAL_DEFAULTS, SERVICES, ConfigError, Settings, missing_settings, settings_page

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_says_what_it_is_for_and_who_reads_it():
    for declared in fields(Settings):
        meta = declared.metadata
        assert meta["doc"], declared.name
        assert meta["services"] and set(meta["services"]) <= set(SERVICES), declared.name


def test_a_variable_becomes_its_setting_and_a_bad_value_is_one_line():
    settings = Settings.from_env({"STAGE": "aws-dev", "QUOTE_TTL_S": "30", "REDIS_CLUSTER": "yes"})
    assert settings.quote_ttl_s == 30.0 and settings.redis_cluster is True
    assert Settings.from_env({"STAGE": "aws-dev", "QUOTE_BATCH_CHUNK": "900"}).quote_batch_chunk == 250
    with pytest.raises(ConfigError, match="QUOTE_TTL_S must be >= 1, got '0'"):
        Settings.from_env({"QUOTE_TTL_S": "0"})
    with pytest.raises(ConfigError, match="POLYGON_RETRIES must be a int"):
        Settings.from_env({"POLYGON_RETRIES": "two"})


def test_the_local_stage_fills_in_what_make_run_serves_and_an_aws_stage_nothing():
    local = Settings.from_env({})
    assert local.local and local.polygon_base_url == LOCAL_DEFAULTS["POLYGON_BASE_URL"]
    assert local.recent_as_of is not None
    aws = Settings.from_env({"STAGE": "aws-prod"})
    assert not aws.local and aws.polygon_base_url == "https://api.massive.com" and aws.recent_as_of is None
    with_key = Settings.from_env({"POLYGON_API_KEY": "k"})
    assert with_key.polygon_base_url == "https://api.massive.com" and with_key.recent_as_of is None


def test_each_service_names_what_its_stage_lacks():
    assert missing_settings("quote", {"STAGE": "dev"}) == []
    lines = missing_settings("alerts", {"STAGE": "aws-dev"})
    named = [line.split()[1] for line in lines]
    assert named[:2] == ["COGNITO_USER_POOL_ID", "COGNITO_CLIENT_ID"]  # needed on every stage: first
    assert set(named) == {
        "COGNITO_USER_POOL_ID",
        "COGNITO_CLIENT_ID",
        "POLYGON_RELAY_FUNCTION",
        "REDIS_URL",
        "DATABASE_URL",
        "ALERTS_TOPIC_PREFIX",
        "ALERTS_WORK_TOPIC_ARN",
    }
    assert all(line.startswith("alerts: ") and "is not set on stage aws-dev" in line for line in lines)


def test_a_service_sees_only_the_settings_it_reads():
    settings = Settings.from_env({})
    assert settings.view("quote").quote_ttl_s == 60.0
    with pytest.raises(AttributeError, match="quote does not read alerts_table"):
        getattr(settings.view("quote"), "alerts_table")  # noqa: B009 - the read is what is tested
    with pytest.raises(AttributeError, match="backtest does not read cognito_client_id"):
        getattr(settings.view("backtest"), "cognito_client_id")  # noqa: B009 - the read is what is tested
    assert "alerts_table" not in settings.view("backtest").redacted()


def test_secrets_are_redacted():
    settings = Settings.from_env({"POLYGON_API_KEY": "k", "CURSOR_SECRET": "c"})
    assert settings.redacted()["polygon_api_key"] == "***" and settings.redacted()["cursor_secret"] == "***"


def test_the_configuration_page_lists_every_variable_the_code_declares():
    page = settings_page()
    for declared in fields(Settings):
        if declared.metadata["env"]:
            assert f"`{declared.metadata['env']}`" in page


def test_an_apps_code_reads_only_the_settings_declared_for_it():
    """Statically, ``settings.<name>`` in an app's own folder: a setting read by an app
    that its declaration does not name would be an AttributeError at run time."""
    declared = {f.name: f.metadata["services"] for f in fields(Settings)}
    wrong = []
    for service in SERVICES:
        for path in (ROOT / service).rglob("*.py"):
            if "vendor" in path.parts:
                continue
            for name in re.findall(r"\b(?:settings|s)\.([a-z_0-9]+)\b", path.read_text()):
                if name in declared and service not in declared[name]:
                    wrong.append(f"{path.relative_to(ROOT)}: {name}")
    assert wrong == []
