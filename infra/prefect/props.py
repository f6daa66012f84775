"""Property-bag helpers shared by the providers: undo what the Pulumi wire format does to values, and
compare values so that only real differences count.

What crosses the gRPC boundary is a protobuf Struct: every number becomes a float (3 → 3.0), and a key
whose value is null is dropped from its object (at every depth, e.g. `"default": null` inside a job
template). Values still unknown during a preview arrive as `pulumi.output.Unknown` objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc

_UNKNOWN_MARK = "<unknown during preview>"


def is_unknown(value: Any) -> bool:
    """True when the value, or anything inside it, is not known yet (preview)."""
    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_unknown(v) for v in value)
    return False


def from_wire(value: Any) -> Any:
    """Plain JSON-like data: integral floats back to int, secrets unwrapped, null-valued keys dropped
    (so that server data and wire data compare equal). Unknowns are kept as they are."""
    if rpc.is_rpc_secret(value):
        value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, bool) or value is None or isinstance(value, Unknown):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): from_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [from_wire(v) for v in value]
    return value


def plain_props(props: Mapping[str, Any], keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The resource's own properties from a wire bag (no `__provider`), optionally only `keys`."""
    wanted = set(keys) if keys is not None else None
    return {
        k: from_wire(v)
        for k, v in props.items()
        if not k.startswith("__") and (wanted is None or k in wanted) and v is not None
    }


def canonical(value: Any) -> str:
    """Order-independent JSON text of a value; equal text means no change."""

    def default(obj: Any) -> Any:
        if isinstance(obj, Unknown):
            return _UNKNOWN_MARK
        raise TypeError(f"not JSON-serializable: {type(obj).__name__}")

    return json.dumps(from_wire(value), sort_keys=True, separators=(",", ":"), default=default)


def same(a: Any, b: Any) -> bool:
    return canonical(a) == canonical(b)
