"""A small threaded HTTP reverse proxy for tests: put it in front of a real server to inject faults and to
record every request that passes.

    with FaultProxy(server.api_url) as proxy:
        proxy.inject(Fault.UNAVAILABLE, count=2)                   # the next 2 requests get 503
        proxy.inject(Fault.RATE_LIMITED, retry_after="1")          # then one 429 with Retry-After: 1
        ...point the client at proxy.api_url...
        assert [r.method for r in proxy.applied_writes()] == ["POST"]

Faults are served first-in first-out to the requests they match; a request no fault matches is forwarded.
Every request is recorded (method, path, headers, JSON body, the fault served or the upstream status), so
tests can also prove what was NOT sent, e.g. that a no-op `pulumi up` writes nothing.

A SQLite-backed Prefect server answers 503 when its database is busy, and the providers send such a request
again, so the raw record of an operation may hold the same request twice. Tests that pin the exact requests
of an operation read `applied_requests()` / `applied_writes()`: what the server carried out, with the busy
answers dropped and their resends bounded.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from infra.prefect.client import DEFAULT_MAX_ATTEMPTS
from tests.support.background_http import BackgroundHttpServer
from tests.support.prefect_server import BUSY_STATUSES

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
     "transfer-encoding", "upgrade", "content-length", "date", "server"}
)  # fmt: skip
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Fault(Enum):
    UNAVAILABLE = 503
    RATE_LIMITED = 429
    BAD_GATEWAY = 502
    GATEWAY_TIMEOUT = 504
    RESET = "reset"  # close the connection with a TCP RST before answering
    STALL = "stall"  # accept the request, never answer (until stall_seconds), then reset
    LOST_ANSWER = "lost-answer"  # forward it (the server carries it out), then reset instead of answering


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None  # None: forever
    retry_after: str | None
    methods: frozenset[str] | None
    path_contains: str | None
    stall_seconds: float

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # decoded JSON, raw text, or None
    fault: Fault | None
    status: int | None  # the status the proxy answered with (None for reset/stall/upstream failure)
    at: float  # time.monotonic() when the request arrived

    @property
    def is_write(self) -> bool:
        """POST/PUT/PATCH/DELETE, except Prefect's read-only `POST …/filter` queries."""
        return self.method in WRITE_METHODS and not self.path.rstrip("/").endswith("/filter")

    @property
    def refused(self) -> bool:
        """Not carried out: the proxy served a fault instead of forwarding it, or the server answered busy."""
        return self.fault is not None or self.status in BUSY_STATUSES


def applied(records: Iterable[RecordedRequest], *, max_resends: int) -> list[RecordedRequest]:
    """The records the server carried out, in order. Refused ones are dropped, but each must have been followed
    by a resend of the same request, and no request may be refused more than `max_resends` times in a row: a
    client that gave up, or one that kept sending, fails here."""
    records = list(records)
    carried_out: list[RecordedRequest] = []
    streaks: dict[tuple[str, str, str], int] = {}
    for record in records:
        key = (record.method, record.path, json.dumps(record.body, sort_keys=True))
        if not record.refused:
            streaks.pop(key, None)
            carried_out.append(record)
            continue
        streaks[key] = streaks.get(key, 0) + 1
        assert streaks[key] <= max_resends, (
            f"{record.method} {record.path} was refused {streaks[key]} times in a row and sent again each time "
            f"(at most {max_resends} resends expected)"
        )
    unanswered = [key[:2] for key in streaks]
    assert not unanswered, f"refused and never sent again: {unanswered}"
    return carried_out


