"""Bored API client: the typed `Activity`, shape detection, and an httpx fetch with a bounded retry policy.

Two server shapes exist and both are normalized into `Activity`:

* the maintained App Brewery mirror (https://bored-api.appbrewery.com): `GET /random` answers one object,
  `GET /filter?type=&participants=` answers a LIST (HTTP 404 + `{"error": ...}` when nothing matches);
  objects carry `availability` (0-1 number), `accessibility` as a text label, `duration`, `kidFriendly`.
* the original boredapi.com code (github.com/drewthoennes/Bored-API), which users self-host:
  `GET /api/activity?type=&participants=` answers one object with `accessibility` as a 0-1 number and no
  `availability`/`duration`/`kidFriendly`; every error, "no match" included, is HTTP 200 + `{"error": ...}`.

Only prefect's own dependencies (httpx) are imported: this module ships in the flow's Docker image.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import httpx

DEFAULT_API_URL: Final = "https://bored-api.appbrewery.com"

# The nine activity types of the Bored API dataset (the mirror's OpenAPI lists seven, its data has all nine).
ACTIVITY_TYPES: Final = (
    "education",
    "recreational",
    "social",
    "charity",
    "cooking",
    "relaxation",
    "busywork",
    "diy",
    "music",
)

# --- Retry policy -----------------------------------------------------------------------------------------
# Read at call time (tests monkeypatch them). Worst case for one fetch, every attempt hanging to its timeouts
# and every wait at its cap (see `worst_case_seconds()`, asserted < 120 s by the tests):
#   MAX_ATTEMPTS x (connect 5 + write 5 + read 10) + MAX_TOTAL_WAIT_SECONDS = 4 x 20 + 35 = 115 s
# The shape probe (`/api/activity` after the mirror's path) is one of the MAX_ATTEMPTS, not an extra one.
# `pool` is not counted: each fetch opens its own client, so no request waits for a pooled connection.
# httpx's read timeout applies per socket read, so a server dripping bytes could stretch an attempt;
# FLOW_TIMEOUT_SECONDS in the flow is the backstop for that.
REQUEST_TIMEOUT: httpx.Timeout = httpx.Timeout(connect=5.0, read=10.0, write=5.0, pool=5.0)
MAX_ATTEMPTS: int = 4
BACKOFF_SECONDS: float = 2.0  # waits 2, 4, 8 s before attempts 2, 3, 4 (when no Retry-After says otherwise)
# A 429 asking for a longer wait fails at once: waiting less than asked would only earn another 429.
MAX_RETRY_AFTER_SECONDS: float = 30.0
MAX_TOTAL_WAIT_SECONDS: float = 35.0  # sum of all waits in one fetch
BODY_QUOTE_CHARS: int = 300  # how much of an unexpected body an error message quotes

# Worth another attempt: every 5xx (server trouble), 429 (rate limited), 408 (the server gave up waiting).
RETRYABLE_4XX: Final = frozenset({408, 429})

# The original server's "no match" errors: "No activit(y|ies) found with the specified parameters".
_NO_MATCH = re.compile(r"\bno activit(y|ies) (were )?found\b", re.IGNORECASE)

Shape = Literal["appbrewery", "original"]


class BoredApiError(Exception):
    """The Bored API gave us no activity; the message says what was asked, what came back, what to check."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


@dataclass(frozen=True)
class Activity:
    """One activity, the same whichever server shape it came from.

    `accessibility` is the dataset's 0-1 score (0.0 = most accessible): the original API calls it
    `accessibility`, the mirror renamed it `availability` (same values: "Learn Express.js" is 0.25 in
    both) and reuses `accessibility` for a text label, kept here as `accessibility_label`.
    """

    activity: str
    type: str
    participants: int
    price: float  # 0.0 = free .. 1.0 = most expensive
    accessibility: float
    link: str  # "" when the activity has none
    key: str
    accessibility_label: str | None = None  # mirror only, e.g. "Few to no challenges"
    duration: str | None = None  # mirror only: minutes, hours, days, weeks
    kid_friendly: bool | None = None  # mirror only
    source_shape: Shape = "appbrewery"


# --- Normalization ----------------------------------------------------------------------------------------


