"""What every Prefect resource shares: where connection settings come from, and the choreography of a
dynamic provider, in one place.

    check   defaults, then every problem named by its property (values unknown in a preview are not judged)
    diff    which inputs changed; those in `replace_keys` replace, the `update_keys` update in place
    create  create it, or adopt the object that already exists (only when asked: `adopt_existing=True`)
    read    the server's object as outputs AND inputs, so that a refresh shows drift field by field
    update  only the writes the change needs, then the server's object as outputs
    delete  delete it if it exists (already gone is success)

A resource says only what is its own: its fields (`input_keys`, `defaults`, `validate`), which changes
replace (`replace_keys`) or update (`update_keys`, `field_equal`, `managed`), and how its wire shape maps
(`object_path`, `find`, `post`, `apply`, `state`, `adoption_state`). Each hook's docstring says when it is called.

The provider object is dill-pickled BY REFERENCE into every resource's `__provider` input, so it must carry
no state when constructed (no client, no credentials; the class-level declarations below are not pickled).
The dynamic-provider host unpickles it once per process and calls `configure()` with the whole stack config
before any other method; the settings are kept on the instance from then on. The same instance serves every
resource of its type in that process, possibly from several threads: it only ever reads them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from .client import ConnectionSettings, PrefectApiError, PrefectClient
from .props import is_unknown, plain_props, same
from .validation import DB_INTEGER_MAX

# How far the server's clock may run behind ours when telling "created by this request" from "already there".
CLOCK_SKEW = timedelta(seconds=30)
ADOPT_KEY = "adopt_existing"


class InputCheck:
    """The inputs being checked and the failures found so far. Values not known yet (during a preview they
    are outputs of resources not created yet) are never judged."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        self.inputs = inputs
        self.failures: list[CheckFailure] = []

    def known(self, key: str) -> bool:
        return not is_unknown(self.inputs.get(key))

    def given(self, key: str) -> bool:
        """Set (not None) and known."""
        return self.inputs.get(key) is not None and self.known(key)

    def fail(self, prop: str, problem: str | None) -> None:
        if problem:
            self.failures.append(CheckFailure(prop, problem))

    def judge(self, key: str, rule: Callable[[Any], str | None], *, optional: bool = False) -> None:
        """Apply `rule` (value -> problem or None) to a known value; `optional` values may be None."""
        if self.known(key) and not (optional and self.inputs.get(key) is None):
            self.fail(key, rule(self.inputs.get(key)))

    def flags(self, *keys: str) -> None:
        for key in keys:
            value = self.inputs.get(key)
            if self.known(key) and not isinstance(value, bool):
                self.fail(key, f"{key} must be true or false, not {value!r}.")

    def optional_strings(self, *keys: str) -> None:
        for key in keys:
            if self.given(key) and not isinstance(self.inputs[key], str):
                self.fail(key, f"{key} must be a string.")

    def optional_limit(self, key: str, minimum: int) -> None:
        """A whole number from `minimum` to the server's integer column maximum, or None for no limit."""

        def rule(value: Any) -> str | None:
            if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= DB_INTEGER_MAX:
                return None
            return (
                f"{key} must be a whole number >= {minimum} and <= {DB_INTEGER_MAX} (or None for no limit), "
                f"not {value!r}."
            )

        self.judge(key, rule, optional=True)


