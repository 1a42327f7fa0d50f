"""``stormwatch serve`` as an operator runs it: embedded PostgreSQL, data kept across restarts,
graceful SIGTERM, and no secret in the logs."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from detector.service.engine_runner import session_group_nice
from tests.conftest import alert, payload
from tests.fakes import T0, PageReceiver
from tests.pg_proxy import PostgresProxy

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
SECRETS = {"STORMWATCH_WEBHOOK_TOKEN": "wh-secret-7f3a", "STORMWATCH_API_TOKEN": "api-secret-91bc"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Service:
    """One ``stormwatch serve`` process on a data directory (and its embedded database, unless
    ``env`` names one)."""

    def __init__(
        self,
        data_dir: Path,
        log: Path,
        rules: Path = REPO / "rules",
        env: dict[str, str] | None = None,
        open_files: tuple[int, int] | None = None,
    ) -> None:
        """``open_files``: the (soft, hard) limit the process starts with."""
        self.port = free_port()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("STORMWATCH_")}
        environment |= SECRETS | {
            "STORMWATCH_PORT": str(self.port),
            "STORMWATCH_DATA_DIR": str(data_dir),
            "STORMWATCH_RULES_DIR": str(rules),
        }
        environment |= env or {}
        self.log = log
        argv = [sys.executable, "-m", "detector", "serve"]
        if open_files is not None:  # lowered, then the same command in the same process
            lower = "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, {});"
            argv = [
                sys.executable,
                "-c",
                lower.format(open_files) + f" os.execv(sys.executable, {argv})",
            ]
        self.process = subprocess.Popen(
            argv,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        """Poll /readyz (bounded): starting includes initialising the embedded database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(self.url("/readyz"), timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"service not ready in {timeout}s:\n{self.log.read_text()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, path: str, body: Any = None, token: str = "") -> Any:
        request = urllib.request.Request(  # noqa: S310 - loopback test URL
            self.url(path),
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return json.loads(answer.read())

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


class TestServeProcess:
    def test_data_survives_a_graceful_restart_and_secrets_stay_out_of_logs(
        self, tmp_path: Path
    ) -> None:
        first = Service(tmp_path / "data", tmp_path / "first.log")
        try:
            accepted = first.call(
                "/api/v1/alertmanager",
                payload(alert(severity="page", cluster="eu-1", database="shop")),
                SECRETS["STORMWATCH_WEBHOOK_TOKEN"],
            )
            assert accepted == {"status": "accepted", "alerts": 1}
        finally:
            assert first.stop() == 0
        events = [e["event"] for e in _events(first.log)]
        assert events.index("engine.stopped") < events.index("service.stopped")
        assert events[-1] == "database.embedded_stopped"

        second = Service(tmp_path / "data", tmp_path / "second.log")
        try:
            listed = second.call("/api/v1/incidents", token=SECRETS["STORMWATCH_API_TOKEN"])
        finally:
            assert second.stop() == 0
        [incident] = listed["incidents"]
        assert incident["rule"] == "db-connection-pool-exhausted"
        logs = first.log.read_text() + second.log.read_text()
        for secret in SECRETS.values():
            assert secret not in logs


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _wait_for(what: str, check: Any, timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    pytest.fail(f"not within {timeout}s: {what}")


def _metrics(service: Service) -> str:
    with urllib.request.urlopen(service.url("/metrics"), timeout=5) as answer:  # noqa: S310
        return str(answer.read().decode())


class TestEngineProcess:
    def test_engine_process_is_restarted_reloads_on_sighup_and_reports_in_metrics(
        self, tmp_path: Path
    ) -> None:
        service = Service(tmp_path / "data", tmp_path / "serve.log")
        try:
            [first] = [
                e["pid"] for e in _events(service.log) if e["event"] == "engine.process_started"
            ]
            os.kill(first, signal.SIGKILL)
            second = _wait_for(
                "a new engine process",
                lambda: [
                    e["pid"] for e in _events(service.log) if e["event"] == "engine.process_started"
                ][1:],
            )[0]
            assert second != first
            assert any(e["event"] == "engine.process_exited" for e in _events(service.log))

            service.call(
                "/api/v1/alertmanager",
                payload(alert(severity="page", cluster="eu-1", database="shop")),
                SECRETS["STORMWATCH_WEBHOOK_TOKEN"],
            )
            token = SECRETS["STORMWATCH_API_TOKEN"]
            [incident] = _wait_for(
                "the incident opened by the new engine process",
                lambda: service.call("/api/v1/incidents", token=token)["incidents"],
            )
            assert incident["rule"] == "db-connection-pool-exhausted"
            accepted = 'stormwatch_signals_received_total{outcome="accepted",source="alertmanager"}'
            metrics = _wait_for(  # the engine counts right after its commit
                "the engine process's counter in /metrics",
                lambda: next((t for t in [_metrics(service)] if f"{accepted} 1.0" in t), None),
            )
            assert 'stormwatch_webhooks_total{outcome="accepted"} 1.0' in metrics  # web process

            service.process.send_signal(signal.SIGHUP)  # the service passes it on to the engine
            _wait_for(
                "rules reloaded in both processes",
                lambda: [
                    e
                    for e in _events(service.log)
                    if e["event"] == "rules.reloaded" and e["trigger"] == "sighup"
                ][1:],
            )
        finally:
            assert service.stop() == 0


class TestOpenFiles:
    def test_the_service_raises_its_open_files_limit_and_warns_when_it_stays_low(
        self, tmp_path: Path, database_url: str
    ) -> None:
        """Started with 256 open files allowed (hard limit 2,048, or this machine's if lower),
        as a storm's connections would exhaust: both processes run with the hard limit, and
        the log says it is still few."""
        hard = min(2048, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        service = Service(
            tmp_path / "data",
            tmp_path / "serve.log",
            env={"STORMWATCH_DATABASE_URL": database_url},
            open_files=(256, hard),
        )
        try:
            [engine] = _wait_for("the engine process", lambda: _engine_pids(service))
            for pid in (service.process.pid, engine):
                assert resource.prlimit(pid, resource.RLIMIT_NOFILE) == (hard, hard)
            [warning] = [e for e in _events(service.log) if e["event"] == "service.few_open_files"]
            assert warning["limit"] == hard
        finally:
            assert service.stop() == 0


class TestSplitReplicas:
    async def test_intake_replica_stores_and_engine_replica_pages_and_resolves(
        self, tmp_path: Path, database_url: str, rules_dir: Path, pager: PageReceiver
    ) -> None:
        """Intake and engine as separate replicas on one database (deploy/README.md). The engine
        replica polls only every 10 minutes, so the page can only come this soon through the
        NOTIFY that the intake replica's commit sends."""

        async def replica(name: str, **env: str) -> Service:
            env["STORMWATCH_DATABASE_URL"] = database_url
            log = tmp_path / f"{name}.log"
            return await asyncio.to_thread(Service, tmp_path / name, log, rules_dir, env)

        engine = await replica("engine", STORMWATCH_ENGINE_INTERVAL="10m")
        try:
            intake = await replica("intake", STORMWATCH_RUN_ENGINE="false")
            try:
                await _webhook(intake, alert(cluster="eu-1"))
                [page] = await pager.wait_for(1, timeout=20)
                assert page["event"] == "triggered"
                assert page["incident"]["title"] == "Connection pool exhausted on eu-1"

                ended = T0 + timedelta(minutes=1)
                await _webhook(intake, alert(status="resolved", ends_at=ended, cluster="eu-1"))
                pages = await pager.wait_for(2, timeout=20)
                assert [p["event"] for p in pages] == ["triggered", "resolved"]
                token = SECRETS["STORMWATCH_API_TOKEN"]
                path = f"/api/v1/incidents/{page['incident']['id']}"
                detail = await asyncio.to_thread(intake.call, path, None, token)
                assert detail["state"] == "resolved"
                assert "engine.started" not in [e["event"] for e in _events(intake.log)]
            finally:
                assert await asyncio.to_thread(intake.stop) == 0
        finally:
            assert await asyncio.to_thread(engine.stop) == 0


def _engine_pids(service: Service) -> list[int]:
    return [e["pid"] for e in _events(service.log) if e["event"] == "engine.process_started"]


def _logged(service: Service, event: str) -> bool:
    return any(e["event"] == event for e in _events(service.log))


def _lowest_free_fd(pid: int) -> int:
    """The number ``pid``'s next file descriptor would get."""
    taken = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    return next(fd for fd in range(len(taken) + 1) if fd not in taken)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, dead and waiting to be reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _reload_success(service: Service) -> str:
    """The ``stormwatch_rules_last_reload_success`` sample /metrics shows."""
    return next(
        line.split()[1]
        for line in _metrics(service).splitlines()
        if line.startswith("stormwatch_rules_last_reload_success ")
    )


class TestEngineProcessLifecycle:
    """The engine process through an invalid edit, a crash, reloads while it starts, and the
    end of the service process. On the shared test PostgreSQL, so killing ``serve`` leaves no
    embedded database behind."""

    @pytest.fixture
    def rules(self, tmp_path: Path) -> Path:
        return Path(shutil.copytree(REPO / "rules", tmp_path / "rules"))

    @pytest.fixture
    async def service(
        self, tmp_path: Path, database_url: str, rules: Path
    ) -> AsyncIterator[Service]:
        env = {"STORMWATCH_DATABASE_URL": database_url, "STORMWATCH_RULES_WATCH_INTERVAL": "100ms"}
        service = await asyncio.to_thread(
            Service, tmp_path / "data", tmp_path / "serve.log", rules, env
        )
        yield service
        if service.process.poll() is None:
            assert await asyncio.to_thread(service.stop) == 0
        for pid in _engine_pids(service):  # whatever the outcome, leave no engine running
            if _running(pid):
                os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _break(rules: Path, service: Service) -> str:
        """Make the rules directory invalid; wait until both processes rejected it."""
        valid = (rules / "paging.yml").read_text()
        (rules / "paging.yml").write_text("rules: [{name: broken")
        token = SECRETS["STORMWATCH_API_TOKEN"]
        _wait_for(
            "the rejected edit in the rules status",
            lambda: not service.call("/api/v1/rules/status", token=token)["last_reload"]["success"],
        )
        _wait_for(
            "the rejected edit in both processes' logs",
            lambda: [e for e in _events(service.log) if e["event"] == "rules.reload_failed"][1:],
        )
        return valid

    async def test_a_replacement_engine_runs_the_last_valid_rules_while_the_directory_is_invalid(
        self, service: Service, rules: Path
    ) -> None:
        await asyncio.to_thread(self._break, rules, service)
        [first] = _engine_pids(service)
        os.kill(first, signal.SIGKILL)
        await asyncio.to_thread(
            _wait_for, "a new engine process", lambda: _engine_pids(service)[1:]
        )

        await _webhook(service, alert(severity="page", cluster="eu-1", database="shop"))
        token = SECRETS["STORMWATCH_API_TOKEN"]
        [incident] = await asyncio.to_thread(
            _wait_for,
            "the incident opened by the new engine process",
            lambda: service.call("/api/v1/incidents", token=token)["incidents"],
        )
        assert incident["rule"] == "db-connection-pool-exhausted"
        assert any(
            e["event"] == "rules.reload_failed" and e["trigger"] == "engine_restart"
            for e in _events(service.log)
        )
        assert await asyncio.to_thread(_reload_success, service) == "0.0"

    async def test_metrics_forget_a_dead_engine_process(
        self, service: Service, rules: Path
    ) -> None:
        valid = await asyncio.to_thread(self._break, rules, service)
        [first] = _engine_pids(service)
        os.kill(first, signal.SIGKILL)  # its gauge said the last reload failed
        (rules / "paging.yml").write_text(valid)
        await asyncio.to_thread(
            _wait_for,
            "the reload-success gauge of the live processes only",
            lambda: _reload_success(service) == "1.0",
        )

    async def test_the_engine_process_stands_back_for_webhook_intake(
        self, service: Service
    ) -> None:
        [engine] = _engine_pids(service)
        parent = service.process.pid
        wanted = os.getpriority(os.PRIO_PROCESS, parent) + 5
        await asyncio.to_thread(
            _wait_for,
            "the engine process at nice 5 below the service",
            lambda: os.getpriority(os.PRIO_PROCESS, engine) == wanted,
        )
        engines, parents = await asyncio.to_thread(
            lambda: [session_group_nice(Path(f"/proc/{pid}/autogroup")) for pid in (engine, parent)]
        )
        if parents is not None:  # its own session weighs 5 steps less too
            assert engines == min(parents + 5, 19)

    async def test_the_database_tells_the_processes_connections_apart(
        self, service: Service, database_url: str
    ) -> None:
        """What a DBA sees in ``pg_stat_activity``: every connection of the service named by
        the process that holds it."""
        watching = await asyncpg.connect(database_url)
        try:
            for _ in range(100):
                names = {
                    row["application_name"]
                    for row in await watching.fetch(
                        """SELECT application_name FROM pg_stat_activity
                           WHERE datname = current_database() AND pid <> pg_backend_pid()"""
                    )
                }
                if "stormwatch-engine" in names:
                    break
                await asyncio.sleep(0.1)
        finally:
            await watching.close()
        assert names == {"stormwatch-web", "stormwatch-engine"}

    @pytest.mark.parametrize(
        ("text", "nice"),
        [("/autogroup-12 nice 5\n", 5), ("/autogroup-3 nice -2\n", -2), ("", None), (None, None)],
        ids=["session-group", "negative", "cpu-cgroup-instead", "no-autogroup-kernel"],
    )
    def test_the_session_group_is_read_only_where_the_kernel_schedules_by_it(
        self, tmp_path: Path, text: str | None, nice: int | None
    ) -> None:
        path = tmp_path / "autogroup"
        if text is not None:
            path.write_text(text)
        assert session_group_nice(path) == nice

    async def test_reloads_while_the_engine_process_starts_do_not_kill_it(
        self, service: Service
    ) -> None:
        [first] = _engine_pids(service)
        os.kill(first, signal.SIGKILL)
        token = SECRETS["STORMWATCH_API_TOKEN"]

        def reloaded_until_replaced() -> list[int]:
            # Every reload reaches a replacement still starting if it is passed on too early.
            service.call("/api/v1/rules/reload", {}, token)
            return _engine_pids(service)[1:]

        await asyncio.to_thread(_wait_for, "a new engine process", reloaded_until_replaced)

    async def test_a_restart_the_system_refuses_is_tried_again(self, service: Service) -> None:
        [first] = _engine_pids(service)
        serve = service.process.pid
        limits = resource.prlimit(serve, resource.RLIMIT_NOFILE)
        os.kill(first, signal.SIGKILL)
        await asyncio.to_thread(
            _wait_for, "the exit noticed", lambda: _logged(service, "engine.process_exited")
        )
        # No file descriptor left for the new child's pipes, as fork fails under memory pressure.
        resource.prlimit(serve, resource.RLIMIT_NOFILE, (_lowest_free_fd(serve), limits[1]))
        try:
            await asyncio.to_thread(
                _wait_for,
                "a restart refused",
                lambda: _logged(service, "engine.process_restart_failed"),
            )
        finally:
            resource.prlimit(serve, resource.RLIMIT_NOFILE, limits)
        await asyncio.to_thread(
            _wait_for, "a new engine process", lambda: _engine_pids(service)[1:]
        )

    async def test_the_engine_process_ends_when_the_service_is_killed(
        self, service: Service
    ) -> None:
        [engine] = _engine_pids(service)
        service.process.kill()
        await asyncio.to_thread(service.process.wait)
        await asyncio.to_thread(
            _wait_for, "the engine process gone", lambda: not _running(engine), 40
        )


async def _webhook(service: Service, *alerts: dict[str, Any]) -> None:
    token = SECRETS["STORMWATCH_WEBHOOK_TOKEN"]
    answer = await asyncio.to_thread(service.call, "/api/v1/alertmanager", payload(*alerts), token)
    assert answer == {"status": "accepted", "alerts": len(alerts)}


def _json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of a log, each parsed as the one JSON object it must be."""
    parsed = []
    for line in log.read_text().splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line in {log.name}: {line}")
    return parsed


def _readiness(service: Service) -> tuple[int, dict[str, Any]]:
    """The status and body /readyz answers."""
    try:
        with urllib.request.urlopen(service.url("/readyz"), timeout=10) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


class TestDatabaseOutage:
    async def test_logs_stay_json_and_readiness_names_the_database(
        self, tmp_path: Path, database_url: str
    ) -> None:
        """Both processes lose their connections and cannot reconnect for a while: asyncpg
        logs its failed reconnections with tracebacks, and every line is still one JSON
        object; meanwhile /readyz says which part is failing."""
        proxy = await PostgresProxy(database_url).start()
        env = {"STORMWATCH_DATABASE_URL": proxy.url, "STORMWATCH_LOG_FORMAT": "json"}
        log = tmp_path / "serve.log"
        try:
            service = await asyncio.to_thread(Service, tmp_path / "data", log, REPO / "rules", env)
            try:
                status, body = await asyncio.to_thread(_readiness, service)
                assert body["checks"] == {
                    "database": {"state": "ok"},
                    "engine": {"state": "ok"},
                    "rules": {"state": "ok"},
                }
                await proxy.cut()
                await asyncio.to_thread(
                    _wait_for,
                    "asyncpg's failed reconnection",
                    lambda: "asyncpg.pool" in log.read_text(),
                )
                status, body = await asyncio.to_thread(_readiness, service)
                assert (status, body["status"]) == (503, "database unreachable")
                assert body["checks"]["database"]["state"] == "failing"
                await proxy.restore()
                await asyncio.to_thread(service.wait_ready)
                await _webhook(service, alert(severity="page", cluster="eu-1", database="shop"))
            finally:
                assert await asyncio.to_thread(service.stop) == 0
        finally:
            await proxy.stop()
        lines = _json_lines(log)
        assert any(
            line.get("logger") == "asyncpg.pool" and "Traceback" in line["exception"]
            for line in lines
        )
        assert lines[-1]["event"] == "service.stopped"