def quote(value: object, limit: int | None = None) -> str:
    """A short, printable rendering of what a server sent, for error messages."""
    limit = BODY_QUOTE_CHARS if limit is None else limit
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more chars)"
    return repr(text)


def detect_shape(payload: dict[str, Any]) -> Shape:
    """Which server shape an activity object has, judged by its fields (never by the host name).

    Any mirror-only field (`availability`, a text `accessibility`, `duration`, `kidFriendly`) means the
    mirror; otherwise it is the original shape (`accessibility` a number, or absent when 0, see `_parse`).
    """
    mirror_only = ("availability", "duration", "kidFriendly")
    if any(name in payload for name in mirror_only) or isinstance(payload.get("accessibility"), str):
        return "appbrewery"
    return "original"


def parse_activity(payload: object) -> Activity:
    """Normalize an activity object of either shape; a `BoredApiError` names the bad field and quotes it."""
    if not isinstance(payload, dict):
        raise BoredApiError(f"expected a JSON object with an 'activity', got {quote(payload)}")
    if "activity" not in payload:
        raise BoredApiError(f"the JSON has no 'activity' field: {quote(payload)}")
    try:
        return _parse(payload)
    except _FieldError as exc:
        raise BoredApiError(f"{exc}: {quote(payload)}") from None


class _FieldError(ValueError):
    pass


def _parse(payload: dict[str, Any]) -> Activity:
    link = payload.get("link")  # the original server omits an empty link
    if link is not None and not isinstance(link, str):
        raise _FieldError(f"'link' must be a string, got {link!r}")
    activity = _text(payload, "activity")
    activity_type = _text(payload, "type")
    participants = _participants(payload.get("participants"))
    key = _key(payload.get("key"))
    if detect_shape(payload) == "appbrewery":
        return Activity(
            activity=activity,
            type=activity_type,
            participants=participants,
            price=_score(payload, "price"),
            accessibility=_score(payload, "availability"),
            link=(link or "").strip(),
            key=key,
            accessibility_label=_optional_text(payload, "accessibility"),
            duration=_optional_text(payload, "duration"),
            kid_friendly=_optional_bool(payload, "kidFriendly"),
            source_shape="appbrewery",
        )
    # The self-hosted original masks falsy values: it serves `price: ""` for a free activity and leaves
    # `accessibility` out when it is 0 (drewthoennes/Bored-API, routes/v1/masks.js). Read those as 0.
    return Activity(
        activity=activity,
        type=activity_type,
        participants=participants,
        price=0.0 if payload.get("price") == "" else _score(payload, "price"),
        accessibility=0.0 if payload.get("accessibility", "") == "" else _score(payload, "accessibility"),
        link=(link or "").strip(),
        key=key,
        source_shape="original",
    )


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(f"'{name}' must be a non-empty string, got {value!r}")
    return " ".join(value.split())


