"""Each cross-field rule gives the same answer as CEL (cel-python, as the embedded API server runs it)
and as the python predicate the models run, on the raw object and on the object with defaults applied."""

from __future__ import annotations

import functools
from typing import Any

import celpy
import pytest
from api_samples import vs_spec
from hypothesis import given, settings
from hypothesis import strategies as st
from lvs_api.models import (
    SKIP_RULES,
    ApiModel,
    HealthCheck,
    LabelSelectorRequirement,
    MemberSelector,
    RealServerPoolSpec,
    Scheduler,
    StaticMember,
    TunnelOptions,
    VIPPoolSpec,
    VirtualServiceSpec,
)
from lvs_api.rules import Rule, all_rules, rules_for

_ENV = celpy.Environment()


@functools.cache
def _program(expr: str) -> Any:
    return _ENV.program(_ENV.compile(expr))


def cel(rule: Rule, obj: dict[str, Any]) -> bool:
    result = _program(rule.cel).evaluate({"self": celpy.json_to_cel(obj)})
    assert isinstance(result, celpy.celtypes.BoolType), f"{rule.name}: CEL gave {result!r}"
    return bool(result)


def answers(model: type[ApiModel], raw: dict[str, Any]) -> dict[str, bool]:
    """Rule name -> verdict, after checking CEL (raw and defaulted) and python agree."""
    instance = model.model_validate(raw, context={SKIP_RULES: True})
    defaulted = instance.to_wire()
    verdicts = {}
    for rule in rules_for(model):
        expected = rule.check(instance)
        assert cel(rule, raw) == expected, (
            f"{rule.name}: CEL on the raw object disagrees with python for {raw}"
        )
        assert cel(rule, defaulted) == expected, (
            f"{rule.name}: CEL on the defaulted object disagrees for {defaulted}"
        )
        verdicts[rule.name] = expected
    return verdicts


