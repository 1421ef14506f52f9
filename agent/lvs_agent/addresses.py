"""VIP addresses: the agent's own dummy interface, and announcing a VIP after a takeover.

Ownership rule: every VIP the agent manages lives on one dummy interface that the agent creates and owns
(``lvs0`` by default). Whatever is on that interface is ours, so ownership survives an agent restart
without any record file, and an address anywhere else (kube-proxy's ``kube-ipvs0``, keepalived's VIPs on
``eth0``, an operator's own) is never touched. A VirtualService's ``natGateway`` (the real servers'
floating default gateway, lvs.cf ``nat_router``) is held the same way, as a host address on this interface:
the director answers ARP for it on the real-server side like for any local address, and it follows the
active role with the VIPs of its group. A VIP that is already present on another interface is a
conflict: reported, never taken.

Linux answers ARP for any local address, so an IPv4 VIP on ``lvs0`` is answered on the uplink. It answers an
IPv6 neighbour solicitation only for an address on the receiving interface, so an IPv6 VIP (or NAT
gateway) also gets a proxy-NDP entry on the interface its neighbours ask on (the one whose connected
prefix covers it, else the IPv6 uplink): proxy entries for our own addresses are ours, made and removed
with them. Linux answers for a proxy entry only where ``proxy_ndp`` and ``forwarding`` are on: the agent
turns ``proxy_ndp`` on for that interface, but leaves ``forwarding`` to the node's owner (it changes how the
node takes router advertisements) and reports it in ``problems`` with the fix.

After a takeover the new active director announces the VIP on its uplink so that neighbours' caches
point at it at once: a gratuitous ARP request for IPv4, an unsolicited neighbour advertisement with the
override flag for IPv6. Both are built here byte by byte and sent on a raw ``AF_PACKET`` socket
(``CAP_NET_RAW``), so no ``arping``/``ndsend`` binary is needed in the image.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import socket
import struct
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

DEFAULT_VIP_INTERFACE = "lvs0"
MAC_TTL = 5.0
IPV6_RECHECK = 10.0  # seconds between re-checks of held IPv6 addresses' proxy entries and sysctls

_IFA_F_NODAD = 0x02  # skip duplicate address detection: a /128 VIP must be usable at once
_ETH_P_ARP = 0x0806
_ETH_P_IPV6 = 0x86DD
_ERRNO_EEXIST = 17
_ERRNO_EADDRNOTAVAIL = 99
_ERRNO_ENOENT = 2
_NTF_PROXY = 0x08  # ndmsg flag: a proxy neighbour entry (the kernel's pneigh table)
_IPV6_CONF = Path("/proc/sys/net/ipv6/conf")


def canonical_vip(vip: str) -> str:
    """The VIP in ``ipaddress`` normal form (the spelling lvs_api uses)."""
    return str(ipaddress.ip_address(vip))


class VipAddresses(Protocol):
    """What the failover and reconcile code need from the host's addresses."""

    def ensure_interface(self) -> None:
        """Create the agent's dummy interface if missing and bring it up."""

    def owned(self) -> frozenset[str]:
        """VIPs currently on the agent's interface (canonical text)."""

    def foreign_holders(self, vip: str) -> list[str]:
        """Names of other interfaces that already carry ``vip`` (a conflict when non-empty)."""

    def add(self, vip: str) -> None:
        """Put ``vip`` on the agent's interface (idempotent)."""

    def remove(self, vip: str) -> None:
        """Take ``vip`` off the agent's interface (idempotent)."""

    def announce(self, vip: str, interface: str | None = None) -> None:
        """Tell the neighbours that ``vip`` is here now (GARP / unsolicited NA), on ``interface`` (a NAT
        gateway's real-server side) or else on the uplink."""

    def interface_towards(self, address: str) -> str | None:
        """The interface whose connected route covers ``address`` (not the agent's own), if any."""


class VipConflictError(RuntimeError):
    """The VIP is already on an interface the agent does not own."""

    def __init__(self, vip: str, holders: Iterable[str]) -> None:
        self.vip = vip
        self.holders = sorted(holders)
        super().__init__(f"VIP {vip} is already on interface(s) {', '.join(self.holders)}; not taking it")


