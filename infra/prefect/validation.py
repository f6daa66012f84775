"""Local validation of Prefect inputs, with messages that name the field and the fix.

Each `*_problem` function returns a message, or None when the value is fine. The providers' `check()`
and the program's stack-config layer both use them, so users see identical messages everywhere.

Nothing here imports `prefect`: importing it costs 2-4 s, and both the program and the provider host run
these checks on every `pulumi up`. Each check names the Prefect code it reproduces, and
tests/test_prefect_client.py holds it against that code on the same inputs.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

# prefect/types/names.py `WITHOUT_BANNED_CHARACTERS`: the server's own pattern for names.
NAME_PATTERN = re.compile(r"^[^/%&><]+$")
# Prefect stores concurrency limits in INTEGER columns (prefect/server/database/orm_models.py, `Mapped[int]`
# maps to sa.Integer): 32 bits on Postgres; on SQLite 2**63 answered 500 (OverflowError).
DB_INTEGER_MAX = 2**31 - 1
FORBIDDEN_NAME_CHARACTERS = "/ % & > <"
# Names the pattern lets through but the REST API cannot address: objects are read and deleted at
# /work_pools/{name} and /deployments/name/{flow}/{name}, where '.' and '..' are URL dot-segments that clients
# resolve away (a pool named '..' read as gone and was never deleted; '.' answered 307), and a line break
# matches no route (404). C0 control characters and DEL are refused as a class: none belongs in a name.
DOT_SEGMENTS = frozenset({".", ".."})
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
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
    if CONTROL_CHARACTERS.search(name):
        return (
            f"{field} {name!r} contains a control character (a line break, a tab...): Prefect's API could "
            "not address the object by name afterwards; remove it."
        )
    if not NAME_PATTERN.match(name):
        bad = sorted({c for c in name if c in "/%&><"})
        return (
            f"{field} {name!r} contains {' '.join(bad)}; Prefect names cannot contain any of "
            f"{FORBIDDEN_NAME_CHARACTERS}. Use '-' instead, e.g. {re.sub(r'[/%&><]+', '-', name)!r}."
        )
    if name in DOT_SEGMENTS:
        return (
            f"{field} {name!r} is a URL dot-segment: Prefect's API addresses objects by name in the URL, where "
            f"{name!r} is resolved away, so the object could never be read or deleted; choose another name."
        )
    return None


def tags_problem(tags: Any) -> str | None:
    """Tags of a deployment or an automation: a list of non-empty strings."""
    if isinstance(tags, list) and all(isinstance(t, str) and t for t in tags):
        return None
    return "tags must be a list of non-empty strings."


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


def cron_problem(cron: Any, field: str = "cron", *, day_or: bool = True) -> str | None:
    """A standard 5-field cron expression that Prefect's server accepts and its scheduler can plan.

    The server validates with `validate_cron_string` (prefect/_internal/schemas/validators.py), which lets
    through dates that never come ('0 9 30 2 *'); its scheduler then asks croniter for the next date
    (`CronSchedule._get_dates_whenever` in prefect/server/schemas/schedules.py), gets CroniterBadDateError,
    logs it and plans no run at all. The same croniter call here refuses such a cron before it is sent."""
    example = "e.g. '0 9 * * *' for 09:00 every day"
    if not isinstance(cron, str) or not cron.strip():
        return f"{field} is required: give a 5-field cron expression, {example}."
    fields = cron.split()
    if len(fields) != 5:
        return (
            f"{field} {cron!r} has {len(fields)} field(s); use the 5 fields "
            f"'minute hour day-of-month month day-of-week', {example}."
        )
    # Prefect's `validate_cron_string` (prefect/_internal/schemas/validators.py): its vendored croniter must
    # parse it, and croniter's random/hashed forms (R, H) are refused.
    croniter = prefect_croniter()
    if not croniter.croniter.is_valid(cron):
        return f"{field} {cron!r} is not a valid cron expression (Invalid cron string); {example}."
    if any(part.casefold() in ("r", "h") for part in fields):
        return f"{field} {cron!r} uses a random or hashed (R/H) field, which Prefect does not support; {example}."
    try:
        croniter.croniter(cron, datetime.now(), day_or=day_or).get_next(datetime)
    except croniter.CroniterBadDateError:
        return (
            f"{field} {cron!r} never fires: no date matches it (Prefect's scheduler would plan no run); "
            f"{example}."
        )
    return None


def timezone_problem(tz: Any, field: str = "timezone") -> str | None:
    """An IANA timezone name, checked against the same list as Prefect's `CronSchedule`."""
    example = "e.g. 'UTC' or 'Europe/Athens'"
    if not isinstance(tz, str) or not tz.strip():
        return f"{field} is required: give an IANA timezone name, {example}."
    # Prefect's `get_timezones()` (prefect/types/_datetime.py) is `zoneinfo.available_timezones()`.
    if tz not in _timezones():
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
    used = {name for value in job_configuration.values() for name in placeholder_names(value)}
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
    errors = _validator(schema, ignore_required=True, check_formats=True).iter_errors(dict(values))
    return [(".".join(str(p) for p in error.absolute_path) or "(all)", error.message) for error in errors]


