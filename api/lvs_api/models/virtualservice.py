"""``VirtualService``: one VIP with its ports (or a firewall mark), how to balance and how to check."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, ClassVar, Literal

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

# --- enums ----------------------------------------------------------------------------------------


class Protocol(enum.StrEnum):
    """Transport protocol of a virtual port."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class SchedulerName(enum.StrEnum):
    """Kernel IPVS schedulers (``ip_vs_<name>`` modules)."""

    RR = "rr"  # round robin
    WRR = "wrr"  # weighted round robin
    LC = "lc"  # least connections
    WLC = "wlc"  # weighted least connections (kernel default)
    LBLC = "lblc"  # locality-based least connections
    LBLCR = "lblcr"  # locality-based least connections with replication
    DH = "dh"  # destination hashing
    SH = "sh"  # source hashing
    SED = "sed"  # shortest expected delay
    NQ = "nq"  # never queue
    FO = "fo"  # weighted failover
    OVF = "ovf"  # weighted overflow
    MH = "mh"  # maglev hashing
    TWOS = "twos"  # weighted random twos choice


class SchedulerFlag(enum.StrEnum):
    """Scheduler flags; each belongs to the scheduler named by its prefix."""

    SH_FALLBACK = "sh-fallback"
    SH_PORT = "sh-port"
    MH_FALLBACK = "mh-fallback"
    MH_PORT = "mh-port"


class Forwarding(enum.StrEnum):
    """How the director hands packets to real servers."""

    NAT = "NAT"
    DIRECT_ROUTING = "DirectRouting"
    TUNNEL = "Tunnel"


class TunnelType(enum.StrEnum):
    """Encapsulation used with ``forwarding: Tunnel``."""

    IPIP = "IPIP"
    GUE = "GUE"
    GRE = "GRE"


class TunnelChecksum(enum.StrEnum):
    """Checksum option of GUE and GRE tunnels."""

    NONE = "None"
    CHECKSUM = "Checksum"
    REMOTE_CHECKSUM = "RemoteChecksum"


class CheckType(enum.StrEnum):
    """Kind of health check."""

    TCP = "TCP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    UDP = "UDP"
    DNS = "DNS"
    EXEC = "Exec"
    NONE = "None"


class OnFailure(enum.StrEnum):
    """What happens to a member that fails its health check."""

    QUIESCE = "Quiesce"
    REMOVE = "Remove"


class HTTPMethod(enum.StrEnum):
    """HTTP method of an HTTP(S) check."""

    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    OPTIONS = "OPTIONS"


class DNSQueryType(enum.StrEnum):
    """Record type a DNS check asks for."""

    A = "A"
    AAAA = "AAAA"
    CNAME = "CNAME"
    MX = "MX"
    NS = "NS"
    PTR = "PTR"
    SOA = "SOA"
    SRV = "SRV"
    TXT = "TXT"


class DNSRcode(enum.StrEnum):
    """DNS response code a DNS check expects."""

    NOERROR = "NOERROR"
    NXDOMAIN = "NXDOMAIN"
    SERVFAIL = "SERVFAIL"
    REFUSED = "REFUSED"


# --- spec parts -----------------------------------------------------------------------------------


class ServicePort(ApiModel):
    """One virtual port of the VIP."""

    port: Port = Field(description="Port clients connect to on the VIP (1-65535).")
    protocol: Protocol = Field(default=Protocol.TCP, description="TCP, UDP or SCTP. Default: TCP.")
    name: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Optional name of the port.",
    )
    target_port: Port | None = Field(
        default=None,
        description="Port on the real servers when it differs from `port` (NAT only: direct routing and "
        "tunneling cannot rewrite ports). Default: the same as `port`. A member's own `port` wins.",
    )


