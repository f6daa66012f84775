"""The last step of the user's journey, in a real browser: what the Prefect UI shows through the stack's links.

A dev stack is applied for real (tests/support/local_engine.py) against the local server that the Makefile starts
(`make server`, on a free port, with the login it generates); its smoke run completed before `up` returned. Then
headless Chromium (Debian's `chromium`, driven by Playwright) logs in through the UI's form with the login `make`
printed and opens each link the stack hands the user (the smoke run's among them), asserting on the rendered page
what a person looks for. Times are read in a browser set to the stack's timezone, as its user would.

Adding a link: one line in LINKS, with a check from below or a new one.
Screenshots of the deployment page and of the artifact for the README: `make screenshots` (UI_SCREENSHOTS=1 makes
this test write docs/ui-deployment.png and docs/ui-artifact.png).

The fast tests at the end hold the product's link builders (infra/prefect/client.py), for Prefect Cloud and a
self-hosted server, against Prefect's own: the UI's route table in the installed bundle and
`prefect.utilities.urls.url_for`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from infra.prefect.automation import automation_ui_url
from infra.prefect.client import deployment_ui_url, flow_run_ui_url, ui_base_url, work_pool_ui_url
from infra.prefect.notification_block import block_document_ui_url
from tests.support.docker_env import docker_required
from tests.support.fake_bored_api import FakeBoredApi
from tests.support.journey_stack import quiet_timezone
from tests.support.local_engine import LocalEngine, StackRecord
from tests.support.make_runner import MakeRunner, fresh_clone
from tests.support.program_harness import REPO_ROOT, dev_stack_config
from tests.support.stack_checks import stack_containers
from tests.support.ui_routes import matching_route, workspace_routes

# Debian's `chromium` here (scripts/test-services.sh installs it); GitHub's runners ship `google-chrome` instead.
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("google-chrome")
# Headless Chromium on a machine without internet: no background connections, no first-run, no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 60_000  # a guard: the UI loads its bundle and queries the API on a busy 2-core machine
expect.set_options(timeout=PAGE_TIMEOUT_MS)
SCREENSHOTS = os.environ.get("UI_SCREENSHOTS") == "1"
STACK = "ui"
ARTIFACT_KEY = "activity-suggestion"


# --- the stack, its server and the browser ------------------------------------------------------------------


@dataclass
class UiStack:
    exports: dict[str, Any]
    login: str  # what `make` printed after "Log in with:"
    timezone: str
    pool_name: str
    worker_name: str
    activity: str  # what the fake Bored API served to the smoke run


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if CHROMIUM is None or not Path(CHROMIUM).exists():
        reason = "no chromium or google-chrome (or CHROMIUM_PATH): scripts/test-services.sh installs Debian's chromium"
        if docker_required():
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MakeRunner, str]]:
    """`make server` in a fresh clone: the dev server as users get it, on a port that is not 4200."""
    root = tmp_path_factory.mktemp("ui-server")
    runner = MakeRunner(fresh_clone(root / "clone"), root / "tools", root / "prefect-home")
    started = runner.make("server")
    (login,) = re.findall(r"^Log in with: (\S+)$", started.stdout, re.MULTILINE)
    try:
        yield runner, login
    finally:
        runner.make("server-stop", check=False)


@pytest.fixture(scope="module")
def stack(
    make_server: tuple[MakeRunner, str], docker_client: docker.DockerClient, bored_api: FakeBoredApi
) -> Iterator[UiStack]:
    """The dev stack's configuration with the server's address and login as `make up` sets them, applied for real:
    its smoke run (on by default) is the one run, finished when `up` returns."""
    server, login = make_server
    config = {
        **dev_stack_config(),
        "prefect:apiUrl": server.api_url,
        "prefect:authString": login,
        # Not the dev stack's Athens: a zone where 09:00 is hours away, so no scheduled run joins the smoke run.
        "suggest-activity:timezone": quiet_timezone(),
        "suggest-activity:workerPollSeconds": "2",
        # Alerts on, so that alerts_url opens an automation; the smoke run completes, so nothing is sent.
        "alerts:webhookUrl": "http://127.0.0.1:9/ui-test-alerts",
        "suggest-activity:flowParameters": json.dumps(
            {"api_url": bored_api.url_for_host("host.docker.internal")}
        ),
    }
    engine = LocalEngine(
        project_dir=REPO_ROOT,
        stack=STACK,
        config=config,
        secret_keys=["prefect:authString", "alerts:webhookUrl"],
        docker_client=docker_client,
    )
    record = StackRecord()
    try:
        record = engine.up()
        assert record.exports["smoke_run_state"] == "Completed"
        (worker,) = stack_containers(docker_client, STACK)
        yield UiStack(
            exports=record.exports,
            login=login,
            timezone=config["suggest-activity:timezone"],
            pool_name=record.exports["work_pool_name"],
            worker_name=worker.name,
            activity=bored_api.served()[-1]["activity"],
        )
    finally:
        engine.destroy(record)


def at_the_login_form(browser: Browser, stack: UiStack, url: str) -> Page:
    """`url` opened in the browser of a person in the stack's timezone (so 09:00 there reads 09:00) who has not
    logged in yet: the UI shows its login form."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id=stack.timezone)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_placeholder("admin:pass")).to_be_visible()
    return page


