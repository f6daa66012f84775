"""The journey marker (tests/support/journeys.py) on a small module run by a real pytest: one failure reports
once, a step never runs on a stack its earlier steps did not set up, and random order leaves the steps alone."""

from __future__ import annotations

import re

import pytest

JOURNEY_MODULE = """
import pytest

pytestmark = pytest.mark.journey(over="stack")
SETUPS = []


@pytest.fixture(scope="module")
def stack():
    SETUPS.append("up")
    if {fail_setup}:
        raise RuntimeError("the stack did not come up")
    return []


def test_one(stack):
    stack.append("one")


def test_two(stack):
    stack.append("two")
    assert {two_passes}, "step two's own failure"


def test_three(stack):
    print("STEP THREE RAN")
    assert stack == ["one", "two"]


def test_not_a_step():
    assert len(SETUPS) <= 1
"""


def run(pytester: pytest.Pytester, *args: str, fail_setup: bool = False, two_passes: bool = True):
    pytester.makepyfile(test_trip=JOURNEY_MODULE.format(fail_setup=fail_setup, two_passes=two_passes))
    return pytester.runpytest("-p", "tests.support.journeys", "-s", *args)


def test_a_whole_journey_that_works_passes_in_file_order(pytester: pytest.Pytester) -> None:
    run(pytester).assert_outcomes(passed=4)


def test_after_a_failed_step_the_later_steps_fail_at_once_pointing_to_it(pytester: pytest.Pytester) -> None:
    result = run(pytester, two_passes=False)
    result.assert_outcomes(passed=2, failed=1, errors=1)  # test_one and the module's other test pass
    result.stdout.fnmatch_lines(["*step two's own failure*"])
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_three*", "not run: journey step test_two failed first*"]
    )
    result.stdout.no_fnmatch_line("*STEP THREE RAN*")


def test_a_stack_that_does_not_come_up_is_one_error_and_the_other_steps_point_to_it(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, fail_setup=True)
    result.assert_outcomes(passed=1, errors=3)
    assert result.stdout.str().count("test_trip.py:11: RuntimeError") == 1  # one traceback, not three
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_two*", "not run: journey step test_one failed first*"]
    )


def test_a_step_selected_without_its_earlier_steps_fails_naming_them(pytester: pytest.Pytester) -> None:
    result = run(pytester, "-k", "three")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*not run: *journey from steps that were not selected: test_one, test_two*"])
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
