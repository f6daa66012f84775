"""A webhook receiver for tests: the alert destination, on the host. The Prefect server (not the test) POSTs to it.

Every request is recorded with its path, so one receiver serves several webhook URLs (`url_for(path)`), and a
test can ask what reached each of them. Answers 204.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.background_http import BackgroundHttpServer


@dataclass(frozen=True)
class Delivery:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver(BackgroundHttpServer):
    thread_name = "webhook-receiver"

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host
        self._deliveries: list[Delivery] = []
        self._arrived = threading.Condition()

    def make_server(self) -> ThreadingHTTPServer:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _receive(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                delivery = Delivery(self.command, self.path, dict(self.headers.items()), body)
                with (
                    receiver._arrived
                ):  # before the answer: a count read after the sender is done includes it
                    receiver._deliveries.append(delivery)
                    receiver._arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            do_POST = do_PUT = do_GET = _receive

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return ThreadingHTTPServer((self.host, 0), Handler)

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def deliveries(self, path: str | None = None) -> list[Delivery]:
        with self._arrived:
            return [d for d in self._deliveries if path is None or d.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 120) -> list[Delivery]:
        """Until at least `count` deliveries (to `path`) have arrived; all of them. The timeout is a guard."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [d for d in self._deliveries if path is None or d.path == path]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    break
                self._arrived.wait(remaining)
        if len(found) < count:
            raise AssertionError(
                f"{len(found)} of {count} webhook deliveries to {path or 'any path'} after {timeout}s"
            )
        return found
