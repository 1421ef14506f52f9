"""The harness works: real IPVS in the guest, the namespace topology, and ipvsadm-programmed NAT / DR /
TUN services carrying round-robin traffic from the client namespace to the real servers."""

from __future__ import annotations

import itertools
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from lvs_guest.client import Client
from lvs_guest.netns import NETNS_RUN_DIR
from lvs_guest.topology import Forwarding, Topology

Ipvsadm = Callable[..., subprocess.CompletedProcess[str]]
TopologyFactory = Callable[..., Topology]


def test_ipvs_is_available_in_the_guest_kernel() -> None:
    assert Path("/proc/sys/kernel/hostname").read_text().strip() == "lvs-guest"
    modules = {line.split()[0] for line in Path("/proc/modules").read_text().splitlines()}
    assert "ip_vs" in modules
    assert Path("/proc/net/ip_vs").read_text().startswith("IP Virtual Server version")


def test_topology_connects_every_host_and_tears_down(topology: TopologyFactory) -> None:
    topo = topology(directors=2, real_servers=3, clients=2)
    topo.serve_http(8080)
    for director in topo.directors:
        assert director.read_sysctl("net.ipv4.ip_forward") == "1"
        for version in (4, 6):
            client = Client(director)
            for rs in topo.real_servers:
                address = rs.ipv4 if version == 4 else rs.ipv6
                assert client.http_get(address, 8080) == [rs.name]
    for host in topo.hosts:
        with host.iproute() as ipr:
            lo = ipr.get_links(ipr.link_lookup(ifname="lo")[0])[0]
            assert lo.get("flags") & 1, f"lo is down in {host.netns}"  # IFF_UP
    # the second client reaches the first one over the bridge
    topo.serve_tcp(7, hosts=[topo.clients[0]])
    assert Client(topo.clients[1]).tcp_echo(topo.clients[0].ipv4, 7) == ["client1"]
    names = [host.netns for host in topo.hosts] + [topo.lan]
    sleeper = topo.real_servers[0].popen(["sleep", "300"])
    topo.close()
    assert sleeper.poll() is not None, "a process started in the topology outlived it"
    left = {path.name for path in NETNS_RUN_DIR.iterdir()} if NETNS_RUN_DIR.exists() else set()
    assert not left & set(names)


def _program_round_robin(
    ipvsadm: Ipvsadm,
    topo: Topology,
    mode: Forwarding,
    vip: str,
    *,
    port: int,
    real_port: int,
    proto: str = "-t",
) -> None:
    director = topo.directors[0]
    service = f"[{vip}]:{port}" if ":" in vip else f"{vip}:{port}"
    ipvsadm(director, "-A", proto, service, "-s", "rr")
    for rs in topo.real_servers:
        address = rs.ipv4 if ":" not in vip else rs.ipv6
        real = f"[{address}]:{real_port}" if ":" in vip else f"{address}:{real_port}"
        ipvsadm(director, "-a", proto, service, "-r", real, mode.ipvsadm_flag, "-w", "1")


def _assert_round_robin(names: list[str], servers: list[str]) -> None:
    assert sorted(set(names)) == sorted(servers), names
    assert all(a != b for a, b in itertools.pairwise(names)), f"not round-robin: {names}"
    assert all(names.count(s) == len(names) // len(servers) for s in servers), names


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("mode", list(Forwarding), ids=lambda m: m.value)
def test_ipvsadm_service_round_robins_http(
    topology: TopologyFactory, ipvsadm: Ipvsadm, mode: Forwarding, version: int
) -> None:
    topo = topology(real_servers=2)
    vip = topo.vip(0, version)
    topo.add_vip(vip)
    topo.configure_forwarding(mode, [vip])
    # NAT may change the port; DR and TUN cannot (the packet reaches the real server unchanged)
    real_port = 8080 if mode is Forwarding.NAT else 80
    topo.serve_http(real_port)
    _program_round_robin(ipvsadm, topo, mode, str(vip), port=80, real_port=real_port)
    names = topo.client.http_get(vip, 80, count=8)
    _assert_round_robin(names, ["rs1", "rs2"])
    listing = ipvsadm(topo.directors[0], "-Ln").stdout
    expected = {"nat": "Masq", "dr": "Route", "tun": "Tunnel"}[mode.value]
    assert listing.count(expected) == 2, listing
    assert topo.servers.hits == {"rs1": 4, "rs2": 4}


def test_nat_udp_round_robins_datagrams(topology: TopologyFactory, ipvsadm: Ipvsadm) -> None:
    topo = topology(real_servers=3)
    vip = topo.vip(1)
    topo.add_vip(vip)
    topo.serve_udp(5353)
    _program_round_robin(ipvsadm, topo, Forwarding.NAT, str(vip), port=53, real_port=5353, proto="-u")
    names = topo.client.udp_echo(vip, 53, count=6)
    _assert_round_robin(names, ["rs1", "rs2", "rs3"])


def test_a_vip_without_a_service_refuses_connections(topology: TopologyFactory) -> None:
    # The control for the tests above: traffic reaches the servers through IPVS, not around it.
    topo = topology(real_servers=2)
    vip = topo.vip(2)
    topo.add_vip(vip)
    topo.serve_http(80)
    with pytest.raises(ConnectionRefusedError):
        topo.client.http_get(vip, 80)
    assert topo.client.host.socket(socket.AF_INET, socket.SOCK_STREAM).family == socket.AF_INET
