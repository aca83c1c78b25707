from __future__ import annotations

import os
import subprocess
import sys
from typing import get_args

import pytest
from pydantic import BaseModel, SecretStr

from enrichwatch.config import Settings, load_settings
from enrichwatch.errors import SettingsError


def clear_settings_env(monkeypatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ENRICHWATCH_"):
            monkeypatch.delenv(name)


def secret_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """The dotted key of every SecretStr setting, however deep."""
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        kinds = (field.annotation, *get_args(field.annotation))
        if SecretStr in kinds:
            keys.append(key)
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                keys += secret_keys(kind, key + ".")
    return keys


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
        # Callback paths are appended to it: a query or fragment would swallow them.
        ("ENRICHWATCH_PUBLIC_URL", "https://hooks.example.com/?a=1", "ENRICHWATCH_PUBLIC_URL"),
        ("ENRICHWATCH_PUBLIC_URL", "https://hooks.example.com/#x", "ENRICHWATCH_PUBLIC_URL"),
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


SECRET = "s3cr3t-d0-not-print"


@pytest.mark.parametrize(
    ("variables", "named", "secret"),
    [
        # Too short: the validator refuses the token itself.
        ({"ENRICHWATCH_API_TOKEN": "mynewtoken123"}, "ENRICHWATCH_API_TOKEN", "mynewtoken123"),
        # A rule on a section: its whole input, secrets and all, was the value refused.
        (
            {
                "ENRICHWATCH_CRUSTDATA__API_KEY": SECRET,
                "ENRICHWATCH_CRUSTDATA__MIN_POLL_INTERVAL": "1e9",
            },
            "ENRICHWATCH_CRUSTDATA",
            SECRET,
        ),
        (
            {
                "ENRICHWATCH_NOTIFY__SLACK_WEBHOOK_URL": f"https://hooks.slack.com/{SECRET}",
                "ENRICHWATCH_NOTIFY__WEBHOOK_URL": "https://hooks.example.com/in",
            },
            "ENRICHWATCH_NOTIFY",
            SECRET,
        ),
        # A misspelt key: its value is still the secret the user meant to set.
        ({"ENRICHWATCH_CRUSTDATA__WEBHOOK_SECRT": SECRET}, "WEBHOOK_SECRT", SECRET),
        ({"ENRICHWATCH_NOTIFY__WEBHOOK_SECRT": SECRET}, "WEBHOOK_SECRT", SECRET),
        ({"ENRICHWATCH_NOTIFY__SLACK_WEBHOK_URL": SECRET}, "SLACK_WEBHOK_URL", SECRET),
        ({"ENRICHWATCH_SMTP__PASSWRD": SECRET}, "PASSWRD", SECRET),
        ({"ENRICHWATCH_ECORE__APIKEY": SECRET}, "APIKEY", SECRET),
    ],
)
def test_no_message_shows_a_secret_value(monkeypatch, variables, named, secret):
    clear_settings_env(monkeypatch)
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert named in str(error.value)
    assert secret not in str(error.value)


def test_no_secret_setting_in_the_toml_file_has_its_value_shown(tmp_path, monkeypatch):
    """Every SecretStr setting, found from the model so a new one is covered too; the
    number is refused (not a string) and would otherwise be quoted back."""
    clear_settings_env(monkeypatch)
    keys = secret_keys()
    assert {"api_token", "crustdata.api_key", "smtp.password"} <= set(keys)
    config = tmp_path / "enrichwatch.toml"
    for key in keys:
        *section, name = key.split(".")
        table = f"[{section[0]}]\n" if section else ""
        config.write_text(f"{table}{name} = 987654321987\n")
        with pytest.raises(SettingsError) as error:
            load_settings(config)
        assert f"{key} in {config}" in str(error.value)
        assert "987654321987" not in str(error.value), key


def test_a_short_token_is_refused_by_the_cli_without_showing_it(tmp_path):
    """What the user ran: one `Error:` line naming the variable, and not the token."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ENRICHWATCH_")}
    env |= {"ENRICHWATCH_API_TOKEN": "mynewtoken123", "ENRICHWATCH_DB": str(tmp_path / "x.db")}
    result = subprocess.run(
        [sys.executable, "-m", "enrichwatch", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: invalid setting ENRICHWATCH_API_TOKEN / api_token: must be at "
        "least 16 characters (or unset)"
    ], result.stderr
    assert "mynewtoken123" not in result.stdout + result.stderr
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("toml", "key", "meant"),
    [
        (
            '[crustdata]\nwebhok_secret = "x"\n',
            "crustdata.webhok_secret",
            "crustdata.webhook_secret",
        ),
        ("prot = 1\n", "prot", "port"),
        ('[smtp]\nfrm = "a@example.com"\n', "smtp.frm", "smtp.from"),
        # Keys inside a section are case-sensitive; the key is named as written.
        ("[ecore]\nMAX_POLL_INTERVAL = 60\n", "ecore.MAX_POLL_INTERVAL", "ecore.max_poll_interval"),
        (
            '[notify]\n"slack webhook url" = "x"\n',
            'notify."slack webhook url"',
            "notify.slack_webhook_url",
        ),
    ],
)
def test_an_unknown_key_in_the_toml_file_is_named_there_with_the_nearest(
    tmp_path, monkeypatch, toml, key, meant
):
    clear_settings_env(monkeypatch)
    config = tmp_path / "enrichwatch.toml"
    config.write_text(toml)
    with pytest.raises(SettingsError) as error:
        load_settings(config)
    assert str(error.value) == f"unknown setting {key} in {config}: did you mean {meant}?"


def test_a_misspelt_key_in_a_sectioned_variable_gets_the_nearest(monkeypatch):
    clear_settings_env(monkeypatch)
    monkeypatch.setenv("ENRICHWATCH_CRUSTDATA__WEBHOOK_SECRT", "k")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == (
        "unknown setting ENRICHWATCH_CRUSTDATA__WEBHOOK_SECRT: did you mean "
        "ENRICHWATCH_CRUSTDATA__WEBHOOK_SECRET?"
    )


def test_a_bad_value_is_named_where_it_was_given(tmp_path, monkeypatch):
    """The file's key when the file gave it; the variable when the environment overrode it."""
    clear_settings_env(monkeypatch)
    config = tmp_path / "enrichwatch.toml"
    config.write_text('port = "eighty"\n[crustdata]\nbase_url = "nope"\n')
    monkeypatch.setenv("ENRICHWATCH_CRUSTDATA__BASE_URL", "nope either")
    with pytest.raises(SettingsError) as error:
        load_settings(config)
    lines = str(error.value).splitlines()
    assert lines[0].startswith(f"invalid setting port in {config}: Input should be a valid integer")
    assert lines[0].endswith("(got 'eighty')")
    assert lines[1].startswith(
        "invalid setting ENRICHWATCH_CRUSTDATA__BASE_URL / crustdata.base_url:"
    )
    assert lines[1].endswith("(got 'nope either')")


def test_a_toml_syntax_error_names_the_file_and_where(tmp_path, monkeypatch):
    clear_settings_env(monkeypatch)
    config = tmp_path / "enrichwatch.toml"
    config.write_text('[crustdata]\nwebhook_secret "x"\n')
    with pytest.raises(SettingsError) as error:
        load_settings(config)
    assert str(error.value) == (
        f"config file {config} is not valid TOML: Expected '=' after a key in a key/value pair "
        "(at line 2, column 16)"
    )
    config.write_bytes(b'host = "caf\xe9"\n')
    with pytest.raises(SettingsError) as error:
        load_settings(config)
    assert str(error.value) == f"config file {config} is not valid TOML: not UTF-8 text (byte 11)"


def test_a_malformed_list_variable_names_the_variable_and_both_forms(monkeypatch):
    clear_settings_env(monkeypatch)
    monkeypatch.setenv("ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS", "[oops")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value).startswith(
        "invalid setting ENRICHWATCH_CRUSTDATA__DOWNLOAD_HOSTS / crustdata.download_hosts: "
        "is neither a JSON list nor comma-separated"
    )


