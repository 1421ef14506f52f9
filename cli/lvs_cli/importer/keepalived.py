"""Meaning of a ``keepalived.conf``: LVS ``virtual_server`` blocks with their checkers, and VRRP instances."""

from __future__ import annotations

from collections.abc import Iterable

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

_METHODS = {"NAT": Forwarding.NAT, "DR": Forwarding.DIRECT_ROUTING, "TUN": Forwarding.TUNNEL}
_SCHEDULER_FLAGS = {
    "sh-port": "sh-port",
    "sh-fallback": "sh-fallback",
    "mh-port": "mh-port",
    "mh-fallback": "mh-fallback",
}
_TUNNEL_CHECKSUMS = {"nocsum": "None", "csum": "Checksum", "remcsum": "RemoteChecksum"}
_CHECKERS = {
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "DNS_CHECK",
    "UDP_CHECK",
    "SMTP_CHECK",
    "BFD_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
}
# Top-level blocks that configure keepalived itself or VRRP extras: not part of any service.
_TOP_LEVEL_DROPPED = {
    "global_defs": "keepalived process settings (router_id, notification e-mail, scripts security)",
    "static_ipaddress": "static addresses of the host: manage them with the node's network configuration",
    "static_routes": "static routes of the host: manage them with the node's network configuration",
    "static_rules": "policy routing rules of the host: manage them with the node's network configuration",
    "vrrp_script": "VRRP tracking scripts: the agent's own node health drives failover",
    "vrrp_sync_group": "VRRP sync groups: directors fail over per VIP group (the VIPPool)",
    "linkbeat_use_polling": "keepalived process setting",
    "track_file": "VRRP tracking files: the agent's own node health drives failover",
    "bfd_instance": "BFD sessions have no equivalent",
}


def _hex_text(value: str) -> str | None:
    """`474554` -> `GET`; None unless it is hex of printable text (tabs and line ends allowed)."""
    try:
        text = bytes.fromhex(value).decode("ascii")
    except ValueError:
        return None
    if not text or not all(char.isprintable() or char in "\r\n\t" for char in text):
        return None
    return text