class Scheduler(ApiModel):
    """Which kernel scheduler picks a real server for a new connection."""

    name: SchedulerName = Field(
        default=SchedulerName.WLC,
        description="rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh or twos. Default: wlc.",
    )
    flags: list[SchedulerFlag] = Field(
        default_factory=list,
        max_length=2,
        description="Scheduler flags: sh-fallback and sh-port with sh, mh-fallback and mh-port with mh. "
        "Default: none.",
    )


SCHEDULER_FLAGS_RULE = Rule(
    name="scheduler-flags-match-scheduler",
    field_path=".flags",
    cel="!has(self.flags) || self.flags.all(f, f.startsWith((has(self.name) ? self.name : 'wlc') + '-'))",
    message="scheduler flags must belong to the scheduler (sh-* flags need name: sh, mh-* flags "
    "need name: mh)",
    fix="remove the flags or set scheduler.name to the scheduler they belong to",
    check=lambda s: all(flag.value.startswith(f"{s.name.value}-") for flag in s.flags),
)
SCHEDULER_FLAGS_UNIQUE_RULE = Rule(
    name="scheduler-flags-unique",
    field_path=".flags",
    cel="!has(self.flags) || self.flags.all(f, self.flags.filter(g, g == f).size() == 1)",
    message="scheduler flags must not repeat",
    fix="list each flag once",
    check=lambda s: len(set(s.flags)) == len(s.flags),
    reason="FieldValueDuplicate",
)
register_rules(Scheduler, SCHEDULER_FLAGS_RULE, SCHEDULER_FLAGS_UNIQUE_RULE)


class TunnelOptions(ApiModel):
    """Encapsulation options for ``forwarding: Tunnel``."""

    type: TunnelType = Field(default=TunnelType.IPIP, description="IPIP, GUE or GRE. Default: IPIP.")
    port: Port | None = Field(
        default=None, description="Destination UDP port of GUE encapsulation (GUE only; required)."
    )
    checksum: TunnelChecksum = Field(
        default=TunnelChecksum.NONE,
        description="None, Checksum (GUE or GRE) or RemoteChecksum (GUE only). Default: None.",
    )


register_rules(
    TunnelOptions,
    Rule(
        name="tunnel-port-iff-gue",
        field_path=".port",
        cel="has(self.port) == ((has(self.type) ? self.type : 'IPIP') == 'GUE')",
        message="tunnel.port is required with type GUE and not allowed with IPIP or GRE",
        fix="set tunnel.port (the GUE UDP port, e.g. 6080) for GUE, remove it for IPIP and GRE",
        check=lambda t: (t.port is not None) == (t.type is TunnelType.GUE),
    ),
    Rule(
        name="tunnel-checksum-needs-gue-or-gre",
        field_path=".checksum",
        cel="(has(self.checksum) ? self.checksum : 'None') == 'None' || "
        "((has(self.type) ? self.type : 'IPIP') == 'GUE') || "
        "((has(self.type) ? self.type : 'IPIP') == 'GRE' && self.checksum == 'Checksum')",
        message="tunnel.checksum Checksum needs type GUE or GRE, RemoteChecksum needs type GUE",
        fix="set tunnel.checksum: None, or use a tunnel type that supports the option",
        check=lambda t: (
            t.checksum is TunnelChecksum.NONE
            or t.type is TunnelType.GUE
            or (t.type is TunnelType.GRE and t.checksum is TunnelChecksum.CHECKSUM)
        ),
    ),
)


