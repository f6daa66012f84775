"""What both dynamic providers share: where connection settings come from.

The provider object is dill-pickled BY REFERENCE into every resource's `__provider` input, so it must carry
no state when constructed (no client, no credentials). The dynamic-provider host unpickles it once per
process and calls `configure()` with the whole stack config before any other method; the settings are
kept on the instance from then on. The same instance serves every resource of its type in that process,
possibly from several threads: it only ever reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi.dynamic import ConfigureRequest, ReadResult, ResourceProvider

from .client import ConnectionSettings, PrefectClient


class PrefectResourceProvider(ResourceProvider):
    # Class-level default: a fresh instance has an empty __dict__, so nothing lands in the pickled provider.
    _connection: ConnectionSettings | None = None

    def configure(self, req: ConfigureRequest) -> None:
        self._connection = ConnectionSettings.from_config(req.config)

    def connection(self) -> ConnectionSettings:
        # Outside the engine's host (e.g. a provider driven in-process) the environment is the only source.
        return self._connection if self._connection is not None else ConnectionSettings.from_env()

    def client(self) -> PrefectClient:
        """A new client for one operation (clients hold sockets and TLS contexts: never keep one)."""
        return PrefectClient(self.connection())


def refreshed(resource_id: str, outs: Mapping[str, Any], input_keys: Iterable[str]) -> ReadResult:
    """A read's result: the server's view as outputs AND as inputs, so the next preview after a refresh
    shows exactly which fields drifted."""
    inputs = {key: outs[key] for key in input_keys if outs.get(key) is not None}
    return ReadResult(resource_id, dict(outs), inputs)