class KeepalivedInterpreter:
    def __init__(self, path: str, diagnostics: Diagnostics) -> None:
        self.config = LegacyConfig(path=path, kind="keepalived.conf")
        self.diagnostics = diagnostics
        self.values = ValueReader(diagnostics)
        self.groups: dict[str, list[ServiceAddress]] = {}
        self.router_id: str | None = None

    def warn(self, line: int, message: str) -> None:
        self.diagnostics.warn(line, message)

    def run(self, directives: tuple[Directive, ...]) -> LegacyConfig:
        # groups first: a virtual_server may name a group defined further down
        for directive in directives:
            if directive.keyword == "virtual_server_group":
                self.group(directive)
        names: set[str] = set()
        for directive in directives:
            key = directive.keyword
            if key == "virtual_server_group":
                continue
            if key == "include":
                self.warn(
                    directive.line,
                    f"include of {directive.value!r} not followed: name that file on the command line too "
                    "(the files are imported as one config)",
                )
            elif key == "virtual_server" and directive.is_block:
                virtual = self.virtual_server(directive)
                base, suffix = virtual.name, 2
                while virtual.name in names:  # the same VIP:port twice (e.g. TCP and UDP)
                    virtual.name = f"{base}-{suffix}"
                    suffix += 1
                names.add(virtual.name)
                self.config.virtual_servers.append(virtual)
            elif key == "vrrp_instance" and directive.is_block:
                self.vrrp_instance(directive)
            elif key in {"virtual_server", "vrrp_instance", "global_defs"} and not directive.is_block:
                raise self.diagnostics.error(directive.line, f"'{key}' needs a {{ ... }} block")
            elif key == "global_defs":
                for item in directive.blocks():
                    if item.keyword == "router_id" and item.args:
                        self.router_id = item.args[0]
                self.warn(directive.line, f"global_defs: dropped ({_TOP_LEVEL_DROPPED['global_defs']})")
            elif key in _TOP_LEVEL_DROPPED:
                name = f" {directive.value}" if directive.args else ""
                self.warn(directive.line, f"{key}{name}: dropped ({_TOP_LEVEL_DROPPED[key]})")
            elif key.startswith(("$", "@")):
                self.warn(
                    directive.line,
                    f"'{key}': keepalived parameter substitution or conditional "
                    "configuration is not evaluated: line ignored",
                )
            else:
                self.warn(directive.line, f"unknown top-level keyword '{key}': ignored")
        return self.config

    # --- virtual_server_group -------------------------------------------------------------------------
    def group(self, block: Directive) -> None:
        self.values.arity(block, 1, 1)
        name = block.args[0]
        entries: list[ServiceAddress] = []
        for entry in block.blocks():
            if entry.is_block:
                raise self.diagnostics.error(
                    entry.line, f"unexpected block '{entry.keyword}' in virtual_server_group"
                )
            words = (entry.keyword, *entry.args)
            if words[0] == "fwmark":
                if len(words) != 2:
                    raise self.diagnostics.error(entry.line, "fwmark entry takes one mark number")
                mark = self.values.integer(entry, 0, minimum=1, maximum=0xFFFFFFFF, text=words[1])
                entries.append(ServiceAddress(line=entry.line, fwmark=mark))
                continue
            if len(words) != 2:
                raise self.diagnostics.error(
                    entry.line,
                    "virtual_server_group entry must be 'ADDRESS PORT', "
                    "'ADDRESS-RANGE PORT' or 'fwmark MARK'",
                )
            port = self.values.port(entry, 0, text=words[1])
            addresses = self.values.address_range(entry, words[0])
            if len(addresses) > 1:
                self.warn(entry.line, f"address range {words[0]} expanded into {len(addresses)} addresses")
            entries.extend(
                ServiceAddress(line=entry.line, address=address, ports=[port]) for address in addresses
            )
        if not entries:
            raise self.diagnostics.error(block.line, f"virtual_server_group '{name}' is empty")
        self.groups[name] = entries

    # --- vrrp_instance ------------------------------------------------------------------------------------
    def vrrp_instance(self, block: Directive) -> None:
        self.values.arity(block, 1, 1)
        director = Director(role="BACKUP", line=block.line, name=block.args[0])
        advert_interval = 1.0
        for item in block.blocks():
            key = item.keyword
            if key == "state":
                self.values.arity(item, 1, 1)
                state = item.args[0].upper()
                if state not in {"MASTER", "BACKUP"}:
                    raise self.diagnostics.error(
                        item.line, f"state must be MASTER or BACKUP, got {item.value!r}"
                    )
                director.role = state
            elif key == "priority":
                director.priority = self.values.integer(item, minimum=1, maximum=255)
            elif key == "interface":
                self.values.arity(item, 1, 1)
                director.interface = item.args[0]
            elif key == "advert_int":
                advert_interval = self.values.seconds(item)
            elif key == "virtual_ipaddress":
                for entry in item.blocks():
                    address, _, prefix = entry.keyword.partition("/")
                    director.virtual_addresses.append(self.values.ip(entry, text=address))
                    dropped = [f"/{prefix}"] if prefix and prefix not in {"32", "128"} else []
                    dropped += [entry.value] if entry.args else []
                    if dropped:
                        self.warn(
                            entry.line,
                            f"virtual_ipaddress {address}: '{' '.join(dropped)}' (prefix, device, label, "
                            "scope) dropped: the agent adds each VIP as one address on its own interface",
                        )
            elif key in {
                "virtual_router_id",
                "nopreempt",
                "preempt_delay",
                "garp_master_delay",
                "garp_master_refresh",
                "unicast_src_ip",
                "version",
            }:
                self.warn(
                    item.line,
                    f"vrrp_instance {director.name}: '{key}' dropped (VRRP protocol detail; "
                    "directors elect the active one with a Lease and heartbeats)",
                )
            elif key == "authentication":
                self.warn(
                    item.line,
                    f"vrrp_instance {director.name}: authentication dropped (director heartbeats "
                    "are authenticated by the cluster)",
                )
            elif key.startswith("notify") or key in {
                "track_script",
                "track_interface",
                "track_file",
                "smtp_alert",
            }:
                self.warn(
                    item.line,
                    f"vrrp_instance {director.name}: '{key}' dropped (no hooks or tracking "
                    "scripts; watch the VirtualService status and events instead)",
                )
            elif key in {"lvs_sync_daemon_interface", "sync_daemon"}:
                self.config.sync_daemon_line = item.line
                if item.args:
                    self.config.agent_flag("--sync-interface", item.args[0], item.line)
            elif key == "unicast_peer":
                for peer in item.blocks():
                    address = self.values.ip(peer, text=peer.keyword)
                    self.config.agent_flag("--peer", f"<node-of-{address}>={address}", peer.line)
                self.warn(
                    item.line,
                    f"vrrp_instance {director.name}: unicast_peer becomes the agents' --peer "
                    "flags (see the header)",
                )
            else:
                self.warn(item.line, f"vrrp_instance {director.name}: unknown keyword '{key}': ignored")
        self.config.directors.append(director)
        failover = self.config.failover
        if failover is None or (failover.heartbeat_interval_seconds or 0) > advert_interval:
            # VRRP declares the master down after three missed adverts (plus a skew below one advert)
            self.config.failover = Failover(
                line=block.line,
                heartbeat_interval_seconds=advert_interval,
                dead_after_seconds=3 * advert_interval,
                source="vrrp",
            )

    # --- virtual_server -----------------------------------------------------------------------------------
    def virtual_server(self, block: Directive) -> VirtualServer:
        args = block.args
        if len(args) == 2 and args[0] == "fwmark":
            mark = self.values.integer(block, 1, minimum=1, maximum=0xFFFFFFFF)
            virtual = VirtualServer(name=f"fwmark-{mark}", line=block.line)
            virtual.addresses.append(ServiceAddress(line=block.line, fwmark=mark))
        elif len(args) == 2 and args[0] == "group":
            name = args[1]
            if name not in self.groups:
                raise self.diagnostics.error(block.line, f"virtual_server_group '{name}' is not defined")
            virtual = VirtualServer(name=name, line=block.line)
            virtual.addresses.extend(self.groups[name])
        elif len(args) in {1, 2}:
            address = self.values.ip(block, 0)
            ports = [self.values.port(block, 1)] if len(args) == 2 else []
            if not ports:
                raise self.diagnostics.error(
                    block.line, "virtual_server needs 'ADDRESS PORT', 'fwmark MARK' or 'group NAME'"
                )
            virtual = VirtualServer(name=f"{address}-{ports[0]}", line=block.line)
            virtual.addresses.append(ServiceAddress(line=block.line, address=address, ports=ports))
        else:
            raise self.diagnostics.error(
                block.line, "virtual_server needs 'ADDRESS PORT', 'fwmark MARK' or 'group NAME'"
            )
        virtual.title = block.value
        granularity_line = block.line
        delay_loop: float | None = None
        vs_host: str | None = None
        for item in block.blocks():
            key = item.keyword
            if key == "real_server" and item.is_block:
                virtual.servers.append(self.real_server(item, virtual))
            elif key == "delay_loop":
                delay_loop = self.values.seconds(item)
            elif key in {"lb_algo", "lvs_sched"}:
                self.values.arity(item, 1, 1)
                virtual.scheduler = item.args[0].lower()
            elif key in {"lb_kind", "lvs_method"}:
                virtual.forwarding = self.method(item, virtual)
            elif key == "persistence_timeout":
                virtual.persistence_timeout = self.values.integer(item, minimum=1) if item.args else 360
            elif key == "persistence_granularity":
                virtual.persistence_netmask = self.values.netmask(item)
                granularity_line = item.line
            elif key == "protocol":
                self.values.arity(item, 1, 1)
                protocol = item.args[0].upper()
                if protocol not in {"TCP", "UDP", "SCTP"}:
                    raise self.diagnostics.error(
                        item.line, f"protocol must be TCP, UDP or SCTP, got {item.value!r}"
                    )
                virtual.protocol = protocol
            elif key == "sorry_server":
                self.values.arity(item, 1, 2)
                sorry = RealServer(address=self.values.ip(item), line=item.line, name="sorry")
                if len(item.args) == 2:
                    sorry.port = self.values.port(item, 1)
                virtual.sorry_servers.append(sorry)
            elif key == "ops":
                virtual.one_packet = True
            elif key in _SCHEDULER_FLAGS:
                virtual.scheduler_flags.append(_SCHEDULER_FLAGS[key])
            elif key in {"flag-1", "flag-2", "flag-3"}:
                self.warn(
                    item.line,
                    f"'{key}': raw scheduler flag bits are not converted; name the flag "
                    "(sh-port, sh-fallback, mh-port, mh-fallback) instead",
                )
            elif key == "hashed":
                self.warn(item.line, "'hashed': kernel-internal flag, dropped")
            elif key == "virtualhost":
                self.values.arity(item, 1, 1)
                vs_host = item.args[0]
            elif key == "inhibit_on_failure":
                virtual.quiesce_on_failure = True
            elif key == "ha_suspend":
                self.warn(
                    item.line,
                    "ha_suspend: dropped (only the active director drives the kernel from its "
                    "checks, always)",
                )
            elif key in {"quorum", "quorum_up", "quorum_down", "hysteresis"}:
                self.warn(
                    item.line,
                    f"'{key}': quorum actions have no equivalent; the service keeps the "
                    "healthy members (and the fallback when none is left)",
                )
            elif key in {"alpha", "omega", "warmup", "retry", "delay_before_retry", "connect_timeout"}:
                self.warn(item.line, f"'{key}' at virtual_server level: set it on the checkers; dropped")
            elif key in {
                "sorry_server_inhibit",
                "sorry_server_lvs_method",
                "persistence_engine",
                "lvs_timeouts",
                "smtp_alert",
                "ip_family",
            }:
                self.warn(item.line, f"'{key}': no equivalent, dropped")
            else:
                self.warn(item.line, f"virtual_server {block.value}: unknown keyword '{key}': ignored")
        for server in virtual.servers:
            if server.check is not None:
                if server.check.interval_seconds is None and delay_loop is not None:
                    server.check.interval_seconds = delay_loop
                if server.check.kind in {CheckKind.HTTP, CheckKind.HTTPS} and server.check.host is None:
                    server.check.host = vs_host
            if server.forwarding is not None and server.forwarding != virtual.forwarding:
                self.warn(
                    server.line,
                    f"real_server {server.address}: its own forwarding method "
                    f"{server.forwarding.value} differs from the service's {virtual.forwarding.value}; "
                    "the service's is used",
                )
        inhibiting = [server for server in virtual.servers if server.quiesce_on_failure]
        if inhibiting and not virtual.quiesce_on_failure:
            virtual.quiesce_on_failure = True
            if len(inhibiting) < len(virtual.servers):
                self.warn(
                    inhibiting[0].line,
                    f"inhibit_on_failure on {len(inhibiting)} of {len(virtual.servers)} real servers: "
                    "onFailure is per service, Quiesce is used for all",
                )
        if virtual.persistence_netmask is not None and virtual.persistence_timeout is None:
            self.warn(granularity_line, "persistence_granularity without persistence_timeout: ignored")
            virtual.persistence_netmask = None
        self.merge_checks(virtual)
        return virtual

    def method(self, item: Directive, virtual: VirtualServer | None = None) -> Forwarding:
        """`lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]` (keepalived 2.x)."""
        self.values.arity(item, 1)
        method = _METHODS.get(item.args[0].upper())
        if method is None:
            raise self.diagnostics.error(
                item.line, f"'{item.keyword}' must be NAT, DR or TUN, got {item.args[0]!r}"
            )
        options = list(item.args[1:])
        if options and (method is not Forwarding.TUNNEL or virtual is None):
            self.warn(item.line, f"options '{' '.join(options)}' after {item.args[0]} dropped")
            return method
        while options and virtual is not None:
            word = options.pop(0).lower()
            if word == "type" and options:
                tunnel_type = options.pop(0).upper()
                if tunnel_type not in {"IPIP", "GUE", "GRE"}:
                    raise self.diagnostics.error(
                        item.line, f"tunnel type must be ipip, gue or gre, got {tunnel_type!r}"
                    )
                virtual.tunnel_type = tunnel_type
            elif word == "port" and options:
                virtual.tunnel_port = self.values.port(item, text=options.pop(0))
            elif word in _TUNNEL_CHECKSUMS:
                virtual.tunnel_checksum = _TUNNEL_CHECKSUMS[word]
            else:
                raise self.diagnostics.error(item.line, f"unexpected tunnel option {word!r}")
        return method

    def real_server(self, block: Directive, virtual: VirtualServer) -> RealServer:
        self.values.arity(block, 1, 2)
        server = RealServer(address=self.values.ip(block, 0), line=block.line)
        if len(block.args) == 2:
            # port 0 is how fwmark services spell "the port the packet had"
            port = self.values.integer(block, 1, maximum=65535)
            server.port = port or None
        checks: list[HealthCheck] = []
        for item in block.blocks():
            key = item.keyword
            if key in _CHECKERS and item.is_block:
                check = self.checker(item, server)
                if check is not None:
                    checks.append(check)
            elif key == "weight":
                server.weight = self.values.integer(item, maximum=65535)
            elif key == "inhibit_on_failure":
                server.quiesce_on_failure = True
            elif key in {"lb_kind", "lvs_method"}:
                server.forwarding = self.method(item)
            elif key.startswith("notify"):
                self.warn(
                    item.line,
                    f"real_server {server.address}: '{key}' dropped (no hooks; member health is "
                    "reported in the VirtualService status and the agent's log)",
                )
            elif key == "uthreshold":
                server.upper_threshold = self.values.integer(item, maximum=65535)
            elif key == "lthreshold":
                server.lower_threshold = self.values.integer(item, maximum=65535)
            elif key in {"alpha", "delay_loop", "retry", "delay_before_retry", "connect_timeout", "warmup"}:
                self.warn(
                    item.line,
                    f"real_server {server.address}: '{key}' outside a checker dropped; set it "
                    "inside the checker",
                )
            else:
                self.warn(item.line, f"real_server {server.address}: unknown keyword '{key}': ignored")
        if len(checks) > 1:
            self.warn(
                checks[1].line,
                f"real_server {server.address}: {len(checks)} checkers; only the first "
                f"({checks[0].kind.value}) is converted (one health check per service)",
            )
        server.check = checks[0] if checks else None
        return server

    def checker(self, block: Directive, server: RealServer) -> HealthCheck | None:
        kind_word = block.keyword
        if kind_word in {"BFD_CHECK", "PING_CHECK", "FILE_CHECK"}:
            self.warn(block.line, f"real_server {server.address}: {kind_word} has no equivalent; dropped")
            return None
        kind = {
            "TCP_CHECK": CheckKind.TCP,
            "SMTP_CHECK": CheckKind.TCP,
            "HTTP_GET": CheckKind.HTTP,
            "SSL_GET": CheckKind.HTTPS,
            "MISC_CHECK": CheckKind.EXEC,
            "DNS_CHECK": CheckKind.DNS,
            "UDP_CHECK": CheckKind.UDP,
        }[kind_word]
        if kind_word == "SMTP_CHECK":
            self.warn(
                block.line,
                f"real_server {server.address}: SMTP_CHECK converted to a TCP connect check "
                "(no SMTP greeting check)",
            )
        check = HealthCheck(kind=kind, line=block.line, rise=1)  # keepalived restores on the first success
        retries: int | None = None
        urls = 0
        for item in block.blocks():
            key = item.keyword
            if key == "url" and kind in {CheckKind.HTTP, CheckKind.HTTPS}:
                urls += 1
                if urls > 1:
                    self.warn(
                        item.line,
                        f"real_server {server.address}: only the first url is checked; this one is dropped",
                    )
                    continue
                self.url(item, check)
            elif key == "connect_timeout" or (key == "misc_timeout" and kind is CheckKind.EXEC):
                check.timeout_seconds = self.values.seconds(item)
            elif key == "connect_port":
                check.port = self.values.port(item)
            elif key in {"nb_get_retry", "retry"}:
                retries = self.values.integer(item)
            elif key == "delay_loop":
                check.interval_seconds = self.values.seconds(item)
            elif key == "delay_before_retry":
                self.warn(
                    item.line,
                    f"real_server {server.address}: delay_before_retry dropped; retries happen "
                    "at the check interval",
                )
            elif key == "virtualhost":
                self.values.arity(item, 1, 1)
                check.host = item.args[0]
            elif key == "misc_path" and kind is CheckKind.EXEC:
                self.values.arity(item, 1)
                # scripts usually name their real server: make that the placeholder so that one check
                # (with the member address from the environment) serves every member
                check.command = [
                    "%h" if word == server.address else word for word in " ".join(item.args).split()
                ]
            elif key == "misc_dynamic":
                self.warn(
                    item.line,
                    f"real_server {server.address}: misc_dynamic (weight from exit code) dropped; "
                    "the exec check is up/down only",
                )
            elif key == "type" and kind is CheckKind.DNS:
                self.values.arity(item, 1, 1)
                check.dns_query_type = item.args[0].upper()
            elif key == "name" and kind is CheckKind.DNS:
                self.values.arity(item, 1, 1)
                check.dns_query_name = item.args[0]
            elif key in {"payload", "require_reply"} and kind is CheckKind.UDP:
                # keepalived writes both as hex; the UDP check sends and matches text
                self.values.arity(item, 1, 1)
                text = _hex_text(item.args[0])
                if text is None:
                    self.warn(
                        item.line,
                        f"real_server {server.address}: UDP_CHECK {key} {item.args[0]} is not hex of "
                        "printable text: dropped",
                    )
                elif key == "payload":
                    check.send = text
                else:
                    check.expect = text
            elif key in {"min_reply_length", "max_reply_length"} and kind is CheckKind.UDP:
                self.warn(item.line, f"real_server {server.address}: UDP_CHECK {key} dropped (no equivalent)")
            elif key in {
                "connect_ip",
                "bindto",
                "bind_port",
                "bind_if",
                "fwmark",
                "user",
                "warmup",
                "alpha",
                "http_protocol",
                "enable_sni",
                "tls_compliant",
                "helo_name",
                "source_ip",
            }:
                self.warn(
                    item.line, f"real_server {server.address}: {kind_word} '{key}' dropped (no equivalent)"
                )
            else:
                self.warn(
                    item.line, f"real_server {server.address}: unknown {kind_word} keyword '{key}': ignored"
                )
        if retries is not None:
            check.fall = retries + 1  # the failed check plus its retries
        if kind is CheckKind.EXEC and not check.command:
            raise self.diagnostics.error(block.line, "MISC_CHECK needs misc_path")
        if kind in {CheckKind.HTTP, CheckKind.HTTPS} and check.path is None:
            raise self.diagnostics.error(block.line, f"{kind_word} needs a url block with a path")
        if kind in {CheckKind.HTTP, CheckKind.HTTPS} and not check.expect_status and check.expect is None:
            self.warn(
                block.line,
                f"real_server {server.address}: no status_code: keepalived accepted any 2xx answer; the "
                "check expects 200 (list others in healthCheck.http.expectStatus)",
            )
        if kind is CheckKind.DNS and check.dns_query_name is None:
            check.dns_query_name = "."  # keepalived's default query name
        return check

    def url(self, block: Directive, check: HealthCheck) -> None:
        for item in block.blocks():
            if item.keyword == "path":
                self.values.arity(item, 1, 1)
                check.path = item.args[0]
            elif item.keyword == "status_code":
                self.values.arity(item, 1)
                check.expect_status.extend(self.status_codes(item, item.args))
            elif item.keyword == "digest":
                self.warn(
                    item.line,
                    "url digest (MD5 of the page) has no equivalent: dropped; the status code is "
                    "still checked",
                )
            elif item.keyword == "regex":
                self.values.arity(item, 1)
                check.expect = " ".join(item.args)
            else:
                self.warn(item.line, f"url: '{item.keyword}' dropped (no equivalent)")

    def status_codes(self, item: Directive, words: Iterable[str]) -> list[int]:
        """`200`, `200-299`, `200-299,301` (keepalived 2.x), several per line."""
        codes: list[int] = []
        for word in (part for text in words for part in text.split(",") if part):
            first, _, last = word.partition("-")
            low = self.values.integer(item, text=first, minimum=100, maximum=599)
            high = self.values.integer(item, text=last, minimum=low, maximum=599) if last else low
            codes.extend(range(low, high + 1))
        return codes

    def merge_checks(self, virtual: VirtualServer) -> None:
        """The product has one health check per service: keep the most common one, warn about the rest."""
        checked = [server for server in virtual.servers if server.check is not None]
        if not checked:
            return
        counts: dict[tuple[object, ...], int] = {}
        for server in checked:
            assert server.check is not None
            signature = server.check.signature()
            counts[signature] = counts.get(signature, 0) + 1
        winner = max(counts, key=lambda signature: counts[signature])
        chosen = next(
            server.check for server in checked if server.check and server.check.signature() == winner
        )
        assert chosen is not None
        virtual.check = chosen
        for server in virtual.servers:
            if server.check is None:
                self.warn(
                    server.line,
                    f"real_server {server.address} has no checker; it is now checked like the "
                    f"others ({chosen.kind.value})",
                )
            elif server.check.signature() != winner:
                self.warn(
                    server.check.line,
                    f"real_server {server.address}: its {server.check.kind.value} check "
                    f"differs from the service's ({chosen.kind.value}, line {chosen.line}); the service's "
                    "check is used",
                )


def interpret_keepalived(
    path: str, directives: tuple[Directive, ...], diagnostics: Diagnostics
) -> LegacyConfig:
    return KeepalivedInterpreter(path, diagnostics).run(directives)
