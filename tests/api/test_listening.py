"""The sockets ``stormwatch serve`` listens on: several queues on one port, so a storm's burst of
connections waits to be accepted instead of being dropped, and a port in use still refused."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from detector.service.serve import LISTEN_QUEUES, listening_sockets

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreads on Linux")
CLIENTS = 64


@pytest.fixture
def port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def listening(port: int) -> Iterator[list[socket.socket]]:
    sockets = listening_sockets("127.0.0.1", port)
    yield sockets
    for opened in sockets:
        opened.close()


def accepted(listener: socket.socket) -> int:
    """Connections waiting in ``listener``'s queue, accepted and closed."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


def test_connections_spread_over_every_queue_of_the_port(
    port: int, listening: list[socket.socket]
) -> None:
    assert len(listening) == LISTEN_QUEUES
    assert {listener.getsockname() for listener in listening} == {("127.0.0.1", port)}
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(CLIENTS)]
    try:
        waiting = [accepted(listener) for listener in listening]
    finally:
        for client in clients:
            client.close()
    assert sum(waiting) == CLIENTS
    assert sum(1 for count in waiting if count) > 1, waiting


def test_a_port_in_use_is_refused(port: int, listening: list[socket.socket]) -> None:
    with pytest.raises(OSError, match="in use"):
        listening_sockets("127.0.0.1", port)


def test_a_port_another_program_listens_on_is_refused(port: int) -> None:
    with socket.create_server(("127.0.0.1", port)), pytest.raises(OSError, match="in use"):
        listening_sockets("127.0.0.1", port)
