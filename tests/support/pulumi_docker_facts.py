"""What pulumi-docker 5.2.0 does with a `docker.Container`, as one table of upstream facts.

pulumi-docker 5.2.0 builds `docker:index/container:Container` from the Terraform provider
kreuzwerker/terraform-provider-docker v4.5.0 (the `upstream` submodule at commit 5074970), bridged by
pulumi/pulumi-terraform-bridge. Every row below comes from that source; file paths are relative to
`internal/provider/` of the Terraform provider unless named otherwise:

* schema (ForceNew, Optional, Computed, Default, DiffSuppressFunc): `resource_docker_container.go`,
  `resourceDockerContainer`;
* what create sends to Docker: `resource_docker_container_funcs.go` `resourceDockerContainerCreate`, which
  ends by calling the read: so the state recorded after a create is what the READ stores, not what the
  program declared;
* what the read stores, in which format: `resource_docker_container_funcs.go` `resourceDockerContainerRead`
  (durations with Go's `time.Duration.String()`, memory in MiB, env, labels and volumes not read at all);
* what an update changes on a running container: `resourceDockerContainerUpdate`, whose attribute list is
  restart, max_retry_count, cpu_shares, memory, memory_reservation, cpu_set, memory_swap and the device_*
  limits (one `ContainerUpdate`), plus `ContainerStart` when must_run goes from false to true. It does NOT
  read back afterwards: the state becomes the planned values;
* delete: `resourceDockerContainerDelete`: `ContainerStop` with `destroy_grace_seconds` as the timeout (0
  when unset: SIGKILL at once), `ContainerRemove` with force and `RemoveVolumes: remove_volumes`, then wait;
* the diff: the bridge (`pkg/tfbridge/provider.go` `Provider.Diff`) compares the program's inputs with the
  STATE through the Terraform schema (`helper/schema` `schemaMap.Diff`): an unset Optional field that is not
  Computed is compared with its zero value, an unset Computed field is not compared; a change in a ForceNew
  field replaces; `DeleteBeforeReplace` is true for every container replace (pulumi-docker
  `provider/resources.go`: `"docker_container": {DeleteBeforeReplace: true}`); `ignoreChanges` paths are
  dropped from the diff (`newIgnoreChanges`).

Only the fields below are modelled. A program input that is not in the table is refused by `refuse_unmodelled`
rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
NANOSECONDS = 1_000_000_000

Inspect = Mapping[str, Any]  # `docker inspect` of a container, as the Engine API returns it


def go_duration(nanoseconds: int) -> str:
    """Go's `time.Duration.String()` for whole seconds and above ("1m0s", "10s", "1h0m0s", "0s"): the form
    `resourceDockerContainerRead` stores healthcheck durations in."""
    if nanoseconds == 0:
        return "0s"
    if nanoseconds % NANOSECONDS:
        raise ValueError(f"sub-second durations are not modelled: {nanoseconds} ns")
    seconds = nanoseconds // NANOSECONDS
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def parse_duration(text: str) -> int:
    """`time.ParseDuration` for the units the schema documents (ms|s|m|h), in nanoseconds."""
    units = {"ms": 1_000_000, "s": NANOSECONDS, "m": 60 * NANOSECONDS, "h": 3600 * NANOSECONDS}
    total, number, rest = 0, "", text
    if text in ("", "0"):
        return 0
    while rest:
        if rest[0].isdigit() or rest[0] == ".":
            number, rest = number + rest[0], rest[1:]
            continue
        unit = next((u for u in ("ms", "h", "m", "s") if rest.startswith(u)), None)
        if unit is None or not number:
            raise ValueError(f"not a Go duration: {text!r}")
        total += int(float(number) * units[unit])
        number, rest = "", rest[len(unit) :]
    if number:
        raise ValueError(f"not a Go duration (missing unit): {text!r}")
    return total


# --- the table ---------------------------------------------------------------------------------------------

HEALTHCHECK_DEFAULTS = {
    "interval": "0s",
    "timeout": "0s",
    "startPeriod": "0s",
    "startInterval": "0s",
    "retries": 0,
}


def _read_healthcheck(inspect: Inspect) -> dict[str, Any] | None:
    health = inspect["Config"].get("Healthcheck")
    if health is None:
        return None
    return {
        "tests": list(health.get("Test") or []),
        "interval": go_duration(health.get("Interval", 0)),
        "timeout": go_duration(health.get("Timeout", 0)),
        "startPeriod": go_duration(health.get("StartPeriod", 0)),
        "startInterval": go_duration(health.get("StartInterval", 0)),
        "retries": health.get("Retries", 0),
    }


def _read_memory_swap(inspect: Inspect) -> int:
    swap = int(inspect["HostConfig"].get("MemorySwap") or 0)
    return swap // MIB if swap > 0 else swap  # -1 (unlimited, or no swap accounting) is stored as is


def _read_capabilities(inspect: Inspect) -> dict[str, list[str]] | None:
    host = inspect["HostConfig"]
    if not (host.get("CapAdd") or host.get("CapDrop")):
        return None  # the read leaves the field alone
    return {"adds": list(host.get("CapAdd") or []), "drops": list(host.get("CapDrop") or [])}


def _read_hosts(inspect: Inspect) -> list[dict[str, str]]:
    # flattenExtraHosts (resource_docker_container_structures.go): split on ":".
    return [
        {"host": entry.split(":")[0], "ip": entry.split(":")[1]}
        for entry in inspect["HostConfig"].get("ExtraHosts") or []
    ]


def _read_image(inspect: Inspect, planned: str) -> str:
    # An image given as "sha256:…" is read back from .Image, anything else from .Config.Image.
    return str(inspect["Image"] if planned.startswith("sha256:") else inspect["Config"]["Image"])


def _host(key: str) -> Callable[[Inspect], Any]:
    return lambda inspect: inspect["HostConfig"].get(key)


def _config(key: str) -> Callable[[Inspect], Any]:
    return lambda inspect: inspect["Config"].get(key)


@dataclass(frozen=True)
class Field:
    """One `docker.Container` input: its Terraform attribute and what the provider does with it."""

    name: str  # the Pulumi property name the program registers (camelCase)
    tf: str  # the Terraform attribute in resource_docker_container.go
    kind: str  # "scalar", "list", "set" (order does not matter), "object" (MaxItems 1 block), "objects" (set)
    force_new: bool = False
    updatable: bool = False  # in resourceDockerContainerUpdate's attribute list
    computed: bool = False  # unset in the program: not compared (the read decides)
    default: Any = None  # schema Default: what an unset field is compared as (else the type's zero)
    read: Callable[[Inspect], Any] | None = None  # what resourceDockerContainerRead stores; None: not read
    suppress_empty: bool = False  # DiffSuppressFunc: an empty value in the program is no change
    provider_side: bool = False  # only steers the provider (create wait, delete): an update applies nothing


FIELDS: tuple[Field, ...] = (
    # Declared by infra/worker.py.
    Field("name", "name", "scalar", force_new=True, read=lambda i: i["Name"].lstrip("/")),
    Field("image", "image", "scalar", force_new=True),  # read: _read_image (needs the planned value)
    Field("command", "command", "list", force_new=True, computed=True, read=_config("Cmd")),
    Field("envs", "env", "set", force_new=True, computed=True),  # not read: "taken over from the image"
    Field("restart", "restart", "scalar", updatable=True, default="no", read=lambda i: i["HostConfig"]["RestartPolicy"]["Name"]),
    Field("mustRun", "must_run", "scalar", default=True),  # read: False when the container is not running
    Field("wait", "wait", "scalar", default=False, provider_side=True),
    Field("waitTimeout", "wait_timeout", "scalar", default=60, provider_side=True),
    Field("destroyGraceSeconds", "destroy_grace_seconds", "scalar", provider_side=True),
    Field("healthcheck", "healthcheck", "object", computed=True, read=_read_healthcheck),
    Field("hosts", "host", "objects", force_new=True, read=_read_hosts),
    Field("memory", "memory", "scalar", updatable=True, read=lambda i: int(i["HostConfig"].get("Memory") or 0) // MIB),
    Field("memorySwap", "memory_swap", "scalar", updatable=True, read=_read_memory_swap),
    Field("labels", "labels", "objects", force_new=True, computed=True),  # not read
    Field("volumes", "volumes", "objects", force_new=True),  # not read
    Field("groupAdds", "group_add", "set", force_new=True, read=_host("GroupAdd")),
    Field("capabilities", "capabilities", "object", force_new=True, read=_read_capabilities),
    Field("securityOpts", "security_opts", "set", force_new=True, computed=True, read=_host("SecurityOpt")),
    # Not declared, but set by create and read back: a form Docker changes would be a diff on every `up`.
    Field("rm", "rm", "scalar", default=False, read=_host("AutoRemove")),
    Field("readOnly", "read_only", "scalar", force_new=True, default=False, read=_host("ReadonlyRootfs")),
    Field("privileged", "privileged", "scalar", force_new=True, read=_host("Privileged")),
    Field("publishAllPorts", "publish_all_ports", "scalar", force_new=True, read=_host("PublishAllPorts")),
    Field("networkMode", "network_mode", "scalar", force_new=True, default="bridge", read=_host("NetworkMode")),
    Field("maxRetryCount", "max_retry_count", "scalar", updatable=True, read=lambda i: i["HostConfig"]["RestartPolicy"].get("MaximumRetryCount", 0)),
    Field("memoryReservation", "memory_reservation", "scalar", updatable=True, default=0, read=lambda i: int(i["HostConfig"].get("MemoryReservation") or 0) // MIB),
    Field("cpuShares", "cpu_shares", "scalar", updatable=True, read=_host("CpuShares")),
    Field("cpuSet", "cpu_set", "scalar", updatable=True, read=_host("CpusetCpus")),
    Field("dns", "dns", "set", force_new=True, read=_host("Dns")),
    Field("dnsOpts", "dns_opts", "set", force_new=True, read=_host("DnsOptions")),
    Field("dnsSearches", "dns_search", "set", force_new=True, read=_host("DnsSearch")),
    Field("domainname", "domainname", "scalar", force_new=True, read=_config("Domainname")),
    Field("usernsMode", "userns_mode", "scalar", force_new=True, read=_host("UsernsMode")),
    Field("tty", "tty", "scalar", force_new=True, default=False, read=_config("Tty")),
    Field("stdinOpen", "stdin_open", "scalar", force_new=True, default=False, read=_config("OpenStdin")),
    Field("user", "user", "scalar", force_new=True, suppress_empty=True, read=_config("User")),
    Field("workingDir", "working_dir", "scalar", force_new=True, suppress_empty=True, read=_config("WorkingDir")),
    Field("sysctls", "sysctls", "map", force_new=True, read=_host("Sysctls")),
    Field("storageOpts", "storage_opts", "map", force_new=True, read=_host("StorageOpt")),
    Field("tmpfs", "tmpfs", "map", read=_host("Tmpfs")),
    Field("mounts", "mounts", "objects", force_new=True, read=lambda i: list(i["HostConfig"].get("Mounts") or [])),
    # Computed and read: never compared while the program leaves them unset.
    Field("hostname", "hostname", "scalar", force_new=True, computed=True, read=_config("Hostname")),
    Field("entrypoints", "entrypoint", "list", force_new=True, computed=True, read=_config("Entrypoint")),
    Field("init", "init", "scalar", computed=True, read=lambda i: bool(i["HostConfig"].get("Init"))),
    Field("runtime", "runtime", "scalar", force_new=True, computed=True, read=_host("Runtime")),
    Field("shmSize", "shm_size", "scalar", force_new=True, computed=True, read=lambda i: int(i["HostConfig"].get("ShmSize") or 0) // MIB),
    Field("logDriver", "log_driver", "scalar", force_new=True, computed=True, read=lambda i: i["HostConfig"]["LogConfig"]["Type"]),
    Field("ipcMode", "ipc_mode", "scalar", force_new=True, computed=True, read=_host("IpcMode")),
    Field("stopSignal", "stop_signal", "scalar", force_new=True, computed=True, read=_config("StopSignal")),
)  # fmt: skip
BY_NAME = {f.name: f for f in FIELDS}
# What the program may declare: the rows create honours. Everything else is refused.
DECLARABLE = frozenset(
    {
        "name", "image", "command", "envs", "restart", "mustRun", "wait", "waitTimeout", "destroyGraceSeconds",
        "healthcheck", "hosts", "memory", "memorySwap", "labels", "volumes", "groupAdds", "capabilities",
        "securityOpts",
    }
)  # fmt: skip
VOLUME_KEYS = frozenset({"hostPath", "containerPath", "readOnly"})
UPDATE_ATTRIBUTES = tuple(f.name for f in FIELDS if f.updatable)


class UnmodelledInputError(ValueError):
    """The program declares a container input this model does not implement."""


def refuse_unmodelled(inputs: Mapping[str, Any]) -> None:
    unknown = sorted(set(inputs) - DECLARABLE)
    if unknown:
        raise UnmodelledInputError(
            f"docker.Container input(s) {', '.join(unknown)} are not modelled by the local engine "
            f"(tests/support/pulumi_docker_facts.py): add them to the table, from the upstream source, "
            f"before the program uses them"
        )
    for volume in inputs.get("volumes") or []:
        if set(volume) - VOLUME_KEYS:
            raise UnmodelledInputError(
                f"docker.Container volume keys {sorted(set(volume) - VOLUME_KEYS)} are not modelled"
            )


# --- planned state, read, diff -----------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Numbers as the schema's ints (the wire turns them into floats), nested values likewise."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def planned(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The program's inputs with the schema's defaults: what create works from, and the state until a read."""
    state = {key: plain(value) for key, value in inputs.items() if value is not None}
    for field in FIELDS:
        if field.name not in state and field.default is not None:
            state[field.name] = field.default
    if "healthcheck" in state:
        state["healthcheck"] = {**HEALTHCHECK_DEFAULTS, **state["healthcheck"]}
    return state


