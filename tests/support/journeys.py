"""Journeys: tests that are steps on one shared, module-scoped stack, declared as such.

A module declares `pytestmark = pytest.mark.journey(over="<fixture>")`: its tests that use that fixture are steps,
run in file order, each starting from the state the step before it left (applying a stack for every step would
double CI time). The dependency is made explicit here. A step runs only when every earlier step of its journey
passed earlier in this session; otherwise it fails at setup with one line that names the step to look at:

- after a step failed (in setup, call or teardown), the later steps point to it instead of each failing on the
  state it left with a traceback of its own: one defect reports once; after a step skipped, they skip too (a skip
  happens only where the CI flag allows it: the Pulumi CLI journey on a machine without the CLI);
- a step whose earlier steps were not run first (`-k`, `--lf`, `--ff`, `--nf`, a node id) names them, instead of
  running on a stack they never set up;
- pytest-random-order never reorders the steps (the module's other tests it still shuffles).

Later steps fail rather than skip (unless a step before them skipped): under the CI flag a skip is not allowed to
pass for a result.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import pytest

# On each step: its journey. On the config: every journey, by (file, fixture).
JOURNEY_KEY = pytest.StashKey["Journey"]()
JOURNEYS_KEY = pytest.StashKey[dict[tuple[str, str], "Journey"]]()


@dataclass
class Journey:
    over: str  # the module fixture the steps share
    steps: list[str] = field(default_factory=list)  # node ids in file order, as the module defines them
    outcomes: dict[str, str] = field(default_factory=dict)  # node id -> "passed", "failed" or "skipped"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "journey(over=fixture): the module's tests using that fixture are ordered steps on one shared stack",
    )
    config.stash[JOURNEYS_KEY] = {}


def _name(nodeid: str) -> str:
    return nodeid.rpartition("::")[2]


def _journey_over(item: pytest.Item) -> str | None:
    fixtures = getattr(item, "fixturenames", ())
    overs = [marker.kwargs["over"] for marker in item.iter_markers("journey")]
    return next((over for over in overs if over in fixtures), None)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    # The innermost wrapper sees a module's tests before `--lf` drops the ones that passed last time.
    report = yield
    journeys = collector.config.stash[JOURNEYS_KEY]
    for item in report.result:
        over = _journey_over(item) if isinstance(item, pytest.Item) else None
        if over is not None:
            journey = journeys.setdefault((item.nodeid.partition("::")[0], over), Journey(over))
            journey.steps.append(item.nodeid)
            item.stash[JOURNEY_KEY] = journey
    return report


@pytest.hookimpl(tryfirst=True)  # before pytest-random-order shuffles
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.pluginmanager.hasplugin("random_order"):
        for item in items:
            if JOURNEY_KEY in item.stash:
                item.add_marker(pytest.mark.random_order(disabled=True))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    journey = item.stash.get(JOURNEY_KEY, None)
    if journey is None:
        return
    earlier = journey.steps[: journey.steps.index(item.nodeid)]
    not_run = [_name(step) for step in earlier if step not in journey.outcomes]
    if not_run:
        pytest.fail(
            f"not run: this step continues the `{journey.over}` journey from steps that did not run before it: "
            f"{', '.join(not_run)}. Run the whole module (or select those steps too, in file order).",
            pytrace=False,
        )
    for step in earlier:
        # A skip happens only where one is allowed (a tool this machine lacks): skip too.
        if journey.outcomes[step] == "skipped":
            pytest.skip(f"journey step {_name(step)} skipped first, and this step continues from it")
        if journey.outcomes[step] != "passed":
            pytest.fail(
                f"not run: journey step {_name(step)} {journey.outcomes[step]} first, and this "
                f"step continues from the `{journey.over}` stack it left. Look at that step; this one would "
                "only repeat it.",
                pytrace=False,
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    journey = item.stash.get(JOURNEY_KEY, None)
    if journey is not None and journey.outcomes.get(item.nodeid) not in ("failed", "skipped"):
        if report.failed:
            journey.outcomes[item.nodeid] = "failed"
        elif report.skipped:
            journey.outcomes[item.nodeid] = "skipped"
        elif report.when == "call":
            journey.outcomes[item.nodeid] = "passed"
    return report
