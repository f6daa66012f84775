"""A small synchronous client for the Prefect REST API, shared by the dynamic providers.

Responsibilities: where to connect and how to authenticate (`ConnectionSettings`), exact request paths,
timeouts, bounded retries with backoff, and turning every failure into one exception type
(`PrefectApiError`) whose message names the method, the path, the status and the server's detail.

Retry budget (read from the environment each time a client is built, so that the provider host process
can be tuned without code changes):

    PULUMI_PREFECT_MAX_ATTEMPTS       attempts per call, including the first          (default 5)
    PULUMI_PREFECT_TIMEOUT_SECONDS    timeout of one attempt (connect/read/write)     (default 10)
    PULUMI_PREFECT_RETRY_BUDGET_SECONDS  wall-clock budget of one call, all attempts  (default 45)

Retried: connection errors and timeouts, 429 (honouring `Retry-After`, capped), 502, 503, 504.
Requests that are not idempotent (creating a work pool, adding schedules) are retried only when the
server cannot have applied them: connection refused, 429 and 503.
"""

from __future__ import annotations

import base64
import email.utils
import os
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRY_BUDGET_SECONDS = 45.0
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0
RETRY_AFTER_MAX_SECONDS = 20.0

MAX_ATTEMPTS_ENV = "PULUMI_PREFECT_MAX_ATTEMPTS"
TIMEOUT_ENV = "PULUMI_PREFECT_TIMEOUT_SECONDS"
RETRY_BUDGET_ENV = "PULUMI_PREFECT_RETRY_BUDGET_SECONDS"

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Statuses that prove the server did not apply the request, so even a create may be sent again.
NOT_APPLIED_STATUSES = frozenset({429, 503})

CONFIG_NAMESPACE = "prefect"
API_URL_KEY = f"{CONFIG_NAMESPACE}:apiUrl"
API_KEY_KEY = f"{CONFIG_NAMESPACE}:apiKey"
AUTH_STRING_KEY = f"{CONFIG_NAMESPACE}:authString"
API_URL_ENV = "PREFECT_API_URL"
API_KEY_ENV = "PREFECT_API_KEY"
AUTH_STRING_ENV = "PREFECT_API_AUTH_STRING"

USER_AGENT = "suggest-activity-pulumi-prefect/1"

_CLOUD_PATH = re.compile(
    r"^(?P<prefix>.*?)/api/accounts/(?P<account>[^/]+)/workspaces/(?P<workspace>[^/]+)/?$"
)


class PrefectConfigError(ValueError):
    """The connection settings cannot work (no URL, a UI URL instead of an API URL, Cloud without a key)."""


