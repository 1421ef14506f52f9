"""The project's own lvs.io CRDs (crds/, generated from the pydantic models) served by the emulator:
the shipped examples apply, printer columns show, and CEL rules reject bad objects through kubectl."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "crds"
NAT_EXAMPLE = REPO / "deploy" / "examples" / "nat-web.yaml"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def lvs_crds(install_crds: Callable[..., list[str]], kubectl: Kubectl) -> list[str]:
    if not (CRDS / "virtualservices.lvs.io.yaml").exists():
        pytest.skip("crds/ has no lvs.io CRDs yet")
    names = install_crds(CRDS)
    if kubectl("get", "namespace", "shop", check=False).returncode != 0:
        kubectl("create", "namespace", "shop")
    return names


def virtual_service(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "lvs.io/v1alpha1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"vip": "203.0.113.10", "poolRef": {"name": "web-backends"}, **spec},
    }
    return json.dumps(body)


def test_crds_and_sample_apply_and_print(lvs_crds: list[str], kubectl: Kubectl) -> None:
    assert "virtualservices.lvs.io" in lvs_crds
    if not NAT_EXAMPLE.exists():
        pytest.skip("deploy/examples/nat-web.yaml missing")
    out = kubectl("apply", "-f", str(NAT_EXAMPLE)).stdout
    assert "virtualservice.lvs.io/web" in out
    table = kubectl("get", "virtualservices.lvs.io", "-n", "shop").stdout.splitlines()
    header = table[0].split()
    assert header[:3] == ["NAME", "VIP", "PORTS"]
    row = dict(zip(header, table[1].split(), strict=False))
    assert row["NAME"] == "web" and row["VIP"] == "203.0.113.10" and row["PORTS"] == "80,443"
    # applying the same manifest server-side takes over from client-side apply without conflicts
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", str(NAT_EXAMPLE)).stdout
    explained = kubectl("explain", "virtualservices.lvs.io.spec.vip").stdout
    assert "virtual IP" in explained


def test_cel_rule_rejects_through_kubectl(lvs_crds: list[str], kubectl: Kubectl) -> None:
    both = virtual_service("both", ports=[{"port": 80}], firewallMark=7)
    result = kubectl("apply", "-f", "-", input=both, check=False)
    assert result.returncode != 0
    assert 'The VirtualService "both" is invalid' in result.stderr
    assert "exactly one of ports and firewallMark must be set" in result.stderr
    assert "spec.ports" in result.stderr

    flags = virtual_service("flags", ports=[{"port": 80}], scheduler={"name": "wlc", "flags": ["sh-port"]})
    result = kubectl("apply", "-f", "-", input=flags, check=False)
    assert result.returncode != 0
    assert "scheduler flags must belong to the scheduler" in result.stderr

    port = virtual_service("port", ports=[{"port": 70000}])
    result = kubectl("apply", "-f", "-", input=port, check=False)
    assert (
        "spec.ports[0].port: Invalid value: 70000: "
        "spec.ports[0].port in body should be less than or equal to 65535" in result.stderr
    )