def read_state(inspect: Inspect, prior: Mapping[str, Any]) -> dict[str, Any]:
    """`resourceDockerContainerRead`: the prior state with every field the read sets replaced by Docker's
    answer in the read's format."""
    state = dict(prior)
    for field in FIELDS:
        if field.read is None:
            continue
        value = field.read(inspect)
        if value is None and field.name in ("healthcheck", "capabilities"):
            continue  # set only when Docker has one
        state[field.name] = plain(value)
    state["image"] = _read_image(inspect, str(prior.get("image", "")))
    if not inspect["State"].get("Running"):
        state["exitCode"] = inspect["State"].get("ExitCode")
        if state.get("mustRun", True):
            state["mustRun"] = False  # so that the next plan shows a change, and the update starts it
    return state


def _zero(field: Field) -> Any:
    if field.default is not None:
        return field.default
    return {"scalar": None, "list": [], "set": [], "objects": [], "object": None, "map": {}}[field.kind]


def _canonical(field: Field, value: Any) -> Any:
    """A value in the form the Terraform diff compares: sets unordered, and scalars as strings where an unset
    value, "", 0 and false are all the type's zero (`schemaMap.diffString` compares string forms)."""
    value = plain(value)
    if field.kind in ("set", "objects"):
        return sorted(repr(_canonical_item(v)) for v in value or [])
    if field.kind == "list":
        return list(value or [])
    if field.kind == "map":
        return dict(value or {})
    if field.kind == "object":
        if not value:
            return None
        if field.name == "capabilities":
            return {key: sorted(value.get(key) or []) for key in ("adds", "drops")}
        return dict(value)
    if value is None or value == "" or value is False or (value == 0 and not isinstance(value, bool)):
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _canonical_item(item: Any) -> Any:
    return sorted(item.items()) if isinstance(item, dict) else item


