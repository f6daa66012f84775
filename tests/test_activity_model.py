"""Normalization of both Bored API shapes into one `Activity` (units; the flow tests go over HTTP)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flows.bored_api import (
    ACTIVITY_TYPES,
    Activity,
    BoredApiError,
    describe_filters,
    detect_shape,
    parse_activity,
    quote,
    validate_filters,
)

# The same dataset entry as each server serves it.
MIRROR = {
    "activity": "Learn Express.js",
    "availability": 0.25,
    "type": "education",
    "participants": 1,
    "price": 0.1,
    "accessibility": "Few to no challenges",
    "duration": "hours",
    "kidFriendly": True,
    "link": "https://expressjs.com/",
    "key": "3943506",
}
ORIGINAL = {
    "activity": "Learn Express.js",
    "accessibility": 0.25,
    "type": "education",
    "participants": 1,
    "price": 0.1,
    "link": "https://expressjs.com/",
    "key": "3943506",
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def without(base: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k not in names}


# --- both shapes -------------------------------------------------------------------------------------------


def test_mirror_shape() -> None:
    assert parse_activity(MIRROR) == Activity(
        activity="Learn Express.js",
        type="education",
        participants=1,
        price=0.1,
        accessibility=0.25,
        link="https://expressjs.com/",
        key="3943506",
        accessibility_label="Few to no challenges",
        duration="hours",
        kid_friendly=True,
        source_shape="appbrewery",
    )


def test_original_shape() -> None:
    assert parse_activity(ORIGINAL) == Activity(
        activity="Learn Express.js",
        type="education",
        participants=1,
        price=0.1,
        accessibility=0.25,
        link="https://expressjs.com/",
        key="3943506",
        source_shape="original",
    )


def test_both_shapes_agree_on_the_common_fields() -> None:
    mirror, original = parse_activity(MIRROR), parse_activity(ORIGINAL)
    common = ("activity", "type", "participants", "price", "accessibility", "link", "key")
    assert {name: getattr(mirror, name) for name in common} == {
        name: getattr(original, name) for name in common
    }


@pytest.mark.parametrize(
    ("payload", "shape"),
    [
        (MIRROR, "appbrewery"),
        (ORIGINAL, "original"),
        (without(MIRROR, "accessibility", "duration", "kidFriendly"), "appbrewery"),  # availability alone
        (without(MIRROR, "availability"), "appbrewery"),  # a text accessibility alone
        (without(ORIGINAL, "accessibility"), "original"),  # the original leaves accessibility 0 out
    ],
)
def test_shape_is_detected_from_the_fields(payload: dict[str, Any], shape: str) -> None:
    assert detect_shape(payload) == shape


# --- optional and missing fields ----------------------------------------------------------------------------


def test_mirror_optional_fields_may_be_missing_or_empty() -> None:
    activity = parse_activity(without(with_(MIRROR, link="", accessibility=""), "duration", "kidFriendly"))
    assert (activity.link, activity.accessibility_label, activity.duration, activity.kid_friendly) == (
        "",
        None,
        None,
        None,
    )
    assert activity.source_shape == "appbrewery"


def test_original_without_link_has_an_empty_link() -> None:
    assert parse_activity(without(ORIGINAL, "link")).link == ""
    assert parse_activity(with_(ORIGINAL, link=None)).link == ""


def test_original_masked_falsy_values_read_as_zero() -> None:
    # What the self-hosted original serves for a free activity with accessibility 0.
    activity = parse_activity(without(with_(ORIGINAL, price=""), "accessibility"))
    assert (activity.price, activity.accessibility, activity.source_shape) == (0.0, 0.0, "original")


def test_numbers_and_text_are_tidied() -> None:
    activity = parse_activity(
        with_(ORIGINAL, activity="  Learn\n Express.js ", participants=2.0, price=0, key=3943506, link=" x ")
    )
    assert (activity.activity, activity.participants, activity.price, activity.key, activity.link) == (
        "Learn Express.js",
        2,
        0.0,
        "3943506",
        "x",
    )
    assert isinstance(activity.participants, int) and isinstance(activity.price, float)


def test_activity_is_immutable() -> None:
    activity = parse_activity(MIRROR)
    with pytest.raises(dataclasses.FrozenInstanceError):
        activity.activity = "something else"  # type: ignore[misc]


# --- bad data ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([MIRROR], "expected a JSON object"),
        ("Learn Express.js", "expected a JSON object"),
        (None, "expected a JSON object"),
        (without(MIRROR, "activity"), "no 'activity' field"),
        (with_(MIRROR, activity=""), "'activity' must be a non-empty string"),
        (with_(MIRROR, activity=42), "'activity' must be a non-empty string"),
        (without(MIRROR, "type"), "'type' must be a non-empty string"),
        (with_(MIRROR, participants=0), "'participants' must be a whole number >= 1"),
        (with_(MIRROR, participants="2"), "'participants'"),
        (with_(MIRROR, participants=True), "'participants'"),
        (with_(MIRROR, participants=1.5), "'participants'"),
        (with_(MIRROR, price=1.5), "'price' must be a number from 0 to 1"),
        (with_(MIRROR, price=-0.1), "'price'"),
        (with_(MIRROR, price="cheap"), "'price'"),
        (without(MIRROR, "price"), "'price'"),
        (without(MIRROR, "availability"), "'availability'"),  # mirror shape (duration) without its score
        (with_(MIRROR, availability=True), "'availability'"),
        (with_(MIRROR, accessibility=0.3), "'accessibility' must be a string"),  # has availability: a label
        (with_(MIRROR, kidFriendly="yes"), "'kidFriendly' must be true or false"),
        (with_(ORIGINAL, accessibility=2), "'accessibility' must be a number from 0 to 1"),
        (with_(ORIGINAL, price="free"), "'price'"),
        (with_(ORIGINAL, link=42), "'link' must be a string"),
        (with_(ORIGINAL, key=""), "'key' must be a non-empty string"),
        (without(ORIGINAL, "key"), "'key'"),
    ],
)
def test_bad_data_is_refused_naming_the_field(payload: object, fragment: str) -> None:
    with pytest.raises(BoredApiError) as raised:
        parse_activity(payload)
    assert fragment in str(raised.value)


def test_errors_quote_what_arrived_truncated() -> None:
    payload = with_(MIRROR, participants=0, activity="x" * 2000)
    with pytest.raises(BoredApiError) as raised:
        parse_activity(payload)
    message = str(raised.value)
    assert '"activity": "xxx' in message
    assert "more chars" in message
    assert len(message) < 500


def test_quote_is_short_and_printable() -> None:
    assert quote("<html>\n</html>") == repr("<html>\n</html>")
    assert quote({"a": 1}) == repr('{"a": 1}')
    long = quote("y" * 1000, limit=10)
    assert long == repr("y" * 10 + "... (990 more chars)")


# --- filters -------------------------------------------------------------------------------------------------


def test_filters_are_normalized() -> None:
    assert validate_filters(" Cooking ", 2) == ("cooking", 2)
    assert validate_filters(None, None) == (None, None)
    assert [validate_filters(t, None)[0] for t in ACTIVITY_TYPES] == list(ACTIVITY_TYPES)
    assert len(ACTIVITY_TYPES) == 9


@pytest.mark.parametrize(
    ("activity_type", "participants", "fragment"),
    [
        ("sports", None, "'sports' is not one of: education, recreational, social"),
        ("", None, "is not one of"),
        (None, 0, "participants must be a whole number >= 1, got 0"),
        (None, -2, "got -2"),
        (None, True, "got True"),
        (None, "2", "got '2'"),
    ],
)
def test_bad_filters_raise_value_error(activity_type: Any, participants: Any, fragment: str) -> None:
    with pytest.raises(ValueError) as raised:
        validate_filters(activity_type, participants)
    assert fragment in str(raised.value)


def test_describe_filters() -> None:
    assert describe_filters("diy", 2) == "type=diy participants=2"
    assert describe_filters(None, None) == "type=any participants=any"
