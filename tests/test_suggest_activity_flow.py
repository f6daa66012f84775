"""The `suggest-activity` flow, run for real: in-process against the real Prefect test server, calling a fake
Bored API over real HTTP, and read back through Prefect (flow run state, artifacts)."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.objects import Artifact, StateType
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import State

from flows import bored_api
from flows.suggest_activity import (
    ARTIFACT_KEY,
    FLOW_TIMEOUT_SECONDS,
    activity_markdown,
    main,
    suggest_activity,
)
from tests.support.fake_bored_api import MIRROR_NO_MATCH, SPA_PAGE, FakeBoredApi, Fault
from tests.support.prefect_server import PrefectServer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Taken at import, before any test shrinks the policy: the production values.
PRODUCTION_WORST_CASE_SECONDS = bored_api.worst_case_seconds()
PRODUCTION_MAX_ATTEMPTS = bored_api.MAX_ATTEMPTS


@pytest.fixture(autouse=True)
def fast_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same policy, smaller numbers, so failure modes are exercised over real HTTP in well under a second."""
    monkeypatch.setattr(bored_api, "REQUEST_TIMEOUT", httpx.Timeout(0.5))
    monkeypatch.setattr(bored_api, "MAX_ATTEMPTS", 4)
    monkeypatch.setattr(bored_api, "BACKOFF_SECONDS", 0.05)
    monkeypatch.setattr(bored_api, "MAX_RETRY_AFTER_SECONDS", 3.0)
    monkeypatch.setattr(bored_api, "MAX_TOTAL_WAIT_SECONDS", 5.0)


@pytest.fixture
def fake_bored_api() -> Iterator[FakeBoredApi]:
    with FakeBoredApi() as server:
        yield server


@pytest.fixture
def api(prefect_api: str, fake_bored_api: FakeBoredApi) -> Iterator[FakeBoredApi]:
    """The fake Bored API, with this process's Prefect client pointed at the test server.

    Flow-run heartbeats are off: their thread takes up to a second to stop after every run, and
    they only matter to a worker watching for crashed runs.
    """
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield fake_bored_api
    APILogWorker.drain_all(timeout=5)  # ship this test's run logs while the server is certainly up


# --- helpers -------------------------------------------------------------------------------------------


def run(api_url: str, **parameters: Any) -> tuple[State[Any], UUID]:
    state = suggest_activity(api_url=api_url, return_state=True, **parameters)
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    return state, run_id


def artifacts_of(run_id: UUID) -> list[Artifact]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])
            )
        )


def the_artifact_of(run_id: UUID) -> str:
    artifacts = artifacts_of(run_id)
    assert len(artifacts) == 1, artifacts
    assert artifacts[0].type == "markdown"
    assert isinstance(artifacts[0].data, str)
    return artifacts[0].data


def assert_failed_without_artifact(run_id: UUID, *fragments: str) -> str:
    """The run is FAILED on the server, its message has every fragment, and it wrote no artifact."""
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
    assert flow_run.state is not None
    assert flow_run.state.type == StateType.FAILED, flow_run.state
    message = flow_run.state.message or ""
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert artifacts_of(run_id) == []
    return message


def assert_same_activity(returned: bored_api.Activity, served: dict[str, Any]) -> None:
    assert (returned.key, returned.activity, returned.type) == (
        served["key"],
        served["activity"],
        served["type"],
    )


# --- success paths -------------------------------------------------------------------------------------


def test_random_activity_is_returned_printed_and_kept_as_artifact(
    api: FakeBoredApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="prefect")
    state, run_id = run(api.url)

    assert state.is_completed()
    activity = state.result()
    assert [(r.path, r.query) for r in api.requests] == [("/random", {})]
    (served,) = api.requests[0].served
    assert_same_activity(activity, served)
    assert activity.source_shape == "appbrewery"
    assert activity.accessibility == served["availability"]
    assert activity.accessibility_label == served["accessibility"]
    assert activity.kid_friendly is served["kidFriendly"]

    markdown = the_artifact_of(run_id)
    lines = markdown.splitlines()
    assert lines[0] == f"# {served['activity']}"
    assert "| Field | Value |" in lines
    assert f"| Type | {served['type']} |" in lines
    assert f"| Participants | {served['participants']} |" in lines
    assert f"| Duration | {served['duration']} |" in lines
    assert f"| Key | {served['key']} |" in lines
    assert f"| Link | [{served['link']}]({served['link']}) |" in lines

    printed = [
        r for r in caplog.records if r.name == "prefect.flow_runs" and "Suggested activity" in r.message
    ]
    assert printed and served["activity"] in printed[0].getMessage()