def webhook_url_problem(url: Any, field: str, fix: str) -> str | None:
    """An http(s) URL a server can POST to. The message never repeats the URL: it is a secret."""
    if not isinstance(url, str) or not url.strip():
        return f"{field} is empty; {fix}"
    if any(character.isspace() or not character.isprintable() for character in url):
        return (
            f"{field} contains spaces, line breaks or control characters (not shown: it is a secret); {fix}"
        )
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        return f"{field} is not an http(s) URL with a host (not shown: it is a secret); {fix}"
    return None


# A bearer token as RFC 6750 (2.1) defines it, what `Authorization: Bearer <key>` can carry. httpx cannot
# encode anything else into a header (UnicodeEncodeError) and h11 refuses CR/LF ("Illegal header value",
# with the key in its message). Prefect's keys are pnu_/pnb_ followed by letters and digits.
BEARER_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]+$")


def whitespace_problem(value: str, field: str, example: str) -> str | None:
    """A credential with whitespace around it (a line break from a file): some clients trim it (our
    providers do) and others send it as it is (the worker, pulumi-docker's registry login), so the same
    stack is accepted by one and refused by the other. The message never repeats the value."""
    if value != value.strip():
        return (
            f"{field} has leading or trailing whitespace (a line break from a file?), which would be sent as "
            f"part of it; set it again without: {example}"
        )
    return None


def api_key_problem(key: str, field: str, example: str) -> str | None:
    """A Prefect Cloud API key that fits in an HTTP header. The message never repeats the key."""
    problem = whitespace_problem(key, field, example)
    if problem is None and not BEARER_TOKEN.match(key):
        problem = (
            f"{field} contains characters an HTTP Authorization header cannot carry (spaces, line breaks or "
            f"non-ASCII letters); a Prefect API key is pnu_ or pnb_ and letters and digits: copy it again, "
            f"{example}"
        )
    return problem


def auth_string_problem(auth_string: str, field: str, example: str) -> str | None:
    """A basic-auth string Prefect's server can compare. It decodes the header and compares it with
    `hmac.compare_digest` (prefect/server/api/server.py `token_validation`), which raises TypeError on
    non-ASCII text outside the middleware's try: every request then answers 500. A string without ':' is
    fine: the server compares the whole string and never splits it. The message never repeats the value."""
    problem = whitespace_problem(auth_string, field, example)
    if problem is None and not PRINTABLE_ASCII.match(auth_string):
        problem = (
            f"{field} contains non-ASCII or control characters: Prefect's server compares auth strings with "
            "hmac.compare_digest, which refuses non-ASCII, so every request would answer 500 Internal Server "
            f"Error; use printable ASCII (set the server's PREFECT_SERVER_API_AUTH_STRING to match): {example}"
        )
    return problem


def validation_failure(values: Mapping[str, Any], schema: Mapping[str, Any]) -> str | None:
    """The message of Prefect's `validate(values, schema, raise_on_error=True)` (the best-matching error,
    as jsonschema's `validate` picks it), or None when the values fit. Unlike the server's check,
    `required` is enforced and formats are not checked (Prefect passes no format checker on that path)."""
    import jsonschema

    validator = _validator(schema, ignore_required=False, check_formats=False)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(values)))
    if error is None:
        return None
    where = (
        "Validation failed."
        if error.json_path == "$"
        else f"Validation failed for field {error.json_path.replace('$.', '')!r}."
    )
    return f"{where} Failure reason: {error.message}"


