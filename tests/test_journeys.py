"""The journey marker (tests/support/journeys.py) on a small module run by a real pytest: one failure reports
once, a step never runs on a stack its earlier steps did not set up, and random order leaves the steps alone."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

JOURNEY_MODULE = """
import pytest

pytestmark = pytest.mark.journey(over="stack")


@pytest.fixture(scope="module")
def stack():
    if {fail_setup}:
        raise RuntimeError("the stack did not come up")
    return []


@pytest.fixture
def tidy():
    yield
    if {fail_teardown}:
        raise RuntimeError("step two's teardown failed")


def test_one(stack):
    stack.append("one")


def test_two(stack, tidy):
    stack.append("two")
    {two_body}


def test_three(stack):
    print("STEP THREE RAN")
    assert stack == ["one", "two"]


def test_not_a_step():
    pass
"""


def run(
    pytester: pytest.Pytester,
    *args: str,
    fail_setup: bool = False,
    fail_teardown: bool = False,
    two_body: str = "pass",
) -> pytest.RunResult:
    pytester.makepyfile(
        test_trip=JOURNEY_MODULE.format(fail_setup=fail_setup, fail_teardown=fail_teardown, two_body=two_body)
    )
    return pytester.runpytest("-p", "tests.support.journeys", "-s", *args)


@pytest.fixture(autouse=True)
def outer_random_state() -> Iterator[None]:
    """The runs below are in this process, and random order seeds `random`: give the suite its state back."""
    state = random.getstate()
    yield
    random.setstate(state)


def test_a_whole_journey_that_works_passes(pytester: pytest.Pytester) -> None:
    run(pytester).assert_outcomes(passed=4)


@pytest.mark.parametrize(
    ("two_body", "fail_teardown", "outcome", "how"),
    [
        ("assert False, 'step two failed'", False, {"failed": 1, "errors": 1}, "failed"),
        (
            "pass",
            True,
            {"passed": 1, "errors": 2},
            "failed",
        ),  # its teardown failed: test_two passed, then erred
    ],
    ids=["call", "teardown"],
)
def test_after_a_step_that_did_not_pass_the_later_steps_fail_at_once_pointing_to_it(
    pytester: pytest.Pytester, two_body: str, fail_teardown: bool, outcome: dict[str, int], how: str
) -> None:
    result = run(pytester, two_body=two_body, fail_teardown=fail_teardown)
    passed = outcome.pop("passed", 0)
    result.assert_outcomes(passed=2 + passed, **outcome)  # test_one and the module's other test pass
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_three*", f"not run: journey step test_two {how} first*"]
    )
    result.stdout.no_fnmatch_line("*STEP THREE RAN*")


def test_after_a_step_that_skipped_the_later_steps_skip_naming_it(pytester: pytest.Pytester) -> None:
    result = run(pytester, "-rs", two_body="pytest.skip('no Pulumi CLI here')")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*journey step test_two skipped first, and this step continues from it*"])
    result.stdout.no_fnmatch_line("*STEP THREE RAN*")


def test_a_stack_that_does_not_come_up_is_one_error_and_the_other_steps_point_to_it(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, fail_setup=True)
    result.assert_outcomes(passed=1, errors=3)
    tracebacks = re.findall(r"^test_trip.py:\d+: RuntimeError$", result.stdout.str(), re.MULTILINE)
    assert len(tracebacks) == 1  # one, not one per step
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_two*", "not run: journey step test_one failed first*"]
    )


@pytest.mark.parametrize(
    "selection",
    [["-k", "three"], ["test_trip.py::test_three"], ["--lf", "."], ["--ff", "."]],
    ids=["-k", "node id", "--lf", "--ff"],
)
def test_a_step_run_without_its_earlier_steps_before_it_fails_naming_them(
    pytester: pytest.Pytester, selection: list[str]
) -> None:
    journey = JOURNEY_MODULE.format(fail_setup=False, fail_teardown=False, two_body="pass")
    pytester.makepyfile(test_trip=journey.replace('assert stack == ["one", "two"]', "assert False"))
    pytester.runpytest("-p", "tests.support.journeys")  # the cache: only test_three failed, for --lf and --ff
    pytester.makepyfile(test_trip=journey)  # fixed
    result = pytester.runpytest("-p", "tests.support.journeys", "-s", *selection)
    result.stdout.fnmatch_lines(
        [
            "*not run: this step continues the `stack` journey from steps that did not run before it: test_one, test_two*"
        ]
    )
    result.stdout.no_fnmatch_line("*STEP THREE RAN*")


def test_random_order_shuffles_the_other_tests_but_never_the_steps(pytester: pytest.Pytester) -> None:
    for name in "abcdef":  # more modules, so a shuffle shows
        pytester.makepyfile(**{f"test_other_{name}": f"def test_{name}():\n    pass\n"})
    orders = set()
    for seed in range(1, 5):
        result = run(pytester, "--random-order-bucket=module", f"--random-order-seed={seed}", "-v")
        result.assert_outcomes(passed=10)
        ran = tuple(re.findall(r"^test_\w+\.py::(test_\w+)", result.stdout.str(), re.MULTILINE))
        assert [name for name in ran if name in ("test_one", "test_two", "test_three")] == [
            "test_one",
            "test_two",
            "test_three",
        ]
        orders.add(ran)
    assert len(orders) > 1  # the order really was random