def log_in(page: Page, login: str) -> None:
    """The UI's login form: one password field (it takes the whole `user:password`) and a Login button."""
    page.get_by_placeholder("admin:pass").fill(login)
    page.get_by_role("button", name="Login").click()


@pytest.fixture(scope="module")
def signed_in(chromium: Browser, stack: UiStack) -> Iterator[BrowserContext]:
    page = at_the_login_form(chromium, stack, stack.exports["deployment_url"])
    log_in(page, stack.login)
    expect(page.get_by_text("daily-0900")).to_be_visible()
    page.close()
    yield page.context
    page.context.close()


# --- logging in ---------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_the_ui_asks_for_the_login_refuses_a_wrong_one_and_takes_the_one_make_printed(
    chromium: Browser, stack: UiStack
) -> None:
    page = at_the_login_form(chromium, stack, stack.exports["prefect_ui_url"])  # the address `make` prints
    log_in(page, "admin:not-the-login")
    expect(page.get_by_text("Invalid credentials")).to_be_visible()
    expect(page.get_by_placeholder("admin:pass")).to_be_visible()

    log_in(page, stack.login)
    see_dashboard(page, stack)
    page.context.close()


@pytest.mark.docker
def test_a_link_opened_before_logging_in_shows_its_page_after_the_login(
    chromium: Browser, stack: UiStack
) -> None:
    page = at_the_login_form(chromium, stack, stack.exports["deployment_url"])
    log_in(page, stack.login)
    expect(page.get_by_text("daily-0900")).to_be_visible()
    assert urlsplit(page.url).path == urlsplit(stack.exports["deployment_url"]).path
    page.context.close()


# --- each link the stack hands the user ---------------------------------------------------------------------


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(REPO_ROOT / "docs" / f"ui-{name}.png"))


def see_dashboard(page: Page, stack: UiStack) -> None:
    expect(page.get_by_text("Active Work Pools")).to_be_visible()
    expect(page.get_by_text(stack.pool_name).first).to_be_visible()


def see_deployment(page: Page, stack: UiStack) -> None:
    expect(page.get_by_role("link", name="suggest-activity").first).to_be_visible()  # its flow
    expect(page.get_by_role("link", name=stack.pool_name).first).to_be_visible()
    # The next run, in the stack's timezone, and the schedule's own words when a person points at it.
    expect(page.get_by_text(re.compile(r"Scheduled for \d{4}/\d\d/\d\d 09:00:00 AM")).first).to_be_visible()
    page.get_by_text("daily-0900").hover()
    expect(page.get_by_text(f"At 09:00 AM every day ({stack.timezone})").first).to_be_visible()
    screenshot(page, "deployment")


def see_pool_with_worker_online(page: Page, stack: UiStack) -> None:
    expect(page.get_by_text("Ready", exact=True).first).to_be_visible()
    page.get_by_role("tablist").get_by_text("Workers", exact=True).click()
    row = page.get_by_role("row").filter(has_text=stack.worker_name)
    expect(row.get_by_text("online")).to_be_visible()  # shown capitalised


def see_completed_run(page: Page, stack: UiStack) -> None:
    expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
    expect(page.get_by_text(f"Suggested activity: {stack.activity}").first).to_be_visible()  # its log


def see_artifact(page: Page, stack: UiStack) -> None:
    # The key's page lists every suggestion, newest first; the newest opens the rendered markdown.
    expect(page.get_by_text(f"Suggested activity: {stack.activity}").first).to_be_visible()
    page.locator("a[href*='/artifacts/artifact/']").first.click()
    expect(page.get_by_role("heading", name=stack.activity, exact=True)).to_be_visible()
    screenshot(page, "artifact")


def see_alerts_automation(page: Page, stack: UiStack) -> None:
    # infra/alerts.py names it after the flow, the deployment and the stack.
    expect(page.get_by_text(f"suggest-activity/daily ({STACK}): run failed or late").first).to_be_visible()


@dataclass(frozen=True)
class Link:
    name: str
    url: Callable[[UiStack], str]
    check: Callable[[Page, UiStack], None]