def _validator(schema: Mapping[str, Any], *, ignore_required: bool, check_formats: bool) -> Any:
    """Validation as Prefect does it: prefect/utilities/schema_tools/validation.py `validate(...,
    preprocess=True)`, i.e. Draft 2020-12 with format checks, no remote $ref fetching (an empty registry),
    the schema preprocessed, and with `ignore_required` every `required` removed (how the server checks
    parameters and job variables). Prefect's extra `_placeholders` keyword only reports hydration errors,
    which plain values never are."""
    import jsonschema
    from referencing import Registry

    prepared = _preprocess_schema(schema)
    if ignore_required:
        prepared = _without_key("required", prepared)
    format_checker = jsonschema.Draft202012Validator.FORMAT_CHECKER if check_formats else None
    return jsonschema.Draft202012Validator(prepared, format_checker=format_checker, registry=Registry())


# --------------------------------------------------------------------------------------------------
# What the checks above take from Prefect, without importing it


# Prefect's `PLACEHOLDER_CAPTURE_REGEX` (prefect/utilities/templating/__init__.py).
PLACEHOLDER_PATTERN = re.compile(r"({{\s*([\w\.\-\[\]$]+)\s*}})")


def placeholder_names(template: Any) -> set[str]:
    """The names of the `{{ placeholders }}` in a template, like Prefect's `find_placeholders`."""
    if isinstance(template, str):
        return {name for _, name in PLACEHOLDER_PATTERN.findall(template)}
    if isinstance(template, Mapping):
        return set().union(*(placeholder_names(v) for v in template.values()))
    if isinstance(template, list):
        return set().union(*(placeholder_names(v) for v in template))
    return set()


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
@functools.cache
def prefect_croniter() -> ModuleType:
    """Prefect's vendored croniter (prefect/_vendor/croniter/croniter.py), the parser its schedules use,
    loaded from its file: importing it as `prefect._vendor...` would import all of `prefect` first."""
    prefect = importlib.util.find_spec("prefect")  # finds the package without importing it
    locations = list(prefect.submodule_search_locations or []) if prefect else []
    for location in locations:
        spec = importlib.util.spec_from_file_location(
            "suggest_activity_prefect_croniter", f"{location}/_vendor/croniter/croniter.py"
        )
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise ImportError("prefect's vendored croniter (prefect/_vendor/croniter/croniter.py) was not found")


def _preprocess_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Prefect's `preprocess_schema` (prefect/utilities/schema_tools/validation.py): optional properties
    without a default also accept null, tuple `items` become `prefixItems`, and a block type in
    `definitions` may also be given as a `$ref` to a block document."""
    prepared: dict[str, Any] = copy.deepcopy(dict(schema))
    if "properties" in prepared:
        _process_properties(prepared["properties"], prepared.get("required", []))
    for definition in list(prepared.get("definitions", {}).values()):
        if "properties" in definition:
            _process_properties(definition["properties"], definition.get("required", []))
        if "block_type_slug" in definition:
            reference = {
                "oneOf": [
                    {"type": "string", "format": "uuid"},
                    {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1},
                ]
            }
            by_reference = {"type": "object", "properties": {"$ref": reference}, "required": ["$ref"]}
            prepared["definitions"][definition["title"]] = {"oneOf": [definition, by_reference]}
    return prepared


def _process_properties(properties: dict[str, Any], required: list[str]) -> None:
    for key, schema in properties.items():
        if (
            key not in required
            and "type" in schema
            and schema.get("type") != "null"
            and "default" not in schema
        ):
            schema["anyOf"] = [{"type": schema["type"]}, {"type": "null"}]
            del schema["type"]
        if schema.get("items") and isinstance(schema["items"], list) and not schema.get("prefixItems"):
            schema["prefixItems"] = copy.deepcopy(schema["items"])
            del schema["items"]
        if "properties" in schema:
            _process_properties(schema["properties"], schema.get("required", []))


def _without_key(key: str, value: Any) -> Any:
    """Prefect's `remove_nested_keys([key], ...)`: the key removed from every object, at every depth."""
    if not isinstance(value, dict):
        return value
    return {k: _without_key(key, v) for k, v in value.items() if k != key}