@pytest.mark.parametrize(
    "value", ["ops@example.com, data@example.com", '["ops@example.com", "data@example.com"]']
)
def test_a_list_variable_is_comma_separated_or_json(monkeypatch, value):
    """`ENRICHWATCH_NOTIFY__EMAIL_TO=ops@example.com` is how people write it; it failed with
    an error naming no variable."""
    clear_settings_env(monkeypatch)
    monkeypatch.setenv("ENRICHWATCH_NOTIFY__EMAIL_TO", value)
    monkeypatch.setenv("ENRICHWATCH_SMTP__HOST", "mail.example.com")
    assert load_settings().notify.email_to == ["ops@example.com", "data@example.com"]


def test_a_public_url_with_a_password_is_refused_without_quoting_it(monkeypatch):
    """It would be given to every vendor and printed in every link."""
    monkeypatch.setenv("ENRICHWATCH_PUBLIC_URL", "https://ops:s3cret-pw@hooks.example.com")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "ENRICHWATCH_PUBLIC_URL" in str(error.value)
    assert "s3cret-pw" not in str(error.value)


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8080"), ("::1", "http://[::1]:8080")],
)
def test_the_default_public_url_is_a_valid_url_for_an_ipv6_host_too(host, url):
    assert load_settings(host=host).base_url == url


@pytest.mark.parametrize(
    "secret",
    ["whsec_abcd", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_new"],
    ids=["alone", "in a rotation"],
)
def test_a_webhook_key_too_short_to_be_secret_is_refused(tmp_path, secret):
    """Standard Webhooks keys are 24 to 64 random bytes; a 3-byte one signs events anybody
    could forge."""
    with pytest.raises(SettingsError) as error:
        load_settings(
            db=tmp_path / "x.db",
            notify={"webhook_url": "https://example.org/hook", "webhook_secret": secret},
        )
    assert "ENRICHWATCH_NOTIFY__WEBHOOK_SECRET" in str(error.value)
    assert "at least 24 random bytes" in str(error.value)
    assert "abcd" not in str(error.value)