@dataclass(frozen=True)
class ContainerDiff:
    replaces: tuple[str, ...]  # changed ForceNew fields
    updates: tuple[str, ...]  # changed fields resourceDockerContainerUpdate applies
    provider_side: tuple[str, ...]  # changed fields that only steer the provider (state-only change)
    unapplied: tuple[str, ...]  # changed fields nothing applies to a running container

    @property
    def changed(self) -> tuple[str, ...]:
        return self.replaces + self.updates + self.provider_side + self.unapplied


def diff(
    state: Mapping[str, Any], inputs: Mapping[str, Any], ignore_changes: tuple[str, ...] = ()
) -> ContainerDiff:
    """The bridge's diff of the recorded state against the program's (checked) inputs."""
    news = planned(inputs)
    replaces, updates, provider_side, unapplied = [], [], [], []
    for field in FIELDS:
        if field.name in ignore_changes:
            continue
        declared = field.name in news
        if not declared and field.computed:
            continue
        new = news[field.name] if declared else _zero(field)
        if field.suppress_empty and new in (None, ""):
            continue
        if field.name == "healthcheck" and new is None:
            continue
        if _canonical(field, state.get(field.name, _zero(field))) == _canonical(field, new):
            continue
        if field.force_new:
            replaces.append(field.name)
        elif field.updatable or field.name == "mustRun":
            updates.append(field.name)
        elif field.provider_side:
            provider_side.append(field.name)
        else:
            unapplied.append(field.name)
    return ContainerDiff(tuple(replaces), tuple(updates), tuple(provider_side), tuple(unapplied))


