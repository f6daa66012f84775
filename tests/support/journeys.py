"""Journeys: tests that are steps on one shared, module-scoped stack, declared as such.

A module declares `pytestmark = pytest.mark.journey(over="<fixture>")`: its tests that use that fixture are steps,
run in file order, each starting from the state the step before it left (applying a stack for every step would
double CI time). The dependency is made explicit here:

- the steps are never reordered, not even by `--random-order` (the module's other tests still are);
- once a step fails, the later steps fail at once with a one-line pointer to it, instead of each failing on
  the state it left with a traceback of its own: one defect reports once;
- a step whose earlier steps were not selected (`-k`, `--lf`) fails with the steps to select, instead of
  running on a stack they never set up.

Later steps fail rather than skip: under the CI flag a skip is not allowed to pass for a result.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import pytest

JOURNEY_KEY = pytest.StashKey["Journey"]()


@dataclass
class Journey:
    over: str  # the module fixture the steps share
    steps: list[str] = field(default_factory=list)  # node ids, in file order, as collected
    failed_step: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "journey(over=fixture): the module's tests using that fixture are ordered steps on one shared stack",
    )


def _journey_over(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("journey")
    if marker is None:
        return None
    over = marker.kwargs["over"]
    return over if over in getattr(item, "fixturenames", ()) else None


@pytest.hookimpl(
    tryfirst=True
)  # before `-k`/`-m` deselect steps, and before pytest-random-order shuffles them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    journeys: dict[tuple[str, str], Journey] = {}
    for item in items:
        over = _journey_over(item)
        if over is None:
            continue
        journey = journeys.setdefault((item.module.__name__, over), Journey(over))  # type: ignore[attr-defined]
        journey.steps.append(item.nodeid)
        item.stash[JOURNEY_KEY] = journey
        item.add_marker(pytest.mark.random_order(disabled=True))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    journey = item.stash.get(JOURNEY_KEY, None)
    if journey is None:
        return
    selected = {other.nodeid for other in item.session.items}
    earlier = journey.steps[: journey.steps.index(item.nodeid)]
    missing = [step.rpartition("::")[2] for step in earlier if step not in selected]
    if missing:
        pytest.fail(
            f"not run: this step continues the `{journey.over}` journey from steps that were not selected: "
            f"{', '.join(missing)}. Select them too (or run the whole module).",
            pytrace=False,
        )
    if journey.failed_step is not None:
        pytest.fail(
            f"not run: journey step {journey.failed_step} failed first, and this step continues from the "
            f"`{journey.over}` stack it left. Fix that failure; this step's result would only repeat it.",
            pytrace=False,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    journey = item.stash.get(JOURNEY_KEY, None)
    if (
        journey is not None
        and report.failed
        and report.when in ("setup", "call")
        and journey.failed_step is None
    ):
        journey.failed_step = item.name