def _contiguous_ipv4_masks() -> list[str]:
    masks = []
    for prefix in range(32, -1, -1):
        value = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        masks.append(".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0)))
    return masks


IPV4_NETMASKS: tuple[str, ...] = tuple(_contiguous_ipv4_masks())
# As a CEL list literal: membership costs far less than a regular expression in the API server's CEL
# cost estimate (an int-or-string field has no maxLength to bound a regex).
IPV4_NETMASKS_CEL = "[" + ", ".join(f"'{mask}'" for mask in IPV4_NETMASKS) + "]"


class Persistence(ApiModel):
    """Client affinity: connections from one client (or client network) go to the same real server."""

    timeout_seconds: int = Field(
        default=300,
        ge=1,
        le=2678400,
        description="How long an idle client keeps its real server, in seconds. Default: 300.",
    )
    netmask: int | str | None = Field(
        default=None,
        description="Which clients share a real server. IPv4: a netmask (255.255.255.0) or a prefix length "
        "(24); IPv6: a prefix length (0-128). Default: 255.255.255.255 / 128 (each client on its own).",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )


class HTTPCheck(ApiModel):
    """Request and expected response of an HTTP or HTTPS check."""

    method: HTTPMethod = Field(
        default=HTTPMethod.GET, description="GET, HEAD, POST or OPTIONS. Default: GET."
    )
    path: str = Field(default="/", max_length=2048, pattern=r"^/", description="Request path. Default: /.")
    host: str | None = Field(
        default=None, max_length=253, description="Host header. Default: the member address."
    )
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200],
        min_length=1,
        max_length=16,
        description="Status codes that mean healthy. Default: [200].",
    )
    body_regex: str | None = Field(
        default=None,
        max_length=1024,
        description="Regular expression the response body must match. Default: none.",
    )
    tls_verify: bool = Field(
        default=False,
        description="HTTPS only: verify the server certificate against the system trust store. "
        "Default: false "
        "(real servers often present self-signed certificates to the director).",
    )
    server_name: str | None = Field(
        default=None,
        max_length=253,
        description="HTTPS only: TLS server name (SNI). Default: the Host header, if set.",
    )


class UDPCheck(ApiModel):
    """Datagram exchange of a UDP check."""

    send: str = Field(
        default="", max_length=1024, description="Payload sent to the member (text). Default: empty."
    )
    expect: str | None = Field(
        default=None,
        max_length=1024,
        description="Regular expression the reply must match. Default: any reply is healthy.",
    )


class DNSCheck(ApiModel):
    """Query and expected answer of a DNS check (over UDP)."""

    query_name: str = Field(min_length=1, max_length=253, description="Name to resolve, e.g. example.com.")
    query_type: DNSQueryType = Field(default=DNSQueryType.A, description="Record type. Default: A.")
    expect_rcode: DNSRcode = Field(
        default=DNSRcode.NOERROR, description="Expected response code. Default: NOERROR."
    )
    expect_answer: str | None = Field(
        default=None,
        max_length=253,
        description="A value that must appear in the answer section. Default: none.",
    )


class ExecCheck(ApiModel):
    """A command run by the agent; exit status 0 means healthy. Only where a VIPPool allows exec checks."""

    command: list[Annotated[str, Field(max_length=4096)]] = Field(
        min_length=1,
        max_length=64,
        description="Argv of the command (no shell). MEMBER_ADDRESS and MEMBER_PORT are set in its "
        "environment.",
    )


class HealthCheck(ApiModel):
    """How the active director checks each member (what piranha's nanny did)."""

    type: CheckType = Field(
        default=CheckType.TCP,
        description="TCP (connect), HTTP, HTTPS, UDP, DNS, Exec or None (never checked, always "
        "healthy). Default: TCP.",
    )
    interval_seconds: float = Field(
        default=2.0, ge=0.1, le=3600, description="Time between checks. Default: 2."
    )
    timeout_seconds: float = Field(
        default=1.0, gt=0, le=3600, description="Time a check may take; at most intervalSeconds. Default: 1."
    )
    rise: int = Field(
        default=2, ge=1, le=100, description="Consecutive successes that make a member healthy. Default: 2."
    )
    fall: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that make a member unhealthy. Default: 3."
    )
    jitter_percent: int = Field(
        default=10,
        ge=0,
        le=50,
        description="Random spread of check times, in percent of the interval, so that checks do not fire "
        "together. Default: 10.",
    )
    port: Port | None = Field(
        default=None,
        description="Port to check on every member. Default: the member's service port (a member's "
        "checkPort wins).",
    )
    http: HTTPCheck | None = Field(
        default=None, description="HTTP and HTTPS only: request and expected response."
    )
    udp: UDPCheck | None = Field(default=None, description="UDP only: payload and expected reply.")
    dns: DNSCheck | None = Field(default=None, description="DNS only (required): query and expected answer.")
    exec: ExecCheck | None = Field(default=None, description="Exec only (required): the command.")


