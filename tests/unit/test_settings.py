"""Settings from STORMWATCH_* variables: clear errors naming the variable, secrets kept secret."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from detector.service.settings import LogFormat, Settings, SettingsError, load_settings

SECRETS = {
    "STORMWATCH_API_TOKEN": "api-token-4f9c2e",
    "STORMWATCH_WEBHOOK_TOKEN": "webhook-token-81ab7d",
    "STORMWATCH_SIGNING_KEY": "signing-key-a3e0f1",
    "STORMWATCH_DATABASE_URL": "postgresql://stormwatch:db-pass-77c1@db.internal/stormwatch",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: no STORMWATCH_* leaking in from the shell running the suite."""
    for name in list(os.environ):
        if name.startswith("STORMWATCH_"):
            monkeypatch.delenv(name)


def settings_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(f"STORMWATCH_{name}", value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    return str(raised.value)


class TestLoadSettings:
    def test_defaults(self) -> None:
        settings = load_settings()

        assert (settings.host, settings.port) == ("127.0.0.1", 9095)
        assert settings.rules_dir == Path("rules")
        assert settings.data_dir == Path(".stormwatch")
        assert settings.log_format is LogFormat.JSON
        assert settings.ack_link_ttl == timedelta(hours=12)
        assert settings.database_url is None
        assert settings.base_url == "http://127.0.0.1:9095"

    @pytest.mark.parametrize(
        ("name", "value", "attribute", "expected"),
        [
            pytest.param("PORT", "8080", "port", 8080, id="port"),
            pytest.param("ACK_LINK_TTL", "5m", "ack_link_ttl", timedelta(minutes=5), id="ttl 5m"),
            pytest.param(
                "ENGINE_INTERVAL",
                "250ms",
                "engine_interval",
                timedelta(milliseconds=250),
                id="interval 250ms",
            ),
            pytest.param("LOG_FORMAT", "console", "log_format", LogFormat.CONSOLE, id="log format"),
            pytest.param("LOG_LEVEL", "DEBUG", "log_level", "debug", id="log level lowered"),
            pytest.param(
                "PUBLIC_URL",
                "https://stormwatch.example/",
                "public_url",
                "https://stormwatch.example",
                id="public url without trailing slash",
            ),
            pytest.param("RUN_ENGINE", "false", "run_engine", False, id="run engine off"),
            pytest.param(
                "RULES_DIR",
                "/etc/stormwatch/rules",
                "rules_dir",
                Path("/etc/stormwatch/rules"),
                id="rules dir",
            ),
            pytest.param("port", "8081", "port", 8081, id="lower-case variable name"),
        ],
    )
    def test_value_from_environment(
        self,
        monkeypatch: pytest.MonkeyPatch,
        name: str,
        value: str,
        attribute: str,
        expected: object,
    ) -> None:
        monkeypatch.setenv(f"STORMWATCH_{name}", value)

        assert getattr(load_settings(), attribute) == expected

    def test_public_url_is_the_base_for_links(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("STORMWATCH_PUBLIC_URL", "https://stormwatch.example/")

        assert load_settings().base_url == "https://stormwatch.example"

    @pytest.mark.parametrize(
        ("value", "urls"),
        [
            pytest.param("", (), id="unset: no reconciliation"),
            pytest.param("http://am:9093/", ("http://am:9093",), id="one Alertmanager"),
            pytest.param(
                "http://am-0:9093/, https://am-1:9093",
                ("http://am-0:9093", "https://am-1:9093"),
                id="every peer of an HA cluster",
            ),
        ],
    )
    def test_alertmanager_peers(
        self, monkeypatch: pytest.MonkeyPatch, value: str, urls: tuple[str, ...]
    ) -> None:
        monkeypatch.setenv("STORMWATCH_ALERTMANAGER_URL", value)

        assert load_settings().alertmanager_urls == urls

    def test_keyword_override_beats_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("STORMWATCH_PORT", "8080")

        assert load_settings(port=9999).port == 9999

    def test_settings_are_frozen(self) -> None:
        settings = load_settings()

        with pytest.raises(ValidationError):
            settings.port = 1  # type: ignore[misc]


class TestSettingsErrors:
    @pytest.mark.parametrize(
        ("name", "value", "reason"),
        [
            pytest.param("PORT", "abc", "valid integer", id="port not a number"),
            pytest.param("PORT", "0", "greater than or equal to 1", id="port zero"),
            pytest.param("PORT", "70000", "less than or equal to 65535", id="port too high"),
            pytest.param("ACK_LINK_TTL", "5x", "invalid duration '5x'", id="bad duration"),
            pytest.param("LOG_FORMAT", "xml", "'json' or 'console'", id="unknown log format"),
            pytest.param("LOG_LEVEL", "loud", "must be one of debug", id="unknown log level"),
            pytest.param(
                "PUBLIC_URL", "stormwatch.example", "must start with http", id="no scheme"
            ),
            pytest.param(
                "ALERTMANAGER_URL",
                "http://am-0:9093,am-1:9093",
                "must start with http",
                id="a peer without a scheme",
            ),
            pytest.param("DB_POOL_SIZE", "1", "greater than or equal to 2", id="pool too small"),
            pytest.param("API_TOKEN", "", "must not be empty", id="empty API token"),
            pytest.param("WEBHOOK_TOKEN", " \n", "must not be empty", id="blank webhook token"),
            pytest.param("RUN_ENGINE", "maybe", "valid boolean", id="not a boolean"),
            pytest.param(
                "DATABASE_URL",
                "postgresql://sw:S3cret/Pw@db.internal/stormwatch",
                "percent-encode the user name and password ('/' as %2F",
                id="password with an unencoded slash",
            ),
            pytest.param(
                "DATABASE_URL",
                "postgresql://sw:S3c@ret@db.internal/stormwatch",
                "percent-encode the user name and password",
                id="password with an unencoded @",
            ),
            pytest.param(
                "DATABASE_URL",
                "postgresql://sw:S3c?ret@db.internal/stormwatch",
                "percent-encode the user name and password",
                id="password with an unencoded ?",
            ),
            pytest.param(
                "DATABASE_URL",
                "postgresql://sw:S3cret/stormwatch",
                "each host must be NAME, NAME:PORT or [IPV6]:PORT",
                id="password where the host should be",
            ),
            pytest.param(
                "DATABASE_URL",
                "mysql://sw@db.internal/stormwatch",
                "must start with postgresql:// or postgres://",
                id="not a PostgreSQL URL",
            ),
        ],
    )
    def test_error_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str
    ) -> None:
        message = settings_error(monkeypatch, **{name: value})

        line = next(row for row in message.splitlines() if f"STORMWATCH_{name}:" in row)
        assert reason in line

    @pytest.mark.parametrize(
        "url",
        [
            "postgresql://sw:S3cret%2FPw@db.internal:5432/stormwatch",
            "postgres://sw:p%40ss:word@db.internal/stormwatch?sslmode=require",
            "postgresql://sw:pw@db-0:5432,db-1:5433/stormwatch?target_session_attrs=read-write",
            "postgresql://sw:pw@[2001:db8::1]:5432/stormwatch",
            "postgresql://sw@/stormwatch?host=/var/run/postgresql",
            "postgresql:///stormwatch",
        ],
        ids=["encoded password", "encoded @", "two hosts", "IPv6", "unix socket", "no host"],
    )
    def test_database_urls_asyncpg_reads_are_accepted(
        self, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        monkeypatch.setenv("STORMWATCH_DATABASE_URL", url)

        database_url = load_settings().database_url
        assert database_url is not None
        assert database_url.get_secret_value() == url

    def test_every_bad_variable_is_listed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        message = settings_error(monkeypatch, PORT="abc", LOG_LEVEL="loud", ACK_LINK_TTL="5x")

        assert message.splitlines()[0] == "invalid settings:"
        named = sorted(row.split(":")[0].strip() for row in message.splitlines()[1:])
        assert named == ["STORMWATCH_ACK_LINK_TTL", "STORMWATCH_LOG_LEVEL", "STORMWATCH_PORT"]


class TestSecrets:
    def test_secrets_are_secret_strings_with_their_values(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name, value in SECRETS.items():
            monkeypatch.setenv(name, value)

        settings = load_settings()

        for name, value in SECRETS.items():
            field = getattr(settings, name.removeprefix("STORMWATCH_").lower())
            assert isinstance(field, SecretStr)
            assert field.get_secret_value() == value

    def test_secrets_are_trimmed_as_secret_files_end_in_a_newline(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("STORMWATCH_WEBHOOK_TOKEN", "s3cr3t\n")

        assert load_settings().webhook_token == SecretStr("s3cr3t")

    @pytest.mark.parametrize("render", [repr, str], ids=["repr", "str"])
    def test_secrets_do_not_appear_when_settings_are_printed(
        self, monkeypatch: pytest.MonkeyPatch, render: Callable[[object], str]
    ) -> None:
        for name, value in SECRETS.items():
            monkeypatch.setenv(name, value)

        text = render(load_settings())

        assert "api_token=SecretStr('**********')" in text
        for value in SECRETS.values():
            assert value not in text
        assert "db-pass-77c1" not in text

    def test_secrets_do_not_appear_in_settings_errors(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name, value in SECRETS.items():
            monkeypatch.setenv(name, value)

        message = settings_error(monkeypatch, PORT="abc")

        assert "STORMWATCH_PORT" in message
        for value in SECRETS.values():
            assert value not in message

    @pytest.mark.parametrize(
        "url",
        [
            "postgresql://sw:S3cret/Pw@db.internal/stormwatch",
            "postgresql://sw:S3cret@db.internal:S3cret/stormwatch",
        ],
        ids=["slash in the password", "password in the port"],
    )
    def test_a_rejected_database_url_is_not_echoed(
        self, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        message = settings_error(monkeypatch, DATABASE_URL=url)

        assert "STORMWATCH_DATABASE_URL:" in message
        assert "S3cret" not in message
        with pytest.raises(ValidationError) as raised:
            Settings(database_url=url)
        assert "S3cret" not in str(raised.value)

    def test_settings_built_directly_hide_secrets_too(self) -> None:
        settings = Settings(api_token="direct-token-55")  # type: ignore[arg-type]

        assert "direct-token-55" not in repr(settings)
