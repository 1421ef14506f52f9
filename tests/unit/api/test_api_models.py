"""The pydantic models: wire names, defaults, canonical addresses, rejections."""

from __future__ import annotations

import ipaddress

import pytest
from api_samples import pool, vip_pool, virtual_service, vs_spec
from hypothesis import given
from hypothesis import strategies as st
from lvs_api.models import (
    KINDS,
    CheckType,
    DirectorReport,
    Forwarding,
    LabelSelector,
    OnFailure,
    RealServerPool,
    ResolvedService,
    SchedulerName,
    VIPPool,
    VirtualService,
    VirtualServiceSpec,
)
from lvs_api.models.base import _IP_RE, ApiModel
from pydantic import ValidationError


def test_virtual_service_round_trip_uses_camel_case() -> None:
    vs = VirtualService.model_validate(virtual_service())
    wire = vs.to_wire()
    assert wire["spec"]["poolRef"] == {"name": "web-backends"}
    assert wire["spec"]["healthCheck"]["intervalSeconds"] == 2
    assert "pool_ref" not in wire["spec"]
    assert VirtualService.model_validate(wire) == vs


def test_defaults_are_explicit() -> None:
    spec = VirtualServiceSpec.model_validate(
        {"vip": "192.0.2.1", "ports": [{"port": 53}], "poolRef": {"name": "p"}}
    )
    assert spec.scheduler.name is SchedulerName.WLC
    assert spec.scheduler.flags == []
    assert spec.forwarding is Forwarding.NAT
    assert spec.on_failure is OnFailure.QUIESCE
    assert spec.health_check.type is CheckType.TCP
    assert (spec.health_check.interval_seconds, spec.health_check.timeout_seconds) == (2.0, 1.0)
    assert (spec.health_check.rise, spec.health_check.fall) == (2, 3)
    assert spec.ports[0].protocol.value == "TCP"
    assert spec.persistence is None
    assert spec.fallback == []


def test_ipv6_vip_is_canonicalised() -> None:
    spec = VirtualServiceSpec.model_validate(vs_spec(vip="2001:DB8:0:0::10", persistence={"netmask": 64}))
    assert spec.vip == "2001:db8::10"
    assert spec.ipv6


@pytest.mark.parametrize(
    "bad", ["203.0.113.256", "203.0.113", "fe80::1%eth0", "2001:db8::1::2", "01.2.3.4", "", "x"]
)
def test_bad_addresses_are_rejected(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        VirtualServiceSpec.model_validate(vs_spec(vip=bad))
    assert err.value.errors()[0]["loc"] == ("vip",)


@given(st.ip_addresses())
def test_address_pattern_accepts_every_address_in_every_spelling(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    spellings = {str(address), address.exploded}
    for text in spellings:
        assert _IP_RE.match(text), text
        spec = VirtualServiceSpec.model_validate(vs_spec(vip=text, persistence=None))
        assert spec.vip == str(address)


@given(st.text(alphabet="0123456789abcdef:.", max_size=20))
def test_address_pattern_agrees_with_ipaddress(text: str) -> None:
    try:
        ipaddress.ip_address(text)
        valid = True
    except ValueError:
        valid = False
    assert bool(_IP_RE.match(text)) == valid


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError) as err:
        VirtualServiceSpec.model_validate(vs_spec(sheduler={"name": "rr"}))
    assert err.value.errors()[0]["loc"] == ("sheduler",)


def test_cross_field_rule_rejects_in_the_model() -> None:
    with pytest.raises(ValidationError) as err:
        VirtualServiceSpec.model_validate(vs_spec(tunnel={"type": "IPIP"}))
    assert "forwarding: Tunnel" in str(err.value)


def test_every_field_has_a_description() -> None:
    missing = []
    pending: list[type[ApiModel]] = [ApiModel]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is ApiModel:
            continue
        assert cls.__doc__, f"{cls.__name__} has no docstring"
        for name, field in cls.model_fields.items():
            if not field.description:
                missing.append(f"{cls.__name__}.{name}")
    assert missing == []


def test_all_kinds_parse_their_samples() -> None:
    assert set(KINDS) == {"VirtualService", "RealServerPool", "VIPPool", "ResolvedService", "DirectorReport"}
    RealServerPool.model_validate(pool())
    VIPPool.model_validate(vip_pool())
    resolved = ResolvedService.model_validate(
        {
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "acceptedGeneration": 3,
                "virtualServiceUid": "uid-web",
                "service": vs_spec(),
                "members": [{"address": "198.51.100.11", "source": "Service", "terminating": True}],
            },
        }
    )
    assert resolved.spec.members[0].terminating
    report = DirectorReport.model_validate(
        {
            "metadata": {"name": "node-a"},
            "spec": {"nodeName": "node-a"},
            "status": {
                "heartbeatTime": "2026-01-01T00:00:00Z",
                "services": {
                    "shop/web": {
                        "programmed": True,
                        "active": True,
                        "members": [
                            {"address": "198.51.100.11", "port": 80, "healthy": False, "reason": "Timeout"}
                        ],
                        "stats": {"connections": 5, "inBytes": 1000},
                    }
                },
                "vipGroups": [{"name": "web", "vips": ["203.0.113.10"], "role": "Active"}],
            },
        }
    )
    assert report.status is not None
    assert report.status.services["shop/web"].stats is not None


def test_label_selector_semantics() -> None:
    selector = LabelSelector.model_validate(
        {
            "matchLabels": {"role": "director"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a", "b"]},
                {"key": "drain", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches({"role": "director", "zone": "a"})
    assert not selector.matches({"role": "director", "zone": "c"})
    assert not selector.matches({"role": "director", "zone": "a", "drain": "1"})
    assert not selector.matches(None)
    assert LabelSelector().matches({})