# --- frames -------------------------------------------------------------------------------------------


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def gratuitous_arp_frame(vip: str, mac: str) -> bytes:
    """An Ethernet broadcast ARP request whose sender and target are both ``vip`` (RFC 5227 §3)."""
    source_mac = _mac_bytes(mac)
    ip = ipaddress.IPv4Address(vip).packed
    ethernet = b"\xff" * 6 + source_mac + struct.pack("!H", _ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + source_mac + ip + b"\x00" * 6 + ip
    return ethernet + arp


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def unsolicited_na_frame(vip: str, mac: str) -> bytes:
    """An unsolicited neighbour advertisement for ``vip`` to all-nodes, override flag set (RFC 4861 §7.2.6).

    The source is the VIP itself; the hop limit is 255 as receivers require.
    """
    source_mac = _mac_bytes(mac)
    source = ipaddress.IPv6Address(vip).packed
    all_nodes = ipaddress.IPv6Address("ff02::1").packed
    override = 0x20000000
    # type 136, code 0, checksum placeholder, flags, target, option 2 (target link-layer address, 8 bytes)
    icmp_body = struct.pack("!I", override) + source + struct.pack("!BB", 2, 1) + source_mac
    icmp_length = 4 + len(icmp_body)
    pseudo_header = source + all_nodes + struct.pack("!I3xB", icmp_length, 58)
    checksum = _checksum(pseudo_header + struct.pack("!BBH", 136, 0, 0) + icmp_body)
    icmp = struct.pack("!BBH", 136, 0, checksum) + icmp_body
    ipv6 = struct.pack("!IHBB", 6 << 28, icmp_length, 58, 255) + source + all_nodes
    ethernet = b"\x33\x33\x00\x00\x00\x01" + source_mac + struct.pack("!H", _ETH_P_IPV6)
    return ethernet + ipv6 + icmp


# --- the real adapter ---------------------------------------------------------------------------------


def _attr(message: Any, name: str) -> Any:
    return message.get_attr(name)


class _ThreadBoundIPRoute:
    """pyroute2's synchronous ``IPRoute`` drives its own asyncio loop, so it cannot be used from a thread
    whose loop is running (the agent's). This keeps one ``IPRoute`` in a dedicated thread and forwards
    each call there, blocking the caller for the (sub-millisecond) duration of the netlink request."""

    def __init__(self) -> None:
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtnl")
        self._ipr: Any = self._worker.submit(IPRoute).result()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._ipr, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._worker.submit(method, *args, **kwargs).result()

        return call

    def shutdown(self) -> None:
        self._worker.submit(self._ipr.close).result()
        self._worker.shutdown()


class NetlinkVipAddresses:
    """``VipAddresses`` over rtnetlink (pyroute2), in the current network namespace."""

    def __init__(
        self,
        interface: str = DEFAULT_VIP_INTERFACE,
        uplink: str | None = None,
        *,
        ipv6_conf: Path = _IPV6_CONF,
    ) -> None:
        self.interface = interface
        self.uplink = uplink
        self._ipv6_conf = ipv6_conf
        # interface -> what keeps proxied IPv6 addresses from being answered there, with the fix (for the
        # DirectorReport's errors); empty when every proxied address can be answered
        self.problems: dict[str, str] = {}
        self._ipr = _ThreadBoundIPRoute()
        # uplink -> (MAC, when read): an announcement right after a takeover then costs one send; re-read
        # after MAC_TTL so that a changed MAC (a bond failing over) is picked up
        self._macs: dict[str, tuple[str, float]] = {}
        self._ipv6_checked_at = float("-inf")

    def close(self) -> None:
        self._ipr.shutdown()

    def _index(self, name: str) -> int | None:
        found = self._ipr.link_lookup(ifname=name)
        return int(found[0]) if found else None

    def _own_index(self) -> int:
        index = self._index(self.interface)
        if index is None:
            self.ensure_interface()
            index = self._index(self.interface)
            assert index is not None
        return index

    def ensure_interface(self) -> None:
        index = self._index(self.interface)
        if index is None:
            try:
                self._ipr.link("add", ifname=self.interface, kind="dummy")
            except NetlinkError as error:
                if error.code != _ERRNO_EEXIST:  # another agent instance raced us
                    raise
            index = self._index(self.interface)
            assert index is not None
        self._ipr.link("set", index=index, state="up")

    def _addresses(self) -> list[tuple[int, str]]:
        """(interface index, canonical address) for every non-link-local address of the namespace."""
        found: list[tuple[int, str]] = []
        for message in self._ipr.get_addr():
            address = _attr(message, "IFA_ADDRESS")
            if address is None:
                continue
            parsed = ipaddress.ip_address(address)
            if parsed.is_link_local:
                continue
            found.append((int(message["index"]), str(parsed)))
        return found

    def owned(self) -> frozenset[str]:
        self._warm_uplink_macs()
        index = self._index(self.interface)
        if index is None:
            return frozenset()
        held = frozenset(address for owner, address in self._addresses() if owner == index)
        now = time.monotonic()
        if now - self._ipv6_checked_at >= IPV6_RECHECK:
            self._ipv6_checked_at = now
            self._maintain_ipv6(held)
        return held

    def _maintain_ipv6(self, held: frozenset[str]) -> None:
        """Held IPv6 addresses keep their proxy entries (also those taken by an agent version that made
        none, adopted at an upgrade without a change), and ``problems`` follows the node's sysctls as they
        are now, not as they were at the last takeover."""
        checked: set[str] = set()
        held_v6 = [address for address in held if ipaddress.ip_address(address).version == 6]
        table = self._proxy_table() if held_v6 else {}
        for address in held_v6:
            device = self.proxy_interface(address)
            if device is None:
                continue
            if device not in table.get(address, ()):
                self._add_proxy(address)  # checks the device's sysctls too
            elif device not in checked:
                self._check_ipv6_answers(device)
            checked.add(device)
        for device in set(self.problems) - checked:
            del self.problems[device]  # no held IPv6 address is answered there any more

    def foreign_holders(self, vip: str) -> list[str]:
        vip = canonical_vip(vip)
        own = self._index(self.interface)
        indexes = {owner for owner, address in self._addresses() if address == vip and owner != own}
        names: list[str] = []
        for index in sorted(indexes):
            links = self._ipr.get_links(index)
            names.append(str(_attr(links[0], "IFLA_IFNAME")) if links else f"index {index}")
        return names

    def add(self, vip: str) -> None:
        vip = canonical_vip(vip)
        holders = self.foreign_holders(vip)
        if holders:
            raise VipConflictError(vip, holders)
        index = self._own_index()
        is_v6 = ipaddress.ip_address(vip).version == 6
        try:
            if is_v6:
                self._ipr.addr("add", index=index, address=vip, prefixlen=128, flags=_IFA_F_NODAD)
            else:
                self._ipr.addr("add", index=index, address=vip, prefixlen=32)
        except NetlinkError as error:
            if error.code != _ERRNO_EEXIST:
                raise
        if is_v6:
            self._add_proxy(vip)

    def remove(self, vip: str) -> None:
        vip = canonical_vip(vip)
        is_v6 = ipaddress.ip_address(vip).version == 6
        if is_v6:
            self._remove_proxies(vip)  # first: never answer for an address that is leaving
        index = self._index(self.interface)
        if index is None:
            return
        try:
            self._ipr.addr("del", index=index, address=vip, prefixlen=128 if is_v6 else 32)
        except NetlinkError as error:
            if error.code != _ERRNO_EADDRNOTAVAIL:
                raise

    # --- IPv6: proxy NDP ------------------------------------------------------------------------------

    def proxy_interface(self, address: str) -> str | None:
        """Where neighbours solicit ``address``: the interface whose connected prefix covers it, else the
        IPv6 uplink (a VIP routed to this director needs no answer; a routed setup has neither)."""
        return self.interface_towards(address) or self.uplink_for(6)

    def proxied(self, address: str) -> list[str]:
        """Interfaces holding a proxy-NDP entry for ``address``."""
        return sorted(self._proxy_table().get(canonical_vip(address), ()))

    def _proxy_table(self) -> dict[str, set[str]]:
        """Every IPv6 proxy-NDP entry of the namespace: address -> interface names (one dump)."""
        # the kernel dumps its proxy table only when the request's ndm_flags is NTF_PROXY; pyroute2 puts
        # `flags` into the request (not into its client-side filter) once an explicit dump_filter is given
        dump = self._ipr.neigh(
            "dump", family=socket.AF_INET6, flags=_NTF_PROXY, dump_filter=lambda _message: True
        )
        names: dict[int, str] = {}
        table: dict[str, set[str]] = {}
        for message in dump:
            destination = _attr(message, "NDA_DST")
            if not message["flags"] & _NTF_PROXY or destination is None:
                continue
            index = int(message["ifindex"])
            if index not in names:
                links = self._ipr.get_links(index)
                names[index] = str(_attr(links[0], "IFLA_IFNAME")) if links else f"index {index}"
            table.setdefault(canonical_vip(destination), set()).add(names[index])
        return table

    def _add_proxy(self, address: str) -> None:
        device = self.proxy_interface(address)
        if device is None:
            return
        index = self._index(device)
        if index is None:
            return
        try:
            self._ipr.neigh("add", dst=address, ifindex=index, flags=_NTF_PROXY)
        except NetlinkError as error:
            if error.code != _ERRNO_EEXIST:
                raise
        self._check_ipv6_answers(device)

    def _remove_proxies(self, address: str) -> None:
        for device in self.proxied(address):
            index = self._index(device)
            if index is None:
                continue
            try:
                self._ipr.neigh("del", dst=address, ifindex=index, flags=_NTF_PROXY)
            except NetlinkError as error:
                if error.code != _ERRNO_ENOENT:
                    raise

    def _check_ipv6_answers(self, device: str) -> None:
        """Turn ``proxy_ndp`` on for ``device``; record what still keeps Linux from answering there."""
        conf = self._ipv6_conf / device
        problems: list[str] = []
        try:
            if (conf / "proxy_ndp").read_text().strip() == "0":
                (conf / "proxy_ndp").write_text("1\n")
        except OSError as error:
            problems.append(
                f"net.ipv6.conf.{device}.proxy_ndp cannot be turned on ({error.strerror}): set it to 1 "
                "on the node (sysctl), or give the agent a writable /proc/sys"
            )
        try:
            forwarding = (conf / "forwarding").read_text().strip()
        except OSError:
            forwarding = "unknown"
        if forwarding != "1":
            problems.append(
                f"net.ipv6.conf.{device}.forwarding is {forwarding}: Linux answers neighbour solicitations "
                f"for the IPv6 VIPs proxied on {device} only when it is 1; set it to 1 on the node (and "
                f"accept_ra=2 if the node takes its IPv6 default route from router advertisements)"
            )
        if problems:
            self.problems[device] = "; ".join(problems)
        else:
            self.problems.pop(device, None)

    def _warm_uplink_macs(self) -> None:
        """Keep the uplinks' MACs fresh (the failover runner calls owned() every second), so that the
        announcement right after a takeover needs no lookup."""
        for version in (4, 6):
            uplink = self.uplink_for(version)
            if uplink is not None:
                with contextlib.suppress(RuntimeError, NetlinkError, IndexError):
                    self.uplink_mac(uplink)

    def uplink_for(self, version: int) -> str | None:
        """The configured uplink, else the interface of the default route of the VIP's family."""
        if self.uplink is not None:
            return self.uplink
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        for route in self._ipr.get_default_routes(family=family):
            index = _attr(route, "RTA_OIF")
            if index:
                links = self._ipr.get_links(int(index))
                if links:
                    return str(_attr(links[0], "IFLA_IFNAME"))
        return None

    def uplink_mac(self, uplink: str) -> str:
        index = self._index(uplink)
        if index is None:
            raise RuntimeError(f"uplink interface {uplink} does not exist")
        mac = str(_attr(self._ipr.get_links(index)[0], "IFLA_ADDRESS"))
        self._macs[uplink] = (mac, time.monotonic())
        return mac

    def interface_towards(self, address: str) -> str | None:
        parsed = ipaddress.ip_address(address)
        family = socket.AF_INET6 if parsed.version == 6 else socket.AF_INET
        own = self._index(self.interface)
        best: tuple[int, int] | None = None  # (prefix length, interface index): the longest match wins
        for route in self._ipr.get_routes(family=family, table=254):
            index = _attr(route, "RTA_OIF")
            destination = _attr(route, "RTA_DST")
            length = int(route["dst_len"])
            if not index or int(index) == own or destination is None or length == 0:
                continue
            covers = parsed in ipaddress.ip_network(f"{destination}/{length}", strict=False)
            if covers and (best is None or length > best[0]):
                best = (length, int(index))
        if best is None:
            return None
        links = self._ipr.get_links(best[1])
        return str(_attr(links[0], "IFLA_IFNAME")) if links else None

    def announce(self, vip: str, interface: str | None = None) -> None:
        vip = canonical_vip(vip)
        uplink = interface or self.uplink_for(ipaddress.ip_address(vip).version)
        if uplink is None:
            return  # no uplink and no default route: nothing to announce on (a routed setup)
        cached = self._macs.get(uplink)
        fresh = cached is not None and time.monotonic() - cached[1] < MAC_TTL
        mac = cached[0] if cached is not None and fresh else self.uplink_mac(uplink)
        if ipaddress.ip_address(vip).version == 4:
            frame, ethertype = gratuitous_arp_frame(vip, mac), _ETH_P_ARP
        else:
            frame, ethertype = unsolicited_na_frame(vip, mac), _ETH_P_IPV6
        try:
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype)) as raw:
                raw.bind((uplink, ethertype))
                raw.send(frame)
        except OSError:
            self._macs.pop(uplink, None)  # the interface may have changed: look it up again next time
            raise