_CHECK_TYPE_CEL = "(has(self.type) ? self.type : 'TCP')"
register_rules(
    HealthCheck,
    Rule(
        name="check-timeout-within-interval",
        field_path=".timeoutSeconds",
        cel="double(has(self.timeoutSeconds) ? self.timeoutSeconds : 1.0) <= "
        "double(has(self.intervalSeconds) ? self.intervalSeconds : 2.0)",
        message="healthCheck.timeoutSeconds must not exceed healthCheck.intervalSeconds",
        fix="lower timeoutSeconds or raise intervalSeconds",
        check=lambda h: h.timeout_seconds <= h.interval_seconds,
    ),
    Rule(
        name="check-http-options-need-http",
        field_path=".http",
        cel=f"!has(self.http) || {_CHECK_TYPE_CEL} in ['HTTP', 'HTTPS']",
        message="healthCheck.http is only used by HTTP and HTTPS checks",
        fix="remove healthCheck.http or set healthCheck.type to HTTP or HTTPS",
        check=lambda h: h.http is None or h.type in (CheckType.HTTP, CheckType.HTTPS),
    ),
    Rule(
        name="check-tls-options-need-https",
        field_path=".http",
        cel=f"!has(self.http) || {_CHECK_TYPE_CEL} == 'HTTPS' || "
        "(!(has(self.http.tlsVerify) && self.http.tlsVerify) && !has(self.http.serverName))",
        message="healthCheck.http.tlsVerify and serverName only apply to HTTPS checks",
        fix="set healthCheck.type: HTTPS or remove tlsVerify and serverName",
        check=lambda h: (
            h.http is None
            or h.type is CheckType.HTTPS
            or (not h.http.tls_verify and h.http.server_name is None)
        ),
    ),
    Rule(
        name="check-udp-options-need-udp",
        field_path=".udp",
        cel=f"!has(self.udp) || {_CHECK_TYPE_CEL} == 'UDP'",
        message="healthCheck.udp is only used by UDP checks",
        fix="remove healthCheck.udp or set healthCheck.type: UDP",
        check=lambda h: h.udp is None or h.type is CheckType.UDP,
    ),
    Rule(
        name="check-dns-options-iff-dns",
        field_path=".dns",
        cel=f"has(self.dns) == ({_CHECK_TYPE_CEL} == 'DNS')",
        message="healthCheck.dns is required by DNS checks and not allowed with other types",
        fix="with type DNS set healthCheck.dns.queryName; otherwise remove healthCheck.dns",
        check=lambda h: (h.dns is not None) == (h.type is CheckType.DNS),
    ),
    Rule(
        name="check-exec-options-iff-exec",
        field_path=".exec",
        cel=f"has(self.exec) == ({_CHECK_TYPE_CEL} == 'Exec')",
        message="healthCheck.exec is required by Exec checks and not allowed with other types",
        fix="with type Exec set healthCheck.exec.command; otherwise remove healthCheck.exec",
        check=lambda h: (h.exec is not None) == (h.type is CheckType.EXEC),
    ),
)


class PoolRef(ApiModel):
    """Reference to a RealServerPool in the same namespace."""

    name: ObjectName = Field(description="Name of the RealServerPool (same namespace).")