class PrefectApiError(Exception):
    """A Prefect API call failed; `str(error)` is a message a user can act on."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int | None = None,
        detail: str | None = None,
        attempts: int = 1,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status_code = status_code
        self.detail = detail
        self.attempts = attempts
        # A non-idempotent request that failed in transit: the server may have carried it out.
        self.maybe_applied = maybe_applied


# --------------------------------------------------------------------------------------------------
# Connection settings


class _ConfigLookup(Protocol):
    """Both a plain mapping and `pulumi.dynamic.Config` answer `get("prefect:apiUrl")`."""

    def get(self, key: str, /) -> Any: ...


@dataclass(frozen=True)
class CloudWorkspace:
    account_id: str
    workspace_id: str
    ui_root: str  # e.g. https://app.prefect.cloud


def parse_cloud_api_url(api_url: str) -> CloudWorkspace | None:
    """The account and workspace of a Prefect Cloud API URL; None for a self-hosted server."""
    parts = urlsplit(api_url.strip())
    match = _CLOUD_PATH.match(parts.path)
    if not parts.scheme or not parts.netloc or match is None:
        return None
    host = parts.netloc
    # Prefect's own rule: the UI lives on the `app.` sibling of the `api.` host.
    if host.startswith("api."):
        host = "app." + host[len("api.") :]
    return CloudWorkspace(
        account_id=match["account"],
        workspace_id=match["workspace"],
        ui_root=f"{parts.scheme}://{host}{match['prefix']}",
    )


def ui_base_url(api_url: str) -> str:
    """The UI root that matches an API URL.

    Cloud: `https://app.prefect.cloud/account/<a>/workspace/<w>`; self-hosted: the API URL without `/api`.
    """
    cloud = parse_cloud_api_url(api_url)
    if cloud is not None:
        return f"{cloud.ui_root}/account/{cloud.account_id}/workspace/{cloud.workspace_id}"
    base = api_url.strip().rstrip("/")
    return base[: -len("/api")] if base.endswith("/api") else base


def work_pool_ui_url(api_url: str, name: str) -> str:
    return f"{ui_base_url(api_url)}/work-pools/work-pool/{quote(name, safe='')}"


def deployment_ui_url(api_url: str, deployment_id: str) -> str:
    return f"{ui_base_url(api_url)}/deployments/deployment/{deployment_id}"


def _config_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the Prefect API is and how to authenticate. Secrets are kept out of `repr`."""

    api_url: str | None
    api_key: str | None = field(default=None, repr=False)
    auth_string: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any] | _ConfigLookup, environ: Mapping[str, str] | None = None
    ) -> ConnectionSettings:
        """From the stack config (`prefect:apiUrl`, `prefect:apiKey`, `prefect:authString`) as `configure()`
        receives it, falling back to PREFECT_API_URL / PREFECT_API_KEY / PREFECT_API_AUTH_STRING, the
        variables Prefect users already have.

        Credentials are never sent to a server they were not given for: credentials in the stack config win
        as a pair (an API key in the environment does not override `prefect:authString`), and the
        environment's credentials are ignored when it names a different server than `prefect:apiUrl`.
        """
        env = os.environ if environ is None else environ
        config_url = _config_str(config.get(API_URL_KEY))
        config_key = _config_str(config.get(API_KEY_KEY))
        config_auth = _config_str(config.get(AUTH_STRING_KEY))
        env_url = _config_str(env.get(API_URL_ENV))
        if config_key or config_auth:
            api_key, auth_string = config_key, config_auth
        elif config_url and env_url and config_url.rstrip("/") != env_url.rstrip("/"):
            api_key, auth_string = None, None  # the environment's credentials belong to another server
        else:
            api_key, auth_string = _config_str(env.get(API_KEY_ENV)), _config_str(env.get(AUTH_STRING_ENV))
        return cls(api_url=config_url or env_url, api_key=api_key, auth_string=auth_string)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnectionSettings:
        return cls.from_config({}, environ)

    @property
    def cloud(self) -> CloudWorkspace | None:
        return parse_cloud_api_url(self.api_url) if self.api_url else None

    @property
    def is_cloud(self) -> bool:
        return self.cloud is not None

    def require_url(self) -> str:
        """The API base URL without a trailing slash, or a `PrefectConfigError` that says how to set it."""
        if not self.api_url:
            raise PrefectConfigError(
                "No Prefect API URL: run `pulumi config set prefect:apiUrl http://HOST:4200/api` "
                "(Prefect Cloud: `https://api.prefect.cloud/api/accounts/<account>/workspaces/<workspace>`) "
                f"or set {API_URL_ENV}."
            )
        url = self.api_url.strip().rstrip("/")
        parts = urlsplit(url)
        if "@" in parts.netloc:
            # Not echoed: every error message and UI link below would carry the password.
            raise PrefectConfigError(
                f"prefect:apiUrl (or {API_URL_ENV}) contains user:pass@; remove it and put the credentials in "
                f"`pulumi config set --secret prefect:authString <user:pass>` (or {AUTH_STRING_ENV})."
            )
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise PrefectConfigError(
                f"prefect:apiUrl {url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:4200/api."
            )
        # Only Prefect Cloud's own UI host: a self-hosted server may well be called app.example.com.
        if "/account/" in parts.path or "/workspace/" in parts.path or parts.hostname == "app.prefect.cloud":
            raise PrefectConfigError(
                f"prefect:apiUrl {url!r} looks like a Prefect UI address; use the API form "
                "https://api.prefect.cloud/api/accounts/<account>/workspaces/<workspace>."
            )
        if self.is_cloud and not self.api_key:
            raise PrefectConfigError(
                "Prefect Cloud needs an API key: run `pulumi config set --secret prefect:apiKey pnu_...` "
                f"or set {API_KEY_ENV}."
            )
        return url

    def auth_headers(self) -> dict[str, str]:
        # Same precedence as Prefect's own client: an API key wins over a basic-auth string.
        if self.api_key:
            return {"Authorization": f"Bearer {self.api_key}"}
        if self.auth_string:
            token = base64.b64encode(self.auth_string.encode()).decode()
            return {"Authorization": f"Basic {token}"}
        return {}

    def credentials_hint(self) -> str:
        if self.is_cloud:
            return f"check prefect:apiKey (or {API_KEY_ENV}) and that the key belongs to this workspace"
        return f"set prefect:authString (or {AUTH_STRING_ENV}) to the server's user:pass"


