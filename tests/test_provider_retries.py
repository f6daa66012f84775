"""Retries, through the gRPC host, with a fault-injecting proxy in front of the REAL Prefect server.

The default budget (client.py: 5 attempts, exponential backoff capped at 8 s, Retry-After honoured up to
20 s, 45 s per call) is what most tests run with; other hosts lower it through the documented
PULUMI_PREFECT_* variables to show stalls and timeouts without waiting a minute.

What is asserted is what the proxy saw (which request was refused, resent, carried out) and what the error
says, never how long a call took: a loaded machine makes every call slower. Where a bound on time is the
point (a stall, a capped Retry-After), the test's own timeout is the guard: a client that waited for the
stall or the hour would not finish within it.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from infra.prefect import (
    ConnectionSettings,
    DeploymentProvider,
    PrefectClient,
    WorkPoolProvider,
)
from infra.prefect.client import RetryPolicy
from infra.prefect_snapshots import worker_base_job_template
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.prefect_server import ReservedPort
from tests.support.provider_host import (
    CALL_TIMEOUT_SECONDS,
    BoundResource,
    ProviderCallError,
    ProviderHost,
    host_env,
)

TIGHT_BUDGET = {
    "PULUMI_PREFECT_TIMEOUT_SECONDS": "1",
    "PULUMI_PREFECT_MAX_ATTEMPTS": "3",
    "PULUMI_PREFECT_RETRY_BUDGET_SECONDS": "6",
}
# Attempts enough that only the time budget can end the retries.
TIME_BUDGET_ONLY = {
    "PULUMI_PREFECT_TIMEOUT_SECONDS": "1",
    "PULUMI_PREFECT_MAX_ATTEMPTS": "100",
    "PULUMI_PREFECT_RETRY_BUDGET_SECONDS": "4",
}
# Longer than any provider call may take (the host's gRPC deadline): a client that waited for a stall to end
# instead of timing out fails the test.
STALL_SECONDS = CALL_TIMEOUT_SECONDS + 60


# `proxy`, `host`, `pools` (the default retry budget) and `cleanup` are tests/conftest.py's.


@pytest.fixture(autouse=True)
def clean_proxy(proxy: FaultProxy) -> None:
    proxy.clear_faults()
    proxy.clear_requests()


def pool_host(proxy: FaultProxy, budget: dict[str, str]) -> Iterator[BoundResource]:
    with ProviderHost(env=host_env(budget)) as provider_host:
        provider_host.configure({"prefect:apiUrl": proxy.api_url})
        yield provider_host.resource(WorkPoolProvider(), "prefect:WorkPool")


@pytest.fixture(scope="module")
def tight_pools(proxy: FaultProxy) -> Iterator[BoundResource]:
    yield from pool_host(proxy, TIGHT_BUDGET)


@pytest.fixture(scope="module")
def time_budget_pools(proxy: FaultProxy) -> Iterator[BoundResource]:
    yield from pool_host(proxy, TIME_BUDGET_ONLY)


def unique(prefix: str = "retry") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pool_inputs(cleanup: Callable[[str], None]) -> Callable[[BoundResource], dict[str, object]]:
    """A new pool declared like the program declares one: with its worker's template (no other request).
    Deleted after the test."""

    def declare(pools: BoundResource) -> dict[str, object]:
        name = unique()
        cleanup(f"/work_pools/{name}")
        return pools.checked({"name": name, "base_job_template": worker_base_job_template("process")})

    return declare


PoolInputs = Callable[[BoundResource], dict[str, object]]


def test_503s_are_retried_and_the_create_succeeds(
    pools: BoundResource, proxy: FaultProxy, pool_inputs: PoolInputs
) -> None:
    inputs = pool_inputs(pools)
    proxy.inject(Fault.UNAVAILABLE, count=2)
    id_, outputs = pools.create(inputs)
    served = [(r.method, r.path, r.fault) for r in proxy.faults_served()]
    assert served == [("POST", "/api/work_pools/", Fault.UNAVAILABLE)] * 2
    # 503 means "not applied": safe to send again, even a create, and it was carried out once.
    assert [(r.method, r.path, r.status) for r in proxy.applied_writes()] == [
        ("POST", "/api/work_pools/", 201)
    ]
    assert outputs["pool_id"] == id_


def test_429_waits_for_retry_after(pools: BoundResource, proxy: FaultProxy, pool_inputs: PoolInputs) -> None:
    id_, outputs = pools.create(pool_inputs(pools))
    proxy.clear_requests()
    proxy.inject(Fault.RATE_LIMITED, retry_after="2", methods=["GET"])
    assert pools.read(id_, outputs).outputs == outputs
    limited, retried = proxy.requests[:2]
    assert (limited.fault, retried.path) == (Fault.RATE_LIMITED, limited.path)
    assert retried.at - limited.at >= 2.0  # not the first backoff (at most 0.5 s): the server's Retry-After


def test_connection_reset_and_gateway_errors_are_retried_for_idempotent_calls(
    pools: BoundResource, proxy: FaultProxy, pool_inputs: PoolInputs
) -> None:
    id_, outputs = pools.create(pool_inputs(pools))
    proxy.inject(Fault.RESET, methods=["GET"])
    assert pools.read(id_, outputs).id == id_
    proxy.inject(Fault.BAD_GATEWAY, methods=["PATCH"])
    proxy.inject(Fault.GATEWAY_TIMEOUT, methods=["PATCH"])
    news = pools.checked({"name": outputs["name"], "description": "after 502 and 504"})
    assert pools.update(id_, outputs, news)["description"] == "after 502 and 504"
    proxy.inject(Fault.UNAVAILABLE, methods=["DELETE"])
    pools.delete(id_, outputs)
    assert [(r.method, r.fault) for r in proxy.faults_served()] == [
        ("GET", Fault.RESET),
        ("PATCH", Fault.BAD_GATEWAY),
        ("PATCH", Fault.GATEWAY_TIMEOUT),
        ("DELETE", Fault.UNAVAILABLE),
    ]
    writes = [(r.method, r.status) for r in proxy.applied_writes()]
    assert writes == [("POST", 201), ("PATCH", 204), ("DELETE", 204)]


def test_an_ambiguous_failure_of_a_create_is_not_blindly_repeated(
    pools: BoundResource, proxy: FaultProxy, pool_inputs: PoolInputs
) -> None:
    """After a 502 the pool may exist: repeating the POST would turn success into a confusing 409."""
    inputs = pool_inputs(pools)
    proxy.inject(Fault.BAD_GATEWAY, methods=["POST"], path_contains="/work_pools/")
    with pytest.raises(ProviderCallError) as error:
        pools.create(inputs)
    assert "POST /work_pools/ failed: 502 Bad Gateway" in error.value.message
    assert "may have been applied; run `pulumi refresh`" in error.value.message
    assert len([r for r in proxy.requests if r.method == "POST"]) == 1


def test_a_deployment_create_survives_faults_on_every_kind_of_call(
    host: ProviderHost,
    pools: BoundResource,
    proxy: FaultProxy,
    pool_inputs: PoolInputs,
    cleanup: Callable[[str], None],
) -> None:
    _, pool = pools.create(pool_inputs(pools))
    deployments = host.resource(DeploymentProvider(), "prefect:Deployment")
    inputs = deployments.checked(
        {
            "flow_name": "retry-flow",
            "name": unique("dep"),
            "work_pool_name": pool["name"],
            "entrypoint": "flows/x.py:f",
            "schedules": [{"slug": "daily", "cron": "0 9 * * *"}],
        }
    )
    proxy.inject(Fault.UNAVAILABLE, path_contains="/flows/")
    proxy.inject(Fault.RESET, path_contains="/deployments/name/")
    proxy.inject(Fault.RATE_LIMITED, retry_after="1", path_contains="/api/deployments/", methods=["POST"])
    proxy.inject(Fault.GATEWAY_TIMEOUT, path_contains="/flow_runs/filter")
    id_, outputs = deployments.create(inputs)
    cleanup(f"/deployments/{id_}")
    assert set(outputs["schedule_ids"]) == {"daily"}
    assert len(proxy.faults_served()) == 4
    deployments.delete(id_, outputs)


def test_a_server_that_stays_down_ends_in_a_clear_error_after_the_attempts_allowed(
    pools: BoundResource, proxy: FaultProxy, pool_inputs: PoolInputs
) -> None:
    inputs = pool_inputs(pools)
    proxy.inject(Fault.UNAVAILABLE, count=None)
    with pytest.raises(ProviderCallError) as error:
        pools.create(inputs)
    message = error.value.message
    assert "POST /work_pools/ failed: 503 Service Unavailable" in message
    # Backoffs of at most 0.5 + 1 + 2 + 4 s: the 5 attempts, not the 45 s budget, end it.
    assert "Gave up after 5 attempt(s)" in message and "reachable?" in message
    assert len(proxy.requests) == 5


def test_an_unreachable_server_ends_in_a_clear_error() -> None:
    with ReservedPort() as dead, ProviderHost(env=host_env(TIGHT_BUDGET)) as host:
        dead_url = f"http://127.0.0.1:{dead.port}/api"  # bound, never listening: connections are refused
        host.configure({"prefect:apiUrl": dead_url})
        pools = host.resource(WorkPoolProvider(), "prefect:WorkPool")
        with pytest.raises(ProviderCallError) as error:
            pools.read("some-id", {"name": "x"})
    message = error.value.message
    assert "GET /work_pools/x failed: ConnectError" in message
    assert "Gave up after 3 attempt(s)" in message and dead_url in message


def test_a_stalled_request_times_out_and_is_retried(
    tight_pools: BoundResource, proxy: FaultProxy, pool_inputs: PoolInputs
) -> None:
    id_, outputs = tight_pools.create(pool_inputs(tight_pools))
    proxy.clear_requests()
    proxy.inject(Fault.STALL, methods=["GET"], stall_seconds=STALL_SECONDS)
    # Back within the host's deadline, so the 1 s timeout, not the stall's end, let it go on.
    assert tight_pools.read(id_, outputs).id == id_
    stalled, *resent = proxy.requests
    assert stalled.fault is Fault.STALL
    # Sent again and answered (a busy server may have made it take more than one more try).
    assert any((r.path, r.fault, r.status) == (stalled.path, None, 200) for r in resent)


def test_a_server_that_never_answers_fails_when_the_time_budget_is_spent(
    time_budget_pools: BoundResource, proxy: FaultProxy, pool_inputs: PoolInputs
) -> None:
    """100 attempts allowed, 4 s to spend, each attempt a 1 s timeout: the budget ends the retries."""
    id_, outputs = time_budget_pools.create(pool_inputs(time_budget_pools))
    proxy.clear_requests()
    proxy.inject(Fault.STALL, count=None, methods=["GET"], stall_seconds=STALL_SECONDS)
    with pytest.raises(ProviderCallError) as error:
        time_budget_pools.read(id_, outputs)
    assert "ReadTimeout" in error.value.message
    gave_up = re.search(r"Gave up after (\d+) attempt\(s\)", error.value.message)
    assert gave_up is not None, error.value.message
    attempts = int(gave_up.group(1))
    assert 1 <= attempts < 100
    assert [r.fault for r in proxy.requests] == [Fault.STALL] * attempts


def test_retry_after_is_capped(proxy: FaultProxy) -> None:
    """In-process: a server asking for an hour is waited for at most `retry_after_max_seconds`."""
    proxy.inject(Fault.RATE_LIMITED, retry_after="3600")
    policy = RetryPolicy(retry_after_max_seconds=0.3)
    answers: list[object] = []

    def call() -> None:
        with PrefectClient(ConnectionSettings(proxy.api_url), policy) as client:
            answers.append(client.get("/health"))

    caller = threading.Thread(target=call, daemon=True)  # left behind, not waited for, if the cap fails
    caller.start()
    caller.join(timeout=60)  # a guard: an uncapped wait would take an hour
    assert answers == [True]
    limited, retried = proxy.requests[:2]
    assert limited.fault is Fault.RATE_LIMITED and retried.status == 200
    assert retried.at - limited.at >= 0.3  # the capped wait, not none