LINKS = [
    Link("prefect_ui_url", lambda s: s.exports["prefect_ui_url"], see_dashboard),
    Link("deployment_url", lambda s: s.exports["deployment_url"], see_deployment),
    Link("work_pool_url", lambda s: s.exports["work_pool_url"], see_pool_with_worker_online),
    Link("smoke_run_url", lambda s: s.exports["smoke_run_url"], see_completed_run),
    Link("alerts_url", lambda s: s.exports["alerts_url"], see_alerts_automation),
    Link("artifact", lambda s: f"{s.exports['prefect_ui_url']}/artifacts/key/{ARTIFACT_KEY}", see_artifact),
]


@pytest.mark.docker
@pytest.mark.parametrize("link", LINKS, ids=[link.name for link in LINKS])
def test_each_link_shows_what_a_person_looks_for(
    signed_in: BrowserContext, stack: UiStack, link: Link
) -> None:
    page = signed_in.new_page()
    try:
        page.goto(link.url(stack))
        link.check(page, stack)
    finally:
        page.close()


# --- link formats, against Prefect's own (fast, no server) --------------------------------------------------

CLOUD_API = "https://api.prefect.cloud/api/accounts/0b6b2f4e-0000-4000-8000-000000000001/workspaces/1c7c3a5f-0000-4000-8000-000000000002"
SELF_HOSTED_API = "http://127.0.0.1:4300/api"
DEPLOYMENT_ID = "7691bd74-fe46-4ca8-b368-d23150e4e51d"
FLOW_RUN_ID = "3f0c2a9e-5b1d-4c7e-9a26-8d4b1e6f0c53"
AUTOMATION_ID = "9b2e51c4-7a0d-4f3e-8c61-2d5f0e9a7b14"
BLOCK_ID = "c4d8a1f2-3e6b-4b9a-a7d0-5f1e2c3b4a69"


@pytest.mark.parametrize("api_url", [CLOUD_API, SELF_HOSTED_API], ids=["cloud", "self-hosted"])
def test_links_match_prefects_own_url_builder(api_url: str) -> None:
    """`url_for` is what Prefect itself prints for an object (with the UI URL Prefect derives from the API URL)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings
    from prefect.utilities.urls import url_for

    with temporary_settings(updates={PREFECT_API_URL: api_url}, restore_defaults={PREFECT_UI_URL}):
        assert ui_base_url(api_url) == PREFECT_UI_URL.value()
        assert deployment_ui_url(api_url, DEPLOYMENT_ID) == url_for("deployment", DEPLOYMENT_ID)
        assert work_pool_ui_url(api_url, "docker pool/1") == url_for("work-pool", "docker pool/1")
        assert flow_run_ui_url(api_url, FLOW_RUN_ID) == url_for("flow-run", FLOW_RUN_ID)
        assert automation_ui_url(api_url, AUTOMATION_ID) == url_for("automation", AUTOMATION_ID)


@pytest.mark.parametrize("api_url", [CLOUD_API, SELF_HOSTED_API], ids=["cloud", "self-hosted"])
def test_links_match_the_ui_route_table(api_url: str) -> None:
    routes = workspace_routes()
    base = urlsplit(ui_base_url(api_url)).path
    expected = {
        deployment_ui_url(api_url, DEPLOYMENT_ID): "workspace.deployments.deployment",
        work_pool_ui_url(api_url, "docker pool"): "workspace.work-pools.work-pool",
        flow_run_ui_url(api_url, FLOW_RUN_ID): "workspace.runs.flow-run",
        # alerts_url, and the block an "already exists" error links to:
        automation_ui_url(api_url, AUTOMATION_ID): "workspace.automation.view",
        block_document_ui_url(api_url, BLOCK_ID): "workspace.blocks.block",
        # The link the browser test builds itself, from prefect_ui_url:
        f"{ui_base_url(api_url)}/artifacts/key/{ARTIFACT_KEY}": "workspace.artifacts.artifact.key",
    }
    for url, route in expected.items():
        path = urlsplit(url).path
        assert path.startswith(base)
        assert matching_route(routes, path.removeprefix(base)) == route, url


def test_the_route_table_reader_finds_the_routes_it_should() -> None:
    """The reader on a small tree shaped like the bundle's (so a change in the bundle shows as a clear failure)."""
    source = (
        "function a(e){return[{path:`dashboard`,name:`workspace.dashboard`,component:e.d},"
        "{path:`work-pools`,meta:{can:`read:work_pool`},children:[{name:`workspace.work-pools`,path:``,component:e.w},"
        "{path:`work-pool/:workPoolName`,children:[{name:`workspace.work-pools.work-pool`,path:``,"
        "component:e.x??(()=>K(()=>import(`./a-{b}.js`),[]))}]}]}]}"
    )
    assert workspace_routes(source) == {
        "workspace.dashboard": "/dashboard",
        "workspace.work-pools": "/work-pools",
        "workspace.work-pools.work-pool": "/work-pools/work-pool/:workPoolName",
    }
