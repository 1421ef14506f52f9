"""Meaning of a Piranha / pulse ``lvs.cf`` (lvs.cf(5), RHEL 5/6 "Virtual Server Administration")."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from lvs_cli.importer.diagnostics import Diagnostics
from lvs_cli.importer.legacy import (
    CheckKind,
    Director,
    Failover,
    Forwarding,
    HealthCheck,
    LegacyConfig,
    RealServer,
    ServiceAddress,
    VirtualServer,
)
from lvs_cli.importer.syntax import Directive
from lvs_cli.importer.values import ValueReader

_NETWORK_TYPES = {"nat": Forwarding.NAT, "direct": Forwarding.DIRECT_ROUTING, "tunnel": Forwarding.TUNNEL}

# Global settings that concern pulse itself or the kernel as a whole: nothing to carry over per service.
_GLOBAL_DROPPED = {
    "serial_no": "configuration revision number; Kubernetes tracks object versions itself",
    "service": None,  # handled below
    "debug_level": "pulse logging level; set the agent's log level instead",
    "rsh_command": "pulse copied lvs.cf between routers with it; the API server distributes configuration",
    "reservation_conflict_action": "pulse-only setting",
    "hard_shutdown": "pulse-only setting",
}
_KERNEL_TIMEOUTS = {"tcp_timeout", "tcpfin_timeout", "udp_timeout"}
_REQUEST_LINE = re.compile(r"^(GET|HEAD)\s+(\S+)\s+HTTP/1\.[01]\b")
_HOST_HEADER = re.compile(r"\r\nHost:\s*([^\r\n]+)", re.IGNORECASE)
_STATUS_LINE = re.compile(r"^HTTP/1\.[01]\s+(\d{3})\b")

# nanny has no probe interval setting of its own: the importer probes every 2 s and turns Piranha's
# "declare dead after `timeout` seconds" and "re-add after `reentry` seconds alive" into fall and rise.
DEFAULT_PROBE_INTERVAL = 2


def unescape_nanny(text: str) -> str:
    """nanny interprets \\r, \\n, \\t and \\\\ in send strings."""
    return (
        text.replace("\\\\", "\0")
        .replace("\\r", "\r")
        .replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\0", "\\")
    )


@dataclass
class NannySettings:
    """The settings of a virtual block that together say how nanny checked its real servers."""

    send: Directive | None = None
    expect: Directive | None = None
    send_program: Directive | None = None
    use_regex: bool = False
    timeout: int | None = None
    reentry: int | None = None


class PiranhaInterpreter:
    def __init__(self, path: str, diagnostics: Diagnostics) -> None:
        self.config = LegacyConfig(path=path, kind="lvs.cf")
        self.diagnostics = diagnostics
        self.values = ValueReader(diagnostics)
        self.network = Forwarding.NAT
        self.network_line = 0

    def warn(self, line: int, message: str) -> None:
        self.diagnostics.warn(line, message)

    def run(self, directives: tuple[Directive, ...]) -> LegacyConfig:
        primary: Directive | None = None
        backup: Directive | None = None
        backup_active: bool | None = None
        virtual_blocks: list[Directive] = []
        failover = Failover(line=0, source="pulse")
        for directive in directives:
            key = directive.keyword
            if directive.is_block:
                if key == "virtual":
                    virtual_blocks.append(directive)
                elif key == "failover":
                    self.warn(
                        directive.line,
                        f"failover service '{directive.value}' (service = fos) has no "
                        "equivalent: it is not converted (run it as a Kubernetes Service/Deployment)",
                    )
                else:
                    self.warn(directive.line, f"unknown section '{key} {directive.value}': ignored")
                continue
            if key == "include":
                self.warn(
                    directive.line,
                    f"include of {directive.value!r} not followed: name that file on the command line too "
                    "(the files are imported as one config)",
                )
            elif key == "service":
                self.values.arity(directive, 1, 1)
                if directive.args[0].lower() == "fos":
                    self.warn(
                        directive.line,
                        "service = fos: failover services are not converted; only virtual servers are",
                    )
            elif key == "primary":
                self.values.arity(directive, 1, 1)
                primary = directive
            elif key == "backup":
                self.values.arity(directive, 0, 1)
                backup = directive if directive.args else None
            elif key == "backup_active":
                backup_active = self.values.flag(directive)
            elif key in {"primary_private", "backup_private"}:
                self.values.arity(directive, 1, 1)
                role = key.split("_")[0]
                self.config.agent_flag("--peer", f"<{role}-node>={directive.args[0]}", directive.line)
                self.warn(
                    directive.line,
                    f"{key} = {directive.value}: the agents heartbeat to the peers of their --peer flags: "
                    f"--peer <{role}-node>={directive.args[0]} on the other director (see the header)",
                )
            elif key == "heartbeat":
                if not self.values.flag(directive):
                    self.warn(
                        directive.line,
                        "heartbeat = 0: director heartbeats cannot be switched off; "
                        "the agents always heartbeat",
                    )
            elif key == "keepalive":
                failover.heartbeat_interval_seconds = self.values.seconds(directive)
                failover.line = failover.line or directive.line
            elif key == "deadtime":
                failover.dead_after_seconds = self.values.seconds(directive)
                failover.line = failover.line or directive.line
            elif key == "network":
                self.values.arity(directive, 1, 1)
                method = _NETWORK_TYPES.get(directive.args[0].lower())
                if method is None:
                    raise self.diagnostics.error(
                        directive.line, f"network must be nat, direct or tunnel, got {directive.args[0]!r}"
                    )
                self.network, self.network_line = method, directive.line
            elif key == "nat_router":
                self.values.arity(directive, 1, 2)
                self.config.nat_router = (self.values.ip(directive), directive.line)
            elif key == "nat_nmask":
                self.values.netmask(directive)
            elif key == "syncdaemon":
                if self.values.flag(directive):
                    self.config.sync_daemon_line = directive.line
            elif key in {"syncd_iface", "lvs_sync_daemon_interface"}:
                self.values.arity(directive, 1, 1)
                self.config.agent_flag("--sync-interface", directive.args[0], directive.line)
            elif key == "syncd_id":
                self.config.agent_flag(
                    "--sync-id", str(self.values.integer(directive, maximum=255)), directive.line
                )
            elif key == "heartbeat_port":
                port = self.values.port(directive)
                self.config.agent_flag("--heartbeat-port", str(port), directive.line)
                self.warn(
                    directive.line,
                    f"heartbeat_port = {port}: an agent flag (--heartbeat-port {port}), not part "
                    "of these objects",
                )
            elif key == "monitor_links":
                if self.values.flag(directive):
                    self.warn(
                        directive.line,
                        "monitor_links = 1: link monitoring of the director's interfaces "
                        "is not converted; the agent's health of its own node drives failover",
                    )
            elif key in _KERNEL_TIMEOUTS:
                self.warn(
                    directive.line,
                    f"{key} = {directive.value}: IPVS connection timeouts are a kernel-wide "
                    "setting (ipvsadm --set), not part of any service; set it on the director nodes",
                )
            elif key in _GLOBAL_DROPPED:
                reason = _GLOBAL_DROPPED[key]
                self.warn(directive.line, f"{key} = {directive.value}: dropped ({reason})")
            else:
                self.warn(directive.line, f"unknown global setting '{key}': ignored")

        if primary is not None:
            self.config.directors.append(Director(role="primary", line=primary.line, address=primary.args[0]))
        if backup is not None:
            if backup_active is False:
                self.warn(
                    backup.line, "backup router is defined but backup_active = 0: not listed as a director"
                )
            else:
                self.config.directors.append(
                    Director(role="backup", line=backup.line, address=backup.args[0])
                )
        if failover.line:
            self.config.failover = failover
        if not any(flag == "--peer" for flag, _, _ in self.config.agent_flags):
            for role, router in (("primary", primary), ("backup", backup)):
                if router is not None and router.args:
                    self.config.agent_flag("--peer", f"<{role}-node>={router.args[0]}", router.line)

        names: set[str] = set()
        for block in virtual_blocks:
            virtual = self.virtual(block)
            if virtual is None:
                continue
            if virtual.name in names:
                raise self.diagnostics.error(block.line, f"virtual server '{virtual.name}' is defined twice")
            names.add(virtual.name)
            self.config.virtual_servers.append(virtual)
        return self.config

    def virtual(self, block: Directive) -> VirtualServer | None:
        virtual = VirtualServer(name=block.args[0], line=block.line, forwarding=self.network)
        address: ServiceAddress | None = None
        port: int | None = None
        fwmark: int | None = None
        nanny = NannySettings()
        pmask: Directive | None = None
        for directive in block.blocks():
            key = directive.keyword
            if directive.is_block:
                if key == "server":
                    server = self.server(directive)
                    if server is not None:
                        virtual.servers.append(server)
                else:
                    self.warn(directive.line, f"unknown section '{key}' in virtual '{virtual.name}': ignored")
                continue
            if key == "address":
                self.values.arity(directive, 1, 2)
                address = ServiceAddress(line=directive.line, address=self.values.ip(directive))
                if len(directive.args) == 2:
                    virtual.interface = directive.args[1]
            elif key == "active":
                virtual.active = self.values.flag(directive)
            elif key == "port":
                port = self.values.port(directive)
            elif key == "protocol":
                self.values.arity(directive, 1, 1)
                protocol = directive.args[0].upper()
                if protocol not in {"TCP", "UDP"}:
                    raise self.diagnostics.error(
                        directive.line, f"protocol must be tcp or udp, got {directive.value!r}"
                    )
                virtual.protocol = protocol
            elif key == "scheduler":
                self.values.arity(directive, 1, 1)
                virtual.scheduler = directive.args[0].lower()
            elif key == "persistent":
                seconds = self.values.integer(directive)
                virtual.persistence_timeout = seconds or None
            elif key == "pmask":
                pmask = directive
                virtual.persistence_netmask = self.values.netmask(directive)
            elif key == "fwmark":
                fwmark = self.values.integer(directive, minimum=1, maximum=0xFFFFFFFF)
            elif key == "send":
                nanny.send = directive
            elif key == "expect":
                nanny.expect = directive
            elif key == "send_program":
                nanny.send_program = directive
            elif key == "use_regex":
                nanny.use_regex = self.values.flag(directive)
            elif key == "timeout":
                nanny.timeout = self.values.integer(directive, minimum=1)
            elif key == "reentry":
                nanny.reentry = self.values.integer(directive, minimum=0)
            elif key == "quiesce_server":
                virtual.quiesce_on_failure = self.values.flag(directive)
            elif key == "load_monitor":
                self.values.arity(directive, 1, 1)
                if directive.args[0].lower() != "none":
                    self.warn(
                        directive.line,
                        f"load_monitor = {directive.value}: weights adjusted from real-server "
                        "load (uptime/rup) have no equivalent; static weights are kept",
                    )
            elif key == "vip_nmask":
                self.values.netmask(directive)
                self.warn(
                    directive.line,
                    f"vip_nmask = {directive.value}: the agent adds each VIP as a single address (/32, /128) "
                    "on its own interface; dropped",
                )
            elif key == "sorry_server":
                self.values.arity(directive, 1, 2)
                sorry = RealServer(address=self.values.ip(directive), line=directive.line, name="sorry")
                if len(directive.args) == 2:
                    sorry.port = self.values.port(directive, 1)
                virtual.sorry_servers.append(sorry)
            else:
                self.warn(directive.line, f"unknown setting '{key}' in virtual '{virtual.name}': ignored")

        if not virtual.active:
            self.warn(block.line, f"virtual '{virtual.name}' is inactive (active = 0): not converted")
            return None
        if address is None:
            raise self.diagnostics.error(block.line, f"virtual '{virtual.name}' has no 'address'")
        if fwmark is not None:
            # a firewall-mark service matches packets by mark; port still names the real servers' port
            virtual.addresses.append(
                ServiceAddress(line=address.line, address=address.address, fwmark=fwmark)
            )
        else:
            if port is None:
                raise self.diagnostics.error(
                    block.line, f"virtual '{virtual.name}' has no 'port' (and no 'fwmark')"
                )
            address.ports.append(port)
            virtual.addresses.append(address)
        if pmask is not None and virtual.persistence_timeout is None:
            self.warn(pmask.line, f"pmask without persistent in virtual '{virtual.name}': ignored")
            virtual.persistence_netmask = None
        for server in virtual.servers:
            if server.port is None:
                server.port = port
        for sorry in virtual.sorry_servers:
            if sorry.port is None:
                sorry.port = port
        virtual.check = self.check(virtual, port, nanny)
        return virtual

    def server(self, block: Directive) -> RealServer | None:
        name = block.args[0]
        address: str | None = None
        server = RealServer(address="", line=block.line, name=name)
        for directive in block.blocks():
            key = directive.keyword
            if directive.is_block:
                self.warn(directive.line, f"unknown section '{key}' in server '{name}': ignored")
            elif key == "address":
                self.values.arity(directive, 1, 1)
                address = self.values.ip(directive)
            elif key == "active":
                server.active = self.values.flag(directive)
            elif key == "weight":
                server.weight = self.values.integer(directive, maximum=65535)
            elif key == "port":
                server.port = self.values.port(directive)
            else:
                self.warn(directive.line, f"unknown setting '{key}' in server '{name}': ignored")
        if address is None:
            raise self.diagnostics.error(block.line, f"server '{name}' has no 'address'")
        server.address = address
        if not server.active:
            self.warn(block.line, f"server '{name}' is inactive (active = 0): left out of the pool")
            return None
        return server

    def check(self, virtual: VirtualServer, port: int | None, nanny: NannySettings) -> HealthCheck | None:
        send, expect, send_program = nanny.send, nanny.expect, nanny.send_program
        use_regex, timeout, reentry = nanny.use_regex, nanny.timeout, nanny.reentry
        line = (send_program or send or expect or Directive("", (), virtual.line)).line
        if send_program is not None:
            command = send_program.value.split()
            if not command:
                raise self.diagnostics.error(send_program.line, "send_program is empty")
            check = HealthCheck(kind=CheckKind.EXEC, line=line, command=command)
            if expect is not None and expect.value:
                self.warn(
                    expect.line,
                    f"expect = {expect.value!r} with send_program: the exec check judges the "
                    "program by its exit status (0 = up); make the program exit non-zero instead of "
                    "printing something else",
                )
            if send is not None:
                self.warn(send.line, "send is ignored when send_program is set (as nanny did)")
        elif virtual.protocol == "UDP":
            if send is None and expect is None:
                self.warn(
                    virtual.line,
                    f"virtual '{virtual.name}' is UDP without send/expect: nanny could not "
                    "check it either; no health check is set",
                )
                return None
            check = HealthCheck(
                kind=CheckKind.UDP,
                line=line,
                send=unescape_nanny(send.value) if send else None,
                expect=unescape_nanny(expect.value) if expect else None,
                expect_is_regex=use_regex,
            )
        else:
            check = self.tcp_check(line, send, expect, use_regex)
        interval = DEFAULT_PROBE_INTERVAL if timeout is None else min(DEFAULT_PROBE_INTERVAL, timeout)
        check.interval_seconds = interval
        check.timeout_seconds = interval
        if timeout is not None:
            check.fall = max(1, math.ceil(timeout / interval))
        if reentry is not None:
            check.rise = max(1, math.ceil(reentry / interval))
        check.port = port
        return check

    def tcp_check(
        self, line: int, send: Directive | None, expect: Directive | None, use_regex: bool
    ) -> HealthCheck:
        send_text = unescape_nanny(send.value) if send is not None else ""
        expect_text = unescape_nanny(expect.value) if expect is not None else ""
        request = _REQUEST_LINE.match(send_text)
        if request:
            check = HealthCheck(kind=CheckKind.HTTP, line=line, path=request.group(2))
            host = _HOST_HEADER.search(send_text)
            if host:
                check.host = host.group(1).strip()
            status = _STATUS_LINE.match(expect_text)
            if status:
                check.expect_status = [int(status.group(1))]
            elif expect is not None and expect_text and not expect_text.startswith("HTTP"):
                # nanny matched the raw answer; the closest check matches the body
                check.expect = expect_text if use_regex else re.escape(expect_text)
                self.warn(
                    expect.line,
                    f"expect = {expect.value!r} is matched against the HTTP body (regular "
                    "expression) of a status-200 answer",
                )
            elif expect is not None:
                self.warn(
                    expect.line,
                    f"expect = {expect.value!r} accepted any HTTP answer; the HTTP check expects status 200",
                )
            check.method = request.group(1)
            return check
        if send_text or expect_text:
            return HealthCheck(
                kind=CheckKind.TCP, line=line, send=send_text or None, expect=expect_text or None
            )
        return HealthCheck(kind=CheckKind.TCP, line=line)


def interpret_lvs_cf(path: str, directives: tuple[Directive, ...], diagnostics: Diagnostics) -> LegacyConfig:
    return PiranhaInterpreter(path, diagnostics).run(directives)
