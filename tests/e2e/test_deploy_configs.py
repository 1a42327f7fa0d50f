"""The files under deploy/ are valid for the tools that read them.

Runs the real `amtool` and `promtool` (Debian packages prometheus-alertmanager and
prometheus). Without them the tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from detector.domain.durations import parse_duration
from detector.service.engine_process import STOP_TIMEOUT_S
from detector.service.metrics import Metrics
from detector.service.serve import OPEN_FILES_FEWEST, OPEN_FILES_WANTED, SHUTDOWN_TIMEOUT_S
from detector.service.settings import load_settings
from tests.e2e.tools import tool

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
MAIN_ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
COMPOSE_ALERTMANAGER = DEPLOY / "compose" / "alertmanager.yml"
ALERT_FILES = sorted((PROMETHEUS_DIR / "alerts").glob("*.yml"))
SELF_ALERTS = PROMETHEUS_DIR / "alerts" / "stormwatch.yml"
"""Alerts about Stormwatch itself: routed to people by a path without Stormwatch in it."""
SELF_RECEIVER = "sre-email"
RULE_TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")

ALERTMANAGER_CONFIGS = pytest.mark.parametrize(
    "path", [MAIN_ALERTMANAGER, COMPOSE_ALERTMANAGER], ids=["main", "compose"]
)

# The alerts the Stormwatch rule pack is written against.
EXPECTED_ALERTS = {
    "PgBouncerPoolSaturated",
    "PgBouncerClientsWaiting",
    "HikariPoolExhausted",
    "PostgresConnectionsNearMax",
    "PatroniNoPrimary",
    "PatroniNoLeaderLock",
    "PostgresNoPrimary",
    "PostgresFailoverHappened",
    "PostgresReplicationLagHigh",
    "CheckoutErrorSpike",
    "CheckoutErrorBudgetFastBurn",
    "CheckoutErrorBudgetSlowBurn",
    "CheckoutLatencyP99High",
    "PaymentGatewayErrorRateHigh",
    "PaymentAuthorizationRateDrop",
    "PostfixQueueStale",
    "PostfixDeferredQueueBacklog",
    "SyntheticCheckoutProbeFailing",
    "Watchdog",
}
SEVERITIES = {"page", "ticket", "info", "none"}


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output; never raises on a non-zero exit."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    """The command exited 0; otherwise show what it printed."""
    command = " ".join(str(arg) for arg in result.args)
    assert result.returncode == 0, (
        f"`{command}` exited {result.returncode}\n"
        f"--- stderr ---\n{result.stderr}\n--- stdout ---\n{result.stdout}"
    )


def load(path: Path) -> Any:
    """Parse one YAML file."""
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule in deploy/prometheus/alerts."""
    return [
        rule
        for path in ALERT_FILES
        for group in load(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def self_alerts() -> list[dict[str, Any]]:
    """The alerting rules about Stormwatch itself."""
    return [
        rule for group in load(SELF_ALERTS)["groups"] for rule in group["rules"] if "alert" in rule
    ]


def exported_metrics() -> set[str]:
    """Every sample name Stormwatch's /metrics can show."""
    suffixes = {"counter": ["_total"], "histogram": ["_count", "_sum", "_bucket"]}
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def receiver_named(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The receiver ``name`` of an Alertmanager config."""
    (receiver,) = [r for r in config["receivers"] if r["name"] == name]
    return receiver


def strip_receiver_endpoint(config: dict[str, Any]) -> dict[str, Any]:
    """The config without what may differ between the two Alertmanager files."""
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook.pop("url")
            webhook["http_config"]["authorization"].pop("credentials_file")
    return config


class TestAlertmanagerConfig:
    """deploy/alertmanager/alertmanager.yml and its compose variant."""

    @ALERTMANAGER_CONFIGS
    def test_amtool_accepts_it(self, path: Path) -> None:
        # check-config does not open credentials_file, so the token file need not exist.
        assert_ok(run([tool("amtool"), "check-config", str(path)]))

    @ALERTMANAGER_CONFIGS
    @pytest.mark.parametrize(
        "labels",
        [
            ["alertname=Watchdog", "severity=none"],
            ["alertname=CheckoutErrorSpike", "severity=page", "service=checkout"],
            ["alertname=PostgresReplicationLagHigh", "severity=ticket", "component=postgres"],
            ["alertname=PostgresFailoverHappened", "severity=info", "component=patroni"],
        ],
        ids=["watchdog", "page", "ticket", "info"],
    )
    def test_alerts_reach_stormwatch(self, path: Path, labels: list[str]) -> None:
        assert_ok(
            run(
                [
                    tool("amtool"),
                    "config",
                    "routes",
                    "test",
                    f"--config.file={path}",
                    "--verify.receivers=stormwatch",
                    *labels,
                ]
            )
        )

    @ALERTMANAGER_CONFIGS
    @pytest.mark.parametrize("rule", self_alerts(), ids=lambda rule: rule["alert"])
    def test_alerts_about_stormwatch_go_to_people_not_to_stormwatch(
        self, path: Path, rule: dict[str, Any]
    ) -> None:
        labels = [f"{name}={value}" for name, value in rule["labels"].items()]
        assert_ok(
            run(
                [
                    tool("amtool"),
                    "config",
                    "routes",
                    "test",
                    f"--config.file={path}",
                    f"--verify.receivers={SELF_RECEIVER}",
                    f"alertname={rule['alert']}",
                    "instance=stormwatch:9095",
                    *labels,
                ]
            )
        )

    def test_compose_variant_routes_like_the_main_file(self) -> None:
        main = strip_receiver_endpoint(load(MAIN_ALERTMANAGER))
        compose = strip_receiver_endpoint(load(COMPOSE_ALERTMANAGER))
        assert compose == main

    @pytest.mark.parametrize(
        ("path", "url", "credentials_file"),
        [
            (
                MAIN_ALERTMANAGER,
                "https://stormwatch.example.internal/api/v1/alertmanager",
                "/etc/alertmanager/secrets/stormwatch-webhook-token",
            ),
            (
                COMPOSE_ALERTMANAGER,
                "http://stormwatch:9095/api/v1/alertmanager",
                "/etc/alertmanager/stormwatch-webhook-token",
            ),
        ],
        ids=["main", "compose"],
    )
    def test_webhook_sends_everything_with_the_token(
        self, path: Path, url: str, credentials_file: str
    ) -> None:
        receiver = receiver_named(load(path), "stormwatch")
        (webhook,) = receiver["webhook_configs"]
        assert webhook["url"] == url
        assert webhook["send_resolved"] is True
        assert webhook["max_alerts"] == 0
        assert webhook["http_config"]["authorization"] == {
            "type": "Bearer",
            "credentials_file": credentials_file,
        }


class TestPrometheusRules:
    """deploy/prometheus/alerts and their unit tests."""

    def test_promtool_accepts_the_rules(self) -> None:
        assert ALERT_FILES
        assert_ok(run([tool("promtool"), "check", "rules", *map(str, ALERT_FILES)]))

    def test_rule_unit_tests_pass(self) -> None:
        assert RULE_TEST_FILES
        relative = [str(path.relative_to(PROMETHEUS_DIR)) for path in RULE_TEST_FILES]
        result = run([tool("promtool"), "test", "rules", *relative], cwd=PROMETHEUS_DIR)
        assert_ok(result)
        # promtool only warns about a rule file it cannot find; the tests would then prove nothing.
        assert "no file match" not in result.stdout + result.stderr, result.stdout + result.stderr

    def test_the_expected_alerts_exist(self) -> None:
        names = [rule["alert"] for rule in alert_rules()]
        assert len(names) == len(set(names)), "an alert name is defined twice"
        assert set(names) >= EXPECTED_ALERTS

    @pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
    def test_alert_has_routing_labels_and_plain_annotations(self, rule: dict[str, Any]) -> None:
        labels = rule.get("labels", {})
        annotations = rule.get("annotations", {})
        assert labels.get("severity") in SEVERITIES
        assert "service" in labels or "component" in labels
        assert "cluster" not in labels, "cluster comes from Prometheus external_labels"
        assert annotations.get("summary")
        assert annotations.get("runbook_url", "").startswith("https://")

    def test_stormwatch_alerts_watch_metrics_stormwatch_exports(self) -> None:
        used = {
            name for rule in self_alerts() for name in re.findall(r"\bstormwatch_\w+", rule["expr"])
        }
        assert used
        assert used - exported_metrics() == set()

    def test_every_page_alert_is_tested_firing_and_quiet(self) -> None:
        fires: set[str] = set()
        quiet: set[str] = set()
        for path in RULE_TEST_FILES:
            for case in load(path)["tests"]:
                for check in case.get("alert_rule_test", []):
                    (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
        paging = {rule["alert"] for rule in alert_rules() if rule["labels"]["severity"] == "page"}
        assert paging - fires == set(), "page alerts without a test where they fire"
        assert paging - quiet == set(), "page alerts without a test where they stay quiet"


class TestPrometheusConfig:
    """deploy/prometheus/prometheus.yml."""

    def test_promtool_accepts_it(self) -> None:
        # rule_files resolve relative to prometheus.yml, so this also loads every alert file.
        result = run([tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
        assert_ok(result)
        assert f"{len(ALERT_FILES)} rule files found" in result.stdout, result.stdout

    def test_labels_alerts_with_the_cluster_and_sends_them_to_alertmanager(self) -> None:
        config = load(PROMETHEUS_DIR / "prometheus.yml")
        assert config["global"]["external_labels"] == {"cluster": "shop-prod"}
        (alertmanagers,) = config["alerting"]["alertmanagers"]
        assert alertmanagers["static_configs"] == [{"targets": ["alertmanager:9093"]}]
        targets = {
            target
            for job in config["scrape_configs"]
            for static in job.get("static_configs", [])
            for target in static["targets"]
        }
        assert {"stormwatch:9095", "localhost:9090"} <= targets


class TestComposeFile:
    """deploy/compose.yml (parsed only; Docker is not needed)."""

    def test_defines_the_stack(self) -> None:
        compose = load(DEPLOY / "compose.yml")
        assert {"postgres", "stormwatch", "prometheus", "alertmanager"} <= set(compose["services"])

    def test_stormwatch_is_built_from_the_repository(self) -> None:
        stormwatch = load(DEPLOY / "compose.yml")["services"]["stormwatch"]
        build = stormwatch["build"]
        assert build == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        environment = stormwatch["environment"]
        assert environment["STORMWATCH_DATABASE_URL"] == (
            "postgresql://stormwatch:stormwatch@postgres:5432/stormwatch"
        )
        for name in ("STORMWATCH_WEBHOOK_TOKEN", "STORMWATCH_API_TOKEN"):
            assert environment[name].startswith(f"${{{name}:?"), f"{name} must be required"
        assert stormwatch["depends_on"]["postgres"]["condition"] == "service_healthy"

    def test_stormwatch_gets_time_to_shut_down_before_docker_kills_it(self) -> None:
        stormwatch = load(DEPLOY / "compose.yml")["services"]["stormwatch"]
        grace = parse_duration(stormwatch["stop_grace_period"])
        # HTTP connections close first, then the engine process finishes its cycle.
        assert grace > timedelta(seconds=SHUTDOWN_TIMEOUT_S + STOP_TIMEOUT_S)

    def test_stormwatch_may_hold_a_storms_connections(self) -> None:
        nofile = load(DEPLOY / "compose.yml")["services"]["stormwatch"]["ulimits"]["nofile"]
        assert nofile["hard"] >= OPEN_FILES_WANTED
        assert nofile["soft"] >= OPEN_FILES_FEWEST

    def test_stormwatch_reconciles_with_the_stacks_alertmanager(self) -> None:
        compose = load(DEPLOY / "compose.yml")
        environment = compose["services"]["stormwatch"]["environment"]
        settings = load_settings(alertmanager_url=environment["STORMWATCH_ALERTMANAGER_URL"])
        (url,) = settings.alertmanager_urls
        address = urlsplit(url)
        assert (address.hostname, address.port) == ("alertmanager", 9093)  # the image's port
        assert "alertmanager" in compose["services"]

    def test_mounted_files_exist(self) -> None:
        for name, service in load(DEPLOY / "compose.yml")["services"].items():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("."):
                    assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"

    def test_alertmanager_gets_the_token_where_its_config_reads_it(self) -> None:
        compose = load(DEPLOY / "compose.yml")
        (secret,) = compose["services"]["alertmanager"]["secrets"]
        assert compose["secrets"][secret["source"]] == {"environment": "STORMWATCH_WEBHOOK_TOKEN"}
        receiver = receiver_named(load(COMPOSE_ALERTMANAGER), "stormwatch")
        (webhook,) = receiver["webhook_configs"]
        assert secret["target"] == webhook["http_config"]["authorization"]["credentials_file"]


@pytest.fixture
def health_endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[int, list[str]]]:
    """A server on a free port answering every GET with the status ``request.param``; yields its
    port and the paths it was asked for."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(request.param)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield server.server_address[1], paths
    server.shutdown()
    thread.join()
    server.server_close()


class TestDockerfile:
    """deploy/Dockerfile (its health check runs here with this Python; Docker is not needed)."""

    @pytest.mark.parametrize(
        ("health_endpoint", "healthy"), [(200, True), (503, False)], indirect=["health_endpoint"]
    )
    def test_health_check_asks_healthz_on_stormwatch_port(
        self, health_endpoint: tuple[int, list[str]], healthy: bool
    ) -> None:
        port, paths = health_endpoint
        found = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", DOCKERFILE, re.MULTILINE)
        assert found, "HEALTHCHECK in exec form (the image has no curl, and needs no shell)"
        program, *args = json.loads(found.group(1))
        assert program == "python"
        result = subprocess.run(
            [sys.executable, *args],
            env=os.environ | {"STORMWATCH_PORT": str(port)},
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert (result.returncode == 0) is healthy
        assert paths == ["/healthz"]
