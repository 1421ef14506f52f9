"""Internal kinds: how the controller and the agents talk, through the API server.

- ``ResolvedService`` (namespaced, same name as its VirtualService, written only by the controller): the
  last *accepted* spec plus its resolved members. A rejected spec never reaches it, so agents keep
  programming the last good state. One object per VirtualService, so a change rewrites one small object.
- ``DirectorReport`` (cluster-scoped, one per director node, name = node name, written only by that node's
  agent, in ``.status``): what the node programmed, which VIPs it holds, member health and IPVS counters.
  The controller folds these into VirtualService status.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from lvs_api.models.base import API_VERSION, ApiModel, IPAddress, ObjectMeta, Port
from lvs_api.models.virtualservice import VirtualServiceSpec


class MemberSource(enum.StrEnum):
    """Where a resolved member came from."""

    STATIC = "Static"
    SERVICE = "Service"
    POD = "Pod"
    NODE = "Node"


class ResolvedMember(ApiModel):
    """One real server, resolved by the controller."""

    address: IPAddress = Field(description="Address of the real server.")
    port: Port | None = Field(
        default=None, description="Port override; default: the service port (or its targetPort)."
    )
    weight: int = Field(default=1, ge=0, le=65535, description="Configured scheduler weight. Default: 1.")
    upper_threshold: int = Field(
        default=0, ge=0, le=65535, description="Connection upper threshold; 0 = none."
    )
    lower_threshold: int = Field(
        default=0, ge=0, le=65535, description="Connection lower threshold; 0 = kernel default."
    )
    source: MemberSource = Field(default=MemberSource.STATIC, description="Static, Service, Pod or Node.")
    ready: bool = Field(default=True, description="Endpoint ready (EndpointSlice condition). Default: true.")
    serving: bool = Field(
        default=True, description="Endpoint serving (EndpointSlice condition). Default: true."
    )
    terminating: bool = Field(
        default=False, description="Endpoint terminating: drained (weight 0) until it goes. Default: false."
    )
    node_name: str | None = Field(default=None, description="Node of the endpoint, when known.")
    check_port: Port | None = Field(default=None, description="Health check port override for this member.")
    target: str | None = Field(
        default=None, description="What the member stands for (e.g. pod/web-7d9f), for events."
    )


class ResolvedServiceSpec(ApiModel):
    """The accepted spec of a VirtualService and its members, as the agents program them."""

    accepted_generation: int = Field(
        ge=0, description="metadata.generation of the accepted VirtualService spec."
    )
    virtual_service_uid: str = Field(
        description="metadata.uid of the VirtualService (guards against a re-created name)."
    )
    service: VirtualServiceSpec = Field(description="The accepted VirtualService spec.")
    members: list[ResolvedMember] = Field(default_factory=list, description="Resolved members of the pool.")
    fallback: list[ResolvedMember] = Field(
        default_factory=list,
        description="Resolved sorry servers (programmed only while no member is usable).",
    )


class ResolvedService(ApiModel):
    """Internal: resolved desired state of one VirtualService (controller to agents)."""

    kind_name: ClassVar[str] = "ResolvedService"
    plural: ClassVar[str] = "resolvedservices"
    namespaced: ClassVar[bool] = True

    api_version: Literal["lvs.io/v1alpha1"] = Field(default=API_VERSION, description="lvs.io/v1alpha1.")
    kind: Literal["ResolvedService"] = Field(default="ResolvedService", description="ResolvedService.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: ResolvedServiceSpec = Field(description="Resolved state (controller-owned).")


# --- DirectorReport -------------------------------------------------------------------------------


class IPVSStats(ApiModel):
    """Kernel counters of one virtual service (summed over its IPVS services)."""

    connections: int = Field(
        default=0, ge=0, description="Connections scheduled since the service was created."
    )
    in_packets: int = Field(default=0, ge=0, description="Packets in (client to real server).")
    out_packets: int = Field(default=0, ge=0, description="Packets out (real server to client; NAT only).")
    in_bytes: int = Field(default=0, ge=0, description="Bytes in.")
    out_bytes: int = Field(default=0, ge=0, description="Bytes out (NAT only).")


class MemberHealth(ApiModel):
    """Health of one member as this director sees it."""

    address: IPAddress = Field(description="Member address.")
    port: int = Field(ge=0, le=65535, description="Member port (0 for firewall-mark members without a port).")
    healthy: bool = Field(description="Passing its health check (or not yet checked: see reason).")
    since: datetime | None = Field(default=None, description="When the member entered this state.")
    reason: str = Field(
        default="", max_length=256, description="Why, e.g. Checked, NotYetChecked, Timeout, HTTPStatus503."
    )


class ServiceReport(ApiModel):
    """What one director did for one VirtualService."""

    programmed: bool = Field(description="The kernel holds the desired table for this service.")
    reason: str = Field(
        default="",
        max_length=128,
        description="CamelCase reason, e.g. Programmed, NotSelected, Conflict, NetlinkError.",
    )
    message: str = Field(default="", max_length=4096, description="Detail, naming what failed.")
    accepted_generation: int | None = Field(
        default=None, ge=0, description="ResolvedService.spec.acceptedGeneration that was programmed."
    )
    active: bool = Field(default=False, description="This director holds the VIP (active for its VIP group).")
    healthy_members: int = Field(default=0, ge=0, description="Members passing their check.")
    total_members: int = Field(default=0, ge=0, description="Members known to the director.")
    members: list[MemberHealth] = Field(
        default_factory=list,
        description="Member health. To keep reports small an agent may list only members that are not "
        "healthy; the counters always cover all.",
    )
    stats: IPVSStats | None = Field(default=None, description="Kernel counters.")
    errors: list[str] = Field(
        default_factory=list, max_length=16, description="Recent errors for this service."
    )


class VIPGroupRole(enum.StrEnum):
    """Role of a director for a VIP group."""

    ACTIVE = "Active"
    STANDBY = "Standby"
    UNKNOWN = "Unknown"


class VIPGroupReport(ApiModel):
    """This director's view of one failover group."""

    name: str = Field(description="VIP group name (VirtualService vipGroup, or the VIP).")
    vips: list[IPAddress] = Field(default_factory=list, description="VIPs of the group.")
    role: VIPGroupRole = Field(default=VIPGroupRole.UNKNOWN, description="Active, Standby or Unknown.")
    lease_name: str | None = Field(default=None, description="coordination.k8s.io Lease deciding the owner.")
    lease_holder: str | None = Field(default=None, description="Holder of the Lease as last seen.")
    since: datetime | None = Field(default=None, description="When this director took its current role.")
    failovers: int = Field(default=0, ge=0, description="Times this director became active for the group.")


