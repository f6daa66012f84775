"""Inputs that Prefect's server, Docker or an HTTP header cannot take, refused before anything exists.

Each rule follows the upstream source named in infra/config.py and infra/prefect/validation.py (the table
is in docs/reliability.md, "Bad input"); tests/test_bad_input.py applies the ones that reached a real server
or daemon and misbehaved there. These run the program under Pulumi's mocks (nothing can be created) and the
shared validators directly, and check both sides of every rule: what the servers cannot take is refused with
the key named, what they can take is still accepted.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import StackConfigError
from infra.prefect import WorkPoolProvider, cron_problem, name_problem
from tests.support.program_harness import CLOUD_URL, dev_stack_config, run_program

SECRET_KEYS = ("prefect:apiKey", "prefect:authString", "image:password")
PUSH = {"image:registry": "localhost:5000/team", "image:username": "ci", "image:password": "registry-pass"}


def refusal(override: dict[str, str]) -> str:
    """The program's error for the dev stack with `override`; fails if anything was declared first."""
    registered: list[str] = []

    def refuse(args: Any) -> tuple[str, dict[str, Any]]:
        registered.append(args.typ)
        return "x", {}

    config = {**dev_stack_config(), **override}
    with pytest.raises(StackConfigError) as error:
        run_program(config, [k for k in SECRET_KEYS if k in config], apply=refuse)
    assert registered == []
    return str(error.value)


