"""The VIP adapter against the guest's real rtnetlink: the agent's dummy interface, foreign addresses
left alone, and takeover announcements seen by a neighbour in another network namespace."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest
from agent_netns import link_mac, neighbour_mac, netns, require_root_guest, sh, veth_to_netns
from lvs_agent.addresses import NetlinkVipAddresses, VipConflictError

pytestmark = pytest.mark.kernel

VIP4 = "203.0.113.10"
VIP6 = "2001:db8::10"


@pytest.fixture
def adapter() -> Iterator[NetlinkVipAddresses]:
    require_root_guest()
    vips = NetlinkVipAddresses(interface="lvstest0")
    try:
        yield vips
    finally:
        vips.close()
        sh("ip", "link", "del", "lvstest0", check=False)


def addresses_on(device: str) -> str:
    return sh("ip", "-o", "addr", "show", "dev", device)


def test_interface_is_created_up_and_idempotent(adapter: NetlinkVipAddresses) -> None:
    adapter.ensure_interface()
    adapter.ensure_interface()
    link = sh("ip", "-d", "-o", "link", "show", "lvstest0")
    assert "dummy" in link
    assert ",UP" in link or "<UP" in link or "UP," in link


def test_add_remove_ipv4_and_ipv6_host_addresses(adapter: NetlinkVipAddresses) -> None:
    adapter.ensure_interface()
    adapter.add(VIP4)
    adapter.add(VIP6)
    adapter.add(VIP4)  # idempotent
    listing = addresses_on("lvstest0")
    assert f"{VIP4}/32" in listing
    assert f"{VIP6}/128" in listing
    assert "tentative" not in listing  # no DAD wait: usable at once
    assert adapter.owned() == {VIP4, VIP6}
    # ownership is read from the interface, so a fresh instance (an agent restart) sees the same
    again = NetlinkVipAddresses(interface="lvstest0")
    try:
        assert again.owned() == {VIP4, VIP6}
    finally:
        again.close()
    adapter.remove(VIP4)
    adapter.remove(VIP4)  # idempotent
    adapter.remove("2001:DB8:0::10")  # any spelling
    assert adapter.owned() == frozenset()
    assert VIP4 not in addresses_on("lvstest0")


def test_foreign_vip_is_a_conflict_and_left_alone() -> None:
    require_root_guest()
    sh("ip", "link", "add", "kube-ipvs0", "type", "dummy")
    vips = NetlinkVipAddresses(interface="lvstest0")
    try:
        sh("ip", "addr", "add", f"{VIP4}/32", "dev", "kube-ipvs0")
        sh("ip", "addr", "add", "198.51.100.77/32", "dev", "kube-ipvs0")
        before = addresses_on("kube-ipvs0")
        vips.ensure_interface()
        assert vips.foreign_holders(VIP4) == ["kube-ipvs0"]
        with pytest.raises(VipConflictError, match="kube-ipvs0"):
            vips.add(VIP4)
        vips.add("203.0.113.11")
        vips.remove("198.51.100.77")  # not ours: removing it from our interface is a no-op
        assert vips.owned() == {"203.0.113.11"}
        assert addresses_on("kube-ipvs0") == before
    finally:
        vips.close()
        sh("ip", "link", "del", "lvstest0", check=False)
        sh("ip", "link", "del", "kube-ipvs0", check=False)


def wait_for(predicate: object, timeout: float = 20.0) -> bool:
    """Poll until predicate() holds; generous, since a loaded guest may be slow to process the
    announcement, and a passing test returns as soon as it does."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_takeover_announcements_update_a_neighbours_cache() -> None:
    require_root_guest()
    with netns("nbr"):
        veth_to_netns("uplinktest", "nbr")
        vips = NetlinkVipAddresses(interface="lvstest0", uplink="uplinktest")
        try:
            sh("ip", "addr", "add", "192.0.2.1/24", "dev", "uplinktest")
            sh("ip", "addr", "add", "2001:db8:1::1/64", "dev", "uplinktest", "nodad")
            sh("ip", "-n", "nbr", "addr", "add", "192.0.2.2/24", "dev", "eth0")
            sh("ip", "-n", "nbr", "addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad")
            sh("ip", "-n", "nbr", "route", "add", f"{VIP4}/32", "dev", "eth0")
            sh("ip", "-n", "nbr", "route", "add", f"{VIP6}/128", "dev", "eth0")
            # the neighbour still believes the VIP is at the old director's MAC
            old_mac = "02:00:00:00:00:99"
            for vip in (VIP4, VIP6):
                sh("ip", "-n", "nbr", "neigh", "replace", vip, "lladdr", old_mac, "dev", "eth0",
                   "nud", "stale")
                assert neighbour_mac(vip, "eth0", "nbr") == old_mac
            vips.ensure_interface()
            ours = link_mac("uplinktest")
            for vip in (VIP4, VIP6):
                vips.add(vip)
                vips.announce(vip)
            assert wait_for(lambda: neighbour_mac(VIP4, "eth0", "nbr") == ours), sh(
                "ip", "-n", "nbr", "neigh"
            )
            assert wait_for(lambda: neighbour_mac(VIP6, "eth0", "nbr") == ours), sh(
                "ip", "-n", "nbr", "neigh"
            )
            # and the VIP answers from the neighbour's side
            with socket.create_server((VIP4, 8080)):
                sh("ip", "netns", "exec", "nbr", sys.executable, "-c",
                   f"import socket; socket.create_connection(('{VIP4}', 8080), timeout=2).close()")
        finally:
            vips.close()
            sh("ip", "link", "del", "lvstest0", check=False)
            sh("ip", "link", "del", "uplinktest", check=False)


def test_without_an_uplink_the_default_route_interface_is_announced_on() -> None:
    require_root_guest()
    with netns("nbr2"):
        veth_to_netns("uplinktest2", "nbr2")
        vips = NetlinkVipAddresses(interface="lvstest0")  # no uplink configured
        try:
            sh("ip", "addr", "add", "192.0.2.1/24", "dev", "uplinktest2")
            sh("ip", "route", "add", "default", "via", "192.0.2.254", "dev", "uplinktest2")
            sh("ip", "-n", "nbr2", "addr", "add", "192.0.2.2/24", "dev", "eth0")
            sh("ip", "-n", "nbr2", "neigh", "replace", VIP4, "lladdr", "02:00:00:00:00:98", "dev", "eth0",
               "nud", "stale")
            assert vips.uplink_for(4) == "uplinktest2"
            vips.ensure_interface()
            vips.add(VIP4)
            vips.announce(VIP4)
            ours = link_mac("uplinktest2")
            updated = wait_for(lambda: neighbour_mac(VIP4, "eth0", "nbr2") == ours)
            assert updated, sh("ip", "-n", "nbr2", "neigh")
        finally:
            vips.close()
            sh("ip", "route", "del", "default", check=False)
            sh("ip", "link", "del", "lvstest0", check=False)
            sh("ip", "link", "del", "uplinktest2", check=False)
