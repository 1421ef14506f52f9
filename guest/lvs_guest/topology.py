"""Client, director and real-server hosts in network namespaces on one bridge, for IPVS tests (in the guest).

    with Topology(directors=1, real_servers=2) as topo:
        topo.add_vip(topo.vip(0))                      # on director 0's dummy interface
        topo.configure_forwarding(Forwarding.DR, [topo.vip(0)])
        servers = topo.serve_http(port=80)             # every real server answers its own name
        names = topo.client.http_get(topo.vip(0), 80, count=8)

Layout (documentation ranges only; nothing leaves the guest):

    netns <prefix>-lan: bridge br0; one veth per host ("v-<host>"), the peer is "eth0" in the host's netns
    client  c:  192.0.2.(100+c)/24   2001:db8:2::(100+c)/64    routes: VIP ranges on-link
                (IPv6 numbers read as written: client1 is 2001:db8:2::100, rs1 2001:db8:100::11)
    director d: 192.0.2.(2+d)/24     198.51.100.(2+d)/24       2001:db8:2::(2+d), 2001:db8:100::(2+d)
                ip_forward on, ICMP redirects off (one L2 segment carries both subnets)
    NAT gateway 198.51.100.1 / 2001:db8:100::1: a floating address, on director 0 at first
    real server r: 198.51.100.(11+r)/24   2001:db8:100::(11+r)/64   default via the NAT gateway
    VIPs 203.0.113.(10+k), 2001:db8:113::(10+k)

`lo` is up in every namespace (IPVS destination adds fail in a namespace whose lo is down).
Everything runs in the calling process (setns per thread, no fork per host): see lvs_guest.netns.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from types import TracebackType

from pyroute2 import IPRoute

from lvs_guest import netns
from lvs_guest.client import Client
from lvs_guest.hosts import Host as Host  # noqa: PLC0414 (re-exported: tests import Host from here)
from lvs_guest.hosts import Role as Role  # noqa: PLC0414 (re-exported)
from lvs_guest.servers import NameServers

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FRONT_V4 = ipaddress.IPv4Network("192.0.2.0/24")
BACK_V4 = ipaddress.IPv4Network("198.51.100.0/24")
VIP_V4 = ipaddress.IPv4Network("203.0.113.0/24")
FRONT_V6 = ipaddress.IPv6Network("2001:db8:2::/64")
BACK_V6 = ipaddress.IPv6Network("2001:db8:100::/64")
VIP_V6 = ipaddress.IPv6Network("2001:db8:113::/64")
NAT_GATEWAY_V4 = BACK_V4[1]
NAT_GATEWAY_V6 = BACK_V6[1]

BRIDGE = "br0"
VIP_INTERFACE = "vip0"
MAX_REAL_SERVERS = 80
MAX_DIRECTORS = 8
MAX_CLIENTS = 100
IFA_F_NODAD = 0x02


class Forwarding(Enum):
    NAT = "nat"
    DR = "dr"
    TUN = "tun"

    @property
    def ipvsadm_flag(self) -> str:
        return {"nat": "-m", "dr": "-g", "tun": "-i"}[self.value]


def _interface_index(ipr: IPRoute, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise LookupError(f"no interface {name}")
    return int(found[0])


def _add_address(ipr: IPRoute, interface: str, address: str) -> None:
    ip = ipaddress.ip_interface(address)
    ipr.addr(
        "add",
        index=_interface_index(ipr, interface),
        address=str(ip.ip),
        prefixlen=ip.network.prefixlen,
        # no duplicate address detection: a tentative IPv6 address cannot be bound for ~1 s
        **({"flags": IFA_F_NODAD} if ip.version == 6 else {}),
    )


class Topology:
    """Builds the namespaces on construction (`build()`), removes every one of them on `close()`."""

    def __init__(
        self, *, directors: int = 1, real_servers: int = 2, clients: int = 1, prefix: str = "lvs"
    ) -> None:
        if not 1 <= real_servers <= MAX_REAL_SERVERS or not 0 <= directors <= MAX_DIRECTORS:
            raise ValueError(f"1..{MAX_REAL_SERVERS} real servers and 0..{MAX_DIRECTORS} directors")
        if not 1 <= clients <= MAX_CLIENTS:
            raise ValueError(f"1..{MAX_CLIENTS} clients")
        self.prefix = prefix
        self.lan = f"{prefix}-lan"
        self.clients = [
            Host(
                f"client{c + 1}",
                f"{prefix}-client{c + 1}",
                Role.CLIENT,
                FRONT_V4[100 + c],
                FRONT_V6[0x100 + c],
            )
            for c in range(clients)
        ]
        self.directors = [
            Host(f"dir{d + 1}", f"{prefix}-dir{d + 1}", Role.DIRECTOR, FRONT_V4[2 + d], FRONT_V6[2 + d])
            for d in range(directors)
        ]
        self.real_servers = [
            Host(f"rs{r + 1}", f"{prefix}-rs{r + 1}", Role.REAL_SERVER, BACK_V4[11 + r], BACK_V6[0x11 + r])
            for r in range(real_servers)
        ]
        self.gateway_director: Host | None = None
        self.servers = NameServers()
        self._created: list[str] = []
        self._closed = False

    # -- addresses ------------------------------------------------------------------------------------------
    @staticmethod
    def vip(index: int = 0, version: int = 4) -> IPAddress:
        """The index-th virtual IP (203.0.113.10+, or 2001:db8:113::10+ with version=6)."""
        return VIP_V4[10 + index] if version == 4 else VIP_V6[0x10 + index]

    @property
    def client(self) -> Client:
        """A request client in the first client namespace."""
        return Client(self.clients[0])

    @property
    def hosts(self) -> list[Host]:
        return [*self.clients, *self.directors, *self.real_servers]

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @staticmethod
    def back_address(director: Host, version: int = 4) -> IPAddress:
        index = int(director.name.removeprefix("dir")) + 1
        return BACK_V4[index] if version == 4 else BACK_V6[index]

    # -- building -------------------------------------------------------------------------------------------
    def build(self) -> Topology:
        subprocess.run(["modprobe", "-a", "veth", "bridge", "dummy"], check=True, capture_output=True)
        try:
            self._create(self.lan)
            with netns.entered(self.lan):
                lan = IPRoute()
            with lan:
                lan.link("add", ifname=BRIDGE, kind="bridge", br_mcast_snooping=0)
                lan.link("set", index=_interface_index(lan, BRIDGE), state="up")
                self._bring_up_lo(lan)
                for host in self.hosts:
                    self._add_host(lan, host)
            for host in self.directors:
                for name in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
                    host.sysctl(name, 1)
                for name in ("all", "default", "eth0"):
                    host.sysctl(f"net.ipv4.conf.{name}.send_redirects", 0)
            for host in self.real_servers:
                # The director forwards replies out of the interface they came in on, so it would send
                # redirects ("the client is on-link"): followed, replies would skip NAT. IPv6 has no
                # switch to stop sending them, so the real servers ignore them.
                for name in (
                    "net.ipv4.conf.all",
                    "net.ipv4.conf.eth0",
                    "net.ipv6.conf.all",
                    "net.ipv6.conf.eth0",
                ):
                    host.sysctl(f"{name}.accept_redirects", 0)
            if self.directors:
                self.move_nat_gateway(self.directors[0])
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> Topology:
        return self.build() if not self._created else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _create(self, name: str) -> None:
        if netns.netns_path(name).exists():
            # A previous run in this guest died without cleaning up: start from scratch.
            netns.delete_netns(name)
        netns.create_netns(name)
        self._created.append(name)
        with netns.entered(name):
            # Before any interface exists, so eth0 inherits it: no IPv6 duplicate address detection.
            Path("/proc/sys/net/ipv6/conf/default/accept_dad").write_text("0\n")

    @staticmethod
    def _bring_up_lo(ipr: IPRoute) -> None:
        ipr.link("set", index=_interface_index(ipr, "lo"), state="up")

    def _add_host(self, lan: IPRoute, host: Host) -> None:
        self._create(host.netns)
        bridge_port = f"v-{host.name}"
        fd = netns.netns_path(host.netns).open("rb")
        with fd:
            lan.link(
                "add", ifname=bridge_port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd.fileno()}
            )
        port = _interface_index(lan, bridge_port)
        lan.link("set", index=port, master=_interface_index(lan, BRIDGE))
        lan.link("set", index=port, state="up")
        with host.iproute() as ipr:
            self._bring_up_lo(ipr)
            eth0 = _interface_index(ipr, "eth0")
            ipr.link("set", index=eth0, state="up")
            if host.role is Role.DIRECTOR:
                _add_address(ipr, "eth0", f"{host.ipv4}/{FRONT_V4.prefixlen}")
                _add_address(ipr, "eth0", f"{host.ipv6}/{FRONT_V6.prefixlen}")
                _add_address(ipr, "eth0", f"{self.back_address(host, 4)}/{BACK_V4.prefixlen}")
                _add_address(ipr, "eth0", f"{self.back_address(host, 6)}/{BACK_V6.prefixlen}")
            elif host.role is Role.CLIENT:
                _add_address(ipr, "eth0", f"{host.ipv4}/{FRONT_V4.prefixlen}")
                _add_address(ipr, "eth0", f"{host.ipv6}/{FRONT_V6.prefixlen}")
                # The VIPs are on the LAN: whichever director holds one answers ARP / neighbour solicitation.
                ipr.route("add", dst=str(VIP_V4), oif=eth0)
                ipr.route("add", dst=str(VIP_V6), oif=eth0)
            else:
                _add_address(ipr, "eth0", f"{host.ipv4}/{BACK_V4.prefixlen}")
                _add_address(ipr, "eth0", f"{host.ipv6}/{BACK_V6.prefixlen}")
                ipr.route("add", dst="0.0.0.0/0", gateway=str(NAT_GATEWAY_V4))
                ipr.route("add", dst="::/0", gateway=str(NAT_GATEWAY_V6), family=socket.AF_INET6)

    def move_nat_gateway(self, director: Host) -> None:
        """Put the real servers' default gateway (198.51.100.1, 2001:db8:100::1) on this director."""
        if self.gateway_director is not None:
            with self.gateway_director.iproute() as ipr:
                eth0 = _interface_index(ipr, "eth0")
                ipr.addr("del", index=eth0, address=str(NAT_GATEWAY_V4), prefixlen=BACK_V4.prefixlen)
                ipr.addr("del", index=eth0, address=str(NAT_GATEWAY_V6), prefixlen=BACK_V6.prefixlen)
        with director.iproute() as ipr:
            _add_address(ipr, "eth0", f"{NAT_GATEWAY_V4}/{BACK_V4.prefixlen}")
            _add_address(ipr, "eth0", f"{NAT_GATEWAY_V6}/{BACK_V6.prefixlen}")
        self.gateway_director = director

    def add_vip(self, vip: IPAddress, director: Host | None = None) -> None:
        """Put a VIP on a director, as an `ipvsadm` setup does by hand: an IPv4 VIP on the dummy interface
        `vip0` (Linux answers ARP for it on eth0), an IPv6 VIP on eth0 itself, because neighbour
        solicitations are answered only for addresses on the interface they arrive on."""
        target = director or self.directors[0]
        with target.iproute() as ipr:
            if vip.version == 6:
                _add_address(ipr, "eth0", f"{vip}/{vip.max_prefixlen}")
                return
            if not ipr.link_lookup(ifname=VIP_INTERFACE):
                ipr.link("add", ifname=VIP_INTERFACE, kind="dummy")
                ipr.link("set", index=_interface_index(ipr, VIP_INTERFACE), state="up")
            _add_address(ipr, VIP_INTERFACE, f"{vip}/{vip.max_prefixlen}")

    def configure_forwarding(self, mode: Forwarding, vips: Sequence[IPAddress]) -> None:
        """Prepare the real servers for a forwarding method.

        NAT: nothing more (their gateway is the director). DR: each VIP on lo, arp_ignore=1 and
        arp_announce=2 so they never answer ARP for it, and a direct route back to the clients. TUN: ipip
        loaded, each VIP on tunl0, rp_filter off (decapsulated packets arrive on tunl0), direct route back.
        """
        if mode is Forwarding.NAT:
            return
        if mode is Forwarding.TUN:
            subprocess.run(["modprobe", "-a", "ipip", "ip6_tunnel"], check=True, capture_output=True)
        device = "lo" if mode is Forwarding.DR else "tunl0"
        for host in self.real_servers:
            for scope in ("all", "eth0"):
                host.sysctl(f"net.ipv4.conf.{scope}.arp_ignore", 1)
                host.sysctl(f"net.ipv4.conf.{scope}.arp_announce", 2)
            with host.iproute() as ipr:
                if mode is Forwarding.TUN:
                    ipr.link("set", index=_interface_index(ipr, "tunl0"), state="up")
                    for scope in ("all", "default", "tunl0", "eth0"):
                        host.sysctl(f"net.ipv4.conf.{scope}.rp_filter", 0)
                for vip in vips:
                    vip_device = device if vip.version == 4 or mode is Forwarding.DR else "ip6tnl0"
                    if vip_device == "ip6tnl0":
                        ipr.link("set", index=_interface_index(ipr, vip_device), state="up")
                    _add_address(ipr, vip_device, f"{vip}/{vip.max_prefixlen}")
                eth0 = _interface_index(ipr, "eth0")
                # Replies go straight to the client, not through the director.
                with contextlib.suppress(Exception):
                    ipr.route("add", dst=str(FRONT_V4), oif=eth0)
                with contextlib.suppress(Exception):
                    ipr.route("add", dst=str(FRONT_V6), oif=eth0)

    # -- servers --------------------------------------------------------------------------------------------
    def serve_http(
        self, port: int = 80, hosts: Sequence[Host] | None = None, ipv6: bool = True
    ) -> NameServers:
        """An HTTP server on every real server (or `hosts`), answering its host name."""
        for host in hosts if hosts is not None else self.real_servers:
            self.servers.add_http(host, port, ipv6=ipv6)
        return self.servers

    def serve_tcp(self, port: int, hosts: Sequence[Host] | None = None, ipv6: bool = True) -> NameServers:
        for host in hosts if hosts is not None else self.real_servers:
            self.servers.add_tcp(host, port, ipv6=ipv6)
        return self.servers

    def serve_udp(self, port: int, hosts: Sequence[Host] | None = None, ipv6: bool = True) -> NameServers:
        for host in hosts if hosts is not None else self.real_servers:
            self.servers.add_udp(host, port, ipv6=ipv6)
        return self.servers

    # -- teardown -------------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for host in self.hosts:
            host.stop_processes()
        self.servers.close()
        for name in reversed(self._created):
            netns.delete_netns(name)
        self._created.clear()
