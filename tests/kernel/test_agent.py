"""The real agent process against real IPVS in the guest: traffic through the VIP in NAT, DR and Tunnel
with the distribution each scheduler promises, spec changes with minimal writes, kill -9 and restart
under load with no failed request and no write, and foreign IPVS state left byte-identical."""

from __future__ import annotations

import collections
import ipaddress
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from agent_support import (
    AgentProcess,
    Load,
    agents,
    kernel_table,
    reachable,
    resolved_service,
    write_desired,
)
from lvs_agent.netlink import IpvsNetlink
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import Reconciler
from lvs_api.compiler import compile_resolved
from lvs_api.ipvs import DestKey, Family, OpKind, Protocol, ServiceKey
from lvs_api.models import ResolvedService
from lvs_api.planner import plan
from lvs_guest.client import Client
from lvs_guest.topology import Forwarding, Topology

TopologyFactory = Callable[..., Topology]
Ipvsadm = Callable[..., subprocess.CompletedProcess[str]]


def reconciler_for(kernel: IpvsNetlink, workdir: Path) -> Reconciler:
    return Reconciler(node_labels={}, kernel=kernel, record=OwnershipRecord(workdir / "owned.json"),
                      compile_service=compile_resolved, plan=plan)


def members(topo: Topology, weights: tuple[int, ...] = (1, 1)) -> list[tuple[str, int]]:
    return [(str(rs.ipv4), weight) for rs, weight in zip(topo.real_servers, weights, strict=False)]


@pytest.mark.parametrize("mode", [Forwarding.NAT, Forwarding.DR, Forwarding.TUN], ids=lambda m: m.value)
def test_traffic_through_the_vip_with_each_scheduler(
    topology: TopologyFactory, tmp_path: Path, mode: Forwarding
) -> None:
    topo = topology(directors=1, real_servers=2, clients=1)
    vip = topo.vip(0)
    forwarding = {"nat": "NAT", "dr": "DirectRouting", "tun": "Tunnel"}[mode.value]
    topo.configure_forwarding(mode, [vip])
    real_port = 8080 if mode is Forwarding.NAT else 80
    topo.serve_http(real_port)
    desired = tmp_path / "desired.yaml"

    def apply(**options: object) -> None:
        weights = options.pop("weights", (1, 1))
        assert isinstance(weights, tuple)
        write_desired(desired, [resolved_service(
            "web", str(vip), members(topo, weights), forwarding=forwarding,
            target_port=real_port if mode is Forwarding.NAT else None, **options)])  # type: ignore[arg-type]

    apply(scheduler="rr")
    agent = AgentProcess(topo.directors[0], tmp_path, desired, tmp_path / "leases")
    client = topo.client
    with agents([agent]):
        agent.wait_for(lambda: bool(agent.passes()), what="first pass")
        agent.wait_for(lambda: str(vip) in topo.directors[0].run(["ip", "-o", "addr", "show", "lvs0"]).stdout,
                       what="VIP on lvs0")
        # rr: even
        answers = collections.Counter(client.http_get(vip, 80, count=8))
        assert answers == {"rs1": 4, "rs2": 4}, answers
        # wrr 1:3: by weight
        apply(scheduler="wrr", weights=(1, 3))
        agent.wait_for(lambda: kernel_table(topo.directors[0])[
            ServiceKey(Family.INET, Protocol.TCP, str(vip), 80)].config.scheduler == "wrr", what="wrr")
        answers = collections.Counter(client.http_get(vip, 80, count=8))
        assert answers == {"rs1": 2, "rs2": 6}, answers
        # sh: sticky by source address, and different sources spread
        apply(scheduler="sh")
        agent.wait_for(lambda: kernel_table(topo.directors[0])[
            ServiceKey(Family.INET, Protocol.TCP, str(vip), 80)].config.scheduler == "sh", what="sh")
        sources = [ipaddress.ip_address("192.0.2.150") + index for index in range(8)]
        with topo.clients[0].iproute() as ipr:
            eth0 = ipr.link_lookup(ifname="eth0")[0]
            for source in sources:
                ipr.addr("add", index=eth0, address=str(source), prefixlen=32)
        seen: dict[str, set[str]] = {}
        for source in sources:
            seen[str(source)] = set(Client(topo.clients[0]).http_get(vip, 80, count=3, source=source))
        assert all(len(names) == 1 for names in seen.values()), seen
        assert {name for names in seen.values() for name in names} == {"rs1", "rs2"}, seen
        # persistence on rr: one client keeps its server
        apply(scheduler="rr", persistence=60)
        agent.wait_for(lambda: kernel_table(topo.directors[0])[
            ServiceKey(Family.INET, Protocol.TCP, str(vip), 80)].config.timeout == 60, what="persistence")
        assert len(set(client.http_get(vip, 80, count=6))) == 1
        assert all(failed == 0 for _, _, _, failed in agent.passes())


