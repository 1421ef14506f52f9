"""``VIPPool`` (cluster-scoped): which namespaces may claim which virtual IP ranges."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lvs_api.models.base import (
    API_VERSION,
    CIDR,
    CONDITIONS_LIST_EXTRA,
    ApiModel,
    Condition,
    LabelSelector,
    ObjectMeta,
)
from lvs_api.rules import Rule, register_rules


class VIPPoolSpec(ApiModel):
    """Address ranges and the namespaces allowed to use them as VIPs."""

    addresses: list[CIDR] = Field(
        min_length=1,
        max_length=256,
        description="VIP ranges in CIDR notation (203.0.113.0/28, 2001:db8:1::/120; /32 or /128 for "
        "one address).",
    )
    namespaces: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Namespaces (by name) that may claim VIPs from this pool.",
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description="Namespaces (by label) that may claim VIPs from this pool; {} admits every namespace.",
    )
    allow_exec_health_checks: bool = Field(
        default=False,
        description="Allow healthCheck.type: Exec for VIPs of this pool (the command runs as the agent on "
        "director nodes). Default: false.",
    )


register_rules(
    VIPPoolSpec,
    Rule(
        name="vippool-admits-someone",
        field_path=".namespaces",
        cel="(has(self.namespaces) && size(self.namespaces) > 0) || has(self.namespaceSelector)",
        message="a VIPPool must name the namespaces it admits",
        fix="set namespaces, or namespaceSelector ({} admits every namespace)",
        check=lambda p: bool(p.namespaces) or p.namespace_selector is not None,
        reason="FieldValueRequired",
    ),
)


class VIPPoolStatus(ApiModel):
    """Observed state of a VIP pool; written by the controller only."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation last processed."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Accepted.", json_schema_extra=CONDITIONS_LIST_EXTRA
    )
    claimed_addresses: int | None = Field(
        default=None, ge=0, description="VIPs of this pool claimed by VirtualServices."
    )


class VIPPool(ApiModel):
    """Cluster-scoped tenancy policy for VIPs (``vippools.lvs.io``)."""

    kind_name: ClassVar[str] = "VIPPool"
    plural: ClassVar[str] = "vippools"
    namespaced: ClassVar[bool] = False

    api_version: Literal["lvs.io/v1alpha1"] = Field(default=API_VERSION, description="lvs.io/v1alpha1.")
    kind: Literal["VIPPool"] = Field(default="VIPPool", description="VIPPool.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: VIPPoolSpec = Field(description="Desired state.")
    status: VIPPoolStatus | None = Field(default=None, description="Observed state (controller-owned).")
