"""IPv6 VIPs on the agent's dummy interface are answered to neighbour solicitations on the uplink (proxy NDP).

Linux answers an IPv6 solicitation only for an address on the interface it arrives on; without the proxy
entry a neighbour's cache entry for the VIP ends FAILED as soon as the announcement's entry goes stale.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_netns import netns, require_root_guest, sh, veth_to_netns
from lvs_agent.addresses import NetlinkVipAddresses

pytestmark = pytest.mark.kernel

VIP6 = "2001:db8:1::100"  # inside the uplink's /64: neighbours solicit it rather than route to it
UPLINK = "ndpup0"


def connect_from(namespace: str, address: str, port: int) -> str:
    """Connect from ``namespace``; return "" on success, else the error (neighbour resolution included)."""
    script = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(('{address}', {port}), timeout=5).close()\n"
        "except OSError as error:\n"
        "    print(error)\n"
    )
    return sh("ip", "netns", "exec", namespace, sys.executable, "-c", script).strip()


def forwarding(device: str, value: int) -> None:
    Path(f"/proc/sys/net/ipv6/conf/{device}/forwarding").write_text(f"{value}\n")


@pytest.fixture
def uplink() -> Iterator[NetlinkVipAddresses]:
    require_root_guest()
    with netns("ndpnbr"):
        veth_to_netns(UPLINK, "ndpnbr")
        sh("ip", "addr", "add", "2001:db8:1::1/64", "dev", UPLINK, "nodad")
        sh("ip", "-n", "ndpnbr", "addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad")
        vips = NetlinkVipAddresses(interface="lvsndp0", uplink=UPLINK)
        try:
            vips.ensure_interface()
            yield vips
        finally:
            vips.close()
            sh("ip", "link", "del", "lvsndp0", check=False)
            sh("ip", "link", "del", UPLINK, check=False)


def test_a_neighbour_resolves_an_ipv6_vip_held_on_the_dummy_interface(uplink: NetlinkVipAddresses) -> None:
    forwarding(UPLINK, 1)
    uplink.add(VIP6)
    assert uplink.proxied(VIP6) == [UPLINK]
    assert Path(f"/proc/sys/net/ipv6/conf/{UPLINK}/proxy_ndp").read_text().strip() == "1"
    assert uplink.problems == {}
    with socket.create_server((VIP6, 8080), family=socket.AF_INET6):
        # no announcement and no cached entry: the neighbour must solicit and get an answer
        sh("ip", "-n", "ndpnbr", "neigh", "flush", "dev", "eth0")
        assert connect_from("ndpnbr", VIP6, 8080) == "", sh("ip", "-n", "ndpnbr", "-6", "neigh")
    uplink.add(VIP6)  # idempotent
    uplink.remove(VIP6)
    assert uplink.proxied(VIP6) == []  # nothing left answering for a VIP this director gave up
    assert VIP6 not in uplink.owned()


def test_without_the_proxy_entry_the_vip_is_not_answered(uplink: NetlinkVipAddresses) -> None:
    """The control: the same address, held on the dummy interface without a proxy entry, fails to resolve."""
    forwarding(UPLINK, 1)
    sh("ip", "addr", "add", f"{VIP6}/128", "dev", "lvsndp0", "nodad")
    with socket.create_server((VIP6, 8081), family=socket.AF_INET6):
        sh("ip", "-n", "ndpnbr", "neigh", "flush", "dev", "eth0")
        assert connect_from("ndpnbr", VIP6, 8081) != ""


def test_forwarding_off_is_reported_with_the_fix(uplink: NetlinkVipAddresses) -> None:
    forwarding(UPLINK, 0)
    uplink.add(VIP6)
    problem = uplink.problems[UPLINK]
    assert f"net.ipv6.conf.{UPLINK}.forwarding is 0" in problem
    assert "set it to 1" in problem
    forwarding(UPLINK, 1)
    uplink.remove(VIP6)
    uplink.add(VIP6)
    assert uplink.problems == {}


def test_held_addresses_are_rechecked_adopted_without_proxy_and_problems_clear(
    uplink: NetlinkVipAddresses,
) -> None:
    """An agent restarted over a VIP taken by an older version (no proxy entry) adds it on its first look;
    a sysctl fixed on the node clears the problem at the next re-check, without a takeover."""
    forwarding(UPLINK, 0)
    sh("ip", "addr", "add", f"{VIP6}/128", "dev", "lvsndp0", "nodad")  # held, no proxy entry
    restarted = NetlinkVipAddresses(interface="lvsndp0", uplink=UPLINK)
    try:
        assert restarted.owned() == {VIP6}
        assert restarted.proxied(VIP6) == [UPLINK]
        assert f"net.ipv6.conf.{UPLINK}.forwarding is 0" in restarted.problems[UPLINK]
        forwarding(UPLINK, 1)
        restarted._ipv6_checked_at = float("-inf")  # the next periodic re-check is due
        restarted.owned()
        assert restarted.problems == {}
        with socket.create_server((VIP6, 8082), family=socket.AF_INET6):
            sh("ip", "-n", "ndpnbr", "neigh", "flush", "dev", "eth0")
            assert connect_from("ndpnbr", VIP6, 8082) == ""
        restarted.remove(VIP6)
        restarted._ipv6_checked_at = float("-inf")
        assert restarted.owned() == frozenset()
        assert restarted.proxied(VIP6) == []
    finally:
        restarted.close()
