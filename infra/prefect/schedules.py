"""Cron schedules of a deployment: one normalized shape, validation, and reconciliation by slug.

The provider keeps schedule ids stable by reconciling through `/deployments/{id}/schedules`: an unchanged
schedule is left alone, a changed one is PATCHed in place, a new one is POSTed, a removed one DELETEd.
Re-sending all schedules (what `prefect deploy` does) would delete and recreate every one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict
from zoneinfo import ZoneInfo

from .props import from_wire, is_unknown, same
from .validation import cron_problem, prefect_croniter, timezone_problem

SCHEDULE_KEYS = ("slug", "cron", "timezone", "active", "day_or", "parameters")
DEFAULT_TIMEZONE = "UTC"


class CronScheduleSpec(TypedDict):
    """One schedule of a `Deployment`, identified by its slug."""

    slug: str
    cron: str
    timezone: NotRequired[str]  # IANA name, default "UTC"
    active: NotRequired[bool]  # default True
    day_or: NotRequired[bool]  # default True: day-of-month OR day-of-week, like cron
    parameters: NotRequired[dict[str, Any]]  # merged over the deployment's parameters


def with_defaults(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A schedule with every key present (what `check()` returns, so diffs compare like with like)."""
    spec = from_wire(dict(spec))
    return {
        "slug": spec.get("slug"),
        "cron": spec.get("cron"),
        "timezone": spec.get("timezone", DEFAULT_TIMEZONE),
        "active": spec.get("active", True),
        "day_or": spec.get("day_or", True),
        "parameters": spec.get("parameters", {}),
    }


def schedule_problems(schedules: Any, field: str = "schedules") -> list[str]:
    """Shape, slug, cron and timezone problems of a list of schedules."""
    if is_unknown(schedules):
        return []
    if not isinstance(schedules, list):
        return [f"{field} must be a list of {{slug, cron, timezone, active, day_or, parameters}} objects."]
    problems: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(schedules):
        where = f"{field}[{index}]"
        if not isinstance(raw, Mapping):
            problems.append(f"{where} must be an object with at least 'slug' and 'cron'.")
            continue
        unknown_keys = sorted(set(raw) - set(SCHEDULE_KEYS))
        if unknown_keys:
            problems.append(
                f"{where} has unknown key(s) {', '.join(unknown_keys)}; allowed: {', '.join(SCHEDULE_KEYS)}."
            )
        spec = with_defaults(raw)
        slug = spec["slug"]
        if not is_unknown(slug):
            if not isinstance(slug, str) or not slug.strip():
                problems.append(
                    f"{where}.slug is required: give each schedule a short unique id such as 'daily-0900' "
                    "(Prefect uses it to update the schedule in place)."
                )
            elif slug in seen:
                problems.append(
                    f"{where}.slug {slug!r} is used twice; slugs must be unique within a deployment."
                )
            else:
                seen.add(slug)
            where = f"{field}[{slug!r}]" if isinstance(slug, str) and slug.strip() else where
        problems.extend(_spec_problems(spec, where))
    return problems


def _spec_problems(spec: Mapping[str, Any], where: str) -> list[str]:
    """Problems of one schedule's values; values unknown during preview are not judged."""
    found: list[str | None] = []
    if not is_unknown(spec["cron"]):
        found.append(cron_problem(spec["cron"], f"{where}.cron"))
    if not is_unknown(spec["timezone"]):
        found.append(timezone_problem(spec["timezone"], f"{where}.timezone"))
    for key in ("active", "day_or"):
        if not is_unknown(spec[key]):
            found.append(_bool_problem(spec[key], f"{where}.{key}"))
    if not is_unknown(spec["parameters"]) and not isinstance(spec["parameters"], Mapping):
        found.append(f"{where}.parameters must be an object (a dict of flow parameters).")
    return [p for p in found if p]


def _bool_problem(value: Any, field: str) -> str | None:
    return None if isinstance(value, bool) else f"{field} must be true or false, not {value!r}."


# --------------------------------------------------------------------------------------------------
# Server shape <-> spec