def test_filters_call_filter_and_pick_one_of_the_listed(api: FakeBoredApi) -> None:
    state, run_id = run(api.url, activity_type="Cooking", participants=2)

    assert state.is_completed()
    (request,) = api.requests
    assert (request.path, request.query) == ("/filter", {"type": "cooking", "participants": "2"})
    assert len(request.served) == api.filter_size
    activity = state.result()
    assert activity.key in {a["key"] for a in request.served}
    assert (activity.type, activity.participants) == ("cooking", 2)
    assert the_artifact_of(run_id).splitlines()[0] == f"# {activity.activity}"


def test_an_activity_without_link_has_no_link_in_the_artifact(api: FakeBoredApi) -> None:
    api.with_links = False
    state, run_id = run(api.url)

    assert state.is_completed()
    assert state.result().link == ""
    markdown = the_artifact_of(run_id)
    assert "| Link |" not in markdown and "](" not in markdown


def test_self_hosted_original_api_behind_its_web_app_is_detected_from_the_response(api: FakeBoredApi) -> None:
    # The original server answers /random with its web page (HTTP 200 HTML); the flow then asks /api/activity.
    api.shape = "original"
    state, run_id = run(api.url)

    assert state.is_completed()
    assert [r.path for r in api.requests] == ["/random", "/api/activity"]
    (served,) = api.requests[1].served
    activity = state.result()
    assert_same_activity(activity, served)
    assert activity.source_shape == "original"
    assert activity.accessibility == served["accessibility"]
    assert (activity.duration, activity.kid_friendly, activity.accessibility_label) == (None, None, None)
    markdown = the_artifact_of(run_id)
    assert markdown.splitlines()[0] == f"# {served['activity']}"
    assert "| Duration |" not in markdown and "| Kid-friendly |" not in markdown
    assert f"| Link | [{served['link']}]({served['link']}) |" in markdown


def test_self_hosted_original_api_with_filters_and_404_on_unknown_paths(api: FakeBoredApi) -> None:
    api.shape, api.spa_fallback = "original", False
    state, _ = run(api.url, activity_type="music", participants=1)

    assert state.is_completed()
    assert [(r.path, r.status) for r in api.requests] == [("/filter", 404), ("/api/activity", 200)]
    assert api.requests[1].query == {"type": "music", "participants": "1"}
    assert_same_activity(state.result(), api.requests[1].served[0])


def test_runs_keep_a_history_under_one_artifact_key(api: FakeBoredApi) -> None:
    first, first_run = run(api.url)
    second, second_run = run(api.url)

    assert first.result().key != second.result().key
    with get_client(sync_client=True) as client:
        history = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[ARTIFACT_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[first_run, second_run]),
            )
        )
        latest = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[ARTIFACT_KEY]))
        )
    assert {a.flow_run_id for a in history} == {first_run, second_run}
    assert len(latest) == 1 and latest[0].flow_run_id == second_run
    assert isinstance(latest[0].data, str) and latest[0].data.startswith(f"# {second.result().activity}\n")


# --- 429 -----------------------------------------------------------------------------------------------


def test_429_waits_as_retry_after_says_then_retries(api: FakeBoredApi) -> None:
    api.add_faults(Fault.rate_limited(retry_after="1"))
    state, run_id = run(api.url)

    assert state.is_completed()
    assert [r.status for r in api.requests] == [429, 200]
    assert api.requests[1].at - api.requests[0].at >= 0.95  # Retry-After: 1, not our 0.05 s backoff
    assert_same_activity(state.result(), api.requests[1].served[0])
    assert the_artifact_of(run_id)


