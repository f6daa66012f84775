"""A fake Bored API over real HTTP, for tests: both server shapes, scripted one-shot faults, a request log.

* `shape="appbrewery"` (the maintained mirror): `GET /random` -> one object; `GET /filter?type=&participants=`
  -> a JSON list of matches, no match -> HTTP 404 `{"error": "No activities found with the specified filters"}`
  (or `[]` with `no_match="empty"`); `GET /activity/{key}` -> one served object; other paths -> Express's 404.
* `shape="original"` (self-hosted boredapi.com code): only `GET /api/activity?type=&participants=`, numeric
  `accessibility`, every error as HTTP 200 `{"error": ...}`; any non-`/api` path answers the web app's
  `index.html` with HTTP 200, like the real server's catch-all route (`spa_fallback=False`: a plain 404).

Every activity served is UNIQUE (its key and text carry a counter) and every request is recorded with what
it was served, so a test can prove which activity a run received. Faults (`add_faults`) are a FIFO queue:
each request takes the next one, if any, instead of the normal answer.

Bind to `0.0.0.0` (`FakeBoredApi(host="0.0.0.0")`) for flows running in containers, which then use
`url_for_host("host.docker.internal")`; tests on this machine use `.url` (127.0.0.1).
"""

from __future__ import annotations

import email.utils
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import pytest

from flows.bored_api import ACTIVITY_TYPES  # the dataset's types: the fake serves all of them
from tests.support.background_http import BackgroundHttpServer

MIRROR_NO_MATCH = {"error": "No activities found with the specified filters"}
ORIGINAL_NO_MATCH = {"error": "No activity found with the specified parameters"}
SPA_PAGE = "<!DOCTYPE html><html><head><title>Bored API</title></head><body><div id=app></div></body></html>"

Shape = Literal["appbrewery", "original"]


