"""``RealServerPool``: the real servers behind one or more VirtualServices in the same namespace."""

from __future__ import annotations

import enum
from typing import Any, ClassVar, Literal

from pydantic import Field

from lvs_api.models.base import (
    API_VERSION,
    CONDITIONS_LIST_EXTRA,
    ApiModel,
    Condition,
    IPAddress,
    LabelSelector,
    ObjectMeta,
    ObjectName,
    Port,
    is_ipv6,
)
from lvs_api.rules import Rule, register_rules

_THRESHOLD_CEL = (
    "(has(self.lowerThreshold) ? self.lowerThreshold : 0) == 0 || "
    "((has(self.upperThreshold) ? self.upperThreshold : 0) > 0 && self.lowerThreshold <= self.upperThreshold)"
)


def _thresholds_ordered(member: Any) -> bool:
    lower: int = member.lower_threshold
    upper: int = member.upper_threshold
    return lower == 0 or (upper > 0 and lower <= upper)


_THRESHOLD_RULE_ARGS: dict[str, Any] = {
    "name": "lower-threshold-within-upper",
    "field_path": ".lowerThreshold",
    "cel": _THRESHOLD_CEL,
    "message": "lowerThreshold needs an upperThreshold and must not exceed it",
    "fix": "set upperThreshold >= lowerThreshold, or remove lowerThreshold",
    "check": _thresholds_ordered,
}


class StaticMember(ApiModel):
    """A real server given by address."""

    address: IPAddress = Field(description="Address of the real server (IPv4 or IPv6).")
    port: Port | None = Field(
        default=None,
        description="Port on the real server. Default: the VirtualService port (or its targetPort). "
        "Ignored by DirectRouting and Tunnel, which cannot rewrite ports.",
    )
    weight: int = Field(
        default=1, ge=0, le=65535, description="Scheduler weight; 0 takes no new connections. Default: 1."
    )
    upper_threshold: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Most connections the member takes; 0 means no limit. Default: 0.",
    )
    lower_threshold: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Once over upperThreshold, the member takes new connections again below this. "
        "0 means the kernel's default (three quarters of upperThreshold). Default: 0.",
    )
    check_port: Port | None = Field(
        default=None,
        description="Port the health check probes on this member. Default: healthCheck.port or the "
        "member port.",
    )


register_rules(StaticMember, Rule(**_THRESHOLD_RULE_ARGS))


class ServiceMembers(ApiModel):
    """Members taken from the ready endpoints of a Kubernetes Service (EndpointSlices)."""

    name: ObjectName = Field(description="Name of the Service in the pool's namespace.")
    port: int | str | None = Field(
        default=None,
        description="Service port (name or number) whose endpoint port the members use. Default: the "
        "VirtualService port (or its targetPort).",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )


class PodMembers(ApiModel):
    """Members taken from pods (their pod IPs) selected by label in the pool's namespace."""

    selector: LabelSelector = Field(description="Label selector of the pods.")
    port: Port | None = Field(default=None, description="Port on the pods. Default: the VirtualService port.")


class NodeAddressType(enum.StrEnum):
    """Which node address a node member uses."""

    INTERNAL_IP = "InternalIP"
    EXTERNAL_IP = "ExternalIP"


class NodeMembers(ApiModel):
    """Members taken from nodes selected by label (for host-network or NodePort backends)."""

    selector: LabelSelector = Field(description="Label selector of the nodes.")
    port: Port | None = Field(
        default=None, description="Port on the nodes. Default: the VirtualService port."
    )
    address_type: NodeAddressType = Field(
        default=NodeAddressType.INTERNAL_IP, description="InternalIP or ExternalIP. Default: InternalIP."
    )


class MemberSelector(ApiModel):
    """Dynamic members: exactly one of service, pods or nodes, with the settings they all get."""

    service: ServiceMembers | None = Field(default=None, description="Endpoints of a Service.")
    pods: PodMembers | None = Field(default=None, description="Pods selected by label.")
    nodes: NodeMembers | None = Field(default=None, description="Nodes selected by label.")
    weight: int = Field(default=1, ge=0, le=65535, description="Weight of every selected member. Default: 1.")
    upper_threshold: int = Field(
        default=0, ge=0, le=65535, description="upperThreshold of every selected member. Default: 0."
    )
    lower_threshold: int = Field(
        default=0, ge=0, le=65535, description="lowerThreshold of every selected member. Default: 0."
    )
    check_port: Port | None = Field(
        default=None, description="Health check port of every selected member. Default: none."
    )


register_rules(
    MemberSelector,
    Rule(
        name="selector-exactly-one-source",
        field_path="",
        cel="(has(self.service) ? 1 : 0) + (has(self.pods) ? 1 : 0) + (has(self.nodes) ? 1 : 0) == 1",
        message="a member selector needs exactly one of service, pods and nodes",
        fix="keep one of selector.service, selector.pods or selector.nodes",
        check=lambda s: sum(x is not None for x in (s.service, s.pods, s.nodes)) == 1,
        reason="FieldValueRequired",
    ),
    Rule(**_THRESHOLD_RULE_ARGS),
)


class RealServerPoolSpec(ApiModel):
    """Real servers: static members and/or one selector."""

    members: list[StaticMember] = Field(
        default_factory=list, max_length=1000, description="Real servers given by address. Default: none."
    )
    selector: MemberSelector | None = Field(
        default=None, description="Real servers found in the cluster (Service endpoints, pods or nodes)."
    )


register_rules(
    RealServerPoolSpec,
    Rule(
        name="pool-not-empty",
        field_path=".members",
        cel="(has(self.members) && size(self.members) > 0) || has(self.selector)",
        message="a pool needs members or a selector",
        fix="add members (address, weight) or a selector",
        check=lambda p: bool(p.members) or p.selector is not None,
        reason="FieldValueRequired",
    ),
    Rule(
        name="pool-members-one-family",
        field_path=".members",
        cel="!has(self.members) || self.members.all(m, m.address.contains(':')) || "
        "self.members.all(m, !m.address.contains(':'))",
        message="static members must all be IPv4 or all be IPv6",
        fix="split IPv4 and IPv6 members into separate pools (one per VirtualService family)",
        check=lambda p: len({is_ipv6(m.address) for m in p.members}) <= 1,
    ),
)


class RealServerPoolStatus(ApiModel):
    """Observed state of a pool; written by the controller only."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation last processed."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Accepted (the spec is valid) and Resolved (members found).",
        json_schema_extra=CONDITIONS_LIST_EXTRA,
    )
    resolved_members: int | None = Field(default=None, ge=0, description="Members currently resolved.")
    used_by: list[str] = Field(
        default_factory=list, max_length=256, description="VirtualServices (names) that use this pool."
    )


class RealServerPool(ApiModel):
    """A pool of real servers (``realserverpools.lvs.io``)."""

    kind_name: ClassVar[str] = "RealServerPool"
    plural: ClassVar[str] = "realserverpools"
    namespaced: ClassVar[bool] = True

    api_version: Literal["lvs.io/v1alpha1"] = Field(default=API_VERSION, description="lvs.io/v1alpha1.")
    kind: Literal["RealServerPool"] = Field(default="RealServerPool", description="RealServerPool.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: RealServerPoolSpec = Field(description="Desired state.")
    status: RealServerPoolStatus | None = Field(
        default=None, description="Observed state (controller-owned)."
    )