def test_429_retry_after_as_http_date(api: FakeBoredApi) -> None:
    api.add_faults(Fault.rate_limited_until(2))
    state, _ = run(api.url)

    assert state.is_completed()
    assert [r.status for r in api.requests] == [429, 200]
    assert api.requests[1].at - api.requests[0].at >= 0.9  # the date is whole seconds: 1-2 s ahead
    assert api.requests[0].fault is not None and api.requests[0].fault.retry_after_date_in == 2


def test_429_asking_longer_than_the_cap_fails_at_once(api: FakeBoredApi) -> None:
    api.add_faults(Fault.rate_limited(retry_after="600"))
    state, run_id = run(api.url)

    assert state.is_failed()
    assert len(api.requests) == 1
    assert_failed_without_artifact(
        run_id, f"{api.url}/random", "HTTP 429", "Retry-After: 600", "run again later"
    )


# --- 5xx and timeouts ----------------------------------------------------------------------------------


def test_5xx_and_408_are_retried_with_growing_backoff_then_succeed(
    api: FakeBoredApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bored_api, "BACKOFF_SECONDS", 0.1)
    api.add_faults(Fault.http(503), Fault.http(501), Fault.http(408))
    state, run_id = run(api.url)

    assert state.is_completed()
    assert [r.status for r in api.requests] == [503, 501, 408, 200]
    gaps = [later.at - earlier.at for earlier, later in zip(api.requests, api.requests[1:], strict=False)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4
    assert_same_activity(state.result(), api.requests[3].served[0])
    assert the_artifact_of(run_id)


def test_persistent_5xx_fails_after_max_attempts_naming_url_and_status(api: FakeBoredApi) -> None:
    api.add_faults(*[Fault.http(500)] * 10)
    state, run_id = run(api.url, activity_type="social")

    assert state.is_failed()
    assert len(api.requests) == bored_api.MAX_ATTEMPTS == 4
    assert_failed_without_artifact(
        run_id, f"{api.url}/filter?type=social", "HTTP 500", "gave up after 4 attempt"
    )


def test_timeout_is_retried_and_the_run_gets_the_later_answer(api: FakeBoredApi) -> None:
    api.add_faults(Fault.stall(1.5))  # the client's read timeout is 0.5 s
    state, _ = run(api.url)

    assert state.is_completed()
    assert len(api.requests) == 2
    # The stalled request was answered too, after the client left: the run must hold the second activity.
    assert_same_activity(state.result(), api.requests[1].served[0])


def test_persistent_timeouts_fail_naming_url(api: FakeBoredApi) -> None:
    api.add_faults(*[Fault.stall(1.5)] * 4)
    state, run_id = run(api.url)

    assert state.is_failed()
    assert len(api.requests) == 4
    assert_failed_without_artifact(run_id, f"{api.url}/random", "timed out", "ReadTimeout", "gave up after 4")


def test_a_hung_run_ends_failed_at_the_flow_timeout(
    api: FakeBoredApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bored_api, "REQUEST_TIMEOUT", httpx.Timeout(30.0))
    api.add_faults(Fault.stall(5))
    started = time.monotonic()
    state = suggest_activity.with_options(timeout_seconds=1)(api_url=api.url, return_state=True)

    assert time.monotonic() - started < 4.5
    assert state.is_failed() and state.name == "TimedOut"
    assert state.state_details.flow_run_id is not None
    assert_failed_without_artifact(state.state_details.flow_run_id, "exceeded timeout")
    assert suggest_activity.timeout_seconds == FLOW_TIMEOUT_SECONDS


# --- other 4xx -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_other_4xx_fails_at_once_without_retry(api: FakeBoredApi, status: int) -> None:
    api.add_faults(Fault.http(status))
    state, run_id = run(api.url)

    assert state.is_failed()
    assert len(api.requests) == 1
    assert_failed_without_artifact(run_id, f"{api.url}/random", f"HTTP {status}", "not retried")


def test_404_everywhere_fails_after_the_one_shape_probe(api: FakeBoredApi) -> None:
    api.add_faults(Fault.http(404, {"error": "gone"}), Fault.http(404, {"error": "gone"}))
    state, run_id = run(api.url)

    assert state.is_failed()
    assert [(r.path, r.status) for r in api.requests] == [("/random", 404), ("/api/activity", 404)]
    assert_failed_without_artifact(
        run_id, f"{api.url}/random", f"{api.url}/api/activity", "HTTP 404", "api_url"
    )


# --- bodies that are not an activity -------------------------------------------------------------------------


def test_a_body_that_is_not_json_fails_quoting_it_truncated(api: FakeBoredApi) -> None:
    body = (
        "<html><body>Service temporarily replaced by a captive portal"
        + " lorem ipsum" * 100
        + "</body></html>"
    )
    api.add_faults(Fault.not_json(body))
    state, run_id = run(api.url)

    assert state.is_failed()
    # The mirror path gave a web page, so the original API path was probed once; it does not exist here.
    assert [(r.path, r.status) for r in api.requests] == [("/random", 200), ("/api/activity", 404)]
    message = assert_failed_without_artifact(
        run_id, f"{api.url}/random", "not JSON", "captive portal", "more chars"
    )
    assert "</body></html>" not in message  # truncated


def test_json_without_activity_fails_quoting_it(api: FakeBoredApi) -> None:
    api.add_faults(Fault.json_body({"status": "ok", "data": {"todo": "nothing"}}))
    state, run_id = run(api.url)

    assert state.is_failed()
    assert len(api.requests) == 1
    assert_failed_without_artifact(run_id, f"{api.url}/random", "no 'activity'", '"todo": "nothing"')


def test_an_activity_with_bad_fields_fails_quoting_it(api: FakeBoredApi) -> None:
    api.add_faults(Fault.json_body({"activity": "Nap", "type": "relaxation", "participants": 0, "key": "1"}))
    state, run_id = run(api.url)

    assert state.is_failed()
    assert_failed_without_artifact(run_id, f"{api.url}/random", "'participants'", '"activity": "Nap"')


# --- no match ----------------------------------------------------------------------------------------


def test_no_match_as_the_mirrors_error_body(api: FakeBoredApi) -> None:
    state, run_id = run(api.url, activity_type="charity", participants=50)

    assert state.is_failed()
    assert [(r.path, r.status) for r in api.requests] == [("/filter", 404)]
    assert_failed_without_artifact(
        run_id, "no activity matches type=charity participants=50", MIRROR_NO_MATCH["error"]
    )


def test_no_match_as_an_empty_list(api: FakeBoredApi) -> None:
    api.no_match = "empty"
    api.types = {"education"}
    state, run_id = run(api.url, activity_type="diy")

    assert state.is_failed()
    assert len(api.requests) == 1
    assert_failed_without_artifact(run_id, "no activity matches type=diy participants=any", "empty list")


def test_no_match_on_the_original_api(api: FakeBoredApi) -> None:
    api.shape = "original"
    state, run_id = run(api.url, participants=12)

    assert state.is_failed()
    assert [(r.path, r.status) for r in api.requests] == [("/filter", 200), ("/api/activity", 200)]
    assert_failed_without_artifact(run_id, "no activity matches type=any participants=12")


# --- parameters are checked before any request ---------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ({"activity_type": "sports"}, "is not one of: education, recreational"),
        ({"participants": 0}, "participants must be a whole number >= 1"),
    ],
)
def test_bad_filters_fail_before_any_request(
    api: FakeBoredApi, parameters: dict[str, Any], fragment: str
) -> None:
    state, run_id = run(api.url, **parameters)

    assert state.is_failed()
    assert api.requests == []
    assert_failed_without_artifact(run_id, fragment)