class FaultProxy(BackgroundHttpServer):
    """Listens on 127.0.0.1:<free port>; forwards to the scheme/host/port of `upstream_url`, keeping paths."""

    thread_name = "fault-proxy"

    def __init__(self, upstream_url: str, *, port: int = 0, upstream_timeout: float = 60.0) -> None:
        super().__init__()
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL: {upstream_url!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_path = parts.path.rstrip("/")
        self.upstream_timeout = upstream_timeout
        self._port = port
        self._rules: list[_Rule] = []
        self._requests: list[RecordedRequest] = []
        self._cleared_at = 0.0  # a request that arrived before the last clear_requests() is not recorded
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # -- lifecycle (start, `with`, port: BackgroundHttpServer's) --------------------------------------

    def make_server(self) -> ThreadingHTTPServer:
        return _QuietServer(("127.0.0.1", self._port), _make_handler(self))

    def stop(self) -> None:
        self._stopping.set()  # releases stalled requests
        super().stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The upstream URL (with its path, e.g. `/api`) as seen through the proxy."""
        return self.base_url + self.upstream_path

    # -- faults ------------------------------------------------------------------------------------

    def inject(
        self,
        fault: Fault,
        count: int | None = 1,
        *,
        retry_after: str | None = None,
        methods: Iterable[str] | None = None,
        path_contains: str | None = None,
        stall_seconds: float = 30.0,
    ) -> None:
        """Serve `fault` to the next `count` matching requests (`count=None`: all of them, until cleared)."""
        rule = _Rule(
            fault=fault,
            remaining=count,
            retry_after=retry_after,
            methods=frozenset(m.upper() for m in methods) if methods is not None else None,
            path_contains=path_contains,
            stall_seconds=stall_seconds,
        )
        with self._lock:
            self._rules.append(rule)

    def clear_faults(self) -> None:
        with self._lock:
            self._rules.clear()

    def _take_fault(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining <= 0:
                            self._rules.remove(rule)
                    return rule
        return None

    # -- records -----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.is_write]

    def applied_requests(self, *, max_resends: int = DEFAULT_MAX_ATTEMPTS - 1) -> list[RecordedRequest]:
        """Every request the server carried out (see `applied`): the providers' default retry policy resends a
        refused request at most DEFAULT_MAX_ATTEMPTS - 1 times."""
        return applied(self.requests, max_resends=max_resends)

    def applied_writes(self, *, max_resends: int = DEFAULT_MAX_ATTEMPTS - 1) -> list[RecordedRequest]:
        return [r for r in self.applied_requests(max_resends=max_resends) if r.is_write]

    def faults_served(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.fault is not None]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self._cleared_at = time.monotonic()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            if request.at >= self._cleared_at:  # not a late answer to a request an earlier test made
                self._requests.append(request)


def _decode(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


def _make_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like a real server: clients reuse pooled connections

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            arrived = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            method, path = self.command, self.path
            headers = {k: v for k, v in self.headers.items()}
            rule = proxy._take_fault(method, path)

            def record(status: int | None, fault: Fault | None = None) -> None:
                proxy._record(RecordedRequest(method, path, headers, _decode(body), fault, status, arrived))

            if rule is not None:
                if isinstance(rule.fault.value, int):
                    record(
                        rule.fault.value, rule.fault
                    )  # before the answer: a caller never outruns the record
                    self._send_status(rule.fault.value, rule.retry_after)
                    return
                if rule.fault is not Fault.LOST_ANSWER:
                    record(None, rule.fault)
                    if rule.fault is Fault.STALL:
                        proxy._stopping.wait(rule.stall_seconds)
                    self._reset()
                    return

            try:
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout
                )
                forwarded = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                forwarded["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
                if body:
                    forwarded["Content-Length"] = str(len(body))
                upstream.request(method, path, body=body or None, headers=forwarded)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
            except OSError:
                record(None)
                self._reset()
                return
            if rule is not None:  # LOST_ANSWER: carried out upstream, the answer never reaches the client
                record(None, rule.fault)
                self._reset()
                return
            record(response.status)  # before the answer, as above
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def _send_status(self, status: int, retry_after: str | None) -> None:
            payload = json.dumps({"detail": f"fault injected by test proxy ({status})"}).encode()
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # resets and client disconnects are the point of this proxy