class FallbackMember(ApiModel):
    """A sorry server: programmed only while no regular member is usable."""

    address: IPAddress = Field(description="Address of the sorry server; same family as the VIP.")
    port: Port | None = Field(
        default=None, description="Port on the sorry server. Default: the service port."
    )
    weight: int = Field(
        default=1, ge=0, le=65535, description="Scheduler weight among sorry servers. Default: 1."
    )


class NatGateway(ApiModel):
    """A floating gateway address for the real servers of a NAT service (lvs.cf ``nat_router``)."""

    address: IPAddress = Field(
        description="The address the real servers use as their default gateway; same family as the VIP. "
        "The active director of the VIP group holds it and announces it (gratuitous ARP / unsolicited NA)."
    )
    interface: str | None = Field(
        default=None,
        min_length=1,
        max_length=15,
        pattern=r"^[A-Za-z0-9_.:@-]+$",
        description="The director's interface towards the real servers, where the address is announced. "
        "Default: the interface of the director's route to the address.",
    )


# --- the kind -------------------------------------------------------------------------------------


class VirtualServiceSpec(ApiModel):
    """Desired state of one virtual service."""

    vip: IPAddress = Field(description="The virtual IP address (IPv4 or IPv6) clients connect to.")
    ports: list[ServicePort] = Field(
        default_factory=list,
        max_length=64,
        description="Ports served on the VIP, one IPVS service each. Exactly one of ports and firewallMark.",
    )
    firewall_mark: int | None = Field(
        default=None,
        ge=1,
        le=4294967295,
        description="Serve packets carrying this netfilter mark as one IPVS service (groups ports; the mark "
        "is set by your firewall rules). Exactly one of ports and firewallMark.",
    )
    scheduler: Scheduler = Field(
        default_factory=Scheduler,
        description="Kernel scheduler and its flags. Default: wlc without flags.",
        json_schema_extra={"default": {}},
    )
    forwarding: Forwarding = Field(
        default=Forwarding.NAT,
        description="NAT (masquerading), DirectRouting (gatewaying; real servers hold the VIP on a non-ARP "
        "interface) or Tunnel (encapsulation). Default: NAT.",
    )
    tunnel: TunnelOptions | None = Field(
        default=None, description="Tunnel encapsulation options (forwarding: Tunnel only). Default: IPIP."
    )
    persistence: Persistence | None = Field(
        default=None, description="Client affinity (persistent service). Default: not persistent."
    )
    one_packet: bool = Field(
        default=False,
        description="One-packet scheduling: schedule every UDP datagram on its own (UDP only). "
        "Default: false.",
    )
    health_check: HealthCheck = Field(
        default_factory=HealthCheck,
        description="How members are checked. Default: TCP connect every 2 s, timeout 1 s, rise 2, fall 3.",
        json_schema_extra={"default": {}},
    )
    on_failure: OnFailure = Field(
        default=OnFailure.QUIESCE,
        description="Quiesce (weight 0: existing connections finish, no new ones) or Remove (taken "
        "out of the "
        "table) when a member fails its check. Default: Quiesce.",
    )
    pool_ref: PoolRef = Field(description="The RealServerPool holding the real servers.")
    fallback: list[FallbackMember] = Field(
        default_factory=list,
        max_length=16,
        description="Sorry servers, programmed only while no member is usable. Default: none.",
    )
    director_selector: LabelSelector | None = Field(
        default=None,
        description="Nodes (by label) whose agents serve this VIP. Default: every node running the agent.",
    )
    vip_group: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Failover group: VIPs of one group always move together between directors. "
        "Default: a group of its own per VIP.",
    )
    nat_gateway: NatGateway | None = Field(
        default=None,
        description="Floating gateway for the real servers (forwarding: NAT only): it follows the active "
        "director of the VIP group like the VIP, so the replies follow a failover. Default: none.",
    )

    @property
    def ipv6(self) -> bool:
        """True for an IPv6 VIP."""
        return is_ipv6(self.vip)


