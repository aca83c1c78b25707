from __future__ import annotations

import pytest

from enrichwatch.config import load_settings
from enrichwatch.errors import SettingsError


def test_defaults_need_no_configuration(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("ENRICHWATCH_"):
            monkeypatch.delenv(name)
    settings = load_settings()
    assert str(settings.db) == "enrichwatch.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.base_url == "http://127.0.0.1:8080"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.api_token is None
    assert settings.crustdata.url("/batch") == "https://api.crustdata.com/batch"
    assert settings.ecore.url("/api/v1/x") == "https://app.ecoreservice.com/backend/api/v1/x"


def test_environment_with_nesting(monkeypatch):
    monkeypatch.setenv("ENRICHWATCH_PORT", "9001")
    monkeypatch.setenv("ENRICHWATCH_PUBLIC_URL", "https://hooks.example.com/")
    monkeypatch.setenv("ENRICHWATCH_CRUSTDATA__API_KEY", "ck")
    monkeypatch.setenv("ENRICHWATCH_CRUSTDATA__BASE_URL", "http://127.0.0.1:1/crustdata")
    monkeypatch.setenv("ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS", '["files.example.com"]')
    monkeypatch.setenv("ENRICHWATCH_INFLUENCERS_CLUB__API_KEY", "ik")
    monkeypatch.setenv("ENRICHWATCH_REPROMPT__ORG", "acme")
    settings = load_settings()
    assert settings.port == 9001
    assert settings.base_url == "https://hooks.example.com"
    assert settings.crustdata.api_key.get_secret_value() == "ck"
    assert settings.crustdata.url("/batch") == "http://127.0.0.1:1/crustdata/batch"
    assert settings.crustdata.download_hosts == ["files.example.com"]
    assert settings.influencers_club.api_key.get_secret_value() == "ik"
    assert settings.reprompt.org == "acme"
    assert sorted(settings.secrets()) == ["ck", "ik"]


def test_toml_file_and_environment_override(tmp_path, monkeypatch):
    config = tmp_path / "enrichwatch.toml"
    config.write_text('port = 7000\nhost = "0.0.0.0"\n[brightlocal]\napi_key = "bk"\n')
    monkeypatch.setenv("ENRICHWATCH_PORT", "7001")
    settings = load_settings(config)
    assert (settings.host, settings.port) == ("0.0.0.0", 7001)
    assert settings.brightlocal.api_key.get_secret_value() == "bk"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("ENRICHWATCH_PORT", "eighty", "ENRICHWATCH_PORT"),
        ("ENRICHWATCH_PORT", "70000", "ENRICHWATCH_PORT"),
        ("ENRICHWATCH_MAX_BODY_BYTES", "0", "ENRICHWATCH_MAX_BODY_BYTES"),
        ("ENRICHWATCH_MAX_JOB_AGE", "0", "ENRICHWATCH_MAX_JOB_AGE"),
        ("ENRICHWATCH_PUBLIC_URL", "not a url", "ENRICHWATCH_PUBLIC_URL"),
        ("ENRICHWATCH_ECORE__AUTH_SCHEME", "Basic", "ENRICHWATCH_ECORE__AUTH_SCHEME"),
        ("ENRICHWATCH_REPROMPT__BASE_URL", "ftp://x", "ENRICHWATCH_REPROMPT__BASE_URL"),
        # A misspelt key in a section would otherwise be ignored (here: signatures left off).
        ("ENRICHWATCH_CRUSTDATA__WEBHOOK_SECRT", "k", "ENRICHWATCH_CRUSTDATA__WEBHOOK_SECRT"),
        ("ENRICHWATCH_NOTIFY__SLACK_URL", "https://x", "ENRICHWATCH_NOTIFY__SLACK_URL"),
        ("ENRICHWATCH_SMTP__HOTS", "mail", "ENRICHWATCH_SMTP__HOTS"),
        ("ENRICHWATCH_WORK_INTERVAL", "inf", "ENRICHWATCH_WORK_INTERVAL"),
        ("ENRICHWATCH_NOTIFY__RETRY_BASE", "nan", "ENRICHWATCH_NOTIFY__RETRY_BASE"),
        ("ENRICHWATCH_ECORE__MAX_POLL_INTERVAL", "Infinity", "ENRICHWATCH_ECORE__MAX_POLL"),
        ("ENRICHWATCH_REPROMPT__ORG", "", "ENRICHWATCH_REPROMPT__ORG"),
        ("ENRICHWATCH_REPROMPT__ORG", "acme/../x", "ENRICHWATCH_REPROMPT__ORG"),
        ("ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS", "[oops", "DOWNLOAD_HOSTS"),
    ],
)
def test_bad_value_names_the_setting(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("ENRICHWATCH_WORK_INTERVALL", "ENRICHWATCH_WORK_INTERVAL"),
        ("ENRICHWATCH_LOGLEVEL", "ENRICHWATCH_LOG_LEVEL"),
        ("enrichwatch_api_tokn", "ENRICHWATCH_API_TOKEN"),
        ("ENRICHWATCH_CRUSTDAT__API_KEY", "ENRICHWATCH_CRUSTDATA"),
    ],
)
def test_a_misspelt_variable_is_an_error_not_ignored(monkeypatch, variable, meant):
    """Left alone, the setting keeps its default and nothing says so."""
    monkeypatch.setenv(variable, "3")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert f"unknown setting {variable}: did you mean {meant}?" in str(error.value)


def test_variables_a_platform_adds_with_our_prefix_are_left_alone(monkeypatch):
    """Kubernetes gives every pod these for a Service named enrichwatch; none is a setting."""
    for variable, value in {
        "ENRICHWATCH_SERVICE_HOST": "10.0.0.7",
        "ENRICHWATCH_SERVICE_PORT": "8080",
        "ENRICHWATCH_SERVICE_PORT_HTTP": "8080",
        "ENRICHWATCH_PORT_8080_TCP": "tcp://10.0.0.7:8080",
        "ENRICHWATCH_PORT_8080_TCP_ADDR": "10.0.0.7",
        "ENRICHWATCH_PORT_8080_TCP_PORT": "8080",
        "ENRICHWATCH_PORT_8080_TCP_PROTO": "tcp",
    }.items():
        monkeypatch.setenv(variable, value)
    assert load_settings().port == 8080


def test_unknown_key_in_toml_file_is_an_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(config)
    config.write_text('[crustdata]\nwebhook_secrt = "k"\n')
    with pytest.raises(SettingsError, match="webhook_secrt"):
        load_settings(config)


def test_missing_or_malformed_config_file(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(SettingsError, match="is not a regular file"):
        load_settings(tmp_path)
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1\n")
    with pytest.raises(SettingsError):
        load_settings(broken)


def test_a_bad_secret_is_not_echoed(monkeypatch):
    monkeypatch.setenv("ENRICHWATCH_CRUSTDATA", '{"api_key": 12345678, "base_url": "nope"}')
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "nope" in str(error.value)
    assert "12345678" not in str(error.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ENRICHWATCH_API_TOKEN", ""),
        ("ENRICHWATCH_API_TOKEN", "   "),
        ("ENRICHWATCH_API_TOKEN", "short-token"),
        ("ENRICHWATCH_CRUSTDATA__API_KEY", ""),
        ("ENRICHWATCH_ECORE__API_KEY", "  "),
        ("ENRICHWATCH_CRUSTDATA__WEBHOOK_SECRET", ""),
    ],
)
def test_a_blank_or_short_credential_is_refused(monkeypatch, variable, value):
    """An empty API token would let `Authorization: Bearer ` with nothing after it into /api/."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert variable in str(error.value)