REFUSED = [
    # Docker: container names are [a-zA-Z0-9][a-zA-Z0-9_.-]+ (daemon/names.go), and the workers are
    # '<pool>-worker-<stack>-<n>'.
    ("pool-name-space", {"suggest-activity:poolName": "team pool"}, "Docker allows only", "team-pool"),
    ("pool-name-non-ascii", {"suggest-activity:poolName": "équipe"}, "Docker allows only", "quipe"),
    ("pool-name-dot", {"suggest-activity:poolName": "."}, "dot-segment", "'.'"),
    ("deployment-name-dotdot", {"suggest-activity:deploymentName": ".."}, "dot-segment", "'..'"),
    ("deployment-name-line-break", {"suggest-activity:deploymentName": "daily\nrun"}, "control character"),
    # The server's scheduler (croniter) finds no next date and schedules nothing.
    ("cron-february-30", {"suggest-activity:cron": "0 9 30 2 *"}, "never fires", "'0 9 * * *'"),
    ("cron-april-31", {"suggest-activity:cron": "0 9 31 4 *"}, "never fires"),
    # Postgres INTEGER columns (SQLite: 64-bit, then a 500).
    (
        "pool-limit-32-bit",
        {"suggest-activity:poolConcurrencyLimit": "2147483648"},
        "must be <= 2147483647",
        "pulumi config set suggest-activity:poolConcurrencyLimit 2147483647",
    ),
    # Docker keeps memory and 2 x memory (the swap limit) as int64 bytes.
    ("memory-int64", {"suggest-activity:workerMemoryMb": "10000000000000"}, "must be <= 4398046511103"),
    ("api-url-port-range", {"prefect:apiUrl": "http://127.0.0.1:99999/api"}, "port", "1-65535"),
    ("api-url-port-letters", {"prefect:apiUrl": "http://127.0.0.1:42OO/api"}, "port", "1-65535"),
    ("api-url-query", {"prefect:apiUrl": "http://127.0.0.1:4200/api?x=1"}, "?query or #fragment"),
    ("api-url-fragment", {"prefect:apiUrl": "http://127.0.0.1:4200/api#top"}, "?query or #fragment"),
    ("api-url-space", {"prefect:apiUrl": "http://my host:4200/api"}, "spaces or control characters"),
    (
        "worker-url-loopback",
        {"prefect:workerApiUrl": "http://localhost:4200/api"},
        "the container itself",
        "http://host.docker.internal:4200/api",
    ),
    ("worker-url-not-http", {"prefect:workerApiUrl": "ftp://10.0.0.5/api"}, "is not an http(s) URL"),
    ("worker-url-no-api-path", {"prefect:workerApiUrl": "http://10.0.0.5:4200"}, "ends in /api"),
    # An HTTP header carries a bearer token (RFC 6750 b64token); httpx and h11 refuse the rest.
    ("api-key-line-break", {"prefect:apiKey": "pnu_abc\ndef"}, "prefect:apiKey", "Authorization header"),
    ("api-key-non-ascii", {"prefect:apiKey": "pnu_ключ"}, "prefect:apiKey", "Authorization header"),
    ("api-key-space", {"prefect:apiKey": "pnu_abc def"}, "prefect:apiKey", "Authorization header"),
    # The server compares auth strings with hmac.compare_digest, which raises on non-ASCII: a 500.
    ("auth-string-non-ascii", {"prefect:authString": "admin:pässwort"}, "non-ASCII", "500"),
    ("auth-string-trailing-newline", {"prefect:authString": "admin:s3cr3t\n"}, "leading or trailing whitespace"),
    ("registry-password-trailing-newline", {**PUSH, "image:password": "s3cr3t-registry\n"}, "leading or trailing"),
    # distribution/reference: a first part without '.' or ':' (and not localhost) is a Docker Hub namespace.
    ("registry-without-host", {**PUSH, "image:registry": "registry/acme"}, "Docker Hub namespace"),
    ("registry-bad-path", {**PUSH, "image:registry": "localhost:5000/team-"}, "is not a registry address"),
    ("registry-port-range", {**PUSH, "image:registry": "localhost:70000/team"}, "port", "1-65535"),
    ("image-name-uppercase", {"image:name": "Suggest"}, "image:name", "lowercase"),
    ("image-name-too-long", {"image:name": "a" * 250, "image:registry": "localhost:5000/t"}, "255"),
    ("base-image-uppercase", {"image:baseImage": "Python:3.12-slim"}, "image:baseImage", "python:3.12-slim"),
    ("base-image-bad-tag", {"image:baseImage": "python:3.12 slim"}, "image:baseImage", "name[:tag][@digest]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("override", "fragments"), [(r[1], r[2:]) for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_inputs_the_servers_cannot_take_are_refused_with_the_key_named(
    override: dict[str, str], fragments: tuple[str, ...]
) -> None:
    message = refusal(override)
    assert "nothing was created" in message
    for key in override:
        if key not in PUSH or override[key] != PUSH[key]:
            assert f"{key}:" in message or f"{key} " in message, f"{key} not named in:\n{message}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    # A credential is never repeated, not even the part that is wrong.
    for key in SECRET_KEYS:
        if key in override:
            assert override[key].strip() not in message


ACCEPTED = [
    ("pool-name-docker-safe", {"suggest-activity:poolName": "team.pool_2-a"}),
    ("deployment-name-unicode", {"suggest-activity:deploymentName": "täglich 09:00"}),
    ("cron-february-29", {"suggest-activity:cron": "0 9 29 2 *"}),
    ("pool-limit-max", {"suggest-activity:poolConcurrencyLimit": "2147483647"}),
    ("api-url-ipv6-loopback", {"prefect:apiUrl": "http://[::1]:4200/api"}),
    ("worker-url-docker-dns", {"prefect:workerApiUrl": "http://prefect_server:4200/api"}),
    ("auth-string-without-colon", {"prefect:authString": "just-a-token"}),
    ("api-key-and-cloud", {"prefect:apiUrl": CLOUD_URL, "prefect:apiKey": "pnb_" + "a1" * 18}),
    ("image-name-path", {"image:name": "team/suggest__activity"}),
    ("registry-ip-port", {**PUSH, "image:registry": "10.0.0.5:5000/team/sub"}),
    ("registry-docker-hub", {**PUSH, "image:registry": "docker.io/someone"}),
    ("base-image-digest", {"image:baseImage": "python:3.12-slim@sha256:" + "ab" * 32}),
    ("base-image-registry-port", {"image:baseImage": "localhost:5000/mirror/python:3.12-slim"}),
]


@pytest.mark.parametrize("override", [r[1] for r in ACCEPTED], ids=[r[0] for r in ACCEPTED])
def test_inputs_the_servers_take_are_accepted(override: dict[str, str]) -> None:
    config = {**dev_stack_config(), **override}
    run = run_program(config, [k for k in SECRET_KEYS if k in config])
    assert run.registrations


def test_a_credential_from_the_environment_is_checked_and_named_by_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", CLOUD_URL)
    monkeypatch.setenv("PREFECT_API_KEY", "pnu_abc\r\nX-Injected")
    config = {k: v for k, v in dev_stack_config().items() if k != "prefect:apiUrl"}
    with pytest.raises(StackConfigError) as error:
        run_program(config)
    assert "PREFECT_API_KEY" in str(error.value)
    assert "X-Injected" not in str(error.value)


# ------------------------------------------------------------------ the shared validators (providers' check too)


@pytest.mark.parametrize("name", [".", "..", "a\nb", "nul\x00byte"])
def test_names_the_api_cannot_address_are_refused(name: str) -> None:
    assert name_problem(name, "name") is not None
    failures = WorkPoolProvider().check({}, {"name": name, "type": "process"}).failures
    assert [f.property for f in failures] == ["name"]


@pytest.mark.parametrize("name", ["...", "a.b", "tägliche Übung", "x" * 2000])
def test_names_the_api_can_address_are_accepted(name: str) -> None:
    assert name_problem(name, "name") is None


@pytest.mark.parametrize(
    ("cron", "day_or"), [("0 9 30 2 *", True), ("0 9 31 11 *", True), ("0 9 30 2 1", False)]
)
def test_a_cron_the_scheduler_finds_no_date_for_is_refused(cron: str, day_or: bool) -> None:
    problem = cron_problem(cron, "cron", day_or=day_or)
    assert problem is not None and "never fires" in problem


@pytest.mark.parametrize("day_or", [True, False])
def test_a_cron_whose_day_and_weekday_seldom_meet_is_accepted(day_or: bool) -> None:
    assert cron_problem("0 9 31 * 1", "cron", day_or=day_or) is None  # without day_or: 31 May 2027, a Monday