def _netmask_fits_family(spec: VirtualServiceSpec) -> bool:
    persistence = spec.persistence
    if persistence is None or persistence.netmask is None:
        return True
    netmask = persistence.netmask
    if spec.ipv6:
        return isinstance(netmask, int) and 0 <= netmask <= 128
    if isinstance(netmask, int):
        return 0 <= netmask <= 32
    return netmask in IPV4_NETMASKS


_FORWARDING_CEL = "(has(self.forwarding) ? self.forwarding : 'NAT')"
_PORTS_GIVEN_CEL = "(has(self.ports) && size(self.ports) > 0)"
register_rules(
    VirtualServiceSpec,
    Rule(
        name="ports-xor-firewall-mark",
        field_path=".ports",
        cel=f"has(self.firewallMark) != {_PORTS_GIVEN_CEL}",
        message="exactly one of ports and firewallMark must be set",
        fix="list the ports, or set firewallMark and remove ports",
        check=lambda s: (s.firewall_mark is not None) != bool(s.ports),
        reason="FieldValueRequired",
    ),
    Rule(
        name="ports-unique",
        field_path=".ports",
        cel="!has(self.ports) || self.ports.all(p, self.ports.filter(q, q.port == p.port && "
        "(has(q.protocol) ? q.protocol : 'TCP') == (has(p.protocol) ? p.protocol : 'TCP')).size() == 1)",
        message="each port and protocol may appear only once in ports",
        fix="remove the duplicate port entry",
        check=lambda s: len({(p.port, p.protocol) for p in s.ports}) == len(s.ports),
        reason="FieldValueDuplicate",
    ),
    Rule(
        name="target-port-needs-nat",
        field_path=".ports",
        cel=f"{_FORWARDING_CEL} == 'NAT' || !has(self.ports) || self.ports.all(p, !has(p.targetPort))",
        message="ports[].targetPort needs forwarding: NAT (DirectRouting and Tunnel cannot rewrite ports)",
        fix="remove targetPort (real servers must listen on the VIP port) or use forwarding: NAT",
        check=lambda s: s.forwarding is Forwarding.NAT or all(p.target_port is None for p in s.ports),
        reason="FieldValueForbidden",
    ),
    Rule(
        name="tunnel-needs-tunnel-forwarding",
        field_path=".tunnel",
        cel=f"!has(self.tunnel) || {_FORWARDING_CEL} == 'Tunnel'",
        message="tunnel options are only allowed with forwarding: Tunnel",
        fix="remove tunnel or set forwarding: Tunnel",
        check=lambda s: s.tunnel is None or s.forwarding is Forwarding.TUNNEL,
        reason="FieldValueForbidden",
    ),
    Rule(
        name="nat-gateway-needs-nat",
        field_path=".natGateway",
        cel=f"!has(self.natGateway) || {_FORWARDING_CEL} == 'NAT'",
        message="natGateway is only allowed with forwarding: NAT",
        fix="remove natGateway or set forwarding: NAT",
        check=lambda s: s.nat_gateway is None or s.forwarding is Forwarding.NAT,
        reason="FieldValueForbidden",
    ),
    Rule(
        name="nat-gateway-family-matches-vip",
        field_path=".natGateway.address",
        cel="!has(self.natGateway) || self.natGateway.address.contains(':') == self.vip.contains(':')",
        message="natGateway.address must have the address family of the VIP",
        fix="use an IPv4 gateway with an IPv4 VIP and an IPv6 one with an IPv6 VIP",
        check=lambda s: s.nat_gateway is None or is_ipv6(s.nat_gateway.address) == s.ipv6,
    ),
    Rule(
        name="persistence-netmask-fits-family",
        field_path=".persistence.netmask",
        cel="!has(self.persistence) || !has(self.persistence.netmask) || (self.vip.contains(':') ? "
        "(type(self.persistence.netmask) == int && self.persistence.netmask >= 0 && "
        "self.persistence.netmask <= 128) : (type(self.persistence.netmask) == int ? "
        "(self.persistence.netmask >= 0 && self.persistence.netmask <= 32) : "
        f"self.persistence.netmask in {IPV4_NETMASKS_CEL}))",
        message="persistence.netmask must fit the VIP family: an IPv4 netmask (255.255.255.0) or prefix "
        "length 0-32 for an IPv4 VIP, a prefix length 0-128 for an IPv6 VIP",
        fix="use e.g. netmask: 255.255.255.0 (or 24) with IPv4, netmask: 64 with IPv6",
        check=_netmask_fits_family,
    ),
    Rule(
        name="fallback-family-matches-vip",
        field_path=".fallback",
        cel="!has(self.fallback) || self.fallback.all(m, m.address.contains(':') == self.vip.contains(':'))",
        message="fallback addresses must have the address family of the VIP",
        fix="use IPv4 sorry servers with an IPv4 VIP and IPv6 ones with an IPv6 VIP",
        check=lambda s: all(is_ipv6(m.address) == s.ipv6 for m in s.fallback),
    ),
    Rule(
        name="one-packet-needs-udp",
        field_path=".onePacket",
        cel="!(has(self.onePacket) && self.onePacket) || has(self.firewallMark) || "
        "!has(self.ports) || self.ports.all(p, has(p.protocol) && p.protocol == 'UDP')",
        message="onePacket scheduling only applies to UDP ports",
        fix="set onePacket: false or make every port protocol: UDP",
        check=lambda s: (
            not s.one_packet
            or s.firewall_mark is not None
            or all(p.protocol is Protocol.UDP for p in s.ports)
        ),
    ),
    Rule(
        name="firewall-mark-needs-check-port",
        field_path=".healthCheck.port",
        cel="!has(self.firewallMark) || (has(self.healthCheck) && (has(self.healthCheck.port) || "
        "(has(self.healthCheck.type) && self.healthCheck.type in ['None', 'Exec'])))",
        message="a firewallMark service has no single port, so its health check needs healthCheck.port",
        fix="set healthCheck.port, or healthCheck.type: None or Exec",
        check=lambda s: (
            s.firewall_mark is None
            or s.health_check.port is not None
            or s.health_check.type in (CheckType.NONE, CheckType.EXEC)
        ),
        reason="FieldValueRequired",
    ),
)