def test_spec_change_is_applied_with_minimal_writes(topology: TopologyFactory, tmp_path: Path) -> None:
    topo = topology(directors=1, real_servers=3, clients=1)
    director = topo.directors[0]
    vip = str(topo.vip(0))
    key = ServiceKey(Family.INET, Protocol.TCP, vip, 80)

    def desired(weights: tuple[int, ...], scheduler: str = "rr") -> dict[str, ResolvedService]:
        document = resolved_service("web", vip, members(topo, weights), scheduler=scheduler)
        return {"demo/web": ResolvedService.model_validate(document)}

    with IpvsNetlink(netns=director.netns) as kernel:
        reconciler = reconciler_for(kernel, tmp_path)
        first = reconciler.reconcile_once(desired((1, 1, 1), scheduler="wlc"))
        assert first.ok and kernel.writes == 4  # one service, three destinations
        cases = [
            (desired((1, 5, 1), scheduler="wlc"), [OpKind.EDIT_DEST]),  # one weight
            (desired((1, 5, 1)), [OpKind.EDIT_SERVICE]),  # the scheduler
            (desired((1, 5)), [OpKind.DEL_DEST]),  # a member removed
            (desired((1, 5, 2)), [OpKind.ADD_DEST]),  # and back
            (desired((1, 5, 2)), []),  # nothing changed: nothing written
        ]
        for state, expected in cases:
            before = kernel.writes
            result = reconciler.reconcile_once(state)
            assert [op.kind for op in result.ops] == expected
            assert kernel.writes - before == len(expected)
            assert result.ok
        dests = kernel.dump()[key].dests
        assert dests[DestKey(Family.INET, str(topo.real_servers[2].ipv4), 80)].weight == 2


def test_kill9_and_restart_under_load_fails_no_request_and_writes_nothing(
    topology: TopologyFactory, tmp_path: Path
) -> None:
    topo = topology(directors=1, real_servers=2, clients=1)
    vip = topo.vip(0)
    topo.serve_http(8080)
    desired = tmp_path / "desired.yaml"
    write_desired(desired, [resolved_service("web", str(vip), members(topo), target_port=8080)])
    agent = AgentProcess(topo.directors[0], tmp_path, desired, tmp_path / "leases")
    with agents([agent]):
        agent.wait_for(lambda: bool(agent.passes()), what="first pass")
        agent.wait_for(lambda: reachable(topo.client, str(vip)), what="traffic through the VIP")
        table_before = kernel_table(topo.directors[0])
        with Load(topo.client, str(vip)) as load:
            agent.wait_for(lambda: len(load.results) >= 10, what="load running")
            agent.kill9()
            agent.start()
            agent.wait_for(lambda: bool(agent.passes()), what="first pass after restart")
            # the restarted agent has taken its VIP group back (Lease re-acquired, same term)
            agent.wait_for(lambda: "became active" in agent.text().split("=== start 2", 1)[-1],
                           what="VIP group re-taken")
            settled = len(load.results)
            agent.wait_for(lambda: len(load.results) >= settled + 10, what="load after restart")
        assert load.failures() == [], load.failures()[:5]
        assert len(load.results) >= 20
        assert {answer for _, _, ok, answer in load.results if ok} == {"rs1", "rs2"}
        restarted = agent.passes(start=2)
        assert restarted and all(sent == 0 for _, _, sent, _ in restarted), restarted
        assert kernel_table(topo.directors[0]) == table_before