# --- the retry policy itself ---------------------------------------------------------------------------


def test_production_retry_policy_stays_under_two_minutes() -> None:
    # Computed from the module constants (attempts x per-attempt timeouts + the total wait budget).
    assert PRODUCTION_WORST_CASE_SECONDS < 120
    assert PRODUCTION_MAX_ATTEMPTS >= 3  # at least two retries for a daily job
    assert FLOW_TIMEOUT_SECONDS > PRODUCTION_WORST_CASE_SECONDS


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: retry now
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    from datetime import UTC, datetime

    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert bored_api.parse_retry_after(header, now=now) == expected


# --- CLI -----------------------------------------------------------------------------------------------


def test_cli_runs_the_flow_once_and_prints_the_activity(
    api: FakeBoredApi, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--api-url", api.url, "--type", "education", "--participants", "1"]) == 0
    out = capsys.readouterr().out
    served_keys = {a["key"] for a in api.served()}
    assert out.count("Suggested activity: Fake activity") >= 1
    assert any(f"key {key}" in out for key in served_keys)

    api.add_faults(Fault.http(400))
    assert main(["--api-url", api.url]) == 1
    assert "HTTP 400" in capsys.readouterr().err


def test_python_dash_m_runs_it(prefect_server: PrefectServer, fake_bored_api: FakeBoredApi) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_server.api_url}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.suggest_activity",
            "--api-url",
            fake_bored_api.url,
            "--participants",
            "3",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (request,) = fake_bored_api.requests
    assert request.query == {"participants": "3"}
    assert any(f"key {a['key']}" in done.stdout for a in request.served), done.stdout


