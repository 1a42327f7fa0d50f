"""deploy/kubernetes: every manifest is valid for Kubernetes (``kubernetes-validate``, strict,
with the schemas it bundles, so no network), and the manifests run Stormwatch as
deploy/README.md describes: intake replicas behind the Service, two engine replicas, one
external PostgreSQL from a Secret, probes on /readyz and /healthz, the rules from a ConfigMap."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from detector.service.engine_process import STOP_TIMEOUT_S
from detector.service.serve import SHUTDOWN_TIMEOUT_S
from detector.service.settings import Settings

pytestmark = pytest.mark.e2e

MANIFESTS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests are meant for


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for path in MANIFESTS
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc is not None
    ]


def resource(kind: str, name: str) -> dict[str, Any]:
    (found,) = [
        doc for _, doc in documents() if (doc["kind"], doc["metadata"]["name"]) == (kind, name)
    ]
    return found


def container(deployment: str) -> dict[str, Any]:
    (only,) = resource("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return only


def env(deployment: str) -> dict[str, Any]:
    return {item["name"]: item for item in container(deployment)["env"]}


DEPLOYMENTS = pytest.mark.parametrize("name", ["stormwatch-intake", "stormwatch-engine"])


def test_there_are_manifests() -> None:
    assert {path.name for path in MANIFESTS} >= {"intake.yaml", "engine.yaml"}


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[name for name, _ in documents()])
def test_manifest_is_valid_kubernetes(name: str, doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{name}: {error.message} at {'.'.join(map(str, error.path))}")


@pytest.mark.parametrize(
    ("name", "replicas", "run_engine"),
    [("stormwatch-intake", 2, "false"), ("stormwatch-engine", 2, "true")],
)
def test_replicas_and_their_role(name: str, replicas: int, run_engine: str) -> None:
    spec = resource("Deployment", name)["spec"]
    assert spec["replicas"] >= replicas
    assert env(name)["STORMWATCH_RUN_ENGINE"]["value"] == run_engine


@DEPLOYMENTS
def test_every_variable_is_a_setting(name: str) -> None:
    known = {f"STORMWATCH_{field.upper()}" for field in Settings.model_fields}
    assert set(env(name)) <= known


@DEPLOYMENTS
def test_database_url_comes_from_a_secret(name: str) -> None:
    source = env(name)["STORMWATCH_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert source == {"name": "stormwatch", "key": "database-url"}


@DEPLOYMENTS
def test_probes_ask_readyz_and_healthz_on_the_served_port(name: str) -> None:
    stormwatch = container(name)
    (port,) = stormwatch["ports"]
    for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
        http = stormwatch[probe]["httpGet"]
        assert (http["path"], http["port"]) == (path, port["name"])
    assert stormwatch["readinessProbe"]["timeoutSeconds"] > 2, "readyz answers within 2 s"


@DEPLOYMENTS
def test_rules_come_from_a_configmap_mounted_whole(name: str) -> None:
    pod = resource("Deployment", name)["spec"]["template"]["spec"]
    (mount,) = [m for m in container(name)["volumeMounts"] if m["name"] == "rules"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "rules"]
    assert volume["configMap"]["name"] == "stormwatch-rules"
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    assert env(name)["STORMWATCH_RULES_DIR"]["value"] == mount["mountPath"]


@DEPLOYMENTS
def test_gets_time_to_shut_down_before_it_is_killed(name: str) -> None:
    grace = resource("Deployment", name)["spec"]["template"]["spec"]
    seconds = timedelta(seconds=grace["terminationGracePeriodSeconds"])
    assert seconds > timedelta(seconds=SHUTDOWN_TIMEOUT_S + STOP_TIMEOUT_S)


@DEPLOYMENTS
def test_a_disruption_budget_keeps_one_pod(name: str) -> None:
    labels = resource("Deployment", name)["spec"]["selector"]["matchLabels"]
    budget = resource("PodDisruptionBudget", name)["spec"]
    assert budget["selector"]["matchLabels"] == labels
    assert budget["minAvailable"] >= 1


def test_the_service_sends_traffic_to_intake_pods_only() -> None:
    selector = resource("Service", "stormwatch")["spec"]["selector"]
    intake = resource("Deployment", "stormwatch-intake")["spec"]["template"]["metadata"]
    engine = resource("Deployment", "stormwatch-engine")["spec"]["template"]["metadata"]
    assert selector.items() <= intake["labels"].items()
    assert not selector.items() <= engine["labels"].items()
