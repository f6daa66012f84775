"""A second real Prefect server that requires basic auth, for the tests of credentials and their errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.support.prefect_server import PrefectServer


@contextlib.contextmanager
def basic_auth_server(home: Path, auth_string: str) -> Iterator[PrefectServer]:
    """A started server that accepts only `auth_string` (`user:pass`) as basic auth; stopped at the end."""
    server = PrefectServer(home=home, extra_env={"PREFECT_SERVER_API_AUTH_STRING": auth_string}).start()
    try:
        yield server
    finally:
        server.stop()
