"""Validation ratcheting (a real server's CRDValidationRatcheting, GA in 1.33) and the CEL outcome
cache that keeps the embedded server's CPU per write low without changing any outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
from kubernetes.client import ApiException
from lvs_apiserver.cel import CelEvaluator, guard_field, self_fields
from lvs_apiserver.testing import ServerThread

pytestmark = pytest.mark.integration

GROUP, VERSION, PLURAL = "ratchet.lvs.io", "v1", "gauges"


def gauge_crd(max_level: int, rule: str) -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": rule, "message": "level above the limit"}],
        "properties": {
            "level": {"type": "integer", "maximum": max_level},
            "limit": {"type": "integer"},
            "note": {"type": "string"},
            "frozen": {
                "type": "string",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "frozen is immutable"}],
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "kind": "Gauge"},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": spec_schema,
                                "status": {"type": "object", "properties": {"seen": {"type": "integer"}}},
                            },
                        }
                    },
                }
            ],
        },
    }


def test_unchanged_values_are_ratcheted_after_the_schema_tightens(
    make_apiserver: Callable[..., ServerThread], install_crds: Callable[..., list[str]]
) -> None:
    server = make_apiserver()
    install_crds(gauge_crd(10, "self.level <= self.limit"), server=server)
    client = kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    api = kubernetes.client.CustomObjectsApi(client)
    try:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Gauge",
            "metadata": {"name": "g"},
            "spec": {"level": 8, "limit": 9, "frozen": "a"},
        }
        api.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
        # The CRD tightens: level at most 5 and never above 5 whatever the limit. The stored object
        # now violates both; writes that leave spec alone still pass, like on a real server.
        install_crds(gauge_crd(5, "self.level <= 5"), server=server)
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "g", {"status": {"seen": 1}}
        )
        api.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "g", {"metadata": {"labels": {"a": "b"}}}
        )
        # changing spec re-runs the spec rule (spec changed), while the unchanged level keeps its
        # ratcheted maximum
        with pytest.raises(ApiException) as changed:
            api.patch_namespaced_custom_object(
                GROUP, VERSION, "default", PLURAL, "g", {"spec": {"note": "x"}}
            )
        causes = json.loads(changed.value.body)["details"]["causes"]
        assert [(cause["field"], cause["message"]) for cause in causes] == [
            ("spec", 'Invalid value: "object": level above the limit')
        ]
        with pytest.raises(ApiException) as raised:
            api.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g", {"spec": {"level": 9}})
        assert "spec.level in body should be less than or equal to 5" in raised.value.body
        # transition rules are not ratcheted: they run on the changed value
        with pytest.raises(ApiException) as frozen:
            api.patch_namespaced_custom_object(
                GROUP, VERSION, "default", PLURAL, "g", {"spec": {"level": 4, "frozen": "b"}}
            )
        assert "frozen is immutable" in frozen.value.body
        fixed = api.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "g", {"spec": {"level": 4, "note": "x"}}
        )
        assert fixed["spec"]["level"] == 4 and fixed["status"] == {"seen": 1}
    finally:
        client.close()


def test_rule_outcomes_are_cached_only_on_what_the_rule_reads() -> None:
    cel = CelEvaluator()
    rule = {"rule": "self.a > 0", "messageExpression": "'b is ' + string(self.b)"}
    assert cel.evaluate(rule, {"a": 0, "b": 1}, None, False).message == "b is 1"
    assert cel.evaluate(rule, {"a": 0, "b": 2, "c": 3}, None, False).message == "b is 2"
    assert cel.evaluate(rule, {"a": 1, "b": 2}, None, False).passed
    # a rule reading all of self is keyed on all of it
    whole = {"rule": "size(self) > 1"}
    assert not cel.evaluate(whole, {"a": 1}, None, False).passed
    assert cel.evaluate(whole, {"a": 1, "b": 2}, None, False).passed
    # missing and null differ, 1 and true differ
    present = {"rule": "has(self.a)"}
    assert not cel.evaluate(present, {}, None, False).passed
    assert cel.evaluate(present, {"a": None}, None, False).passed
    typed = {"rule": "type(self.a) == int"}
    assert cel.evaluate(typed, {"a": 1}, None, False).passed
    assert not cel.evaluate(typed, {"a": True}, None, False).passed
    assert not cel.evaluate(typed, {"a": 1.0}, None, False).passed
    # transition rules see the old value
    transition = {"rule": "self.a == oldSelf.a"}
    assert cel.evaluate(transition, {"a": 1}, {"a": 1}, True).passed
    assert not cel.evaluate(transition, {"a": 1}, {"a": 2}, True).passed


@pytest.mark.parametrize(
    ("expressions", "fields"),
    [
        (("!has(self.natGateway) || self.forwarding == 'NAT'",), ("forwarding", "natGateway")),
        (("self.ports.all(p, p.port > 0)", "'self.x'"), ("ports",)),
        (("size(self) > 0",), None),
        (("self == oldSelf",), None),
        (("self.all(k, k != '')",), None),
        (("self.?a.orValue(1) > 0",), None),
        (("isIP(self)",), None),
        (("self.a.all(self, true)",), None),
    ],
)
def test_fields_a_rule_reads(expressions: tuple[str, ...], fields: tuple[str, ...] | None) -> None:
    assert self_fields(*expressions) == fields


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        (
            "!has(self.natGateway) || self.natGateway.address.contains(':') == self.vip.contains(':')",
            "natGateway",
        ),
        ("!has(self.a) || (b ? c : d)", "a"),
        ("!has(self.a)||'?' == self.b", "a"),
        ("!has(self.a) || b ? c : d", None),  # the ternary binds looser: not a guard
        ("!has(self.a) && x || y", None),
        ("has(self.a) || x", None),
        ("!has(self.a.b) || x", None),
    ],
)
def test_guard_of_a_rule(expression: str, field: str | None) -> None:
    assert guard_field(expression) == field


def test_guarded_rule_is_skipped_only_while_its_field_is_absent() -> None:
    cel = CelEvaluator()
    rule = {"rule": "!has(self.gw) || self.gw.contains(':') == self.vip.contains(':')", "message": "family"}
    assert cel.evaluate(rule, {"vip": "192.0.2.1"}, None, False).passed
    assert cel.evaluate(rule, {"vip": "192.0.2.1", "gw": "198.51.100.1"}, None, False).passed
    failed = cel.evaluate(rule, {"vip": "192.0.2.1", "gw": "2001:db8::1"}, None, False)
    assert not failed.passed and failed.message == "family"
