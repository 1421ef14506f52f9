"""The compiler: accepted API objects + member health -> the desired IPVS table, in kernel terms.

This is the only place that turns the API (``lvs_api.models``) into kernel vocabulary (``lvs_api.ipvs``):
services keyed by (family, protocol, VIP, port) or by firewall mark, scheduler and flags, persistence,
destinations with weight, forwarding method, thresholds and tunnel options. It is pure and cheap; the
agent calls it for every ResolvedService on every health or spec change.

Health policy (applied here and nowhere else):

- A member that is not ready, or terminating, keeps its destination with weight 0: existing connections
  drain, no new ones arrive, and it comes back with a single weight edit.
- A member whose check failed is quiesced (weight 0) with ``onFailure: Quiesce`` and left out with
  ``onFailure: Remove``.
- A member whose health is unknown (``None``: not checked yet, or ``healthCheck.type: None``) counts as
  healthy. Why: after an agent restart or on a fresh standby every member is unknown; treating unknown
  as down would empty (or sorry-serve) every service until the first checks complete, which is a blip
  the restart must not cause. A member that really is down is caught by its first ``fall`` checks.
- A member is *usable* when it is ready, not terminating, not failed, and its weight is above 0. The
  ``fallback`` (sorry) servers are programmed when, and only when, no member is usable; quiesced members
  stay in the table at weight 0 beside them.
- DirectRouting and Tunnel cannot rewrite ports: their destinations always use the virtual port.
- A member of the other address family than the VIP is skipped (the controller rejects such pools; the
  compiler never programs a cross-family destination).
- Two members with the same address and port: the first wins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lvs_api.ipvs import (
    DestConfig,
    DestKey,
    Family,
    ForwardMethod,
    Protocol,
    ServiceConfig,
    ServiceFlag,
    ServiceKey,
    TunnelFlag,
    TunnelType,
    VirtualServer,
)
from lvs_api.models import (
    Forwarding,
    LabelSelector,
    OnFailure,
    ResolvedMember,
    ResolvedService,
    SchedulerFlag,
    VirtualServiceSpec,
    is_ipv6,
)
from lvs_api.models import Protocol as ApiProtocol
from lvs_api.models import TunnelChecksum as ApiTunnelChecksum
from lvs_api.models import TunnelType as ApiTunnelType

__all__ = [
    "CompileOptions",
    "CompiledTable",
    "HealthOf",
    "check_target",
    "compile_resolved",
    "compile_service",
    "compile_table",
    "dest_port",
    "service_config",
    "service_keys",
]

HealthOf = Callable[[ResolvedMember], bool | None]
"""Health verdict of a member: True healthy, False failed its check, None unknown (counts as healthy)."""


def _unknown(_member: ResolvedMember) -> bool | None:
    return None


@dataclass(frozen=True)
class CompileOptions:
    """Node identity. With ``node_labels`` set, a service whose ``directorSelector`` does not match the
    node compiles to an empty table (this node does not serve it)."""

    node_name: str | None = None
    node_labels: Mapping[str, str] | None = None

    def serves(self, selector: LabelSelector | None) -> bool:
        return selector is None or self.node_labels is None or selector.matches(self.node_labels)


_PROTOCOLS: Mapping[ApiProtocol, Protocol] = {
    ApiProtocol.TCP: Protocol.TCP,
    ApiProtocol.UDP: Protocol.UDP,
    ApiProtocol.SCTP: Protocol.SCTP,
}
_FORWARD: Mapping[Forwarding, ForwardMethod] = {
    Forwarding.NAT: ForwardMethod.MASQ,
    Forwarding.DIRECT_ROUTING: ForwardMethod.ROUTE,
    Forwarding.TUNNEL: ForwardMethod.TUNNEL,
}
_TUNNEL_TYPES: Mapping[ApiTunnelType, TunnelType] = {
    ApiTunnelType.IPIP: TunnelType.IPIP,
    ApiTunnelType.GUE: TunnelType.GUE,
    ApiTunnelType.GRE: TunnelType.GRE,
}
_TUNNEL_FLAGS: Mapping[ApiTunnelChecksum, TunnelFlag] = {
    ApiTunnelChecksum.NONE: TunnelFlag.NOCSUM,
    ApiTunnelChecksum.CHECKSUM: TunnelFlag.CSUM,
    ApiTunnelChecksum.REMOTE_CHECKSUM: TunnelFlag.REMCSUM,
}
# sh-fallback/mh-fallback are the kernel's IP_VS_SVC_F_SCHED1, sh-port/mh-port IP_VS_SVC_F_SCHED2.
_SCHEDULER_FLAGS: Mapping[SchedulerFlag, ServiceFlag] = {
    SchedulerFlag.SH_FALLBACK: ServiceFlag.SCHED1,
    SchedulerFlag.SH_PORT: ServiceFlag.SCHED2,
    SchedulerFlag.MH_FALLBACK: ServiceFlag.SCHED1,
    SchedulerFlag.MH_PORT: ServiceFlag.SCHED2,
}


def _family(ipv6: bool) -> Family:
    return Family.INET6 if ipv6 else Family.INET


def service_keys(spec: VirtualServiceSpec) -> list[ServiceKey]:
    """The IPVS services of a VirtualService: one per port, or one firewall-mark service."""
    family = _family(spec.ipv6)
    if spec.firewall_mark is not None:
        return [ServiceKey(family, Protocol.NONE, "", 0, spec.firewall_mark)]
    return [ServiceKey(family, _PROTOCOLS[port.protocol], spec.vip, port.port) for port in spec.ports]


def persistence_prefix(spec: VirtualServiceSpec) -> int:
    """The persistence netmask as a prefix length (host-sized when not given)."""
    full = 128 if spec.ipv6 else 32
    netmask = spec.persistence.netmask if spec.persistence is not None else None
    if netmask is None:
        return full
    if isinstance(netmask, int):
        return netmask
    return ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen


def service_config(spec: VirtualServiceSpec) -> ServiceConfig:
    """Scheduler, flags, persistence timeout and netmask of every IPVS service of ``spec``."""
    flags = 0
    for flag in spec.scheduler.flags:
        flags |= _SCHEDULER_FLAGS[flag]
    if spec.one_packet:
        flags |= ServiceFlag.ONEPACKET
    timeout = 0
    if spec.persistence is not None:
        flags |= ServiceFlag.PERSISTENT
        timeout = spec.persistence.timeout_seconds
    return ServiceConfig(
        scheduler=spec.scheduler.name.value,
        flags=int(flags),
        timeout=timeout,
        netmask=persistence_prefix(spec) if spec.persistence is not None else (128 if spec.ipv6 else 32),
    )


def dest_port(spec: VirtualServiceSpec, key: ServiceKey, member_port: int | None) -> int:
    """Destination port for a member on service ``key``.

    Firewall-mark services: the member's port, or 0 (keep the packet's port); ipvsadm leaves a given port
    alone there whatever the forwarding method (the kernel ignores it for DirectRouting and Tunnel). NAT:
    the member's port, else the virtual port's targetPort, else the virtual port. DirectRouting and
    Tunnel: the virtual port (ipvsadm forces it too: these methods cannot rewrite ports).
    """
    if key.fwmark:
        return member_port or 0
    if spec.forwarding is not Forwarding.NAT:
        return key.port
    if member_port is not None:
        return member_port
    for port in spec.ports:
        if port.port == key.port and _PROTOCOLS[port.protocol] == key.protocol:
            return port.target_port or port.port
    return key.port


def check_target(spec: VirtualServiceSpec, member: ResolvedMember) -> tuple[str, int]:
    """(address, port) the health check of ``member`` probes: the member's checkPort, else
    healthCheck.port, else the member's port on the first virtual port (0 when there is none).

    One verdict per member covers every port of the service."""
    if member.check_port is not None:
        return member.address, member.check_port
    if spec.health_check.port is not None:
        return member.address, spec.health_check.port
    keys = service_keys(spec)
    port = dest_port(spec, keys[0], member.port) if keys else (member.port or 0)
    return member.address, port


def _dest_template(spec: VirtualServiceSpec) -> DestConfig:
    if spec.forwarding is Forwarding.TUNNEL:
        tunnel = spec.tunnel
        if tunnel is not None:
            return DestConfig(
                forward=ForwardMethod.TUNNEL,
                tunnel_type=_TUNNEL_TYPES[tunnel.type],
                tunnel_port=tunnel.port or 0,
                tunnel_flags=int(_TUNNEL_FLAGS[tunnel.checksum]),
            )
    return DestConfig(forward=_FORWARD[spec.forwarding])


def _effective_weight(spec: VirtualServiceSpec, member: ResolvedMember, healthy: bool | None) -> int | None:
    """Weight to program, or None to leave the member out."""
    if healthy is False:
        return None if spec.on_failure is OnFailure.REMOVE else 0
    if not member.ready or member.terminating:
        return 0
    return member.weight


def compile_service(
    spec: VirtualServiceSpec,
    members: Sequence[ResolvedMember],
    fallback: Sequence[ResolvedMember] = (),
    health: HealthOf | None = None,
    options: CompileOptions | None = None,
) -> dict[ServiceKey, VirtualServer]:
    """The desired IPVS services of one accepted VirtualService spec with its resolved members."""
    options = options or CompileOptions()
    if not options.serves(spec.director_selector):
        return {}
    health_of = health or _unknown
    keys = service_keys(spec)
    config = service_config(spec)
    template = _dest_template(spec)
    family = _family(spec.ipv6)

    chosen: list[tuple[ResolvedMember, int]] = []
    any_usable = False
    for member in members:
        if is_ipv6(member.address) != spec.ipv6:
            continue
        weight = _effective_weight(spec, member, health_of(member))
        if weight is None:
            continue
        chosen.append((member, weight))
        any_usable = any_usable or weight > 0
    if not any_usable:
        chosen.extend((member, member.weight) for member in fallback if is_ipv6(member.address) == spec.ipv6)

    table: dict[ServiceKey, VirtualServer] = {}
    for key in keys:
        dests: dict[DestKey, DestConfig] = {}
        for member, weight in chosen:
            dest = DestKey(family, member.address, dest_port(spec, key, member.port))
            if dest in dests:
                continue  # first one wins
            dests[dest] = template._replace(
                weight=weight, upper_threshold=member.upper_threshold, lower_threshold=member.lower_threshold
            )
        table[key] = VirtualServer(config, dests)
    return table


def compile_resolved(
    resolved: ResolvedService, health: HealthOf | None = None, options: CompileOptions | None = None
) -> dict[ServiceKey, VirtualServer]:
    """``compile_service`` for a ResolvedService object (the agent's entry point)."""
    spec = resolved.spec
    return compile_service(spec.service, spec.members, spec.fallback, health, options)


@dataclass
class CompiledTable:
    """Many services merged into one table; ``conflicts`` maps a key claimed twice to the losers."""

    table: dict[ServiceKey, VirtualServer] = field(default_factory=dict)
    owners: dict[ServiceKey, str] = field(default_factory=dict)
    conflicts: dict[ServiceKey, list[str]] = field(default_factory=dict)


def compile_table(
    resolved: Iterable[tuple[str, ResolvedService]],
    health: Callable[[str, ResolvedMember], bool | None] | None = None,
    options: CompileOptions | None = None,
) -> CompiledTable:
    """Compile ("namespace/name", ResolvedService) pairs, in order, into one table.

    A VirtualService that claims a key already claimed by an earlier one is left out entirely (none of
    its keys are programmed) and recorded in ``conflicts``; the controller should have refused it.
    """
    out = CompiledTable()
    for name, item in resolved:
        member_health: HealthOf | None = None
        if health is not None:

            def member_health(
                member: ResolvedMember,
                _name: str = name,
                _lookup: Callable[[str, ResolvedMember], bool | None] = health,
            ) -> bool | None:
                return _lookup(_name, member)

        services = compile_resolved(item, member_health, options)
        taken = [key for key in services if key in out.table]
        if taken:
            for key in taken:
                out.conflicts.setdefault(key, []).append(name)
            continue
        for key, server in services.items():
            out.table[key] = server
            out.owners[key] = name
    return out