def test_foreign_services_and_addresses_are_byte_identical_after_100_syncs_with_churn(
    topology: TopologyFactory, tmp_path: Path, ipvsadm: Ipvsadm
) -> None:
    topo = topology(directors=1, real_servers=4, clients=1)
    director = topo.directors[0]
    # kube-proxy-like state: a dummy with service addresses, and their IPVS services
    director.run(["ip", "link", "add", "kube-ipvs0", "type", "dummy"])
    for address in ("198.51.100.200", "198.51.100.201"):
        director.run(["ip", "addr", "add", f"{address}/32", "dev", "kube-ipvs0"])
        ipvsadm(director, "-A", "-t", f"{address}:443", "-s", "rr")
        ipvsadm(director, "-a", "-t", f"{address}:443", "-r", "198.51.100.50:6443", "-m", "-w", "1")
    # an operator's own rules: UDP, a firewall mark, IPv6, one clashing with a VIP we are asked to serve
    ipvsadm(director, "-A", "-u", "203.0.113.200:53", "-s", "sh", "-b", "sh-port")
    ipvsadm(director, "-a", "-u", "203.0.113.200:53", "-r", "198.51.100.53:53", "-g", "-w", "7")
    ipvsadm(director, "-A", "-f", "77", "-s", "wlc", "-p", "120")
    ipvsadm(director, "-A", "-t", "[2001:db8:113::99]:443", "-s", "lc")
    ipvsadm(director, "-A", "-t", "203.0.113.99:80", "-s", "rr")
    foreign_rules = ipvsadm(director, "-Sn").stdout
    foreign_addresses = director.run(["ip", "-d", "addr", "show", "kube-ipvs0"]).stdout
    rng = random.Random(7)
    vips = [str(topo.vip(index)) for index in range(1, 6)]
    real = [str(rs.ipv4) for rs in topo.real_servers]
    with IpvsNetlink(netns=director.netns) as kernel:
        reconciler = reconciler_for(kernel, tmp_path)
        for sync in range(100):
            documents = [
                resolved_service(f"svc{index}", vip, [(address, rng.randint(0, 5))
                                                     for address in rng.sample(real, rng.randint(1, 4))],
                                 scheduler=rng.choice(["rr", "wrr", "lc", "sh"]))
                for index, vip in enumerate(vips) if rng.random() < 0.7
            ]
            documents.append(resolved_service("clash", "203.0.113.99", [(real[0], 1)]))
            state = {
                f"demo/{doc['metadata']['name']}": ResolvedService.model_validate(doc) for doc in documents
            }
            result = reconciler.reconcile_once(state)
            assert result.failed == 0, (sync, result.outcomes)
            assert result.outcomes["demo/clash"].reason == "Conflict"
    ours_left = [line for line in ipvsadm(director, "-Sn").stdout.splitlines() if line not in foreign_rules]
    assert all(any(vip in line for vip in vips) for line in ours_left), ours_left
    foreign_lines = foreign_rules.splitlines()
    now = ipvsadm(director, "-Sn").stdout.splitlines()
    assert [line for line in now if line in foreign_lines] == foreign_lines
    assert ipvsadm(director, "-Sn").stdout.count("203.0.113.99") == foreign_rules.count("203.0.113.99")
    assert director.run(["ip", "-d", "addr", "show", "kube-ipvs0"]).stdout == foreign_addresses
    # and with nothing desired, only the foreign rules remain, byte for byte
    with IpvsNetlink(netns=director.netns) as kernel:
        reconciler = reconciler_for(kernel, tmp_path)
        reconciler.reconcile_once({})
    assert ipvsadm(director, "-Sn").stdout == foreign_rules


def test_ipv6_vip_through_the_agent(topology: TopologyFactory, tmp_path: Path) -> None:
    topo = topology(directors=1, real_servers=2, clients=1)
    vip = topo.vip(0, version=6)
    topo.serve_http(8080)
    desired = tmp_path / "desired.yaml"
    write_desired(desired, [resolved_service(
        "web6", str(vip), [(str(rs.ipv6), 1) for rs in topo.real_servers], target_port=8080)])
    agent = AgentProcess(topo.directors[0], tmp_path, desired, tmp_path / "leases")
    with agents([agent]):
        agent.wait_for(lambda: reachable(topo.client, str(vip)), what="traffic through the IPv6 VIP")
        answers = collections.Counter(topo.client.http_get(vip, 80, count=8))
        assert answers == {"rs1": 4, "rs2": 4}, answers
        key = ServiceKey(Family.INET6, Protocol.TCP, str(vip), 80)
        assert set(kernel_table(topo.directors[0])[key].dests) == {
            DestKey(Family.INET6, str(rs.ipv6), 8080) for rs in topo.real_servers
        }
