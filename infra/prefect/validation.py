"""Local validation of Prefect inputs, with messages that name the field and the fix.

Each `*_problem` function returns a message, or None when the value is fine. The providers' `check()`
and the program's stack-config layer both use them, so users see identical messages everywhere.
Cron and timezone checks use the validators of Prefect's own `CronSchedule` (imported lazily:
importing prefect costs over a second and most callers never need it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

NAME_PATTERN = re.compile(r"^[^/%&><]+$")
FORBIDDEN_NAME_CHARACTERS = "/ % & > <"
RESERVED_POOL_PREFIX = "prefect"

# Worker types Prefect ships or documents (prefect, prefect-docker, -kubernetes, -aws, -gcp, -azure).
SELF_HOSTED_POOL_TYPES = frozenset(
    {
        "process",
        "docker",
        "kubernetes",
        "ecs",
        "cloud-run",
        "cloud-run-v2",
        "vertex-ai",
        "azure-container-instance",
    }
)
# Pools that only Prefect Cloud can run: managed execution and push pools (no worker).
CLOUD_ONLY_POOL_TYPES = frozenset(
    {
        "prefect:managed",
        "ecs:push",
        "cloud-run:push",
        "cloud-run-v2:push",
        "azure-container-instance:push",
        "modal:push",
    }
)
WORK_POOL_TYPES = SELF_HOSTED_POOL_TYPES | CLOUD_ONLY_POOL_TYPES


def name_problem(name: Any, field: str) -> str | None:
    """A Prefect object name (deployment, flow, work pool, work queue): non-empty, none of / % & > <."""
    if not isinstance(name, str) or not name.strip():
        return f"{field} is required: give a non-empty name such as 'daily-suggestion'."
    if name != name.strip():
        return f"{field} {name!r} has leading or trailing spaces; remove them."
    if not NAME_PATTERN.match(name):
        bad = sorted({c for c in name if c in "/%&><"})
        return (
            f"{field} {name!r} contains {' '.join(bad)}; Prefect names cannot contain any of "
            f"{FORBIDDEN_NAME_CHARACTERS}. Use '-' instead, e.g. {re.sub(r'[/%&><]+', '-', name)!r}."
        )
    return None


def work_pool_name_problem(name: Any, field: str = "name") -> str | None:
    """`name_problem` plus Prefect's reservation of the `prefect` prefix for its own pools."""
    problem = name_problem(name, field)
    if problem is None and str(name).lower().startswith(RESERVED_POOL_PREFIX):
        return (
            f"{field} {name!r} starts with 'prefect', which Prefect reserves for its own work pools "
            f"(the server answers 403); choose a name without that prefix, e.g. {'my-' + str(name)!r}."
        )
    return problem


def work_pool_type_problem(pool_type: Any, *, is_cloud: bool, field: str = "type") -> str | None:
    if not isinstance(pool_type, str) or pool_type not in WORK_POOL_TYPES:
        return (
            f"{field} {pool_type!r} is not a known work pool type; use one of "
            f"{', '.join(sorted(SELF_HOSTED_POOL_TYPES))} (Prefect Cloud also: "
            f"{', '.join(sorted(CLOUD_ONLY_POOL_TYPES))})."
        )
    if pool_type in CLOUD_ONLY_POOL_TYPES and not is_cloud:
        return (
            f"{field} {pool_type!r} exists only on Prefect Cloud, but prefect:apiUrl points to a self-hosted "
            "server; use 'process' or 'docker' (with a worker), or point prefect:apiUrl at a Cloud workspace."
        )
    return None


def cron_problem(cron: Any, field: str = "cron") -> str | None:
    """A standard 5-field cron expression that Prefect's scheduler accepts."""
    example = "e.g. '0 9 * * *' for 09:00 every day"
    if not isinstance(cron, str) or not cron.strip():
        return f"{field} is required: give a 5-field cron expression, {example}."
    fields = cron.split()
    if len(fields) != 5:
        return (
            f"{field} {cron!r} has {len(fields)} field(s); use the 5 fields "
            f"'minute hour day-of-month month day-of-week', {example}."
        )
    from prefect._internal.schemas.validators import validate_cron_string

    try:
        validate_cron_string(cron)
    except ValueError as exc:
        return f"{field} {cron!r} is not a valid cron expression ({exc}); {example}."
    return None


def timezone_problem(tz: Any, field: str = "timezone") -> str | None:
    """An IANA timezone name, checked against the same list as Prefect's `CronSchedule`."""
    example = "e.g. 'UTC' or 'Europe/Athens'"
    if not isinstance(tz, str) or not tz.strip():
        return f"{field} is required: give an IANA timezone name, {example}."
    from prefect.types._datetime import get_timezones

    if tz not in get_timezones():
        return f"{field} {tz!r} is not an IANA timezone name; use one from the tz database, {example}."
    return None


def base_job_template_problem(template: Any, field: str = "base_job_template") -> str | None:
    """What the server requires of a template, checked before sending it (the server's 422 is terse)."""
    if not isinstance(template, Mapping):
        return f"{field} must be an object with 'job_configuration' and 'variables' keys."
    if template == {}:
        return None
    job_configuration = template.get("job_configuration")
    variables = template.get("variables")
    if not isinstance(job_configuration, Mapping) or not job_configuration:
        return (
            f"{field} needs a non-empty 'job_configuration' object "
            "(start from the pool type's default template)."
        )
    if not isinstance(variables, Mapping) or not isinstance(variables.get("properties", {}), Mapping):
        return f"{field} needs a 'variables' object: a JSON schema with 'properties' for each job variable."
    schema_error = json_schema_problem(dict(variables))
    if schema_error:
        return f"{field}.variables is not a valid JSON schema: {schema_error}"
    from prefect.utilities.templating import find_placeholders

    used = {p.name for value in job_configuration.values() for p in find_placeholders(json.dumps(value))}
    declared = set(variables.get("properties", {}))
    # Placeholders such as {{ prefect.variables.x }} or {{ ctx.flow_run.id }} are resolved elsewhere.
    missing = sorted(name for name in used - declared if "." not in name)
    if missing:
        return (
            f"{field}.job_configuration uses {', '.join(missing)} but {field}.variables.properties does not "
            "declare them; add a property for each or remove the placeholder."
        )
    return None


def json_schema_problem(schema: Any) -> str | None:
    """None when `schema` is a valid JSON schema (Draft 2020-12, like Prefect)."""
    import jsonschema

    if not isinstance(schema, Mapping):
        return "a JSON schema must be an object"
    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"{exc.message} at {where}"
    return None


def values_problems(values: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Problems of flow parameters (or job variables) against their JSON schema, validated the way the
    server does it (`required` is not enforced: the rest may come at run time)."""
    return [f"{path}: {message}" for path, message in values_errors(values, schema)]


def values_errors(values: Mapping[str, Any], schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`values_problems` as (dotted path, message) pairs."""
    if not schema:
        return []
    from prefect.utilities.schema_tools.validation import validate

    errors = validate(dict(values), dict(schema), raise_on_error=False, preprocess=True, ignore_required=True)
    return [(".".join(str(p) for p in error.absolute_path) or "(all)", error.message) for error in errors]