def _optional_text(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _FieldError(f"'{name}' must be a string, got {value!r}")
    return value.strip()


def _optional_bool(payload: dict[str, Any], name: str) -> bool | None:
    value = payload.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise _FieldError(f"'{name}' must be true or false, got {value!r}")


def _participants(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _FieldError(f"'participants' must be a whole number >= 1, got {value!r}")
    return value


def _key(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(f"'key' must be a non-empty string, got {value!r}")
    return value.strip()


def _score(payload: dict[str, Any], name: str) -> float:
    """A 0-1 number (price, accessibility/availability)."""
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise _FieldError(f"'{name}' must be a number from 0 to 1, got {value!r}")
    return float(value)


# --- Filters ----------------------------------------------------------------------------------------------


def validate_filters(activity_type: str | None, participants: int | None) -> tuple[str | None, int | None]:
    """Check the filters before any request; returns them normalized (type lower-cased). Raises ValueError."""
    if activity_type is not None:
        normalized = activity_type.strip().lower()
        if normalized not in ACTIVITY_TYPES:
            raise ValueError(f"activity_type {activity_type!r} is not one of: {', '.join(ACTIVITY_TYPES)}")
        activity_type = normalized
    if participants is not None and (
        isinstance(participants, bool) or not isinstance(participants, int) or participants < 1
    ):
        raise ValueError(f"participants must be a whole number >= 1, got {participants!r}")
    return activity_type, participants


def describe_filters(activity_type: str | None, participants: int | None) -> str:
    return f"type={activity_type or 'any'} participants={participants if participants is not None else 'any'}"


# --- Retry policy helpers ---------------------------------------------------------------------------------


def worst_case_seconds() -> float:
    """Upper bound of one `fetch_activity` call under the current policy constants (see the comment above)."""
    per_attempt = sum(
        part or 0.0 for part in (REQUEST_TIMEOUT.connect, REQUEST_TIMEOUT.write, REQUEST_TIMEOUT.read)
    )
    return MAX_ATTEMPTS * per_attempt + MAX_TOTAL_WAIT_SECONDS


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None if absent/unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass
class _Budget:
    attempts_left: int
    wait_left: float
    attempts_made: int = 0


_log = logging.getLogger(__name__)


def _get(
    client: httpx.Client,
    url: str,
    params: dict[str, str],
    budget: _Budget,
    log: logging.Logger | logging.LoggerAdapter[Any],
) -> httpx.Response:
    """GET with our retry policy. Returns any answer that is not worth retrying (2xx, most 4xx).

    Raises BoredApiError when retries run out, a wait would break the budget, or a 429 asks for too long.
    """
    full_url = str(httpx.URL(url, params=params))
    retries = 0
    while True:
        if budget.attempts_left <= 0:
            raise BoredApiError(
                f"GET {full_url} was not tried: the {MAX_ATTEMPTS} attempts were used up", url=full_url
            )
        budget.attempts_left -= 1
        budget.attempts_made += 1
        retry_after: float | None = None
        status: int | None = None
        try:
            response = client.get(url, params=params)
        except httpx.TimeoutException as exc:
            problem = f"timed out ({type(exc).__name__}; timeouts: {_timeouts()})"
        except httpx.TransportError as exc:  # refused, reset, DNS, TLS: as transient as a 503
            problem = f"failed before any answer ({type(exc).__name__}: {exc})"
        else:
            if response.status_code < 500 and response.status_code not in RETRYABLE_4XX:
                return response
            status = response.status_code
            problem = f"answered HTTP {status} {response.reason_phrase}: {quote(response.text)}"
            # Honoured on 429 and also on 503, where servers send it during maintenance.
            header = response.headers.get("Retry-After")
            retry_after = parse_retry_after(header)
            if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
                raise BoredApiError(
                    f"GET {full_url} answered HTTP {status} {response.reason_phrase} with Retry-After: "
                    f"{header} ({retry_after:.0f} s), longer than this flow waits "
                    f"({MAX_RETRY_AFTER_SECONDS:.0f} s); run again later",
                    url=full_url,
                    status=status,
                )
        attempts = budget.attempts_made
        if budget.attempts_left <= 0:
            raise BoredApiError(
                f"GET {full_url} {problem}; gave up after {attempts} attempt(s)", url=full_url, status=status
            )
        retries += 1
        delay = retry_after if retry_after is not None else BACKOFF_SECONDS * 2 ** (retries - 1)
        if delay > budget.wait_left:
            raise BoredApiError(
                f"GET {full_url} {problem}; gave up after {attempts} attempt(s): waiting {delay:.1f} s more "
                f"would exceed the {MAX_TOTAL_WAIT_SECONDS:.0f} s retry budget",
                url=full_url,
                status=status,
            )
        log.warning("GET %s %s; retrying in %.1f s (attempt %d)", full_url, problem, delay, attempts + 1)
        budget.wait_left -= delay
        time.sleep(delay)


def _timeouts() -> str:
    t = REQUEST_TIMEOUT
    return f"connect {t.connect} s, read {t.read} s"


# --- Fetch ------------------------------------------------------------------------------------------------


class _NotJson:
    """Marker for a body that did not parse as JSON."""


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError
        return _NotJson()


def fetch_activity(
    api_url: str = DEFAULT_API_URL,
    activity_type: str | None = None,
    participants: int | None = None,
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> Activity:
    """Ask the Bored API at `api_url` for one activity (random, or matching the filters).

    Path choice: the mirror's path first (`/random`, or `/filter` with filters). A self-hosted original
    server has no such path: it answers with its web page (HTTP 200 HTML from its catch-all route), or a
    proxy answers 404. Only then is `/api/activity` tried, once. Whatever JSON arrives is normalized by its
    fields (`parse_activity`), so the shape is decided by the response, never by the host name.
    """
    log = logger or _log
    activity_type, participants = validate_filters(activity_type, participants)
    base = api_url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"api_url must start with http:// or https://, got {api_url!r}")
    filtered = activity_type is not None or participants is not None
    params: dict[str, str] = {}
    if activity_type is not None:
        params["type"] = activity_type
    if participants is not None:
        params["participants"] = str(participants)
    wanted = describe_filters(activity_type, participants)

    budget = _Budget(attempts_left=MAX_ATTEMPTS, wait_left=MAX_TOTAL_WAIT_SECONDS)
    headers = {"Accept": "application/json", "User-Agent": "suggest-activity (prefect flow)"}
    with httpx.Client(timeout=REQUEST_TIMEOUT, headers=headers, follow_redirects=True) as client:
        mirror_url = f"{base}/filter" if filtered else f"{base}/random"
        first = _get(client, mirror_url, params, budget, log)
        first_body = _json(first)
        first_url = str(first.request.url)

        if first.is_success and not isinstance(first_body, _NotJson):
            return _activity_from(first_body, first_url, filtered, wanted)
        if first.status_code == 404 and filtered and _is_error_body(first_body):
            raise BoredApiError(
                f"no activity matches {wanted} (GET {first_url} answered HTTP 404: {quote(first.text)})",
                url=first_url,
                status=404,
            )
        if first.status_code != 404 and not first.is_success:
            raise _status_error(first)

        # Not the mirror's answer (404, or a 200 web page): maybe the original API. One probe, no more.
        first_problem = (
            f"HTTP 404 {quote(first.text)}"
            if first.status_code == 404
            else f"HTTP {first.status_code} with a body that is not JSON: {quote(first.text)}"
        )
        log.info("GET %s answered %s; trying the original API path /api/activity", first_url, first_problem)
        try:
            second = _get(client, f"{base}/api/activity", params, budget, log)
        except BoredApiError as exc:
            raise BoredApiError(f"GET {first_url} answered {first_problem}; then {exc}", url=exc.url) from exc
        second_body = _json(second)
        second_url = str(second.request.url)
        if second.is_success and not isinstance(second_body, _NotJson):
            return _activity_from(second_body, second_url, filtered, wanted)
        second_problem = (
            f"HTTP {second.status_code} with a body that is not JSON: {quote(second.text)}"
            if second.is_success
            else f"HTTP {second.status_code} {second.reason_phrase}: {quote(second.text)}"
        )
        raise BoredApiError(
            f"GET {first_url} answered {first_problem}, and the original API path GET {second_url} answered "
            f"{second_problem}; is {base!r} a Bored API (check api_url)?",
            url=first_url,
            status=first.status_code,
        )


def _is_error_body(body: object) -> bool:
    return isinstance(body, dict) and "error" in body and "activity" not in body


def _status_error(response: httpx.Response) -> BoredApiError:
    url = str(response.request.url)
    why = (
        "a client error, not retried: check api_url and the filters"
        if response.is_client_error
        else "not retried"
    )
    return BoredApiError(
        f"GET {url} answered HTTP {response.status_code} {response.reason_phrase}: {quote(response.text)} ({why})",
        url=url,
        status=response.status_code,
    )


def _activity_from(body: object, url: str, filtered: bool, wanted: str) -> Activity:
    """Turn a parsed 2xx body into an Activity: a list (mirror's /filter) or one object (any other answer)."""
    if isinstance(body, list):
        if not body:
            raise BoredApiError(f"no activity matches {wanted} (GET {url} answered an empty list)", url=url)
        body = random.choice(body)  # the mirror answers every match; pick one
    if isinstance(body, dict) and _is_error_body(body):
        if filtered and _NO_MATCH.search(str(body["error"])):
            raise BoredApiError(f"no activity matches {wanted} (GET {url} answered {quote(body)})", url=url)
        raise BoredApiError(f"GET {url} answered an error instead of an activity: {quote(body)}", url=url)
    try:
        return parse_activity(body)
    except BoredApiError as exc:
        raise BoredApiError(
            f"GET {url} answered something that is not a usable activity: {exc}", url=url
        ) from None
