"""How the Pulumi engine keeps track of secrets around a provider that does not accept them, as code for tests.

The dynamic-provider host answers Configure with `acceptSecrets: False` (pulumi/dynamic/__main__.py `Configure`).
For such a provider the engine (pulumi/pulumi pkg/resource/plugin/provider_plugin.go):

* sends every property with its secretness stripped (`MarshalOptions{KeepSecrets: acceptSecrets}`), so the
  provider sees plain values, also in `olds` (the previous outputs, decrypted);
* copies the secret bit back, by property KEY, from what it sent to what came back (`annotateSecrets`): Check's
  inputs from the news, Create's outputs from the checked inputs, Update's from the new inputs, Read's state and
  inputs from the previous ones. Objects are walked key by key; any other value whose input side contains a
  secret becomes a secret as a whole;
* then marks the outputs named in the resource's `additional_secret_outputs` (pkg/resource/deploy/
  step_executor.go `continueExecuteStep`, `newState.AdditionalSecretOutputs`).

An output whose key matches no secret input (a value DERIVED from a secret under another name) stays plain:
that is what these helpers let a test see. Secrets are the SDK's wire form, `{sig: secret, value: v}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pulumi.runtime import rpc


def is_secret(value: Any) -> bool:
    return bool(rpc.is_rpc_secret(value))


def make_secret(value: Any) -> dict[str, Any]:
    return value if is_secret(value) else {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def contains_secrets(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_secrets(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_secrets(v) for v in value)
    return False


def reveal(value: Any) -> Any:
    """The plain value, every secret unwrapped: what a provider that does not accept secrets is sent."""
    if is_secret(value):
        return reveal(rpc.unwrap_rpc_secret(value))
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def contains_wrapper(*values: Any) -> bool:
    """True when one of the values is itself a secret (a secret is not an object: Go's `IsObject()` is false)."""
    return any(is_secret(v) for v in values)


def annotate_secrets(outs: dict[str, Any], ins: Mapping[str, Any]) -> dict[str, Any]:
    """provider_plugin.go `annotateSecrets`: secretness copied from `ins` to the outputs of the same key."""
    for key, in_value in ins.items():
        if key not in outs:
            continue
        out_value = outs[key]
        if (
            isinstance(out_value, dict)
            and isinstance(in_value, Mapping)
            and not contains_wrapper(out_value, in_value)
        ):
            annotate_secrets(out_value, in_value)  # both plain objects: key by key
        elif not is_secret(out_value) and contains_secrets(in_value):
            outs[key] = make_secret(out_value)
    return outs


def mark_additional_secret_outputs(outs: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """step_executor.go `continueExecuteStep`: each output named in `additional_secret_outputs` becomes a secret (`id` never does)."""
    for key in keys:
        if key != "id" and key in outs and not is_secret(outs[key]):
            outs[key] = make_secret(outs[key])
    return outs


def leaves(value: Any, path: str = "", secret: bool = False) -> Iterator[tuple[str, Any, bool]]:
    """(path, leaf, inside a secret) for every leaf of a property value."""
    if is_secret(value):
        yield from leaves(rpc.unwrap_rpc_secret(value), path, True)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}", secret)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]", secret)
    else:
        yield path, value, secret


def plain_paths_holding(value: Any, text: str) -> list[str]:
    """The paths of the leaves NOT inside a secret (what the engine stores and shows in plain text) whose text
    contains `text`."""
    return [path for path, leaf, secret in leaves(value) if not secret and text in str(leaf)]
