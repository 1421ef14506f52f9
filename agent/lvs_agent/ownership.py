"""Which IPVS services are the agent's: a record file that survives agent restarts.

The kernel does not label IPVS services, so the agent records the keys of the services it creates in
``/run/lvs-agent/owned.json`` (a hostPath, so it survives a container restart; /run is cleared at boot,
and so is the IPVS table). The record is written *ahead*: keys are added before the services are
created and removed only after the kernel confirmed their deletion, so a crash between the two never
leaves a service of ours unrecorded. A service the record does not name is foreign and is never
touched (kube-proxy's, keepalived's, an operator's own ``ipvsadm`` rules), even if its VIP is ours.

Writes are atomic (temporary file + rename) and skipped when nothing changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lvs_api.ipvs import Family, Protocol, ServiceKey

DEFAULT_RECORD_PATH = "/run/lvs-agent/owned.json"
_FORMAT = 1


def _encode(key: ServiceKey) -> list[object]:
    return [int(key.family), int(key.protocol), key.address, key.port, key.fwmark]


def _decode(item: list[object]) -> ServiceKey:
    family, protocol, address, port, fwmark = item
    assert isinstance(family, int) and isinstance(protocol, int) and isinstance(address, str)
    assert isinstance(port, int) and isinstance(fwmark, int)
    return ServiceKey(Family(family), Protocol(protocol), address, port, fwmark)


def write_json_atomically(path: Path, body: Any) -> None:
    """Replace ``path`` with ``body`` as JSON, never leaving a torn file: a crash between two writes keeps
    the old record or the new one (write a temporary file, fsync, rename over)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as handle:
        json.dump(body, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class OwnershipRecord:
    def __init__(self, path: str | Path = DEFAULT_RECORD_PATH) -> None:
        self.path = Path(path)
        self._keys: frozenset[ServiceKey] = self._load()
        self.writes = 0

    def _load(self) -> frozenset[ServiceKey]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return frozenset()
        if data.get("format") != _FORMAT:
            raise ValueError(f"{self.path}: unknown ownership record format {data.get('format')!r}")
        return frozenset(_decode(item) for item in data["services"])

    @property
    def keys(self) -> frozenset[ServiceKey]:
        return self._keys

    def replace(self, keys: Iterable[ServiceKey]) -> None:
        new = frozenset(keys)
        if new == self._keys and self.path.exists():
            return
        write_json_atomically(self.path, {"format": _FORMAT, "services": sorted(_encode(key) for key in new)})
        self._keys = new
        self.writes += 1

    def add(self, keys: Iterable[ServiceKey]) -> None:
        self.replace(self._keys | frozenset(keys))

    def discard(self, keys: Iterable[ServiceKey]) -> None:
        self.replace(self._keys - frozenset(keys))
