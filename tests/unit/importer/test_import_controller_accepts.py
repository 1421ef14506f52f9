"""The controller's own admission checks (tenancy, exec permission, pool, member ports, claims) pass on
every imported sample: the import is not just schema-valid, the controller will accept and program it."""

from __future__ import annotations

import pytest
from import_helpers import convert_sample
from lvs_api.models import VirtualServiceSpec
from lvs_controller.validation import check_pool, check_tenancy, claims_of, parse_spec
from lvs_controller.world import Kind, World

SAMPLES = ["nat-lvs.cf", "direct-routing-lvs.cf", "keepalived.conf", "keepalived-ipv6.conf"]


def world_with(
    sample: str, namespace: str = "shop", **options: object
) -> tuple[World, list[dict[str, object]]]:
    result, _ = convert_sample(sample, namespace=namespace, **options)
    world = World()
    world.apply_event(Kind.NAMESPACE, "ADDED", {"metadata": {"name": namespace, "labels": {}}})
    services = []
    for manifest in result.manifests:
        world.apply_event(Kind(manifest.kind), "ADDED", manifest.body)
        if manifest.kind == "VirtualService":
            services.append(manifest.body)
    return world, services


@pytest.mark.parametrize("sample", SAMPLES)
def test_controller_accepts_every_imported_virtual_service(sample: str) -> None:
    world, services = world_with(sample)
    claims: set[object] = set()
    for service in services:
        spec, problems = parse_spec(service, VirtualServiceSpec)
        assert spec is not None and not problems, problems
        assert check_tenancy(spec, "shop", world) == []
        pool, pool_problems = check_pool(spec, "shop", world)
        assert pool is not None and pool_problems == [], pool_problems
        mine = claims_of(spec)
        assert not mine & claims, f"two imported services claim {mine & claims}"
        claims |= mine


def test_without_the_vip_pool_the_controller_would_refuse() -> None:
    """Control: the same checks fail when the VIPPool is left out (--no-vip-pool)."""
    world, services = world_with("keepalived.conf", vip_pool=False)
    spec, _ = parse_spec(services[0], VirtualServiceSpec)
    assert spec is not None
    assert [problem.reason for problem in check_tenancy(spec, "shop", world)] == ["VIPNotInPool"]
