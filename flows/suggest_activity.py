"""The `suggest-activity` flow: ask the Bored API for one activity, print it, keep it as a markdown artifact.

Run once from a shell: `python -m flows.suggest_activity [--api-url URL] [--type T] [--participants N]`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final
from urllib.parse import quote as url_quote

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.bored_api import ACTIVITY_TYPES, DEFAULT_API_URL, Activity, fetch_activity, validate_filters

# One stable key, so the UI's Artifacts page shows every run's suggestion as the history of one artifact.
ARTIFACT_KEY: Final = "activity-suggestion"

# A run that hangs ends TimedOut (a FAILED state) instead of holding a worker slot: the fetch itself is
# bounded by ~115 s (bored_api.worst_case_seconds()); the rest is headroom for the Prefect API calls.
FLOW_TIMEOUT_SECONDS: Final = 300


@task(name="fetch-activity", cache_policy=NO_CACHE)  # a suggestion must never come from a cache
def fetch_activity_task(api_url: str, activity_type: str | None, participants: int | None) -> Activity:
    # No Prefect task retries: bored_api retries what is transient and fails at once on the rest.
    return fetch_activity(api_url, activity_type, participants, logger=get_run_logger())


@task(name="publish-activity-artifact", cache_policy=NO_CACHE)
def publish_activity_artifact(activity: Activity) -> None:
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=activity_markdown(activity),
        description=f"Suggested activity: {activity.activity}",
    )


@flow(name="suggest-activity", log_prints=True, timeout_seconds=FLOW_TIMEOUT_SECONDS)
def suggest_activity(
    api_url: str = DEFAULT_API_URL,
    activity_type: str | None = None,
    participants: int | None = None,
) -> Activity:
    """Suggest one activity from the Bored API (optionally of a type and for a number of participants)."""
    activity_type, participants = validate_filters(activity_type, participants)  # before any request
    activity = fetch_activity_task(api_url, activity_type, participants)
    print(describe_activity(activity))
    publish_activity_artifact(activity)
    return activity


def describe_activity(activity: Activity) -> str:
    """One line for logs and the CLI."""
    people = "1 participant" if activity.participants == 1 else f"{activity.participants} participants"
    line = f"Suggested activity: {activity.activity} ({activity.type}, {people}, key {activity.key})"
    return f"{line} - {activity.link}" if activity.link else line


def activity_markdown(activity: Activity) -> str:
    """The artifact: the activity as the title line, the other fields in a small table."""
    accessibility = f"{_number(activity.accessibility)} (0 = most accessible)"
    if activity.accessibility_label:
        accessibility = f"{accessibility}, {activity.accessibility_label}"
    rows: list[tuple[str, str]] = [
        ("Type", activity.type),
        ("Participants", str(activity.participants)),
        (
            "Price",
            "free" if activity.price == 0 else f"{_number(activity.price)} (0 = free, 1 = most expensive)",
        ),
        ("Accessibility", accessibility),
    ]
    if activity.duration:
        rows.append(("Duration", activity.duration))
    if activity.kid_friendly is not None:
        rows.append(("Kid-friendly", "yes" if activity.kid_friendly else "no"))
    if activity.link:
        rows.append(("Link", _link(activity.link)))
    rows.append(("Key", activity.key))
    table = ["| Field | Value |", "| --- | --- |"]
    table += [f"| {name} | {value if name == 'Link' else _escape(value)} |" for name, value in rows]
    return "\n".join([f"# {_escape(activity.activity)}", "", *table, ""])


def _number(value: float) -> str:
    return f"{value:g}"


# Markdown punctuation that could turn API text into formatting, links or a broken table.
_MARKDOWN_SPECIALS: Final = str.maketrans({c: f"\\{c}" for c in "\\`*_[]<>|"})


def _escape(text: str) -> str:
    return " ".join(text.split()).translate(_MARKDOWN_SPECIALS)


def _link(url: str) -> str:
    # Only web links become clickable; anything else (javascript:, data:) is shown as text.
    if not url.lower().startswith(("http://", "https://")):
        return _escape(url)
    target = url_quote(url, safe=":/?#[]@!$&'*+,;=%~")  # spaces and parentheses would end the target
    return f"[{_escape(url)}]({target})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.suggest_activity", description=suggest_activity.description
    )
    parser.add_argument(
        "--api-url", default=DEFAULT_API_URL, help=f"Bored API base URL (default {DEFAULT_API_URL})"
    )
    parser.add_argument("--type", dest="activity_type", choices=ACTIVITY_TYPES, help="activity type")
    parser.add_argument("--participants", type=int, help="number of participants (>= 1)")
    args = parser.parse_args(argv)
    state = suggest_activity(
        api_url=args.api_url,
        activity_type=args.activity_type,
        participants=args.participants,
        return_state=True,
    )
    if not state.is_completed():
        print(f"suggest-activity {state.name}: {state.message}", file=sys.stderr)
        return 1
    print(describe_activity(state.result()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
