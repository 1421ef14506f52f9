"""Legacy config -> lvs.io/v1alpha1 manifests (VirtualService, RealServerPool, VIPPool).

The manifests are plain dicts holding only what the legacy config said (defaults stay implicit, so the
output reads like a hand-written manifest); each one is validated through the lvs_api models before it
is printed, so a manifest the API server would refuse is an importer bug, never silent.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lvs_api.models.virtualservice import SchedulerFlag, SchedulerName
from lvs_api.validation import format_errors, validate

from lvs_cli.importer.diagnostics import Diagnostics
from lvs_cli.importer.legacy import (
    CheckKind,
    Director,
    Forwarding,
    HealthCheck,
    LegacyConfig,
    ServiceAddress,
    VirtualServer,
)
from lvs_cli.importer.names import NameRegistry, dns1123
from lvs_cli.importer.values import prefix_length

API_VERSION = "lvs.io/v1alpha1"
DEFAULT_DIRECTOR_LABEL = ("lvs.io/director", "true")
VIP_POOL_MAX_ADDRESSES = 256  # VIPPoolSpec.addresses max_length


class ServiceEntry(NamedTuple):
    """What one VirtualService made from a legacy virtual server serves."""

    name: str
    vip: str
    ports: list[int]
    fwmark: int | None
    line: int


@dataclass
class ImportOptions:
    namespace: str = "default"
    director_label: tuple[str, str] = DEFAULT_DIRECTOR_LABEL
    vip_pool: bool = True


@dataclass
class Manifest:
    """One YAML document: comment lines printed above it, then the object."""

    body: dict[str, Any]
    comments: list[str] = field(default_factory=list)
    line: int = 1  # where it came from in the legacy file

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


@dataclass
class ImportResult:
    config: LegacyConfig
    header: list[str]
    manifests: list[Manifest]

    def count(self, kind: str) -> int:
        return sum(1 for manifest in self.manifests if manifest.kind == kind)


class Mapper:
    def __init__(self, config: LegacyConfig, diagnostics: Diagnostics, options: ImportOptions) -> None:
        self.config = config
        self.diagnostics = diagnostics
        self.options = options
        self.service_names = NameRegistry()
        self.pool_names = NameRegistry()
        self.manifests: list[Manifest] = []
        self.vips: dict[str, int] = {}  # VIP -> line of first use
        self.exec_checks = False
        self.vip_groups = self._vip_groups()

    def warn(self, line: int, message: str) -> None:
        self.diagnostics.warn(line, message)

    def where(self, line: int) -> str:
        """`file:line` of a (global) line number."""
        return str(self.diagnostics.location(line))

    def _sources(self) -> str:
        return ", ".join(self.config.paths or [self.config.path])

    # --- whole file -----------------------------------------------------------------------------------
    def run(self) -> ImportResult:
        self._global_warnings()
        for virtual in self.config.virtual_servers:
            self.virtual_server(virtual)
        if self.options.vip_pool and self.vips:
            # first: a VirtualService applied before the VIPPool that admits it is rejected (VIPNotInPool)
            # and gets a Warning event, until the pool arrives
            self.manifests[:0] = self.vip_pools()
        for manifest in self.manifests:
            self._validate(manifest)
        return ImportResult(self.config, self.header(), self.manifests)

    def _global_warnings(self) -> None:
        config = self.config
        failover = config.failover
        if failover is not None:
            interval = failover.heartbeat_interval_seconds
            dead = failover.dead_after_seconds
            said = ", ".join(
                part
                for part in (
                    f"heartbeat every {interval:g} s" if interval is not None else "",
                    f"dead after {dead:g} s" if dead is not None else "",
                )
                if part
            )
            flags = ""
            if interval:
                config.agent_flag("--heartbeat-interval", f"{interval:g}", failover.line)
                flags = f"--heartbeat-interval {interval:g}"
                if dead:
                    missed = max(1, round(dead / interval))
                    config.agent_flag("--missed", str(missed), failover.line)
                    flags += f" --missed {missed}"
            self.warn(
                failover.line,
                f"director failover timing ({said}, {failover.source}) is set on the agent DaemonSet, not in "
                f"these objects: {flags or 'see --heartbeat-interval and --missed'} reproduces it "
                "(the agent's default, 0.05 s x 3 missed, detects a dead director in 150 ms)",
            )
        if config.nat_router is not None:
            address, line = config.nat_router
            self.warn(
                line,
                f"nat_router {address}: mapped to natGateway on the NAT services (it follows the active "
                "director like the VIP); the agent announces it on the interface of its route towards the "
                "address, so the lvs.cf interface name is not carried over",
            )
        if config.sync_daemon_line is not None:
            self.warn(
                config.sync_daemon_line,
                "connection synchronisation is set on the agent DaemonSet, not per service: "
                "--sync-interface IFACE (and --sync-id N) on every director",
            )

    def _vip_groups(self) -> dict[str, str]:
        """VIP -> failover group: pulse moved every VIP together; VRRP moves each instance's VIPs."""
        groups: dict[str, str] = {}
        if self.config.kind == "lvs.cf":
            name = dns1123(_stem(self.config.path), fallback="lvs")
            for virtual in self.config.virtual_servers:
                for address in virtual.addresses:
                    if address.address:
                        groups[address.address] = name
            return groups
        for director in self.config.directors:
            if director.name is None:
                continue
            for vip in director.virtual_addresses:
                groups.setdefault(vip, dns1123(director.name, fallback="vrrp"))
        return groups

    def header(self) -> list[str]:
        config = self.config
        lines = [
            f"Converted from {self._sources()} ({config.kind}) by `lvs-operator import`.",
            f"{self._count('VirtualService')} VirtualService, "
            f"{self._count('RealServerPool')} RealServerPool, {self._count('VIPPool')} VIPPool; "
            f"{len(self.diagnostics.warnings)} warning(s) on stderr.",
            "Review before applying: kubectl apply -f <this file>",
        ]
        lines.extend(self._director_comment())
        lines.extend(self._agent_comment())
        return lines

    def _count(self, kind: str) -> int:
        return sum(1 for manifest in self.manifests if manifest.kind == kind)

    def _agent_comment(self) -> list[str]:
        flags = self.config.agent_flags
        if not flags:
            return []
        lines = ["", "Agent (DaemonSet lvs-agent) flags reproducing director-level settings of this file:"]
        lines.extend(f"  {flag} {value}    # {self.where(line)}" for flag, value, line in flags)
        return lines

    def _director_comment(self) -> list[str]:
        key, value = self.options.director_label
        directors = self.config.directors
        lines = ["", "Director selection:"]
        if not directors:
            lines.append("  the config names no directors; every VirtualService below selects")
        else:
            lines.append("  the config names these directors (LVS routers):")
            lines.extend(
                f"    - {_describe_director(director)} ({self.where(director.line)})"
                for director in directors
            )
            lines.append("  Every VirtualService below selects the nodes labelled")
        lines.append(f"  {key}={value}. Label the director nodes, e.g.:")
        lines.append(f"    kubectl label node <node-name> {key}={value}")
        if self.config.kind == "lvs.cf" and directors:
            lines.append(
                "  pulse's primary/backup pair becomes one active director per VIP group, chosen by a"
            )
            lines.append("  Lease; the VIPs of this file form one group (vipGroup) and fail over together.")
        elif directors:
            lines.append(
                "  VRRP MASTER/BACKUP and priorities become one active director per VIP group, chosen"
            )
            lines.append("  by a Lease; each vrrp_instance's VIPs form one group (vipGroup).")
        return lines

    # --- one legacy virtual server ----------------------------------------------------------------------
    def virtual_server(self, virtual: VirtualServer) -> None:
        members = list(virtual.servers)
        if not members:
            self.warn(
                virtual.line, f"virtual server '{virtual.name}' has no (active) real servers: not converted"
            )
            return
        families = {_is_ipv6(server.address) for server in members}
        if len(families) > 1:
            raise self.diagnostics.error(
                virtual.line, f"virtual server '{virtual.name}' mixes IPv4 and IPv6 real servers"
            )
        entries = self._service_entries(virtual)
        if not entries:
            return
        member_family = families.pop()
        for _, vip, _, _, line in entries:
            if _is_ipv6(vip) != member_family:
                raise self.diagnostics.error(
                    line,
                    f"VIP {vip} and the real servers of '{virtual.name}' are of different address families "
                    "(IPv4 and IPv6)",
                )
        for sorry in virtual.sorry_servers:
            if _is_ipv6(sorry.address) != member_family:
                raise self.diagnostics.error(
                    sorry.line, f"sorry server {sorry.address} is not of the real servers' address family"
                )
        pool_name = self.pool_names.claim(self._base_name(virtual), suffix="-pool")
        service_manifests: list[Manifest] = []
        for entry_name, vip, ports, fwmark, line in entries:
            name = self.service_names.claim(entry_name)
            spec = self.service_spec(virtual, vip, ports, fwmark, pool_name)
            where = f" (VIP {vip}{f', fwmark {fwmark}' if fwmark else ''})" if len(entries) > 1 else ""
            comments = [f"{self.where(virtual.line)}: {self._legacy_title(virtual)}{where}"]
            body = self._object("VirtualService", name, spec)
            service_manifests.append(Manifest(body, comments, virtual.line))
            self.vips.setdefault(vip, line)
        pool = self.pool_spec(virtual, entries)
        pool_comment = [f"{self.where(virtual.line)}: real servers of {self._legacy_title(virtual)}"]
        self.manifests.append(
            Manifest(self._object("RealServerPool", pool_name, pool), pool_comment, virtual.line)
        )
        self.manifests.extend(service_manifests)

    def _legacy_title(self, virtual: VirtualServer) -> str:
        if self.config.kind == "lvs.cf":
            return f"virtual {virtual.name}"
        return f"virtual_server {virtual.title or virtual.name}"

    def _service_entries(self, virtual: VirtualServer) -> list[ServiceEntry]:
        """One VirtualService per VIP (with its ports), and one per firewall mark."""
        by_address: dict[str, tuple[list[int], int]] = {}
        marks: list[ServiceAddress] = []
        for entry in virtual.addresses:
            if entry.fwmark is not None:
                marks.append(entry)
            elif entry.address is not None:
                ports, _ = by_address.setdefault(entry.address, ([], entry.line))
                ports.extend(port for port in entry.ports if port not in ports)
        split = len(by_address) + len(marks) > 1
        if split:
            self.warn(
                virtual.line,
                f"{self._legacy_title(virtual)} covers {len(by_address)} address(es) and "
                f"{len(marks)} firewall mark(s): converted into one VirtualService each, sharing one pool",
            )
        base = self._base_name(virtual)
        entries: list[ServiceEntry] = []
        for address, (ports, line) in by_address.items():
            name = f"{base}-{address}" if split else base
            entries.append(ServiceEntry(name, address, ports, None, line))
        for mark in marks:
            vip = mark.address or self._fwmark_vip(virtual, mark)
            if vip is None:
                continue
            name = f"{base}-fwmark-{mark.fwmark}" if split else base
            entries.append(ServiceEntry(name, vip, [], mark.fwmark, mark.line))
        return entries

    def _base_name(self, virtual: VirtualServer) -> str:
        if self.config.kind == "lvs.cf" or not re.match(r"^[0-9a-fA-F:.]+-\d+$", virtual.name):
            return virtual.name
        return f"vs-{virtual.name}"  # keepalived services are named by VIP and port

    def _fwmark_vip(self, virtual: VirtualServer, mark: ServiceAddress) -> str | None:
        """keepalived's `virtual_server fwmark N` has no address; the VRRP VIPs are the candidates."""
        family = _is_ipv6(virtual.servers[0].address)
        candidates = [
            vip
            for director in self.config.directors
            for vip in director.virtual_addresses
            if _is_ipv6(vip) == family
        ]
        candidates = list(dict.fromkeys(candidates))
        if not candidates:
            self.warn(
                mark.line,
                f"fwmark {mark.fwmark} service has no address and no vrrp_instance VIP to use "
                "as spec.vip: not converted; write its VirtualService by hand",
            )
            return None
        chosen = candidates[0]
        others = f" (other candidates: {', '.join(candidates[1:])})" if len(candidates) > 1 else ""
        self.warn(
            mark.line,
            f"fwmark {mark.fwmark} service has no address: spec.vip set to VRRP VIP {chosen}"
            f"{others}; check that your firewall marks packets for that VIP",
        )
        return chosen

    def service_spec(
        self, virtual: VirtualServer, vip: str, ports: list[int], fwmark: int | None, pool_name: str
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {"vip": vip}
        if fwmark is not None:
            spec["firewallMark"] = fwmark
        else:
            spec["ports"] = [{"port": port, "protocol": virtual.protocol} for port in ports]
        spec["scheduler"] = self.scheduler(virtual)
        spec["forwarding"] = virtual.forwarding.value
        gateway = self.nat_gateway(virtual, vip)
        if gateway is not None:
            spec["natGateway"] = {"address": gateway}
        tunnel = self.tunnel(virtual)
        if tunnel:
            spec["tunnel"] = tunnel
        if virtual.persistence_timeout is not None:
            spec["persistence"] = self.persistence(virtual, vip)
        if virtual.one_packet:
            if fwmark is None and virtual.protocol != "UDP":
                self.warn(
                    virtual.line,
                    f"ops (one-packet scheduling) needs UDP; {virtual.protocol} service: dropped",
                )
            else:
                spec["onePacket"] = True
        spec["healthCheck"] = self.health_check(virtual, ports, fwmark)
        spec["onFailure"] = "Quiesce" if virtual.quiesce_on_failure else "Remove"
        spec["poolRef"] = {"name": pool_name}
        fallback = self.fallback(virtual, ports)
        if fallback:
            spec["fallback"] = fallback
        key, value = self.options.director_label
        spec["directorSelector"] = {"matchLabels": {key: value}}
        group = self.vip_groups.get(vip)
        if group is not None:
            spec["vipGroup"] = group
        elif self.config.kind == "keepalived.conf":
            self.warn(
                virtual.line,
                f"VIP {vip} is not in any vrrp_instance's virtual_ipaddress: no vipGroup (it "
                "fails over on its own)",
            )
        return spec

    def nat_gateway(self, virtual: VirtualServer, vip: str) -> str | None:
        """lvs.cf ``nat_router``: the real servers' floating gateway, for the NAT services of its family."""
        if self.config.nat_router is None or virtual.forwarding is not Forwarding.NAT:
            return None
        address = self.config.nat_router[0].split("/")[0]
        if (":" in address) != (":" in vip):
            return None  # the gateway of the other family's real servers
        return address

    def scheduler(self, virtual: VirtualServer) -> dict[str, Any]:
        known = {member.value for member in SchedulerName}
        name = virtual.scheduler
        if name not in known:
            self.warn(virtual.line, f"scheduler {name!r} is not a kernel IPVS scheduler: wlc used instead")
            name = "wlc"
        scheduler: dict[str, Any] = {"name": name}
        flags = []
        for flag in virtual.scheduler_flags:
            if flag not in {member.value for member in SchedulerFlag} or not flag.startswith(f"{name}-"):
                self.warn(virtual.line, f"scheduler flag {flag} does not apply to scheduler {name}: dropped")
            elif flag not in flags:
                flags.append(flag)
        if flags:
            scheduler["flags"] = flags
        return scheduler

    def tunnel(self, virtual: VirtualServer) -> dict[str, Any] | None:
        if virtual.forwarding is not Forwarding.TUNNEL or virtual.tunnel_type is None:
            return None
        tunnel: dict[str, Any] = {"type": virtual.tunnel_type}
        if virtual.tunnel_type == "GUE":
            if virtual.tunnel_port is None:
                raise self.diagnostics.error(virtual.line, "GUE tunnel needs 'port N' in lvs_method")
            tunnel["port"] = virtual.tunnel_port
        elif virtual.tunnel_port is not None:
            self.warn(virtual.line, f"tunnel port {virtual.tunnel_port} only applies to GUE: dropped")
        checksum = virtual.tunnel_checksum
        if checksum and checksum != "None":
            if virtual.tunnel_type == "IPIP" or (
                virtual.tunnel_type == "GRE" and checksum == "RemoteChecksum"
            ):
                self.warn(
                    virtual.line,
                    f"tunnel checksum {checksum} not available with {virtual.tunnel_type}: dropped",
                )
            else:
                tunnel["checksum"] = checksum
        return tunnel

    def persistence(self, virtual: VirtualServer, vip: str) -> dict[str, Any]:
        persistence: dict[str, Any] = {"timeoutSeconds": virtual.persistence_timeout}
        netmask = virtual.persistence_netmask
        if netmask is None:
            return persistence
        if _is_ipv6(vip):
            if netmask.isdigit():
                persistence["netmask"] = int(netmask)
            else:
                self.warn(
                    virtual.line, f"persistence netmask {netmask} is an IPv4 mask on an IPv6 VIP: dropped"
                )
        elif netmask.isdigit():
            persistence["netmask"] = int(netmask)
        else:
            persistence["netmask"] = netmask
            if prefix_length(netmask) == 32:
                del persistence["netmask"]  # the default: each client on its own
        return persistence

    def fallback(self, virtual: VirtualServer, ports: list[int]) -> list[dict[str, Any]]:
        fallback = []
        for sorry in virtual.sorry_servers:
            member: dict[str, Any] = {"address": sorry.address}
            if sorry.port is not None and ports != [sorry.port]:
                if virtual.forwarding is Forwarding.NAT:
                    member["port"] = sorry.port
                elif ports:
                    self.warn(
                        sorry.line,
                        f"sorry server port {sorry.port}: {virtual.forwarding.value} cannot "
                        "rewrite ports; dropped",
                    )
            fallback.append(member)
        return fallback

    # --- health check -------------------------------------------------------------------------------------
    def health_check(self, virtual: VirtualServer, ports: list[int], fwmark: int | None) -> dict[str, Any]:
        check = virtual.check
        if check is None:
            if self.config.kind == "keepalived.conf":
                self.warn(
                    virtual.line,
                    f"{self._legacy_title(virtual)} has no checkers: healthCheck type None "
                    "(members always count as healthy, as in keepalived)",
                )
            return {"type": "None"}
        result: dict[str, Any] = {"type": check.kind.value}
        if check.interval_seconds is not None:
            result["intervalSeconds"] = _number(check.interval_seconds)
        if check.timeout_seconds is not None:
            interval = check.interval_seconds if check.interval_seconds is not None else 2.0
            timeout = check.timeout_seconds
            if timeout > interval:
                self.warn(
                    check.line,
                    f"check timeout {timeout:g} s is longer than its interval {interval:g} s: "
                    f"timeoutSeconds lowered to {interval:g}",
                )
                timeout = interval
            result["timeoutSeconds"] = _number(timeout)
        if check.rise is not None:
            result["rise"] = min(check.rise, 100)
        if check.fall is not None:
            result["fall"] = min(check.fall, 100)
        port = self._check_port(virtual, check, ports, fwmark)
        if port is not None:
            result["port"] = port
        if check.kind in {CheckKind.HTTP, CheckKind.HTTPS}:
            result["http"] = self._http(check)
        elif check.kind is CheckKind.TCP and (check.send or check.expect):
            self.warn(
                check.line,
                "send/expect on a TCP service: the TCP check only connects; the exchange is "
                "dropped (use an Exec check if the answer matters)",
            )
        elif check.kind is CheckKind.UDP:
            udp: dict[str, Any] = {}
            if check.send:
                udp["send"] = check.send
            if check.expect:
                udp["expect"] = check.expect if check.expect_is_regex else "^" + re.escape(check.expect)
            if udp:
                result["udp"] = udp
        elif check.kind is CheckKind.DNS:
            dns: dict[str, Any] = {"queryName": check.dns_query_name or "."}
            if check.dns_query_type:
                dns["queryType"] = check.dns_query_type
            result["dns"] = dns
        elif check.kind is CheckKind.EXEC:
            result["exec"] = {"command": self._command(check)}
            self.exec_checks = True
            self.warn(
                check.line,
                "Exec check: the agent runs it only for VIPs of a VIPPool with allowExecHealthChecks: true"
                + ("" if self.options.vip_pool else " (--no-vip-pool: make sure yours allows it)"),
            )
        if fwmark is not None and "port" not in result and check.kind not in {CheckKind.EXEC}:
            self.warn(
                virtual.line,
                f"fwmark {fwmark} service: no single port to check (set healthCheck.port): "
                "healthCheck type None",
            )
            return {"type": "None"}
        return result

    def _check_port(
        self, virtual: VirtualServer, check: HealthCheck, ports: list[int], fwmark: int | None
    ) -> int | None:
        """healthCheck.port: the checker's own port if every member shares it, else the members' port."""
        member_ports = {
            server.check.port if server.check and server.check.port else None for server in virtual.servers
        }
        if check.port is not None and member_ports <= {check.port, None} and len(member_ports) == 1:
            return None if [check.port] == ports else check.port
        if fwmark is not None:
            served = {server.port for server in virtual.servers if server.port}
            if check.port is not None:
                return check.port
            if len(served) == 1:
                return served.pop()
        return None

    def _http(self, check: HealthCheck) -> dict[str, Any]:
        http: dict[str, Any] = {}
        if check.method != "GET":
            http["method"] = check.method
        http["path"] = check.path or "/"
        if check.host:
            http["host"] = check.host
        if check.expect_status:
            statuses = list(dict.fromkeys(check.expect_status))
            if len(statuses) > 16:
                self.warn(
                    check.line, f"{len(statuses)} expected status codes; only 16 fit: the first 16 kept"
                )
                statuses = statuses[:16]
            if statuses != [200]:
                http["expectStatus"] = statuses
        if check.expect:
            http["bodyRegex"] = check.expect
        return http

    def _command(self, check: HealthCheck) -> list[str]:
        command = check.command
        text = " ".join(command)
        if "%h" in text or "%p" in text:
            # nanny replaced %h by the real server; the agent passes it in the environment instead
            script = text.replace("%h", '"$MEMBER_ADDRESS"').replace("%p", '"$MEMBER_PORT"')
            origin = "send_program" if self.config.kind == "lvs.cf" else "misc_path"
            self.warn(
                check.line,
                f"{origin} {text!r}: the member address is passed in $MEMBER_ADDRESS (port in "
                "$MEMBER_PORT), so the command runs through /bin/sh -c",
            )
            return ["/bin/sh", "-c", script]
        return shlex.split(text) if text else command

    # --- pool -------------------------------------------------------------------------------------------
    def pool_spec(self, virtual: VirtualServer, entries: Iterable[ServiceEntry]) -> dict[str, Any]:
        ports = {port for entry in entries for port in entry.ports}
        members = []
        seen: set[tuple[str, int | None]] = set()
        check_ports = {server.check.port for server in virtual.servers if server.check and server.check.port}
        for server in virtual.servers:
            key = (server.address, server.port)
            if key in seen:
                self.warn(
                    server.line, f"real server {server.address} listed twice: the second one is dropped"
                )
                continue
            seen.add(key)
            member: dict[str, Any] = {"address": server.address}
            # NAT: a member port other than "the one service port" is kept, and then applies to every
            # port of the service, as keepalived adds a real server to each service of a group.
            # DR/TUN cannot rewrite ports (on a fwmark service the port only told nanny where to check,
            # which healthCheck.port now says).
            if server.port is not None and ports != {server.port}:
                if virtual.forwarding is Forwarding.NAT:
                    member["port"] = server.port
                elif ports and server.port not in ports:
                    self.warn(
                        server.line,
                        f"real server {server.address} port {server.port}: "
                        f"{virtual.forwarding.value} cannot rewrite ports; it gets the service port",
                    )
            member["weight"] = server.weight
            if server.upper_threshold:
                member["upperThreshold"] = server.upper_threshold
            if server.lower_threshold:
                if server.upper_threshold and server.lower_threshold <= server.upper_threshold:
                    member["lowerThreshold"] = server.lower_threshold
                else:
                    self.warn(
                        server.line,
                        f"real server {server.address}: lthreshold needs a uthreshold at "
                        "least as large: dropped",
                    )
            if len(check_ports) > 1 and server.check is not None and server.check.port is not None:
                member["checkPort"] = server.check.port
            members.append(member)
        return {"members": members}

    # --- VIP pool -----------------------------------------------------------------------------------------
    def vip_pools(self) -> list[Manifest]:
        """One VIPPool covering every VIP (one /32 or /128 each); over 256 VIPs, contiguous ones are
        merged into CIDR blocks and the blocks spread over as many pools as needed."""
        networks = [ipaddress.ip_network(vip) for vip in self.vips]
        if len(networks) > VIP_POOL_MAX_ADDRESSES:
            networks = [
                *ipaddress.collapse_addresses(n for n in networks if n.version == 4),
                *ipaddress.collapse_addresses(n for n in networks if n.version == 6),
            ]
        chunks = [
            networks[start : start + VIP_POOL_MAX_ADDRESSES]
            for start in range(0, len(networks), VIP_POOL_MAX_ADDRESSES)
        ]
        base = dns1123(f"{_stem(self.config.path)}-vips", fallback="imported-vips")
        comments = [
            f"The VIPs of {self._sources()}, reserved for namespace {self.options.namespace}:",
            "without a VIPPool covering them, the controller refuses the VirtualServices.",
            "Widen addresses to whole ranges (e.g. 203.0.113.0/28) if you prefer.",
            "VIPPool is cluster-scoped: applying it needs cluster rights.",
        ]
        if self.exec_checks:
            comments.append(
                "allowExecHealthChecks: true because an imported check is an Exec check (it runs as "
                "the agent)."
            )
        manifests = []
        for index, chunk in enumerate(chunks, start=1):
            spec: dict[str, Any] = {
                "addresses": [str(network) for network in chunk],
                "namespaces": [self.options.namespace],
            }
            if self.exec_checks:
                spec["allowExecHealthChecks"] = True
            name = base if len(chunks) == 1 else f"{base}-{index}"
            body = {"apiVersion": API_VERSION, "kind": "VIPPool", "metadata": {"name": name}, "spec": spec}
            manifests.append(Manifest(body, comments, min(self.vips.values())))
        return manifests

    # --- shared -------------------------------------------------------------------------------------------
    def _object(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name, "namespace": self.options.namespace}
        metadata["labels"] = {"app.kubernetes.io/managed-by": "lvs-operator-import"}
        return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}

    def _validate(self, manifest: Manifest) -> None:
        """The same checks the controller runs (field paths and fixes from lvs_api.validation)."""
        errors = validate(manifest.kind, manifest.body)
        if errors:
            raise self.diagnostics.error(
                manifest.line, f"cannot express this as a valid {manifest.kind}: {format_errors(errors)}"
            )


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _is_ipv6(address: str) -> bool:
    return ":" in address


def _stem(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.split(".", 1)[0] or base


def _describe_director(director: Director) -> str:
    if director.name is not None:
        parts = [f"vrrp_instance {director.name}: {director.role}"]
        if director.priority is not None:
            parts.append(f"priority {director.priority}")
        if director.interface:
            parts.append(f"interface {director.interface}")
        if director.virtual_addresses:
            parts.append(f"VIPs {', '.join(director.virtual_addresses)}")
        return ", ".join(parts)
    return f"{director.role} router {director.address}"


def map_config(config: LegacyConfig, diagnostics: Diagnostics, options: ImportOptions) -> ImportResult:
    return Mapper(config, diagnostics, options).run()


__all__ = ["ImportOptions", "ImportResult", "Manifest", "map_config"]
