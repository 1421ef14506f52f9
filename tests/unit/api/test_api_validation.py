"""validate(): every problem named by path, with a fix."""

from __future__ import annotations

from typing import Any

import pytest
from api_samples import pool, vip_pool, virtual_service
from lvs_api.validation import FieldError, format_errors, validate


def paths(errors: list[FieldError]) -> list[str]:
    return [error.path for error in errors]


def test_valid_objects_have_no_errors() -> None:
    assert validate("VirtualService", virtual_service()) == []
    assert validate("RealServerPool", pool()) == []
    assert validate("VIPPool", vip_pool()) == []


def test_status_of_user_kinds_is_not_validated() -> None:
    obj = virtual_service()
    obj["status"] = {"conditions": "garbage"}
    assert validate("VirtualService", obj) == []


def test_unknown_kind() -> None:
    (error,) = validate("Gateway", {})
    assert error.path == "kind" and "VirtualService" in error.fix


@pytest.mark.parametrize(
    ("overrides", "path", "fix_words"),
    [
        ({"vip": "203.0.113.300"}, "spec.vip", "192.0.2.10"),
        ({"ports": [{"port": 80}, {"port": 70000}]}, "spec.ports[1].port", "from 1 to 65535"),
        ({"ports": [{"port": 80, "protocol": "ICMP"}]}, "spec.ports[0].protocol", "'TCP', 'UDP' or 'SCTP'"),
        ({"scheduler": {"name": "fastest"}}, "spec.scheduler.name", "'wlc'"),
        ({"sheduler": {"name": "rr"}}, "spec.sheduler", "did you mean 'scheduler'"),
        ({"poolRef": {}}, "spec.poolRef.name", "set spec.poolRef.name"),
        ({"poolRef": {"name": "Web_Pool"}}, "spec.poolRef.name", "DNS subdomain"),
        ({"persistence": {"netmask": 2.5}}, "spec.persistence.netmask", "set spec.persistence.netmask"),
        ({"healthCheck": {"timeoutSeconds": 0}}, "spec.healthCheck.timeoutSeconds", "above 0"),
        (
            {"directorSelector": {"matchLabels": {"role": 1}}},
            "spec.directorSelector.matchLabels[role]",
            "quote",
        ),
        ({"forwarding": "Tunnel", "tunnel": {"type": "GUE"}}, "spec.tunnel.port", "GUE UDP port"),
        (
            {"vip": "2001:db8::10", "persistence": {"netmask": "255.255.0.0"}},
            "spec.persistence.netmask",
            "64",
        ),
        ({"ports": [{"port": 80}, {"port": 80}]}, "spec.ports", "remove the duplicate"),
        ({"firewallMark": 5}, "spec.ports", "firewallMark"),
        ({"scheduler": {"name": "sh", "flags": ["mh-port"]}}, "spec.scheduler.flags", "scheduler.name"),
        ({"healthCheck": {"type": "DNS"}}, "spec.healthCheck.dns", "queryName"),
        ({"fallback": [{"address": "2001:db8::99"}]}, "spec.fallback", "IPv4 sorry servers"),
    ],
)
def test_each_problem_names_field_and_fix(overrides: dict[str, Any], path: str, fix_words: str) -> None:
    errors = validate("VirtualService", virtual_service(**overrides))
    matching = [error for error in errors if error.path == path]
    assert matching, f"no error at {path}: {errors}"
    assert any(fix_words in error.fix for error in matching), matching
    assert all(error.message and error.fix for error in errors)


def test_all_cross_field_problems_are_reported_at_once() -> None:
    errors = validate(
        "VirtualService",
        virtual_service(
            forwarding="DirectRouting",
            ports=[{"port": 80, "targetPort": 8080}],
            tunnel={"type": "IPIP"},
            scheduler={"name": "rr", "flags": ["sh-port"]},
        ),
    )
    assert set(paths(errors)) == {"spec.ports", "spec.tunnel", "spec.scheduler.flags"}


def test_pool_and_vippool_problems() -> None:
    errors = validate(
        "RealServerPool",
        pool(
            members=[
                {"address": "198.51.100.1", "upperThreshold": 5, "lowerThreshold": 9},
                {"address": "2001:db8::1"},
            ]
        ),
    )
    assert set(paths(errors)) == {"spec.members", "spec.members[0].lowerThreshold"}
    errors = validate("VIPPool", vip_pool(addresses=["203.0.113.1/24"], namespaces=["shop"]))
    assert paths(errors) == ["spec.addresses[0]"]
    assert "host bits" in errors[0].fix


def test_director_report_status_is_validated() -> None:
    report = {
        "metadata": {"name": "node-a"},
        "spec": {"nodeName": "node-a"},
        "status": {"services": {"shop/web": {"programmed": "maybe"}}},
    }
    assert paths(validate("DirectorReport", report)) == ["status.services[shop/web].programmed"]


def test_format_errors_limits_the_message() -> None:
    errors = [FieldError(f"spec.f{i}", "bad", "fix it") for i in range(7)]
    text = format_errors(errors, limit=2)
    assert text.startswith("spec.f0: bad (fix: fix it); spec.f1")
    assert text.endswith("and 5 more")
