"""Service settings from ``STORMWATCH_*`` environment variables, validated once at start."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from detector.domain.durations import Duration, PositiveDuration
from detector.domain.related import DEFAULT_WINDOW
from responders.channels.smtp import SmtpSecurity


class LogFormat(StrEnum):
    """How log lines are rendered."""

    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    """Everything the service reads from its environment; frozen after start."""

    model_config = SettingsConfigDict(
        env_prefix="STORMWATCH_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,  # a rejected value may be a secret
    )

    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; unset starts an embedded PostgreSQL"
    )
    data_dir: Path = Field(default=Path(".stormwatch"), description="embedded database home")
    rules_dir: Path = Field(default=Path("rules"), description="rule, channel and policy files")
    host: str = Field(default="127.0.0.1", description="address to listen on")
    port: int = Field(default=9095, ge=1, le=65535, description="port to listen on")
    public_url: str = Field(
        default="", description="base URL people reach the service at (links in pages)"
    )
    api_token: SecretStr | None = Field(default=None, description="bearer token for /api/v1")
    webhook_token: SecretStr | None = Field(
        default=None, description="bearer token Alertmanager must send"
    )
    signing_key: SecretStr | None = Field(
        default=None, description="HMAC key for ack links; generated and stored if unset"
    )
    log_format: LogFormat = Field(default=LogFormat.JSON, description="json or console")
    log_level: str = Field(default="info", description="debug, info, warning or error")
    ack_link_ttl: Duration = Field(
        default=timedelta(hours=12), description="how long a signed ack link stays valid"
    )
    engine_interval: Duration = Field(
        default=timedelta(seconds=1), description="pause between engine cycles when idle"
    )
    engine_batch_window: Duration = Field(
        default=timedelta(milliseconds=100),
        description="while webhooks keep arriving, start engine cycles at most this often "
        "(unless more than a batch waits in the intake log): larger batches cost less per "
        "alert; 0 off",
    )
    engine_storm_pace: float = Field(
        default=3.0,
        ge=0,
        le=10,
        description="while a storm pours in and a group's backlog waits, the engine rests this "
        "many seconds per second of its last cycle, leaving the CPU to webhook intake; alerts "
        "of other rules still open incidents at once (quick passes); 0 off, for an engine with "
        "CPUs of its own",
    )
    replay_window: Duration = Field(
        default=timedelta(seconds=10),
        description="a byte-identical resend of a webhook stored this recently is answered "
        "without storing it again (nor counting it as a new arrival); 0 off",
    )
    intake_timeout: PositiveDuration = Field(
        default=timedelta(seconds=10),
        description="how long a webhook waits for its commit before it is answered 503, so a "
        "database that stops answering holds no request (Alertmanager retries it)",
    )
    rules_watch_interval: Duration = Field(
        default=timedelta(seconds=2), description="how often to look for rule file changes; 0 off"
    )
    retention: Duration = Field(
        default=timedelta(days=30),
        description="keep fired timers, finished deliveries and old signals this long",
    )
    related_window: Duration = Field(
        default=DEFAULT_WINDOW,
        description="incidents of one component opened within this of each other list each "
        "other as related (API and timeline); 0 off",
    )
    run_engine: bool = Field(
        default=True, description="run engine cycles here; off for API-only replicas"
    )
    engine_process: bool = Field(
        default=True,
        description="under `stormwatch serve`, run the engine in its own process (false: one)",
    )
    engine_nice: int = Field(
        default=5,
        ge=0,
        le=19,
        description="how far the engine process under `stormwatch serve` stands back for webhook "
        "intake when both want the CPU (nice steps, for its session too where the kernel "
        "schedules sessions as groups); 0 off",
    )
    db_pool_size: int = Field(default=8, ge=2, le=200, description="PostgreSQL connections")
    rejected_keep: int = Field(
        default=200, ge=0, le=100_000, description="rejected webhook bodies kept"
    )
    alertmanager_url: str | None = Field(
        default=None,
        description="Alertmanager base URL, or the comma-separated URLs of every peer of an HA "
        "cluster; when set, open incidents are reconciled with GET /api/v2/alerts (resolved "
        "notifications are lost for silenced or inhibited alerts)",
    )
    alertmanager_token: SecretStr | None = Field(
        default=None, description="bearer token sent to Alertmanager's API"
    )
    reconcile_interval: PositiveDuration = Field(
        default=timedelta(minutes=5), description="pause between reconciliations"
    )
    reconcile_grace: Duration = Field(
        default=timedelta(minutes=5),
        description="only alerts last heard of longer ago than this (and an Alertmanager "
        "running longer than this) are reconciled, so a just-fired alert is never resolved",
    )
    prometheus_url: str | None = Field(
        default=None,
        description="the shop's Prometheus base URL; when set, incidents whose rule or "
        "component names impact queries get their orders and revenue at risk estimated",
    )
    impact_interval: PositiveDuration = Field(
        default=timedelta(minutes=1),
        description="how often an open incident's business impact is measured again",
    )
    deadman_url: SecretStr | None = Field(
        default=None,
        description="an external checker's URL (healthchecks.io style) the engine GETs while it "
        "runs, so someone hears when Stormwatch stops; a secret: never logged",
    )
    deadman_interval: PositiveDuration = Field(
        default=timedelta(seconds=30), description="ping the dead-man URL at most this often"
    )
    status_page_name: str = Field(
        default="Our shop", min_length=1, description="the shop's name on the public status page"
    )
    status_page_url: str = Field(
        default="", description="where customers reach the status page (default: PUBLIC_URL)"
    )
    status_page_time_zone: str = Field(
        default="Etc/UTC", description="IANA time zone the status page shows its times in"
    )
    status_page_refresh: PositiveDuration = Field(
        default=timedelta(seconds=30),
        description="rebuild the public status documents at least this often (changes rebuild "
        "them at once; this catches maintenance starting and ending)",
    )
    probe_location: str = Field(
        default="local",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=60,
        description="where this replica runs journeys from (the `location` label); replicas "
        "with the same location share each run, other locations run it too",
    )
    run_probes: bool = Field(
        default=True, description="run the rules' journeys where the engine runs"
    )
    probe_concurrency: int = Field(
        default=50, ge=1, le=1000, description="journey runs in flight at once, at most"
    )
    probe_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities journeys trust (default: the "
        "system's)",
    )
    smtp_host: str = Field(
        default="127.0.0.1", description="SMTP server for subscriber mail and page mail"
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port")
    smtp_security: SmtpSecurity = Field(
        default=SmtpSecurity.STARTTLS,
        description="none, starttls (upgrade a plain connection) or tls (implicit, port 465)",
    )
    smtp_username: str | None = Field(default=None, description="SMTP login, if required")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_from: str = Field(
        default="status@localhost",
        description="sender of subscriber mail, e.g. 'Shop Status <status@shop.example>'",
    )
    smtp_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities the SMTP server's certificate is "
        "checked against (default: the system's)",
    )
    page_bundle_limit: int = Field(
        default=5,
        ge=1,
        description="calls to act one person gets one by one within PAGE_BUNDLE_WINDOW; past "
        "it, the rest are bundled into one digest per contact method that takes digests",
    )
    page_bundle_window: PositiveDuration = Field(
        default=timedelta(minutes=2), description="the window PAGE_BUNDLE_LIMIT counts in"
    )
    subscribe_rate_limit: int = Field(
        default=5,
        ge=1,
        description="subscribe and unsubscribe requests allowed per client address per 10 minutes",
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return level

    @field_validator(
        "api_token",
        "webhook_token",
        "alertmanager_token",
        "signing_key",
        "smtp_password",
        "deadman_url",
    )
    @classmethod
    def _trimmed_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """Secrets are trimmed, as Alertmanager trims its credentials_file and as secret files
        often end in a newline; an empty one is refused, since it would look set and either
        lock everyone out or let an empty bearer token in."""
        if value is None:
            return None
        trimmed = value.get_secret_value().strip()
        if not trimmed:
            raise ValueError("must not be empty or blank; unset the variable to go without")
        return SecretStr(trimmed)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value():  # empty: asyncpg's PG* defaults
            _postgres(value.get_secret_value())
        return value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return value and _http(value)  # empty or unset stays as it is

    @field_validator("status_page_url")
    @classmethod
    def _page_url(cls, value: str) -> str:
        return value and _http(value)

    @field_validator("status_page_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone: use an IANA name like Europe/Berlin") from None
        return value

    @field_validator("alertmanager_url")
    @classmethod
    def _http_urls(cls, value: str | None) -> str | None:
        if not value:
            return value
        return ",".join(_http(url.strip()) for url in value.split(","))

    @property
    def alertmanager_urls(self) -> tuple[str, ...]:
        """Every Alertmanager peer to reconcile with (none: reconciliation is off)."""
        return tuple(self.alertmanager_url.split(",")) if self.alertmanager_url else ()

    @property
    def base_url(self) -> str:
        """The URL to put in links: PUBLIC_URL, or the listen address."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def status_page_base(self) -> str:
        """The status page's public URL: STATUS_PAGE_URL, else the base URL."""
        return self.status_page_url or self.base_url


class SettingsError(Exception):
    """Settings failed validation; the message lists every bad variable."""


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation errors into one clear message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        lines = []
        for error in err.errors():
            field = ".".join(str(part) for part in error["loc"])
            lines.append(f"STORMWATCH_{field.upper()}: {error['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None


_HOST = re.compile(r"(\[[^\]]*\]|[^:\[\]]*)(:\d*)?", re.ASCII)


def _postgres(url: str) -> None:
    """Reject what asyncpg would misread, in words that never quote the URL: it holds the
    password, and asyncpg's own parse errors print whatever part of it lands in the port."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in {"postgresql", "postgres"}:
        raise ValueError("must start with postgresql:// or postgres://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if authority.count("@") > 1 or "@" in rest[len(authority) :]:
        raise ValueError(
            "percent-encode the user name and password ('/' as %2F, '@' as %40, "
            "'?' as %3F, '#' as %23)"
        )
    if not all(_HOST.fullmatch(host) for host in authority.rpartition("@")[2].split(",")):
        raise ValueError("each host must be NAME, NAME:PORT or [IPV6]:PORT")


def _http(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return url.rstrip("/")
