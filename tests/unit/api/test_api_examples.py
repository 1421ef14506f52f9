"""The example manifests in deploy/examples are valid, compile, and stay inside their VIPPools."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml
from lvs_api.compiler import compile_service
from lvs_api.models import ResolvedMember, VIPPool, VirtualService
from lvs_api.validation import validate

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "deploy" / "examples").glob("*.yaml"))


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_there_are_nat_dr_and_tunnel_examples() -> None:
    forwardings = {
        doc["spec"].get("forwarding", "NAT")
        for path in EXAMPLES
        for doc in _documents(path)
        if doc["kind"] == "VirtualService"
    }
    assert forwardings == {"NAT", "DirectRouting", "Tunnel"}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid_and_compiles(path: Path) -> None:
    documents = _documents(path)
    for doc in documents:
        assert validate(doc["kind"], doc) == [], f"{path.name}: {doc['kind']} {doc['metadata']['name']}"
    pools = [VIPPool.model_validate(doc) for doc in documents if doc["kind"] == "VIPPool"]
    for doc in documents:
        if doc["kind"] != "VirtualService":
            continue
        service = VirtualService.model_validate(doc)
        vip = ipaddress.ip_address(service.spec.vip)
        admitted = [
            pool
            for pool in pools
            if any(vip in ipaddress.ip_network(cidr) for cidr in pool.spec.addresses)
            and (
                service.metadata.namespace in pool.spec.namespaces or pool.spec.namespace_selector is not None
            )
        ]
        assert admitted, f"{path.name}: VIP {vip} is in no VIPPool admitting {service.metadata.namespace}"
        member = ResolvedMember(address="2001:db8:30::1" if service.spec.ipv6 else "198.51.100.1")
        table = compile_service(service.spec, [member])
        assert table and all(server.dests for server in table.values())
