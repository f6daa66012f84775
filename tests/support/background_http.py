"""An HTTP server for tests that serves on a daemon thread: the lifecycle FakeBoredApi and FaultProxy share."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Self


class BackgroundHttpServer:
    """`start()` binds the server `make_server()` returns and serves it on a daemon thread; `stop()` shuts it down
    and closes its socket; `with` does both. `port` is the port it is bound to."""

    thread_name = "test-http-server"
    poll_seconds = 0.5  # how often the serving thread checks for stop()

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def make_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        server = self._server = self.make_server()
        server.daemon_threads = True  # a stalled answer must not block stop()
        self._thread = threading.Thread(
            target=server.serve_forever, args=(self.poll_seconds,), name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; call start() first")
        return int(self._server.server_address[1])