# --------------------------------------------------------------------------------------------------
# Retry policy


def _env_number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise PrefectConfigError(f"{name}={raw!r} is not a number") from exc
    if value <= 0:
        raise PrefectConfigError(f"{name}={raw!r} must be greater than 0")
    return value


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS
    backoff_base_seconds: float = BACKOFF_BASE_SECONDS
    backoff_max_seconds: float = BACKOFF_MAX_SECONDS
    retry_after_max_seconds: float = RETRY_AFTER_MAX_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        env = os.environ if environ is None else environ
        return cls(
            max_attempts=max(1, int(_env_number(env, MAX_ATTEMPTS_ENV, DEFAULT_MAX_ATTEMPTS))),
            timeout_seconds=_env_number(env, TIMEOUT_ENV, DEFAULT_TIMEOUT_SECONDS),
            budget_seconds=_env_number(env, RETRY_BUDGET_ENV, DEFAULT_RETRY_BUDGET_SECONDS),
        )

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --------------------------------------------------------------------------------------------------
# Error messages


def _loc_text(loc: Any) -> str:
    """A pydantic error location as a field path: `["body", "schedules", 0, "schedule", "cron"]` →
    `schedules[0].schedule.cron` (union-branch labels such as `function-after[...]` are dropped)."""
    text = ""
    for part in loc if isinstance(loc, list) else [loc]:
        if part == "body" and not text:
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and ("[" in part or "(" in part):
            continue  # pydantic's union-branch labels say nothing to a user
        else:
            text += f".{part}" if text else str(part)
    return text or "request body"