# (model, object, names of the rules it must break); every rule appears broken at least once below.
CASES: list[tuple[type[ApiModel], dict[str, Any], set[str]]] = [
    (VirtualServiceSpec, vs_spec(), set()),
    (
        VirtualServiceSpec,
        vs_spec(firewallMark=7),
        {"ports-xor-firewall-mark", "firewall-mark-needs-check-port"},
    ),
    (VirtualServiceSpec, vs_spec(ports=[], firewallMark=7, healthCheck={"port": 80}), set()),
    (VirtualServiceSpec, vs_spec(ports=[]), {"ports-xor-firewall-mark"}),
    (VirtualServiceSpec, vs_spec(ports=None), {"ports-xor-firewall-mark"}),
    (VirtualServiceSpec, vs_spec(ports=[{"port": 80}, {"port": 80, "protocol": "TCP"}]), {"ports-unique"}),
    (VirtualServiceSpec, vs_spec(ports=[{"port": 53}, {"port": 53, "protocol": "UDP"}]), set()),
    (
        VirtualServiceSpec,
        vs_spec(forwarding="DirectRouting", ports=[{"port": 80, "targetPort": 8080}]),
        {"target-port-needs-nat"},
    ),
    (VirtualServiceSpec, vs_spec(ports=[{"port": 80, "targetPort": 8080}]), set()),
    (VirtualServiceSpec, vs_spec(tunnel={"type": "GRE"}), {"tunnel-needs-tunnel-forwarding"}),
    (VirtualServiceSpec, vs_spec(forwarding="Tunnel", tunnel={"type": "GRE"}), set()),
    (
        VirtualServiceSpec,
        vs_spec(vip="2001:db8::1", persistence={"netmask": "255.255.255.0"}),
        {"persistence-netmask-fits-family"},
    ),
    (
        VirtualServiceSpec,
        vs_spec(vip="2001:db8::1", persistence={"netmask": 129}),
        {"persistence-netmask-fits-family"},
    ),
    (VirtualServiceSpec, vs_spec(vip="2001:db8::1", persistence={"netmask": 64}), set()),
    (VirtualServiceSpec, vs_spec(persistence={"netmask": 33}), {"persistence-netmask-fits-family"}),
    (VirtualServiceSpec, vs_spec(persistence={"netmask": 24}), set()),
    (
        VirtualServiceSpec,
        vs_spec(persistence={"netmask": "255.0.255.0"}),
        {"persistence-netmask-fits-family"},
    ),
    (VirtualServiceSpec, vs_spec(persistence={"netmask": "0.0.0.0"}), set()),
    (VirtualServiceSpec, vs_spec(persistence={}), set()),
    (VirtualServiceSpec, vs_spec(fallback=[{"address": "2001:db8::99"}]), {"fallback-family-matches-vip"}),
    (VirtualServiceSpec, vs_spec(fallback=[{"address": "198.51.100.99"}]), set()),
    (VirtualServiceSpec, vs_spec(onePacket=True), {"one-packet-needs-udp"}),
    (VirtualServiceSpec, vs_spec(natGateway={"address": "198.51.100.1", "interface": "eth1"}), set()),
    (
        VirtualServiceSpec,
        vs_spec(forwarding="DirectRouting", natGateway={"address": "198.51.100.1"}),
        {"nat-gateway-needs-nat"},
    ),
    (VirtualServiceSpec, vs_spec(natGateway={"address": "2001:db8::1"}), {"nat-gateway-family-matches-vip"}),
    (VirtualServiceSpec, vs_spec(onePacket=True, ports=[{"port": 53, "protocol": "UDP"}]), set()),
    (
        VirtualServiceSpec,
        vs_spec(ports=[], firewallMark=9, healthCheck={"type": "None"}, onePacket=True),
        set(),
    ),
    (Scheduler, {"name": "sh", "flags": ["sh-port", "sh-fallback"]}, set()),
    (Scheduler, {"name": "mh", "flags": ["sh-port"]}, {"scheduler-flags-match-scheduler"}),
    (Scheduler, {"flags": ["mh-port"]}, {"scheduler-flags-match-scheduler"}),
    (Scheduler, {"name": "mh", "flags": ["mh-port", "mh-port"]}, {"scheduler-flags-unique"}),
    (Scheduler, {}, set()),
    (TunnelOptions, {"type": "GUE", "port": 6080, "checksum": "RemoteChecksum"}, set()),
    (TunnelOptions, {"type": "GUE"}, {"tunnel-port-iff-gue"}),
    (TunnelOptions, {"port": 6080}, {"tunnel-port-iff-gue"}),
    (TunnelOptions, {"type": "GRE", "checksum": "Checksum"}, set()),
    (TunnelOptions, {"type": "GRE", "checksum": "RemoteChecksum"}, {"tunnel-checksum-needs-gue-or-gre"}),
    (TunnelOptions, {"checksum": "Checksum"}, {"tunnel-checksum-needs-gue-or-gre"}),
    (TunnelOptions, {}, set()),
    (HealthCheck, {}, set()),
    (HealthCheck, {"intervalSeconds": 0.5}, {"check-timeout-within-interval"}),
    (HealthCheck, {"intervalSeconds": 1, "timeoutSeconds": 1}, set()),
    (HealthCheck, {"intervalSeconds": 1.5, "timeoutSeconds": 2}, {"check-timeout-within-interval"}),
    (HealthCheck, {"http": {"path": "/"}}, {"check-http-options-need-http"}),
    (HealthCheck, {"type": "HTTP", "http": {"tlsVerify": True}}, {"check-tls-options-need-https"}),
    (HealthCheck, {"type": "HTTP", "http": {"serverName": "a.example"}}, {"check-tls-options-need-https"}),
    (HealthCheck, {"type": "HTTPS", "http": {"tlsVerify": True, "serverName": "a.example"}}, set()),
    (HealthCheck, {"type": "UDP", "udp": {"send": "ping"}}, set()),
    (
        HealthCheck,
        {"type": "DNS", "udp": {"send": "ping"}},
        {"check-udp-options-need-udp", "check-dns-options-iff-dns"},
    ),
    (HealthCheck, {"type": "DNS", "dns": {"queryName": "example.com"}}, set()),
    (HealthCheck, {"dns": {"queryName": "example.com"}}, {"check-dns-options-iff-dns"}),
    (HealthCheck, {"type": "Exec"}, {"check-exec-options-iff-exec"}),
    (HealthCheck, {"type": "Exec", "exec": {"command": ["/bin/true"]}}, set()),
    (HealthCheck, {"type": "TCP", "exec": {"command": ["/bin/true"]}}, {"check-exec-options-iff-exec"}),
    (StaticMember, {"address": "198.51.100.1", "upperThreshold": 10, "lowerThreshold": 5}, set()),
    (
        StaticMember,
        {"address": "198.51.100.1", "upperThreshold": 10, "lowerThreshold": 11},
        {"lower-threshold-within-upper"},
    ),
    (StaticMember, {"address": "198.51.100.1", "lowerThreshold": 1}, {"lower-threshold-within-upper"}),
    (MemberSelector, {"service": {"name": "web"}}, set()),
    (MemberSelector, {}, {"selector-exactly-one-source"}),
    (MemberSelector, {"service": {"name": "web"}, "pods": {"selector": {}}}, {"selector-exactly-one-source"}),
    (
        MemberSelector,
        {"nodes": {"selector": {}}, "upperThreshold": 2, "lowerThreshold": 3},
        {"lower-threshold-within-upper"},
    ),
    (RealServerPoolSpec, {"members": [{"address": "198.51.100.1"}, {"address": "198.51.100.2"}]}, set()),
    (RealServerPoolSpec, {"selector": {"pods": {"selector": {"matchLabels": {"app": "web"}}}}}, set()),
    (RealServerPoolSpec, {}, {"pool-not-empty"}),
    (RealServerPoolSpec, {"members": []}, {"pool-not-empty"}),
    (
        RealServerPoolSpec,
        {"members": [{"address": "198.51.100.1"}, {"address": "2001:db8::2"}]},
        {"pool-members-one-family"},
    ),
    (VIPPoolSpec, {"addresses": ["203.0.113.0/28"], "namespaces": ["shop"]}, set()),
    (VIPPoolSpec, {"addresses": ["203.0.113.0/28"], "namespaceSelector": {}}, set()),
    (VIPPoolSpec, {"addresses": ["203.0.113.0/28"]}, {"vippool-admits-someone"}),
    (LabelSelectorRequirement, {"key": "a", "operator": "In", "values": ["x"]}, set()),
    (LabelSelectorRequirement, {"key": "a", "operator": "In"}, {"selector-values-match-operator"}),
    (
        LabelSelectorRequirement,
        {"key": "a", "operator": "Exists", "values": ["x"]},
        {"selector-values-match-operator"},
    ),
    (LabelSelectorRequirement, {"key": "a", "operator": "DoesNotExist"}, set()),
]


