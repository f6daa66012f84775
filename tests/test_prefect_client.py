"""The shared Prefect API client and the validation helpers: settings, URLs, errors, local checks.

Unit tests where the behaviour is pure (URL parsing, settings precedence, validators); the error messages
are checked against a REAL Prefect server, since what they must explain is what the server answers.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pulumi.dynamic.config import Config

from infra.prefect import (
    CLOUD_ONLY_POOL_TYPES,
    WORK_POOL_TYPES,
    ConnectionSettings,
    PrefectApiError,
    PrefectClient,
    PrefectConfigError,
    RetryPolicy,
    cron_problem,
    deployment_ui_url,
    name_problem,
    parse_cloud_api_url,
    timezone_problem,
    ui_base_url,
    work_pool_name_problem,
    work_pool_type_problem,
    work_pool_ui_url,
)
from infra.prefect.client import parse_retry_after
from infra.prefect.props import canonical, from_wire, same
from infra.prefect.schedules import as_server, format_time, from_server, next_fire_time, plan, with_defaults
from infra.prefect.validation import (
    base_job_template_problem,
    placeholder_names,
    validation_failure,
    values_errors,
    values_problems,
)
from infra.prefect_snapshots import flow_parameter_schema, worker_base_job_template
from tests.support.prefect_server import PrefectServer

ACCOUNT = "9b8a2f3e-1c4d-4e5f-8a9b-0c1d2e3f4a5b"
WORKSPACE = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
CLOUD_API = f"https://api.prefect.cloud/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"
CLOUD_UI = f"https://app.prefect.cloud/account/{ACCOUNT}/workspace/{WORKSPACE}"


# --- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("api_url", [CLOUD_API, CLOUD_API + "/"])
def test_cloud_api_url_is_parsed_into_account_and_workspace(api_url: str) -> None:
    cloud = parse_cloud_api_url(api_url)
    assert cloud is not None
    assert (cloud.account_id, cloud.workspace_id, cloud.ui_root) == (
        ACCOUNT,
        WORKSPACE,
        "https://app.prefect.cloud",
    )
    assert ConnectionSettings(api_url, api_key="pnu_x").is_cloud


@pytest.mark.parametrize(
    "api_url", ["http://127.0.0.1:4200/api", "https://prefect.example.com/api", "http://host/api/accounts/a"]
)
def test_self_hosted_urls_are_not_cloud(api_url: str) -> None:
    assert parse_cloud_api_url(api_url) is None
    assert not ConnectionSettings(api_url).is_cloud


def test_ui_urls_for_cloud_and_self_hosted() -> None:
    assert ui_base_url(CLOUD_API) == CLOUD_UI
    assert ui_base_url("http://127.0.0.1:4200/api") == "http://127.0.0.1:4200"
    assert ui_base_url("http://127.0.0.1:4200/api/") == "http://127.0.0.1:4200"
    assert ui_base_url("https://prefect.example.com/prefect/api") == "https://prefect.example.com/prefect"
    assert work_pool_ui_url(CLOUD_API, "docker pool") == f"{CLOUD_UI}/work-pools/work-pool/docker%20pool"
    assert work_pool_ui_url("http://h:4200/api", "p") == "http://h:4200/work-pools/work-pool/p"
    assert deployment_ui_url("http://h:4200/api", "abc") == "http://h:4200/deployments/deployment/abc"
    # Other Prefect Cloud environments follow the same api. -> app. rule as Prefect's own settings.
    staging = f"https://api.stg.prefect.dev/api/accounts/{ACCOUNT}/workspaces/{WORKSPACE}"
    assert ui_base_url(staging).startswith("https://app.stg.prefect.dev/account/")


# --- connection settings --------------------------------------------------------------------------


def test_stack_config_wins_and_the_environment_is_the_fallback() -> None:
    env = {
        "PREFECT_API_URL": "http://env:4200/api",
        "PREFECT_API_KEY": "pnu_env",
        "PREFECT_API_AUTH_STRING": "e:p",
    }
    from_env = ConnectionSettings.from_config({}, env)
    assert (from_env.api_url, from_env.api_key, from_env.auth_string) == (
        "http://env:4200/api",
        "pnu_env",
        "e:p",
    )
    assert ConnectionSettings.from_config({}, {}).api_url is None
    # Only the URL in the stack config, the same server in the environment: its credentials apply.
    same_server = ConnectionSettings.from_config({"prefect:apiUrl": "http://env:4200/api/"}, env)
    assert (same_server.api_key, same_server.auth_string) == ("pnu_env", "e:p")


def test_credentials_are_never_sent_to_a_server_they_were_not_given_for() -> None:
    cloud_env = {"PREFECT_API_URL": CLOUD_API, "PREFECT_API_KEY": "pnu_cloud"}
    local = ConnectionSettings.from_config({"prefect:apiUrl": "http://127.0.0.1:4200/api"}, cloud_env)
    assert (local.api_url, local.api_key) == ("http://127.0.0.1:4200/api", None)
    # Credentials from the stack config come as a pair: an API key in the environment cannot override
    # the configured basic auth (Prefect gives a key precedence over an auth string).
    config = {"prefect:apiUrl": "http://127.0.0.1:4200/api", "prefect:authString": "u:p"}
    with_auth = ConnectionSettings.from_config(config, {"PREFECT_API_KEY": "pnu_env"})
    assert (with_auth.api_key, with_auth.auth_string) == (None, "u:p")
    assert with_auth.auth_headers()["Authorization"].startswith("Basic ")


def test_settings_read_from_the_dynamic_provider_config_object() -> None:
    """`configure()` receives a `pulumi.dynamic.Config`; namespaced keys are looked up as they are."""
    config = Config({"prefect:apiUrl": "http://c:4200/api", "prefect:authString": "u:p"}, project_name="p")
    settings = ConnectionSettings.from_config(config, {})
    assert (settings.api_url, settings.auth_string) == ("http://c:4200/api", "u:p")


def test_credentials_never_appear_in_repr() -> None:
    text = repr(ConnectionSettings("http://h/api", api_key="pnu_SECRET", auth_string="u:SECRET"))
    assert "SECRET" not in text


def test_auth_headers_follow_prefects_precedence() -> None:
    assert ConnectionSettings("http://h/api", auth_string="user:pass").auth_headers() == {
        "Authorization": "Basic " + base64.b64encode(b"user:pass").decode()
    }
    assert ConnectionSettings("http://h/api", api_key="pnu_k", auth_string="u:p").auth_headers() == {
        "Authorization": "Bearer pnu_k"
    }
    assert ConnectionSettings("http://h/api").auth_headers() == {}


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (ConnectionSettings(None), "pulumi config set prefect:apiUrl"),
        (ConnectionSettings("localhost:4200/api"), "is not an http(s) URL"),
        (ConnectionSettings(CLOUD_UI), "looks like a Prefect UI address"),
        (ConnectionSettings(CLOUD_API), "pulumi config set --secret prefect:apiKey"),
    ],
)
def test_unusable_settings_say_how_to_fix_them(settings: ConnectionSettings, fragment: str) -> None:
    with pytest.raises(PrefectConfigError) as error:
        settings.require_url()
    assert fragment in str(error.value)


def test_retry_policy_from_environment_and_retry_after_parsing() -> None:
    policy = RetryPolicy.from_env(
        {"PULUMI_PREFECT_MAX_ATTEMPTS": "2", "PULUMI_PREFECT_TIMEOUT_SECONDS": "1.5"}
    )
    assert (policy.max_attempts, policy.timeout_seconds, policy.budget_seconds) == (2, 1.5, 45.0)
    with pytest.raises(PrefectConfigError, match="PULUMI_PREFECT_MAX_ATTEMPTS"):
        RetryPolicy.from_env({"PULUMI_PREFECT_MAX_ATTEMPTS": "many"})
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    # Backoff grows exponentially, is capped, and jitters within [ceiling/2, ceiling].
    assert all(0.25 <= RetryPolicy().backoff(1) <= 0.5 for _ in range(20))
    assert all(4.0 <= RetryPolicy().backoff(10) <= 8.0 for _ in range(20))


# --- errors from a real server --------------------------------------------------------------------


@pytest.fixture
def client(prefect_server: PrefectServer) -> Any:
    with PrefectClient(ConnectionSettings(prefect_server.api_url)) as api:
        yield api


def test_validation_error_names_method_path_status_and_field(client: PrefectClient) -> None:
    with pytest.raises(PrefectApiError) as error:
        client.post("/work_pools/", {"name": "bad/name", "type": "process"}, idempotent=False)
    message = str(error.value)
    assert "POST /work_pools/" in message
    assert "422" in message
    assert "field `name`" in message and "^[^/%&><]+$" in message
    assert error.value.status_code == 422


def test_union_validation_errors_are_reduced_to_the_one_that_explains(client: PrefectClient) -> None:
    flow = client.post("/flows/", {"name": "client-test-flow"}, idempotent=True)
    body = {
        "name": "d",
        "flow_id": flow["id"],
        "schedules": [{"schedule": {"cron": "61 * * * *"}, "slug": "s"}],
    }
    with pytest.raises(PrefectApiError) as error:
        client.post("/deployments/", body, idempotent=True)
    message = str(error.value)
    assert 'field `schedules[0].schedule.cron`: Value error, Invalid cron string: "61 * * * *"' in message
    assert "interval" not in message  # the IntervalSchedule branch of the union is noise


def test_not_found_trailing_slash_and_delete_semantics(
    client: PrefectClient, cleanup: Callable[[str], None]
) -> None:
    cleanup("/work_pools/client-test-pool")
    assert client.get_or_none("/work_pools/client-test-missing") is None
    client.post("/work_pools/", {"name": "client-test-pool", "type": "process"}, idempotent=False)
    with pytest.raises(PrefectApiError, match="trailing slash"):
        client.get("/work_pools/client-test-pool/")
    assert client.delete("/work_pools/client-test-pool") is True
    assert client.delete("/work_pools/client-test-pool") is False  # 404 is success


def test_conflict_carries_the_servers_detail(client: PrefectClient, cleanup: Callable[[str], None]) -> None:
    cleanup("/work_pools/client-test-dup")
    client.post("/work_pools/", {"name": "client-test-dup", "type": "process"}, idempotent=False)
    with pytest.raises(PrefectApiError) as error:
        client.post("/work_pools/", {"name": "client-test-dup", "type": "process"}, idempotent=False)
    assert error.value.status_code == 409
    assert "A work pool with this name already exists." in str(error.value)


# --- validation helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["0 9 * * *", "*/5 * * * *", "0 9 * * 1-5", "30 6 1 * *"])
def test_valid_crons(cron: str) -> None:
    assert cron_problem(cron) is None


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("", "is required"),
        ("0 9 * *", "has 4 field(s)"),
        ("0 0 9 * * *", "has 6 field(s)"),
        ("61 * * * *", "is not a valid cron expression"),
        ("H * * * *", "is not a valid cron expression"),  # Jenkins-style hashed fields
        ("@daily", "has 1 field(s)"),
    ],
)
def test_invalid_crons_name_the_field_and_show_an_example(cron: str, fragment: str) -> None:
    problem = cron_problem(cron, "suggest-activity:cron")
    assert problem is not None
    assert problem.startswith("suggest-activity:cron")
    assert fragment in problem and "'0 9 * * *'" in problem


def test_timezones_are_checked_against_prefects_list() -> None:
    assert timezone_problem("Europe/Athens") is None
    assert timezone_problem("UTC") is None
    problem = timezone_problem("Mars/Olympus", "schedules[0].timezone")
    assert problem is not None and problem.startswith("schedules[0].timezone 'Mars/Olympus'")
    assert timezone_problem("") is not None


def test_names() -> None:
    assert name_problem("daily suggestion", "name") is None
    assert "cannot contain" in (name_problem("a/b", "name") or "")
    assert "'a-b'" in (name_problem("a/b", "name") or "")
    assert "required" in (name_problem("", "name") or "")
    assert "leading or trailing" in (name_problem(" x", "name") or "")
    assert "reserves" in (work_pool_name_problem("Prefect-pool") or "")
    assert name_problem("prefect-flow", "flow_name") is None  # the prefix is reserved for pools only


def test_pool_types() -> None:
    assert CLOUD_ONLY_POOL_TYPES < WORK_POOL_TYPES
    assert {"process", "docker", "kubernetes", "prefect:managed"} <= WORK_POOL_TYPES
    assert work_pool_type_problem("docker", is_cloud=False) is None
    assert "not a known work pool type" in (work_pool_type_problem("dokcer", is_cloud=False) or "")
    assert "only on Prefect Cloud" in (work_pool_type_problem("prefect:managed", is_cloud=False) or "")
    assert work_pool_type_problem("prefect:managed", is_cloud=True) is None


def test_base_job_templates() -> None:
    process = worker_base_job_template("process")
    docker = worker_base_job_template("docker")
    assert "image" in docker["variables"]["properties"]  # from prefect-docker's DockerWorker
    assert base_job_template_problem(process) is None and base_job_template_problem(docker) is None
    assert base_job_template_problem({}) is None
    assert "job_configuration" in (base_job_template_problem({"variables": {"properties": {}}}) or "")
    undeclared = {"job_configuration": {"command": "{{ cmd }}"}, "variables": {"properties": {}}}
    assert "uses cmd" in (base_job_template_problem(undeclared) or "")
    bad_schema = {"job_configuration": {"c": "x"}, "variables": {"type": "nonsense", "properties": {}}}
    assert "not a valid JSON schema" in (base_job_template_problem(bad_schema) or "")


# --- the checks that reproduce Prefect's, held against Prefect's own code ---------------------------


@pytest.mark.parametrize(
    "cron",
    ["0 9 * * *", "*/5 * * * *", "0 9 * * 1-5", "0 9 * * MON-FRI", "0 9 * * 7", "0 9 L * *", "0 9 * * 1#2",
     "61 * * * *", "0 24 * * *", "*/0 * * * *", "H * * * *", "R 9 * * *", "0 9 * * 8",
     "0 9 ? * *", "a b c d e"],
)  # fmt: skip
def test_cron_check_agrees_with_prefects_validator(cron: str) -> None:
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        validate_cron_string(cron)
        prefect_accepts = True
    except ValueError:
        prefect_accepts = False
    assert (cron_problem(cron) is None) == prefect_accepts


def test_cron_check_is_stricter_than_prefect_where_its_scheduler_plans_nothing() -> None:
    """Prefect's validator accepts a date that never comes; its scheduler then plans no run at all."""
    from prefect._internal.schemas.validators import validate_cron_string

    validate_cron_string("0 9 31 2 *")  # accepted by the server...
    assert "never fires" in (cron_problem("0 9 31 2 *") or "")  # ...refused by us before anything is created