class DirectorReportSpec(ApiModel):
    """Identity of the reporting director."""

    node_name: str = Field(description="Node the reporting agent runs on.")


class DirectorReportStatus(ApiModel):
    """What the director's agent programmed and sees; written by that agent only."""

    heartbeat_time: datetime | None = Field(
        default=None, description="When the agent last wrote this report."
    )
    agent_version: str | None = Field(default=None, description="Version of the agent.")
    services: dict[str, ServiceReport] = Field(
        default_factory=dict, description='Per VirtualService, keyed "namespace/name".'
    )
    vip_groups: list[VIPGroupReport] = Field(
        default_factory=list, description="Failover groups of this director."
    )
    ipvs_services: int | None = Field(
        default=None, ge=0, description="IPVS services this agent owns in the kernel."
    )
    ipvs_destinations: int | None = Field(default=None, ge=0, description="Destinations of those services.")
    foreign_services: int | None = Field(
        default=None,
        ge=0,
        description="IPVS services in the kernel that the agent does not own (left untouched).",
    )
    errors: list[str] = Field(default_factory=list, max_length=32, description="Recent agent-level errors.")


class DirectorReport(ApiModel):
    """Internal: one director's report (agent to controller)."""

    kind_name: ClassVar[str] = "DirectorReport"
    plural: ClassVar[str] = "directorreports"
    namespaced: ClassVar[bool] = False

    api_version: Literal["lvs.io/v1alpha1"] = Field(default=API_VERSION, description="lvs.io/v1alpha1.")
    kind: Literal["DirectorReport"] = Field(default="DirectorReport", description="DirectorReport.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: DirectorReportSpec = Field(description="Which node reports.")
    status: DirectorReportStatus | None = Field(default=None, description="The report (agent-owned).")
