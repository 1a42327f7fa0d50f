"""New connections taken in by lane, on real sockets: a storm waiting to be accepted does not hold
up another rule's alert or a readiness probe that came after it, and nothing is lost."""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from detector.service.admission import ADMITTED_PER_TURN, Admission, FairSite

STORM = 300


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, list[str]]]:
    """A server through an Admission on a listening socket of its own; yields its port and the
    requests it handled, in the order it began handling them."""
    handled: list[str] = []

    async def webhook(request: web.Request) -> web.Response:
        handled.append(request.headers["X-Sent"])
        await request.read()
        return web.json_response({"status": "accepted"})

    async def readyz(request: web.Request) -> web.Response:
        handled.append(request.headers["X-Sent"])
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_post("/api/v1/alertmanager", webhook)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app)
    await runner.setup()
    assert runner.server is not None
    listener = socket.create_server(("127.0.0.1", 0), backlog=2 * STORM)
    await FairSite(runner, listener, Admission(runner.server, asyncio.get_running_loop())).start()
    yield listener.getsockname()[1], handled
    await runner.cleanup()


def request(sent: str, alertname: str | None) -> bytes:
    if alertname is None:
        head = f"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Sent: {sent}\r\nConnection: close"
        return f"{head}\r\n\r\n".encode()
    body = json.dumps({"status": "firing", "alerts": [{"labels": {"alertname": alertname}}]})
    return (
        f"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nX-Sent: {sent}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n{body}"
    ).encode()


def sent_on_a_new_connection(port: int, data: bytes) -> socket.socket:
    """Connected and sent without the event loop turning: it waits in the kernel's queue."""
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.sendall(data)
    client.setblocking(False)
    return client


async def answer(client: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    received = b""
    with client:
        while chunk := await asyncio.wait_for(loop.sock_recv(client, 65536), 10):
            received += chunk
    return received


async def test_another_rules_alert_and_a_probe_overtake_a_storm_waiting_to_be_accepted(
    served: tuple[int, list[str]],
) -> None:
    port, handled = served
    clients = [
        sent_on_a_new_connection(port, request(f"storm-{n}", "PgBouncerPoolSaturated"))
        for n in range(STORM)
    ]
    clients.append(sent_on_a_new_connection(port, request("payment", "PaymentGatewayErrorRate")))
    clients.append(sent_on_a_new_connection(port, request("probe", None)))

    answers = await asyncio.gather(*(answer(client) for client in clients))

    assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers)
    assert sorted(handled) == sorted([f"storm-{n}" for n in range(STORM)] + ["payment", "probe"])
    # Accepted in arrival order, both would have come after all 300 of the storm.
    assert handled.index("payment") < 2 * ADMITTED_PER_TURN, handled[:10]
    assert handled.index("probe") < 2 * ADMITTED_PER_TURN, handled[:10]


async def test_a_connection_whose_request_comes_late_is_still_served(
    served: tuple[int, list[str]],
) -> None:
    port, handled = served
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.setblocking(False)
    await asyncio.sleep(0.05)  # connected, nothing sent yet
    await asyncio.get_running_loop().sock_sendall(client, request("late", "Late"))
    assert (await answer(client)).startswith(b"HTTP/1.1 200 ")
    assert handled == ["late"]


@pytest.mark.skipif(sys.platform != "linux", reason="lowers the open-files limit the Linux way")
async def test_out_of_file_descriptors_accepting_pauses_and_the_connections_wait(
    served: tuple[int, list[str]],
) -> None:
    port, handled = served
    clients = [sent_on_a_new_connection(port, request(f"w-{n}", "Waiting")) for n in range(5)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with socket.socket() as probe:
        lowest_free = probe.fileno()
    with capture_logs() as logs:
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no new descriptor
        try:
            async with asyncio.timeout(5):
                while not any(e["event"] == "intake.accept_paused" for e in logs):  # noqa: ASYNC110 - the log is the outcome
                    await asyncio.sleep(0.01)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert handled == []
        answers = await asyncio.gather(*(answer(client) for client in clients))
    assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers)
    assert sorted(handled) == [f"w-{n}" for n in range(5)]
    paused = [e for e in logs if e["event"] == "intake.accept_paused"]
    assert paused[0]["error"] == "Too many open files", paused