def test_timezone_check_uses_prefects_list() -> None:
    from prefect.types._datetime import get_timezones

    from infra.prefect.validation import _timezones

    assert _timezones() == set(get_timezones())


@pytest.mark.parametrize(
    "template",
    [worker_base_job_template("process")["job_configuration"], worker_base_job_template("docker")["job_configuration"],
     {"a": "{{ x }}{{y.z}} {{ $HOME }} {{prefect.variables.v}} {{ bad name }}", "b": ["{{ k[0] }}", 3, None]}],
)  # fmt: skip
def test_placeholders_are_found_like_prefect_finds_them(template: Any) -> None:
    from prefect.utilities.templating import find_placeholders

    assert placeholder_names(template) == {p.name for p in find_placeholders(template)}


SCHEMA_CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (flow_parameter_schema(), {"participants": "two"}),
    (flow_parameter_schema(), {"activity_type": None, "participants": 2}),
    (flow_parameter_schema(), {"api_url": 5, "participants": 1.5}),
    (worker_base_job_template("process")["variables"], {"env": 5, "command": ["x"], "working_dir": 1}),
    (worker_base_job_template("docker")["variables"], {"image": "x", "image_pull_policy": "Sometimes"}),
    (worker_base_job_template("docker")["variables"], {"env": {"A": None}, "container_create_kwargs": "no"}),
    (
        {"type": "object", "required": ["n"],
         "properties": {"n": {"type": "integer"}, "o": {"type": "string"}, "t": {"type": "array", "items": [{"type": "integer"}]},
                        "nested": {"type": "object", "required": ["m"], "properties": {"m": {"type": "string"}}}}},
        {"o": None, "t": ["x"], "nested": {}},
    ),
    (
        {"type": "object", "properties": {"b": {"$ref": "#/definitions/Blk"}},
         "definitions": {"Blk": {"title": "Blk", "block_type_slug": "s", "type": "object", "properties": {"v": {"type": "string"}}}}},
        {"b": {"$ref": {"block_document_id": "abc"}}},
    ),
    ({"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}}, {"id": "not-a-uuid"}),
]  # fmt: skip


@pytest.mark.parametrize(("schema", "values"), SCHEMA_CASES)
def test_values_are_validated_exactly_like_prefect_validates_them(
    schema: dict[str, Any], values: dict[str, Any]
) -> None:
    from prefect.utilities.schema_tools import ValidationError, validate

    # The server's way (parameters and job variables): every error, `required` ignored.
    theirs = validate(values, schema, raise_on_error=False, preprocess=True, ignore_required=True)
    assert values_errors(values, schema) == [
        (".".join(str(p) for p in e.absolute_path) or "(all)", e.message) for e in theirs
    ]
    # The stack config's way: the first error, as a message.
    try:
        validate(values, schema, raise_on_error=True)
        expected = None
    except ValidationError as error:
        expected = str(error)
    assert validation_failure(values, schema) == expected


def test_values_are_validated_like_the_server_does() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert values_problems({}, schema) == []  # required ones may come at run time
    assert values_problems({"n": "x"}, schema) == ["n: 'x' is not of type 'integer'"]
    assert values_problems({"n": 1}, {}) == []


# --- wire format and schedule planning ------------------------------------------------------------


def test_wire_values_compare_equal_to_server_values() -> None:
    wire = {"limit": 3.0, "tpl": {"b": 1.0, "a": {"x": None}}, "list": [None, 2.5]}
    assert from_wire(wire) == {"limit": 3, "tpl": {"b": 1, "a": {}}, "list": [None, 2.5]}
    assert same({"b": 1, "a": {"x": None}}, {"a": {}, "b": 1.0})
    assert canonical({"b": 1, "a": 2}) == canonical({"a": 2, "b": 1})


def test_schedules_rebuilt_from_outputs_are_the_servers() -> None:
    cron = {"id": "1", "slug": "s", "active": False, "parameters": {"n": 1},
            "schedule": {"cron": "0 9 * * *", "timezone": "Europe/Athens", "day_or": False}}  # fmt: skip
    from_ui = {"id": "2", "slug": None, "active": True, "parameters": {}, "schedule": {"interval": 3600.0}}
    for server in (cron, from_ui):
        spec = from_server(server)
        assert from_server(as_server(spec, server["id"])) == spec
        assert plan([spec], [as_server(spec, server["id"])]).update == []


@pytest.mark.parametrize(
    ("cron", "timezone", "after"),
    [
        ("0 9 * * *", "Europe/Athens", datetime(2026, 11, 28, 12, 0, 7, tzinfo=UTC)),
        ("0 18 * * 5", "UTC", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
        ("*/15 * * * *", "America/New_York", datetime(2026, 11, 28, 12, 7, tzinfo=UTC)),
        ("0 9 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, 0, tzinfo=UTC)),  # the day of a DST change
        ("0 9 * * 1-5", "Asia/Kolkata", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
    ],
)
def test_the_fallback_next_fire_time_agrees_with_prefects_scheduler(
    cron: str, timezone: str, after: datetime
) -> None:
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule

    # A loop of its own, never made current: asyncio.run would leave none behind for the Pulumi mocks of
    # later tests (in this process, `asyncio.get_event_loop()` would then raise).
    loop = asyncio.new_event_loop()
    try:
        (expected,) = loop.run_until_complete(
            CronSchedule(cron=cron, timezone=timezone).get_dates(n=1, start=after)
        )
    finally:
        loop.close()
    assert next_fire_time([{"slug": "s", "cron": cron, "timezone": timezone}], after=after) == format_time(
        expected
    )


def test_schedule_plan_touches_only_what_changed() -> None:
    def server(slug: str | None, cron: str, sid: str, active: bool = True) -> dict[str, Any]:
        return {"id": sid, "slug": slug, "active": active, "parameters": {},
                "schedule": {"cron": cron, "timezone": None, "day_or": True}}  # fmt: skip

    actual = [server("same", "0 9 * * *", "1"), server("edit", "0 9 * * *", "2"), server("gone", "0 1 * * *", "3"),
              server(None, "0 2 * * *", "4")]  # fmt: skip
    desired = [with_defaults({"slug": "same", "cron": "0 9 * * *"}), {"slug": "edit", "cron": "0 10 * * *"},
               {"slug": "new", "cron": "0 12 * * *", "timezone": "Europe/Athens"}]  # fmt: skip
    steps = plan(desired, actual)
    assert [sid for sid, _ in steps.update] == ["2"]
    assert steps.update[0][1]["schedule"] == {"cron": "0 10 * * *", "timezone": "UTC", "day_or": True}
    assert [body["slug"] for body in steps.create] == ["new"]
    assert sorted(steps.delete) == ["3", "4"]  # removed, and one without a slug (added in the UI)
    assert plan(desired[:1], actual[:1]).empty