class PrefectResourceProvider(ResourceProvider):
    # -- what each resource declares ---------------------------------------------------------------
    resource_type: ClassVar[str]  # the Pulumi resource class, as messages name it ("WorkPool")
    input_keys: ClassVar[tuple[str, ...]]
    replace_keys: ClassVar[tuple[str, ...]] = ()  # a change replaces the object
    update_keys: ClassVar[tuple[str, ...]] = ()  # a change updates it in place
    defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})  # what check fills in for missing inputs
    # True when the replacement cannot exist next to the old one (a unique name): delete the old one first.
    delete_before_replace: ClassVar[bool] = False
    # True when creating would silently overwrite an object that exists (an upsert): look for one first.
    look_before_create: ClassVar[bool] = False

    # Class-level default: a fresh instance has an empty __dict__, so nothing lands in the pickled provider.
    _connection: ConnectionSettings | None = None

    # -- connection ------------------------------------------------------------------------------------

    def configure(self, req: ConfigureRequest) -> None:
        self._connection = ConnectionSettings.from_config(req.config)

    def connection(self) -> ConnectionSettings:
        # Outside the engine's host (e.g. a provider driven in-process) the environment is the only source.
        return self._connection if self._connection is not None else ConnectionSettings.from_env()

    def client(self) -> PrefectClient:
        """A new client for one operation (clients hold sockets and TLS contexts: never keep one)."""
        return PrefectClient(self.connection())

    # -- the choreography ------------------------------------------------------------------------------

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = self.desired(news)
        check = InputCheck(inputs)
        self.validate(check)
        return CheckResult({k: v for k, v in check.inputs.items() if v is not None}, check.failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = plain_props(olds), plain_props(news)
        replaces = [k for k in self.replace_keys if not same(old.get(k), new.get(k))]
        changed = replaces + self.changed_keys(old, new)
        return DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=self.delete_before_replace
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        desired = self.desired(props)
        with self.client() as client:
            self.resolve(client, desired)
            if self.look_before_create or desired.get(ADOPT_KEY):
                existing = self.find(client, desired)
                if existing is not None:
                    if not desired.get(ADOPT_KEY):
                        raise self.already_exists(client, desired, existing)
                    return self._adopt(client, existing, desired)
            requested_at = datetime.now(UTC)
            try:
                created = self.post(client, desired)
            except PrefectApiError as exc:
                if not exc.maybe_applied:
                    raise
                # The answer was lost, maybe after the server created the object: if one with this identity
                # appeared just now, it is this request's, and the create goes on from there.
                existing = self.find(client, desired)
                if (
                    existing is None
                    or not _created_since(existing, requested_at)
                    or self.adoption_problem(existing, desired)
                ):
                    raise
                return self._adopt(client, existing, desired)
            # The answer is the object as stored: no second read that could fail after the write.
            return CreateResult(self.id_of(created), self.outputs(client, created, desired))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        previous = plain_props(props)
        with self.client() as client:
            current = self.fetch(client, id_, previous)
            if current is None:
                return ReadResult(None, {})
            outs = self.outputs(client, current, previous)
        return refreshed(self.id_of(current), outs, self.input_keys)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old, desired = plain_props(olds), self.desired(news)
        with self.client() as client:
            try:
                self.apply(client, id_, old, desired)
                current = self.fetch(client, id_, desired)
            except PrefectApiError as exc:
                if exc.status_code != 404 or exc.path != self.object_path(id_, desired):
                    raise
                current = None
            if current is None:
                raise PrefectApiError(
                    f"{self.describe(desired)} (id {id_}) no longer exists (deleted outside Pulumi); run "
                    "`pulumi refresh` and then `pulumi up` to create it again.",
                    method="GET",
                    path=self.object_path(id_, desired) or "",
                    status_code=404,
                )
            return UpdateResult(self.outputs(client, current, desired))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        path = self.object_path(id_, plain_props(props))
        if path is None:
            return
        with self.client() as client:
            client.delete(path)  # 404: already gone, which is what we want

    # -- shared pieces -----------------------------------------------------------------------------

    def desired(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """The resource's inputs from a wire bag, with defaults for what is missing."""
        return {**copy.deepcopy(dict(self.defaults)), **plain_props(props, self.input_keys)}

    def changed_keys(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
        """The `update_keys` whose values differ (a missing value is its default)."""
        return [
            key
            for key in self.update_keys
            if self.managed(key, new)
            and not self.field_equal(
                key, old.get(key, self.defaults.get(key)), new.get(key, self.defaults.get(key))
            )
        ]

    def outputs(
        self, client: PrefectClient, obj: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        outs = self.state(client, obj, previous)
        if ADOPT_KEY in self.input_keys:
            outs[ADOPT_KEY] = bool(previous.get(ADOPT_KEY, False))
        return outs

    def already_exists(
        self, client: PrefectClient, desired: Mapping[str, Any], existing: Mapping[str, Any] | None = None
    ) -> PrefectApiError:
        """The error for a create that meets an object with the same identity."""
        where = f" (id {existing['id']})" if existing and existing.get("id") else ""
        return PrefectApiError(
            f"{self.describe(desired)} already exists on {client.base_url}{where}. To manage it with Pulumi, "
            f"set adopt_existing=True on this {self.resource_type} (`pulumi import` does not work for dynamic "
            "resources); otherwise choose another name or delete the existing one.",
            method="POST",
            path=self.object_path(str(existing["id"]) if existing else "", desired) or "",
            status_code=409,
        )

    def _adopt(
        self, client: PrefectClient, existing: Mapping[str, Any], desired: dict[str, Any]
    ) -> CreateResult:
        id_ = self.id_of(existing)
        problem = self.adoption_problem(existing, desired)
        if problem:
            raise PrefectApiError(
                problem, method="GET", path=self.object_path(id_, desired) or "", status_code=200
            )
        if self.apply(client, id_, self.adoption_state(client, existing, desired), desired):
            existing = self.fetch(client, id_, desired) or existing
        return CreateResult(id_, self.outputs(client, existing, desired))

    # -- hooks: what each resource says ------------------------------------------------------------

    def validate(self, check: InputCheck) -> None:
        """Check's rules: report problems with `check.fail(...)`; may fill derived defaults into
        `check.inputs` (what it holds afterwards is what diff/create/update receive)."""

    def describe(self, props: Mapping[str, Any]) -> str:
        """How messages name the object, e.g. "Work pool 'etl'"."""
        return f"{self.resource_type} {props.get('name')!r}"

    def object_path(self, id_: str, props: Mapping[str, Any]) -> str | None:
        """The object's API path (read, update, delete); None when it cannot be known (nothing to delete)."""
        raise NotImplementedError

    def id_of(self, obj: Mapping[str, Any]) -> str:
        """The Pulumi id of a server object."""
        return str(obj["id"])

    def resolve(self, client: PrefectClient, desired: dict[str, Any]) -> None:
        """Before a create: fill in what it needs from the server (e.g. a flow's id)."""

    def find(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any] | None:
        """The object with the desired identity, if one exists (for adoption); None when there is none."""
        return None

    def adoption_problem(self, existing: Mapping[str, Any], desired: Mapping[str, Any]) -> str | None:
        """Why an existing object cannot be adopted as declared (a field that cannot change), or None."""
        return None

    def adoption_state(
        self, client: PrefectClient, existing: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """What an adopted object is updated from (`apply`'s `current`): its outputs, unless part of it cannot be
        read (a secret the server only shows masked must be written anyway)."""
        return self.outputs(client, existing, desired)

    def post(self, client: PrefectClient, desired: Mapping[str, Any]) -> dict[str, Any]:
        """Create the object; return it as the server stored it. A conflict raises `already_exists`."""
        raise NotImplementedError

    def fetch(self, client: PrefectClient, id_: str, previous: Mapping[str, Any]) -> dict[str, Any] | None:
        """The object as the server has it now; None when it is gone."""
        path = self.object_path(id_, previous)
        return None if path is None else client.get_or_none(path)

    def apply(
        self, client: PrefectClient, id_: str, current: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> bool:
        """Send what takes the object from `current` (outputs: the previous state, or an adopted object's)
        to `desired`; True when anything was written. A 404 on `object_path` means the object is gone."""
        raise NotImplementedError

    def state(
        self, client: PrefectClient, obj: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Outputs: every input as the server has it (so edits made elsewhere show as drift), plus the
        output-only properties. `previous` holds the inputs the server does not echo."""
        raise NotImplementedError

    def managed(self, key: str, props: Mapping[str, Any]) -> bool:
        """False when a None value of `key` means "leave it to the server" (not diffed, not sent)."""
        return True

    def field_equal(self, key: str, a: Any, b: Any) -> bool:
        """Whether two values of `key` are the same (e.g. a set of tags in another order)."""
        return same(a, b)


def refreshed(resource_id: str, outs: Mapping[str, Any], input_keys: Iterable[str]) -> ReadResult:
    """A read's result: the server's view as outputs AND as inputs, so the next preview after a refresh
    shows exactly which fields drifted."""
    inputs = {key: outs[key] for key in input_keys if outs.get(key) is not None}
    return ReadResult(resource_id, dict(outs), inputs)


def _created_since(obj: Mapping[str, Any], requested_at: datetime) -> bool:
    if not obj.get("created"):
        return False
    return datetime.fromisoformat(str(obj["created"]).replace("Z", "+00:00")) >= requested_at - CLOCK_SKEW