@dataclass(frozen=True)
class Fault:
    """One scripted answer. `status=None` means: after `delay`, answer normally (a slow but good response)."""

    status: int | None = 500
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0
    retry_after_date_in: float | None = None  # send `Retry-After: <HTTP date this many seconds ahead>`

    @classmethod
    def http(cls, status: int, body: object = None, headers: Mapping[str, str] | None = None) -> Fault:
        text = json.dumps(body if body is not None else {"error": f"fake HTTP {status}"})
        return cls(status=status, body=text, headers=dict(headers or {}))

    @classmethod
    def rate_limited(cls, retry_after: str | None = None) -> Fault:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls.http(429, {"error": "Too many requests, please try again later."}, headers)

    @classmethod
    def rate_limited_until(cls, seconds_ahead: float) -> Fault:
        """429 with `Retry-After` as an HTTP date, computed when the answer is sent."""
        return replace(cls.rate_limited(), retry_after_date_in=seconds_ahead)

    @classmethod
    def json_body(cls, payload: object, status: int = 200) -> Fault:
        return cls(status=status, body=json.dumps(payload))

    @classmethod
    def not_json(cls, text: str, status: int = 200, content_type: str = "text/html") -> Fault:
        return cls(status=status, body=text, content_type=content_type)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Answer normally, but only after `seconds` (longer than the client's read timeout: a timeout)."""
        return cls(status=None, delay=seconds)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    status: int = 0
    served: list[dict[str, Any]] = field(default_factory=list)  # activities in the answer
    fault: Fault | None = None
    at: float = field(default_factory=time.monotonic)


class FakeBoredApi(BackgroundHttpServer):
    thread_name = "fake-bored-api"
    poll_seconds = 0.05

    def __init__(
        self,
        host: str = "127.0.0.1",
        shape: Shape = "appbrewery",
        *,
        no_match: Literal["error", "empty"] = "error",
        spa_fallback: bool = True,
    ) -> None:
        super().__init__()
        self.host = host
        # Read per request, so a test may change them while the server runs.
        self.shape: Shape = shape
        self.no_match = no_match
        self.spa_fallback = spa_fallback
        self.types: set[str] = set(ACTIVITY_TYPES)  # types that have activities
        self.max_participants = 8  # filters asking for more match nothing
        self.filter_size = 3  # how many matches /filter lists
        self.with_links = True
        self.requests: list[RecordedRequest] = []
        self._faults: deque[Fault] = deque()
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    # --- lifecycle (start, stop, `with`, port: BackgroundHttpServer's) ----------------------------------

    def make_server(self) -> ThreadingHTTPServer:
        return ThreadingHTTPServer((self.host, 0), type("Handler", (_Handler,), {"api": self}))

    @property
    def url(self) -> str:
        return self.url_for_host("127.0.0.1")

    def url_for_host(self, host: str) -> str:
        """The base URL as seen from elsewhere, e.g. `host.docker.internal` from a container."""
        return f"http://{host}:{self.port}"

    # --- scripting and inspection ----------------------------------------------------------------------

    def add_faults(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def served(self) -> list[dict[str, Any]]:
        """Every activity served so far, in order."""
        with self._lock:
            return [activity for r in self.requests for activity in r.served]

    # --- behaviour ---------------------------------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def new_activity(
        self, activity_type: str | None = None, participants: int | None = None
    ) -> dict[str, Any]:
        n = next(self._counter)
        activity_type = activity_type or ACTIVITY_TYPES[n % len(ACTIVITY_TYPES)]
        participants = participants or n % 4 + 1
        key = str(9_000_000 + n)
        link = f"https://example.org/activities/{key}" if self.with_links else ""
        score = (n % 4) * 0.25
        price = (n % 5) / 10
        if self.shape == "appbrewery":
            return {
                "activity": f"Fake activity {n} for {activity_type}",
                "availability": score,
                "type": activity_type,
                "participants": participants,
                "price": price,
                "accessibility": ("Few to no challenges", "Minor challenges", "Major challenges")[n % 3],
                "duration": ("minutes", "hours", "days", "weeks")[n % 4],
                "kidFriendly": n % 2 == 0,
                "link": link,
                "key": key,
            }
        original: dict[str, Any] = {
            "activity": f"Fake activity {n} for {activity_type}",
            "type": activity_type,
            "participants": participants,
            "price": price,
            "key": key,
            "accessibility": score,
        }
        if link:  # the original server leaves an empty link out
            original["link"] = link
        return original

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, str, str, list[dict[str, Any]]]:
        """(status, content type, body, activities served) for a request without a fault."""
        if self.shape == "original":
            return self._answer_original(path, query)
        return self._answer_mirror(path, query)

    def _matches(self, query: dict[str, str]) -> tuple[bool, str | None, int | None]:
        activity_type = query.get("type") or None
        participants = int(query["participants"]) if query.get("participants") else None
        matches = (activity_type is None or activity_type in self.types) and (
            participants is None or 1 <= participants <= self.max_participants
        )
        return matches, activity_type, participants

    def _answer_mirror(self, path: str, query: dict[str, str]) -> tuple[int, str, str, list[dict[str, Any]]]:
        if path == "/random":
            activity = self.new_activity()
            return 200, "application/json", json.dumps(activity), [activity]
        if path == "/filter":
            try:
                matches, activity_type, participants = self._matches(query)
            except ValueError:
                return 400, "application/json", json.dumps({"error": "Invalid participants"}), []
            if not matches:
                if self.no_match == "empty":
                    return 200, "application/json", "[]", []
                return 404, "application/json", json.dumps(MIRROR_NO_MATCH), []
            listed = [self.new_activity(activity_type, participants) for _ in range(self.filter_size)]
            return 200, "application/json", json.dumps(listed), listed
        if path.startswith("/activity/"):
            key = path.removeprefix("/activity/")
            found = [a for a in self.served() if a["key"] == key]
            if found:
                return 200, "application/json", json.dumps(found[0]), found[:1]
            return (
                404,
                "application/json",
                json.dumps({"error": "No activity found with the specified key"}),
                [],
            )
        return 404, "text/html", f"<pre>Cannot GET {path}</pre>", []

    def _answer_original(
        self, path: str, query: dict[str, str]
    ) -> tuple[int, str, str, list[dict[str, Any]]]:
        if path in ("/api/activity", "/api/activity/", "/api/v1/activity", "/api/v1/activity/"):
            try:
                matches, activity_type, participants = self._matches(query)
            except ValueError:
                error = {"error": "Failed to query due to error in arguments"}
                return 200, "application/json", json.dumps(error), []
            if not matches:
                return 200, "application/json", json.dumps(ORIGINAL_NO_MATCH), []
            activity = self.new_activity(activity_type, participants)
            return 200, "application/json", json.dumps(activity), [activity]
        if path == "/api":
            return 200, "application/json", json.dumps({"message": "Bored API"}), []
        if path.startswith("/api/"):
            return 200, "application/json", json.dumps({"error": "Endpoint not found"}), []
        if self.spa_fallback:
            return 200, "text/html; charset=UTF-8", SPA_PAGE, []
        return 404, "text/html", f"<pre>Cannot GET {path}</pre>", []


class _Handler(BaseHTTPRequestHandler):
    api: FakeBoredApi  # set on the subclass made by FakeBoredApi.start()
    server_version = "FakeBoredApi/1"

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        fault = self.api._next_fault()
        record = RecordedRequest(method="GET", path=parts.path, query=query, fault=fault)
        self.api._record(record)  # at arrival, so a stalled request keeps its place in the log
        headers: Mapping[str, str] = {}
        served: list[dict[str, Any]] = []
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            status, content_type, body = fault.status, fault.content_type, fault.body
            headers = dict(fault.headers)
            if fault.retry_after_date_in is not None:
                when = time.time() + fault.retry_after_date_in
                headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
        else:
            status, content_type, body, served = self.api.answer(parts.path, query)
        record.status, record.served = status, served
        payload = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left; that is the point of a stall

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is `FakeBoredApi.requests`


@pytest.fixture
def fake_bored_api() -> Iterator[FakeBoredApi]:
    """A fresh fake Bored API (mirror shape) on 127.0.0.1 and a free port, for one test."""
    with FakeBoredApi() as server:
        yield server