# --- what create and update send to Docker (docker-py's low-level API) --------------------------------------


def create_arguments(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`APIClient.create_container` keyword arguments, `create_host_config` keyword arguments) for the
    ContainerCreate that resourceDockerContainerCreate sends."""
    health = state.get("healthcheck")
    container: dict[str, Any] = {
        "image": state["image"],
        "name": state["name"],
        "command": state.get("command"),
        "environment": list(state.get("envs") or []),
        "labels": {label["label"]: label["value"] for label in state.get("labels") or []},
        "volumes": [v["containerPath"] for v in state.get("volumes") or []],
        "healthcheck": {
            "test": health["tests"],
            "interval": parse_duration(health["interval"]),
            "timeout": parse_duration(health["timeout"]),
            "start_period": parse_duration(health["startPeriod"]),
            "retries": int(health["retries"]),
        }
        if health
        else None,
    }
    if health and parse_duration(health["startInterval"]):
        raise UnmodelledInputError("healthcheck.startInterval is not modelled")
    memory_swap = state.get("memorySwap")
    host = {
        "restart_policy": {"Name": state["restart"], "MaximumRetryCount": 0},
        "extra_hosts": [f"{h['host']}:{h['ip']}" for h in state.get("hosts") or []],
        "binds": [
            f"{v['hostPath']}:{v['containerPath']}:{'ro' if v.get('readOnly') else 'rw'}"
            for v in state.get("volumes") or []
        ],
        "mem_limit": int(state["memory"]) * MIB if state.get("memory") else None,
        "memswap_limit": (memory_swap * MIB if memory_swap > 0 else memory_swap) if memory_swap else None,
        "group_add": list(state.get("groupAdds") or []) or None,
        "cap_add": list((state.get("capabilities") or {}).get("adds") or []) or None,
        "cap_drop": list((state.get("capabilities") or {}).get("drops") or []) or None,
        "security_opt": list(state.get("securityOpts") or []) or None,
        "network_mode": state["networkMode"],  # "bridge": sent explicitly (the schema default)
        "init": False,  # hostConfig.Init = &init with init unset: false
        "auto_remove": state["rm"],
        "read_only": state["readOnly"],
    }
    return container, host


def update_arguments(state: Mapping[str, Any]) -> dict[str, Any]:
    """`APIClient.update_container` keyword arguments: the one ContainerUpdate of resourceDockerContainerUpdate."""
    arguments: dict[str, Any] = {
        "restart_policy": {
            "Name": state.get("restart", "no"),
            "MaximumRetryCount": state.get("maxRetryCount") or 0,
        },
        "cpu_shares": state.get("cpuShares") or 0,
        "mem_limit": int(state.get("memory") or 0) * MIB,
        "mem_reservation": int(state.get("memoryReservation") or 0) * MIB,
        "cpuset_cpus": state.get("cpuSet") or "",
    }
    swap = state.get("memorySwap")
    if swap:
        arguments["memswap_limit"] = swap * MIB if swap > 0 else swap
    return arguments
