import socket

import httpx
import pytest

from tests.support.prefect_server import PrefectServer, ReservedPort


def test_server_answers_and_survives_restart(prefect_server: PrefectServer) -> None:
    flow = (
        httpx.post(f"{prefect_server.api_url}/flows/", json={"name": "fixture-check"})
        .raise_for_status()
        .json()
    )
    prefect_server.restart()
    again = httpx.get(f"{prefect_server.api_url}/flows/{flow['id']}").raise_for_status().json()
    assert again["name"] == "fixture-check"


def test_a_reserved_port_refuses_connections_and_no_one_else_can_bind_it() -> None:
    """What the server fixture relies on between choosing its port and listening on it, and what the tests of
    an unreachable server rely on for an address that refuses connections."""
    with ReservedPort() as reserved:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", reserved.port), timeout=5).close()
        with socket.socket() as other, pytest.raises(OSError, match="Address already in use"):
            other.bind(("127.0.0.1", reserved.port))
        # A server that binds as uvicorn does (SO_REUSEADDR) takes it over.
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("0.0.0.0", reserved.port))
            server.listen()
            socket.create_connection(("127.0.0.1", reserved.port), timeout=5).close()