class VirtualServiceStatus(ApiModel):
    """Observed state of a virtual service; written by the controller only."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the controller last processed."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Accepted, Programmed, Ready, Degraded and Conflict.",
        json_schema_extra=CONDITIONS_LIST_EXTRA,
    )
    active_director: str | None = Field(default=None, description="Node currently holding the VIP.")
    healthy_members: int | None = Field(default=None, ge=0, description="Members passing their health check.")
    total_members: int | None = Field(default=None, ge=0, description="Members resolved from the pool.")
    ready_members: str | None = Field(
        default=None, description="healthyMembers/totalMembers as text, for the printer column."
    )
    last_failover_time: datetime | None = Field(
        default=None, description="When the VIP last moved to another director."
    )
    failover_count: int | None = Field(
        default=None, ge=0, description="How many times the VIP moved between directors."
    )


class VirtualService(ApiModel):
    """A Linux Virtual Server virtual service (``virtualservices.lvs.io``; not Istio's VirtualService)."""

    kind_name: ClassVar[str] = "VirtualService"
    plural: ClassVar[str] = "virtualservices"
    namespaced: ClassVar[bool] = True

    api_version: Literal["lvs.io/v1alpha1"] = Field(default=API_VERSION, description="lvs.io/v1alpha1.")
    kind: Literal["VirtualService"] = Field(default="VirtualService", description="VirtualService.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")
    spec: VirtualServiceSpec = Field(description="Desired state.")
    status: VirtualServiceStatus | None = Field(
        default=None, description="Observed state (controller-owned)."
    )