def from_server(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """A server schedule in spec shape. Non-cron schedules (added in the UI) keep their raw `schedule` so
    they show up as drift and get removed by the next update."""
    inner = schedule.get("schedule") or {}
    slug = schedule.get("slug") or f"id:{schedule.get('id')}"
    spec: dict[str, Any] = {
        "slug": slug,
        "active": bool(schedule.get("active", True)),
        "parameters": from_wire(schedule.get("parameters") or {}),
    }
    if "cron" in inner:
        spec.update(
            cron=inner["cron"],
            timezone=inner.get("timezone") or DEFAULT_TIMEZONE,
            day_or=inner.get("day_or", True),
        )
    else:
        spec["schedule"] = from_wire(inner)
    return {k: spec[k] for k in (*SCHEDULE_KEYS, "schedule") if k in spec}


def as_server(spec: Mapping[str, Any], schedule_id: str) -> dict[str, Any]:
    """The server schedule that `from_server` turned into `spec` (what `plan` compares with), rebuilt from
    a resource's outputs: its `schedules` and `schedule_ids`."""
    slug = str(spec["slug"])
    body = {"schedule": spec["schedule"]} if "schedule" in spec else to_server(spec)
    return {
        **body,
        "id": schedule_id,
        "slug": None if slug == f"id:{schedule_id}" else slug,
        "active": bool(spec.get("active", True)),
        "parameters": spec.get("parameters", {}),
    }


def to_server(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The body of one schedule for POST /deployments/, POST …/schedules and PATCH …/schedules/{id}."""
    full = with_defaults(spec)
    return {
        "slug": full["slug"],
        "schedule": {"cron": full["cron"], "timezone": full["timezone"], "day_or": full["day_or"]},
        "active": full["active"],
        "parameters": full["parameters"],
    }


def by_slug(schedules: Iterable[Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Schedules keyed by slug, for order-independent comparison."""
    return {str(s.get("slug")): dict(s) for s in schedules or []}


def schedules_equal(a: Iterable[Mapping[str, Any]] | None, b: Iterable[Mapping[str, Any]] | None) -> bool:
    return same(
        {k: with_defaults(v) if "schedule" not in v else v for k, v in by_slug(a).items()},
        {k: with_defaults(v) if "schedule" not in v else v for k, v in by_slug(b).items()},
    )


def ordered_like(
    specs: list[dict[str, Any]], previous: Iterable[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """Server schedules in the order the user wrote them (new ones last, by slug), so that outputs
    do not change just because the server lists them differently."""
    order = {str(s.get("slug")): i for i, s in enumerate(previous or [])}
    return sorted(specs, key=lambda s: (order.get(str(s["slug"]), len(order)), str(s["slug"])))


# --------------------------------------------------------------------------------------------------
# Reconciliation


@dataclass
class SchedulePlan:
    create: list[dict[str, Any]] = field(default_factory=list)  # bodies to POST
    update: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (schedule id, PATCH body)
    delete: list[str] = field(default_factory=list)  # schedule ids

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def plan(desired: Iterable[Mapping[str, Any]], actual: Iterable[Mapping[str, Any]]) -> SchedulePlan:
    """What to send so that the server's schedules (`actual`, raw server objects) match `desired` specs."""
    result = SchedulePlan()
    current = {s["slug"]: s for s in actual if s.get("slug")}
    wanted = by_slug(desired)
    for slug, spec in wanted.items():
        existing = current.get(slug)
        if existing is None:
            result.create.append(to_server(spec))
        elif not same(from_server(existing), with_defaults(spec)):
            result.update.append((str(existing["id"]), to_server(spec)))
    for schedule in actual:
        if not schedule.get("slug") or schedule["slug"] not in wanted:
            result.delete.append(str(schedule["id"]))
    return result


# --------------------------------------------------------------------------------------------------
# Times as outputs show them


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def next_fire_time(specs: Iterable[Mapping[str, Any]], after: datetime | None = None) -> str | None:
    """The earliest next fire time of the active cron schedules, for when the server's own scheduled runs
    cannot be read: croniter (Prefect's vendored copy, the parser its scheduler uses) steps wall-clock
    times in each schedule's timezone, which are then localized with fold=0, as Prefect's
    `CronSchedule._get_dates_whenever` does (prefect/server/schemas/schedules.py). In the hour of a DST
    change that function resolves gaps and repeated times its own way, and the two may differ there."""
    start = after or datetime.now(UTC)
    croniter = prefect_croniter().croniter
    times: list[datetime] = []
    for spec in specs:
        full = with_defaults(spec)
        if not full["active"] or not isinstance(full["cron"], str):
            continue
        zone = ZoneInfo(full["timezone"])
        wall = croniter(full["cron"], start.astimezone(zone).replace(tzinfo=None), day_or=full["day_or"])
        times.append(wall.get_next(datetime).replace(tzinfo=zone, fold=0))
    return format_time(min(times)) if times else None
