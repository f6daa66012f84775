"""The worker container's healthcheck: healthy only while the worker reaches its Prefect API and keeps polling.

Docker runs `python -m worker.healthcheck --pool <work pool>` in the worker container (declared in
infra/worker.py). Exit status 0 is healthy, 1 unhealthy; the line printed is what `docker inspect` shows in
`State.Health.Log`. An unhealthy result is also written to the container's log, because pulumi-docker's `wait`
fails with nothing but "container failed to be in healthy state" (terraform-provider-docker v4.5.0,
`resource_docker_container_funcs.go`, resourceDockerContainerCreate): `docker logs <worker>` then says why.

Why Prefect's own `/health` is not enough (prefect 3.9, installed source):
- `prefect worker start --with-healthcheck` serves it before the worker has talked to the API
  (`prefect/cli/worker.py` starts `_WorkerStartupHealthcheck` first), and it answers 200 while the last poll is
  within 30 x PREFECT_WORKER_QUERY_SECONDS (`prefect/workers/base.py`, `_is_within_polling_window`);
- `BaseWorker.get_and_submit_flow_runs` stamps the poll time even while the worker has never synced with the
  API, so a worker with a wrong URL, refused credentials or a missing pool (`--no-create-pool-if-not-found`)
  is healthy for ever and runs nothing.
So this asks the Prefect API first, with the worker's own credentials, for the worker's own work pool
(`GET /work_pools/{name}`: authenticated, read-only, one row, and it proves the pool exists), then the worker's
`/health` (503 once its poll loop has stalled: a wedged worker).

Credentials and TLS are used as Prefect's client uses them (`prefect/client/orchestration/__init__.py`,
`PrefectClient.__init__`): PREFECT_API_AUTH_STRING as HTTP basic auth, else PREFECT_API_KEY as a Bearer token;
certificates from PREFECT_API_SSL_CERT_FILE or certifi's bundle, none with PREFECT_API_TLS_INSECURE_SKIP_VERIFY.
Standard library only (plus certifi, which Prefect's client uses too): `import prefect` would cost seconds and
~100 MB on every probe. No message repeats a credential.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from urllib.parse import quote

# Both requests together stay well under the healthcheck's own timeout, so Docker records our message
# rather than "Health check exceeded timeout".
API_TIMEOUT_SECONDS = 5.0
WORKER_TIMEOUT_SECONDS = 2.0
DEFAULT_WORKER_PORT = "8080"  # Prefect's default PREFECT_WORKER_WEBSERVER_PORT
# PID 1's stderr is the container's log.
CONTAINER_LOG = "/proc/1/fd/2"
# How pydantic (Prefect's settings) reads a true boolean from the environment.
TRUE_WORDS = {"1", "on", "t", "true", "y", "yes"}
CREDENTIAL_HINT = "the worker's PREFECT_API_AUTH_STRING / PREFECT_API_KEY (stack config prefect:authString / prefect:apiKey)"
URL_HINT = "PREFECT_API_URL (stack config prefect:workerApiUrl, else prefect:apiUrl)"


class Unhealthy(Exception):
    """Why the worker is not healthy, in words a user can act on."""


def check_api(api_url: str, pool: str, env: Mapping[str, str]) -> None:
    """The API at `api_url` serves work pool `pool` to the credentials in `env`, or Unhealthy says why not."""
    url = f"{api_url.rstrip('/')}/work_pools/{quote(pool, safe='')}"
    headers, sent = _credentials(env)
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=API_TIMEOUT_SECONDS, context=_tls_context(env)):
            return
    except urllib.error.HTTPError as error:
        raise Unhealthy(_refusal(api_url, url, pool, error.code, _detail(error), sent)) from None
    except OSError as error:  # refused, unknown host, timeout, TLS: URLError and socket errors are OSErrors
        raise Unhealthy(
            f"cannot reach the Prefect API at {api_url} (GET {url}: {_reason(error)}); "
            f"{URL_HINT} must be reachable from inside the worker container"
        ) from None


def check_worker(port: str) -> None:
    """The worker's own /health (prefect/workers/server.py) answers 200, or Unhealthy says why not."""
    url = f"http://127.0.0.1:{port}/health"
    local = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP(S)_PROXY
    try:
        with local.open(url, timeout=WORKER_TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError as error:
        raise Unhealthy(
            f"the worker's own {url} answered {error.code}: it has stopped polling its work pool; "
            "its log says why; restart the container if it stays so"
        ) from None
    except OSError as error:
        raise Unhealthy(
            f"the worker's health server {url} does not answer ({_reason(error)}): "
            "the worker is still starting, or its process has exited"
        ) from None


def _credentials(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The Authorization header Prefect's client would send, and which credential that is (for messages)."""
    auth_string = env.get("PREFECT_API_AUTH_STRING", "")
    if auth_string:
        token = base64.b64encode(auth_string.encode()).decode()
        return {"Authorization": f"Basic {token}"}, "basic auth from PREFECT_API_AUTH_STRING"
    api_key = env.get("PREFECT_API_KEY", "")
    if api_key:
        return {"Authorization": f"Bearer {api_key}"}, "the API key in PREFECT_API_KEY"
    return {}, "no credentials (neither PREFECT_API_AUTH_STRING nor PREFECT_API_KEY is set)"


def _tls_context(env: Mapping[str, str]) -> ssl.SSLContext:
    if env.get("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "").strip().lower() in TRUE_WORDS:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    cert_file = env.get("PREFECT_API_SSL_CERT_FILE", "")
    if not cert_file:
        import certifi  # only here: plain-http probes do not need it

        cert_file = certifi.where()
    return ssl.create_default_context(cafile=cert_file)


def _refusal(api_url: str, url: str, pool: str, status: int, detail: str, sent: str) -> str:
    answered = f"the Prefect API at {api_url} answered {status} to GET {url}"
    if detail:
        answered += f" ({detail})"
    if status == 401:
        return f"{answered}: the worker sent {sent}; fix {CREDENTIAL_HINT}"
    if status == 403:
        return f"{answered}: the worker sent {sent}, which may not read work pool {pool!r}; give it access"
    if status == 404 and "work pool" in detail.lower():  # Prefect: 'Work pool "<name>" not found.'
        return (
            f"{answered}: the worker would poll a work pool that does not exist and run nothing; was it "
            f"deleted (`pulumi up --refresh` recreates it), or is {URL_HINT} another server or workspace?"
        )
    if status == 404:
        return (
            f"{answered}: that is not a Prefect API; {URL_HINT} must be the API URL "
            "(self-hosted: ending in /api; Cloud: https://api.prefect.cloud/api/accounts/<id>/workspaces/<id>)"
        )
    return f"{answered}; check {URL_HINT} and the server's log"


def _detail(error: urllib.error.HTTPError) -> str:
    """The server's own words: Prefect's `detail` / `exception_message`, else the start of the body, one line."""
    try:
        text = error.read(2000).decode(errors="replace")
    except OSError:
        return ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        text = str(body.get("detail") or body.get("exception_message") or text)
    return " ".join(text.split())[:200]


def _reason(error: OSError) -> str:
    reason = getattr(error, "reason", None) or error  # a URLError wraps the socket or TLS error
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


def _to_container_log(message: str) -> None:
    try:
        with open(CONTAINER_LOG, "a") as log:
            log.write(f"worker healthcheck: {message}\n")
    except OSError:
        pass  # not in a container, or not allowed: the health log in `docker inspect` still has the message


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--pool", required=True, help="the work pool the worker polls")
    args = parser.parse_args(argv)
    env = os.environ
    api_url = env.get("PREFECT_API_URL", "").strip()
    try:
        if not api_url:
            raise Unhealthy(f"PREFECT_API_URL is not set in the worker container; set {URL_HINT}")
        check_api(api_url, args.pool, env)
        check_worker(env.get("PREFECT_WORKER_WEBSERVER_PORT") or DEFAULT_WORKER_PORT)
    except Unhealthy as problem:
        message = f"unhealthy: {problem}"
        print(message)
        _to_container_log(message)
        return 1
    print(f"healthy: the worker polls, and the Prefect API at {api_url} serves work pool {args.pool!r} to it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
