"""Retries, through the gRPC host, with a fault-injecting proxy in front of the REAL Prefect server.

The default budget (client.py: 5 attempts, exponential backoff capped at 8 s, Retry-After honoured up to
20 s, 45 s per call) is what most tests run with; a second host lowers it through the documented
PULUMI_PREFECT_* variables to show stalls and timeouts without waiting a minute.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

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
from tests.support.prefect_server import free_port
from tests.support.provider_host import BoundResource, ProviderCallError, ProviderHost, host_env

TIGHT_BUDGET = {
    "PULUMI_PREFECT_TIMEOUT_SECONDS": "1",
    "PULUMI_PREFECT_MAX_ATTEMPTS": "3",
    "PULUMI_PREFECT_RETRY_BUDGET_SECONDS": "6",
}


# `proxy`, `host` and `pools` (the default retry budget) are tests/conftest.py's.


@pytest.fixture(autouse=True)
def clean_proxy(proxy: FaultProxy) -> None:
    proxy.clear_faults()
    proxy.clear_requests()


@pytest.fixture(scope="module")
def tight_pools(proxy: FaultProxy) -> Iterator[BoundResource]:
    with ProviderHost(env=host_env(TIGHT_BUDGET)) as provider_host:
        provider_host.configure({"prefect:apiUrl": proxy.api_url})
        yield provider_host.resource(WorkPoolProvider(), "prefect:WorkPool")


def unique(prefix: str = "retry") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pool_inputs(pools: BoundResource) -> dict[str, object]:
    """A new pool declared like the program declares one: with its worker's template (no other request)."""
    return pools.checked({"name": unique(), "base_job_template": worker_base_job_template("process")})


def create_pool(pools: BoundResource) -> tuple[str, dict[str, object]]:
    return pools.create(pool_inputs(pools))


def test_503s_are_retried_and_the_create_succeeds(pools: BoundResource, proxy: FaultProxy) -> None:
    inputs = pool_inputs(pools)
    proxy.inject(Fault.UNAVAILABLE, count=2)
    started = time.monotonic()
    id_, outputs = pools.create(inputs)
    elapsed = time.monotonic() - started
    posts = [r for r in proxy.requests if (r.method, r.path) == ("POST", "/api/work_pools/")]
    assert [r.status for r in posts] == [503, 503, 201]  # 503 means "not applied": safe even for a create
    assert outputs["pool_id"] == id_
    assert elapsed < 10  # two backoffs of at most 0.5 s and 1 s, plus a loaded machine's latency


def test_429_waits_for_retry_after(pools: BoundResource, proxy: FaultProxy) -> None:
    id_, outputs = create_pool(pools)
    proxy.clear_requests()
    proxy.inject(Fault.RATE_LIMITED, retry_after="2", methods=["GET"])
    assert pools.read(id_, outputs).outputs == outputs
    limited, retried = proxy.requests[:2]
    assert (limited.status, retried.status) == (429, 200)
    assert 2.0 <= retried.at - limited.at < 5.0


def test_connection_reset_and_gateway_errors_are_retried_for_idempotent_calls(
    pools: BoundResource, proxy: FaultProxy
) -> None:
    id_, outputs = create_pool(pools)
    proxy.inject(Fault.RESET, methods=["GET"])
    assert pools.read(id_, outputs).id == id_
    proxy.inject(Fault.BAD_GATEWAY, methods=["PATCH"])
    proxy.inject(Fault.GATEWAY_TIMEOUT, methods=["PATCH"])
    news = pools.checked({"name": outputs["name"], "description": "after 502 and 504"})
    assert pools.update(id_, outputs, news)["description"] == "after 502 and 504"
    proxy.inject(Fault.UNAVAILABLE, methods=["DELETE"])
    pools.delete(id_, outputs)
    statuses = [r.status for r in proxy.requests if r.method in ("PATCH", "DELETE")]
    assert statuses == [502, 504, 204, 503, 204]


def test_an_ambiguous_failure_of_a_create_is_not_blindly_repeated(
    pools: BoundResource, proxy: FaultProxy
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
    host: ProviderHost, pools: BoundResource, proxy: FaultProxy
) -> None:
    _, pool = create_pool(pools)
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
    assert set(outputs["schedule_ids"]) == {"daily"}
    assert len(proxy.faults_served()) == 4
    deployments.delete(id_, outputs)


def test_a_server_that_stays_down_ends_in_a_clear_error_within_the_budget(
    pools: BoundResource, proxy: FaultProxy
) -> None:
    inputs = pool_inputs(pools)
    proxy.inject(Fault.UNAVAILABLE, count=None)
    started = time.monotonic()
    with pytest.raises(ProviderCallError) as error:
        pools.create(inputs)
    elapsed = time.monotonic() - started
    message = error.value.message
    assert "POST /work_pools/ failed: 503 Service Unavailable" in message
    assert "Gave up after 5 attempt(s)" in message and "reachable?" in message
    assert len(proxy.requests) == 5
    assert elapsed < 15  # backoff 0.5 + 1 + 2 + 4 s at most, far below the 45 s budget


def test_an_unreachable_server_ends_in_a_clear_error() -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    with ProviderHost(env=host_env(TIGHT_BUDGET)) as host:
        host.configure({"prefect:apiUrl": dead_url})
        pools = host.resource(WorkPoolProvider(), "prefect:WorkPool")
        started = time.monotonic()
        with pytest.raises(ProviderCallError) as error:
            pools.read("some-id", {"name": "x"})
        assert time.monotonic() - started < 6
    message = error.value.message
    assert "GET /work_pools/x failed: ConnectError" in message
    assert "Gave up after 3 attempt(s)" in message and dead_url in message


def test_a_stalled_request_times_out_and_is_retried(tight_pools: BoundResource, proxy: FaultProxy) -> None:
    id_, outputs = create_pool(tight_pools)
    proxy.inject(Fault.STALL, methods=["GET"], stall_seconds=10)
    started = time.monotonic()
    assert tight_pools.read(id_, outputs).id == id_
    assert 1.0 <= time.monotonic() - started < 6  # one 1 s timeout, a short backoff, then success


def test_a_server_that_never_answers_fails_within_the_configured_budget(
    tight_pools: BoundResource, proxy: FaultProxy
) -> None:
    id_, outputs = create_pool(tight_pools)
    proxy.inject(Fault.STALL, count=None, methods=["GET"], stall_seconds=10)
    started = time.monotonic()
    with pytest.raises(ProviderCallError) as error:
        tight_pools.read(id_, outputs)
    assert time.monotonic() - started < 9  # PULUMI_PREFECT_RETRY_BUDGET_SECONDS=6 (+ one timeout at most)
    assert "ReadTimeout" in error.value.message and "Gave up after 3 attempt(s)" in error.value.message


def test_retry_after_is_capped(proxy: FaultProxy) -> None:
    """In-process: a server asking for an hour is waited for at most `retry_after_max_seconds`."""
    proxy.inject(Fault.RATE_LIMITED, retry_after="3600")
    policy = RetryPolicy(retry_after_max_seconds=0.3)
    started = time.monotonic()
    with PrefectClient(ConnectionSettings(proxy.api_url), policy) as client:
        assert client.get("/health") is True
    assert time.monotonic() - started < 2
