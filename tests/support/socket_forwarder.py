"""A second address for the local Docker daemon: a unix socket that forwards every connection to the daemon's
socket and records the HTTP requests that pass (method and path), so a test can point `docker:host` or
DOCKER_HOST elsewhere than the default socket and see which calls really went there."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from pathlib import Path
from types import TracebackType

REQUEST_LINE = re.compile(rb"(GET|POST|PUT|DELETE|HEAD) (/[^ \r\n]*) HTTP/1\.[01]\r\n")


class UnixSocketForwarder:
    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.target = target
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def paths(self, method: str) -> list[str]:
        with self._lock:
            return [path for m, path in self.requests if m == method]

    def __enter__(self) -> UnixSocketForwarder:
        self._server.bind(str(self.path))
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.close()
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if record:
                    with self._lock:
                        self.requests += [(m.decode(), p.decode()) for m, p in REQUEST_LINE.findall(chunk)]
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