@pytest.mark.parametrize(
    ("model", "raw", "broken"), CASES, ids=[f"{m.__name__}-{i}" for i, (m, _, _) in enumerate(CASES)]
)
def test_cel_and_python_agree(model: type[ApiModel], raw: dict[str, Any], broken: set[str]) -> None:
    verdicts = answers(model, raw)
    assert {name for name, ok in verdicts.items() if not ok} == broken


def test_every_rule_is_exercised_both_ways() -> None:
    broken_somewhere = set().union(*(broken for _, _, broken in CASES))
    every_rule = {rule.name for rules in all_rules().values() for rule in rules}
    assert every_rule <= broken_somewhere, every_rule - broken_somewhere


def test_every_rule_message_names_a_fix() -> None:
    for rules in all_rules().values():
        for rule in rules:
            assert rule.fix and rule.message
            assert "fix:" in rule.crd_message


# Random specs from a small vocabulary of field-valid values: CEL and python must agree on all of them.
_ports = st.lists(
    st.fixed_dictionaries(
        {"port": st.sampled_from([53, 80, 443])},
        optional={
            "protocol": st.sampled_from(["TCP", "UDP", "SCTP"]),
            "targetPort": st.sampled_from([8080, 8443]),
        },
    ),
    max_size=3,
)
_specs = st.fixed_dictionaries(
    {"vip": st.sampled_from(["203.0.113.10", "2001:db8::10"]), "poolRef": st.just({"name": "p"})},
    optional={
        "ports": _ports,
        "firewallMark": st.sampled_from([1, 4294967295]),
        "forwarding": st.sampled_from(["NAT", "DirectRouting", "Tunnel"]),
        "tunnel": st.fixed_dictionaries(
            {}, optional={"type": st.sampled_from(["IPIP", "GUE", "GRE"]), "port": st.just(6080)}
        ),
        "persistence": st.fixed_dictionaries(
            {},
            optional={
                "netmask": st.sampled_from([0, 24, 32, 33, 64, 128, 129, "255.255.255.0", "255.0.255.0"])
            },
        ),
        "onePacket": st.booleans(),
        "healthCheck": st.fixed_dictionaries(
            {}, optional={"type": st.sampled_from(["TCP", "None", "Exec", "HTTP"]), "port": st.just(80)}
        ),
        "fallback": st.lists(
            st.fixed_dictionaries({"address": st.sampled_from(["198.51.100.9", "2001:db8::9"])}), max_size=2
        ),
    },
)


@settings(max_examples=60, deadline=None)
@given(_specs)
def test_random_specs_cel_and_python_agree(raw: dict[str, Any]) -> None:
    answers(VirtualServiceSpec, raw)