def server_detail(response: httpx.Response) -> str:
    """The server's explanation of an error response, shortened to what a user needs."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or HTTPStatus(response.status_code).phrase
    if isinstance(body, dict):
        # Prefect's 422 lists errors in `exception_detail`; FastAPI's own handler (a server or gateway without
        # Prefect's) in `detail`. Either way each error's `input` and the body's `request_body` echo what was
        # sent, secrets included: only locations and messages are shown, and never an unknown body.
        errors = body.get("exception_detail") or body.get("detail")
        if isinstance(errors, list) and errors:
            # Union validation errors list every branch; the value errors are the ones that explain.
            relevant = [
                e
                for e in errors
                if isinstance(e, dict) and e.get("type") not in ("missing", "extra_forbidden")
            ]
            chosen = relevant or [e for e in errors if isinstance(e, dict)]
            lines = []
            for error in chosen[:5]:
                lines.append(f"field `{_loc_text(error.get('loc'))}`: {error.get('msg')}")
            return "; ".join(dict.fromkeys(lines))
        for key in ("detail", "exception_message"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])
        return f"an error body with the keys {', '.join(sorted(body))}"
    if isinstance(body, str) and body:
        return body[:500]
    return _phrase(response.status_code) or f"HTTP {response.status_code}"


def _status_hint(status_code: int, settings: ConnectionSettings) -> str:
    if status_code == 401:
        return f" The server did not accept the credentials: {settings.credentials_hint()}."
    if status_code == 403:
        return " The credentials lack permission for this operation (or the name is reserved by Prefect)."
    if status_code == 307:
        return " (The path's trailing slash does not match the route; this is a bug in the provider.)"
    return ""


# --------------------------------------------------------------------------------------------------
# The client


class PrefectClient:
    """One-call-at-a-time HTTP client; build one per provider operation (never keep it on the provider)."""

    def __init__(
        self,
        settings: ConnectionSettings,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.require_url()
        self.policy = policy or RetryPolicy.from_env()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **settings.auth_headers()},
            timeout=httpx.Timeout(self.policy.timeout_seconds),
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrefectClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plain verbs -------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        return self.request("GET", path).json()

    def get_or_none(self, path: str) -> Any:
        """GET that answers None on 404 (the object does not exist)."""
        response = self.request("GET", path, allow={404})
        return None if response.status_code == 404 else response.json()

    def post(self, path: str, body: Any, *, idempotent: bool) -> Any:
        response = self.request("POST", path, json_body=body, idempotent=idempotent)
        return response.json() if response.content else None

    def patch(self, path: str, body: Any) -> None:
        self.request("PATCH", path, json_body=body)

    def delete(self, path: str) -> bool:
        """DELETE; True when deleted, False when it was already gone (404 is success)."""
        return self.request("DELETE", path, allow={404}).status_code != 404

    # -- the one place that talks to the network ---------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        idempotent: bool | None = None,
        allow: set[int] | frozenset[int] = frozenset(),
    ) -> httpx.Response:
        """Send with retries; return a 2xx (or an allowed status) response, else raise `PrefectApiError`."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "PATCH", "DELETE")
        policy = self.policy
        started = time.monotonic()
        deadline = started + policy.budget_seconds
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            timeout = max(1.0, min(policy.timeout_seconds, remaining))
            failure: str
            wait: float | None = None
            status_code: int | None = None
            detail: str | None = None
            try:
                response = self._http.request(
                    method, path, json=json_body, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0))
                )
            except httpx.TransportError as exc:
                # A refused connection never reached the server; anything later may have been applied.
                not_applied = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                failure = f"{type(exc).__name__}: {exc or 'no response'}"
                retryable = idempotent or not_applied
            else:
                if response.is_success or response.status_code in allow:
                    return response
                status_code = response.status_code
                detail = server_detail(response)
                failure = f"{status_code} {_phrase(status_code)}: {detail}"
                retryable = status_code in RETRYABLE_STATUSES and (
                    idempotent or status_code in NOT_APPLIED_STATUSES
                )
                if status_code == 429:
                    wait = parse_retry_after(response.headers.get("Retry-After"))
                    if wait is not None:
                        wait = min(wait, policy.retry_after_max_seconds)
            if not retryable:
                # Only a non-idempotent request that failed in transit can have been half-applied.
                maybe_applied = status_code is None or status_code in RETRYABLE_STATUSES
                raise self._error(
                    method, path, failure, status_code, detail, attempt, started, maybe_applied=maybe_applied
                )
            if wait is None:
                wait = policy.backoff(attempt)
            if attempt >= policy.max_attempts or time.monotonic() + wait >= deadline:
                raise self._error(
                    method, path, failure, status_code, detail, attempt, started, exhausted=True
                )
            time.sleep(wait)

    def _error(
        self,
        method: str,
        path: str,
        failure: str,
        status_code: int | None,
        detail: str | None,
        attempts: int,
        started: float,
        *,
        exhausted: bool = False,
        maybe_applied: bool = False,
    ) -> PrefectApiError:
        elapsed = time.monotonic() - started
        message = f"Prefect API {method} {path} failed: {failure}."
        if status_code is not None:
            message += _status_hint(status_code, self.settings)
        if exhausted or attempts > 1:
            message += f" Gave up after {attempts} attempt(s) in {elapsed:.1f}s."
        if status_code is None or status_code in RETRYABLE_STATUSES:
            message += f" Is the Prefect API at {self.base_url} reachable? (prefect:apiUrl / {API_URL_ENV})"
        if maybe_applied:
            message += " The request may have been applied; run `pulumi refresh` before trying again."
        return PrefectApiError(
            message,
            method=method,
            path=path,
            status_code=status_code,
            detail=detail,
            attempts=attempts,
            maybe_applied=maybe_applied,
        )


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""