def test_the_fake_original_server_serves_its_web_app_like_the_real_one(fake_bored_api: FakeBoredApi) -> None:
    fake_bored_api.shape = "original"
    page = httpx.get(f"{fake_bored_api.url}/random")
    assert (page.status_code, page.text) == (200, SPA_PAGE)
    unknown = httpx.get(f"{fake_bored_api.url}/api/nope").json()
    assert unknown == {"error": "Endpoint not found"}


def test_the_fake_mirror_serves_unique_activities_and_looks_them_up_by_key(
    fake_bored_api: FakeBoredApi,
) -> None:
    first = httpx.get(f"{fake_bored_api.url}/random").json()
    listed = httpx.get(f"{fake_bored_api.url}/filter", params={"type": "diy", "participants": 2}).json()
    assert len({a["key"] for a in [first, *listed]}) == 1 + fake_bored_api.filter_size
    assert {(a["type"], a["participants"]) for a in listed} == {("diy", 2)}
    assert httpx.get(f"{fake_bored_api.url}/activity/{first['key']}").json() == first
    assert fake_bored_api.served() == [first, *listed, first]
    assert [r.path for r in fake_bored_api.requests_to("/random")] == ["/random"]


# --- the artifact's markdown (unit) --------------------------------------------------------------------


def make_activity(**changes: Any) -> bored_api.Activity:
    base = bored_api.parse_activity(
        {"activity": "Learn Express.js", "type": "education", "participants": 1, "price": 0.1}
        | {"accessibility": 0.25, "link": "https://expressjs.com/", "key": "3943506"}
    )
    return dataclasses.replace(base, **changes)


def test_markdown_has_a_title_line_a_table_and_a_clickable_link() -> None:
    markdown = activity_markdown(
        make_activity(accessibility_label="Few to no challenges", duration="hours", kid_friendly=False)
    )
    assert markdown.splitlines() == [
        "# Learn Express.js",
        "",
        "| Field | Value |",
        "| --- | --- |",
        "| Type | education |",
        "| Participants | 1 |",
        "| Price | 0.1 (0 = free, 1 = most expensive) |",
        "| Accessibility | 0.25 (0 = most accessible), Few to no challenges |",
        "| Duration | hours |",
        "| Kid-friendly | no |",
        "| Link | [https://expressjs.com/](https://expressjs.com/) |",
        "| Key | 3943506 |",
    ]


def test_markdown_escapes_api_text_and_only_links_web_urls() -> None:
    markdown = activity_markdown(
        make_activity(activity="Pipes | and *stars*", price=0.0, link="javascript:alert(1)")
    )
    lines = markdown.splitlines()
    assert lines[0] == r"# Pipes \| and \*stars\*"
    assert "| Price | free |" in lines
    assert "| Link | javascript:alert(1) |" in lines and "](" not in markdown
    spaced = activity_markdown(make_activity(link="https://example.org/a b(c)"))
    assert "[https://example.org/a b(c)](https://example.org/a%20b%28c%29)" in spaced


def test_an_unreachable_api_is_retried_then_fails_naming_url(api: FakeBoredApi) -> None:
    with FakeBoredApi() as gone:
        url = gone.url  # a port that was just free: nothing listens there once the server stops
    state, run_id = run(url)

    assert state.is_failed()
    assert_failed_without_artifact(run_id, f"{url}/random", "ConnectError", "gave up after 4 attempt")
