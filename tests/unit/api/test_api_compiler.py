"""The compiler: API objects + health -> kernel table, and the health policy."""

from __future__ import annotations

from typing import Any

from api_samples import vs_spec
from lvs_api.compiler import (
    CompileOptions,
    check_target,
    compile_resolved,
    compile_service,
    compile_table,
    service_keys,
)
from lvs_api.ipvs import (
    DestConfig,
    DestKey,
    Family,
    ForwardMethod,
    Protocol,
    ServiceFlag,
    ServiceKey,
    TunnelFlag,
    TunnelType,
)
from lvs_api.models import ResolvedMember, ResolvedService, VirtualServiceSpec

V4 = Family.INET
V6 = Family.INET6


def spec(**overrides: Any) -> VirtualServiceSpec:
    return VirtualServiceSpec.model_validate(vs_spec(**overrides))


def member(address: str, **fields: Any) -> ResolvedMember:
    return ResolvedMember.model_validate({"address": address, **fields})


MEMBERS = [member("198.51.100.11"), member("198.51.100.12", weight=2, upperThreshold=100, lowerThreshold=50)]


def test_nat_service_per_port_with_persistence() -> None:
    table = compile_service(spec(), MEMBERS)
    k80 = ServiceKey(V4, Protocol.TCP, "203.0.113.10", 80)
    k443 = ServiceKey(V4, Protocol.TCP, "203.0.113.10", 443)
    assert list(table) == [k80, k443]
    server = table[k80]
    assert server.config.scheduler == "wlc"
    assert server.config.flags == ServiceFlag.PERSISTENT
    assert (server.config.timeout, server.config.netmask) == (300, 24)
    assert server.dests == {
        DestKey(V4, "198.51.100.11", 80): DestConfig(ForwardMethod.MASQ, 1, 0, 0),
        DestKey(V4, "198.51.100.12", 80): DestConfig(ForwardMethod.MASQ, 2, 100, 50),
    }
    assert DestKey(V4, "198.51.100.11", 443) in table[k443].dests


def test_not_persistent_uses_full_netmask_and_no_timeout() -> None:
    table = compile_service(spec(persistence=None), MEMBERS)
    config = next(iter(table.values())).config
    assert (config.flags, config.timeout, config.netmask) == (0, 0, 32)
    table6 = compile_service(spec(vip="2001:db8::10", persistence=None), [member("2001:db8::11")])
    assert next(iter(table6.values())).config.netmask == 128


def test_ipv6_persistence_prefix_and_udp_one_packet() -> None:
    table = compile_service(
        spec(
            vip="2001:db8::10",
            ports=[{"port": 53, "protocol": "UDP"}],
            onePacket=True,
            persistence={"netmask": 64},
        ),
        [member("2001:DB8::11")],
    )
    ((key, server),) = table.items()
    assert key == ServiceKey(V6, Protocol.UDP, "2001:db8::10", 53)
    assert server.config.flags == ServiceFlag.PERSISTENT | ServiceFlag.ONEPACKET
    assert server.config.netmask == 64
    assert list(server.dests) == [DestKey(V6, "2001:db8::11", 53)]


def test_scheduler_flags_map_to_kernel_bits() -> None:
    sh = compile_service(
        spec(scheduler={"name": "sh", "flags": ["sh-fallback", "sh-port"]}, persistence=None), MEMBERS
    )
    assert next(iter(sh.values())).config == next(iter(sh.values())).config._replace(
        scheduler="sh", flags=ServiceFlag.SCHED1 | ServiceFlag.SCHED2
    )
    mh = compile_service(spec(scheduler={"name": "mh", "flags": ["mh-port"]}, persistence=None), MEMBERS)
    assert next(iter(mh.values())).config.flags == ServiceFlag.SCHED2


def test_ports_target_port_and_member_port_under_nat() -> None:
    table = compile_service(
        spec(ports=[{"port": 80, "targetPort": 8080}]),
        [member("198.51.100.11"), member("198.51.100.12", port=9090)],
    )
    assert set(next(iter(table.values())).dests) == {
        DestKey(V4, "198.51.100.11", 8080),
        DestKey(V4, "198.51.100.12", 9090),
    }


def test_direct_routing_keeps_the_virtual_port() -> None:
    table = compile_service(spec(forwarding="DirectRouting"), [member("198.51.100.11", port=9090)])
    dests = table[ServiceKey(V4, Protocol.TCP, "203.0.113.10", 443)].dests
    assert dests == {DestKey(V4, "198.51.100.11", 443): DestConfig(ForwardMethod.ROUTE, 1)}


def test_tunnel_options_reach_the_destination() -> None:
    table = compile_service(
        spec(forwarding="Tunnel", tunnel={"type": "GUE", "port": 6080, "checksum": "RemoteChecksum"}),
        MEMBERS[:1],
    )
    config = next(iter(next(iter(table.values())).dests.values()))
    assert config == DestConfig(
        ForwardMethod.TUNNEL,
        1,
        0,
        0,
        tunnel_type=TunnelType.GUE,
        tunnel_port=6080,
        tunnel_flags=TunnelFlag.REMCSUM,
    )
    plain = compile_service(spec(forwarding="Tunnel"), MEMBERS[:1])
    assert next(iter(next(iter(plain.values())).dests.values())) == DestConfig(ForwardMethod.TUNNEL, 1)


def test_firewall_mark_service() -> None:
    fwm = spec(ports=[], firewallMark=42, healthCheck={"port": 80}, persistence={"timeoutSeconds": 60})
    table = compile_service(fwm, [member("198.51.100.11"), member("198.51.100.12", port=8080)])
    ((key, server),) = table.items()
    assert key == ServiceKey(V4, Protocol.NONE, "", 0, 42)
    assert set(server.dests) == {DestKey(V4, "198.51.100.11", 0), DestKey(V4, "198.51.100.12", 8080)}
    assert server.config.timeout == 60
    assert check_target(fwm, member("198.51.100.11")) == ("198.51.100.11", 80)
    routed = spec(ports=[], firewallMark=42, healthCheck={"port": 80}, forwarding="DirectRouting")
    ((_, server),) = compile_service(routed, [member("198.51.100.12", port=8080)]).items()
    assert list(server.dests) == [DestKey(V4, "198.51.100.12", 8080)]  # ipvsadm keeps it for fwmark


def _weights(table: dict[ServiceKey, Any]) -> dict[str, int]:
    server = table[ServiceKey(V4, Protocol.TCP, "203.0.113.10", 80)]
    return {dest.address: config.weight for dest, config in server.dests.items()}


FALLBACK = [member("198.51.100.99", weight=3)]


def test_quiesce_sets_weight_zero_and_remove_leaves_out() -> None:
    down = {"198.51.100.12"}

    def health(m: ResolvedMember) -> bool | None:
        return m.address not in down

    assert _weights(compile_service(spec(), MEMBERS, FALLBACK, health)) == {
        "198.51.100.11": 1,
        "198.51.100.12": 0,
    }
    removed = compile_service(spec(onFailure="Remove"), MEMBERS, FALLBACK, health)
    assert _weights(removed) == {"198.51.100.11": 1}


def test_unknown_health_counts_as_healthy() -> None:
    assert _weights(compile_service(spec(), MEMBERS, FALLBACK, lambda _m: None)) == {
        "198.51.100.11": 1,
        "198.51.100.12": 2,
    }


def test_fallback_only_when_no_member_is_usable() -> None:
    all_down = compile_service(spec(), MEMBERS, FALLBACK, lambda _m: False)
    assert _weights(all_down) == {"198.51.100.11": 0, "198.51.100.12": 0, "198.51.100.99": 3}
    removed = compile_service(spec(onFailure="Remove"), MEMBERS, FALLBACK, lambda _m: False)
    assert _weights(removed) == {"198.51.100.99": 3}
    one_up = compile_service(spec(), MEMBERS, FALLBACK, lambda m: m.address == "198.51.100.11")
    assert "198.51.100.99" not in _weights(one_up)
    assert _weights(compile_service(spec(), [], FALLBACK)) == {"198.51.100.99": 3}


def test_not_ready_and_terminating_members_drain() -> None:
    members = [
        member("198.51.100.11", terminating=True, ready=False, serving=True),
        member("198.51.100.12", ready=False),
        member("198.51.100.13", weight=5),
    ]
    assert _weights(compile_service(spec(), members, FALLBACK)) == {
        "198.51.100.11": 0,
        "198.51.100.12": 0,
        "198.51.100.13": 5,
    }
    # only draining members left: the sorry server joins them
    assert "198.51.100.99" in _weights(compile_service(spec(), members[:2], FALLBACK))


def test_wrong_family_and_duplicate_members_are_skipped() -> None:
    members = [member("198.51.100.11", weight=4), member("2001:db8::11"), member("198.51.100.11", weight=9)]
    assert _weights(compile_service(spec(), members)) == {"198.51.100.11": 4}


def test_director_selector_against_node_labels() -> None:
    selective = spec(directorSelector={"matchLabels": {"lvs.io/director": "true"}})
    assert compile_service(selective, MEMBERS, options=CompileOptions("n1", {"lvs.io/director": "true"}))
    assert compile_service(selective, MEMBERS, options=CompileOptions("n2", {})) == {}
    assert compile_service(selective, MEMBERS)  # without node labels the caller has already selected


def test_check_target_precedence() -> None:
    plain = spec(ports=[{"port": 80, "targetPort": 8080}])
    assert check_target(plain, member("198.51.100.11")) == ("198.51.100.11", 8080)
    assert check_target(plain, member("198.51.100.11", port=81)) == ("198.51.100.11", 81)
    assert check_target(spec(healthCheck={"port": 9000}), member("198.51.100.11", port=81)) == (
        "198.51.100.11",
        9000,
    )
    assert check_target(plain, member("198.51.100.11", checkPort=7000)) == ("198.51.100.11", 7000)


def _resolved(name: str, **overrides: Any) -> ResolvedService:
    return ResolvedService.model_validate(
        {
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {
                "acceptedGeneration": 1,
                "virtualServiceUid": name,
                "service": vs_spec(**overrides),
                "members": [{"address": "198.51.100.11"}],
                "fallback": [{"address": "198.51.100.99"}],
            },
        }
    )


def test_compile_resolved_and_table_conflicts() -> None:
    first = _resolved("a")
    assert compile_resolved(first) == compile_service(
        first.spec.service, first.spec.members, first.spec.fallback
    )
    clash = _resolved("b", ports=[{"port": 443}, {"port": 8443}])
    other = _resolved("c", vip="203.0.113.11")
    seen: list[str] = []

    def health(name: str, m: ResolvedMember) -> bool | None:
        seen.append(name)
        return False if name == "shop/c" else None

    merged = compile_table([("shop/a", first), ("shop/b", clash), ("shop/c", other)], health)
    assert merged.conflicts == {ServiceKey(V4, Protocol.TCP, "203.0.113.10", 443): ["shop/b"]}
    assert ServiceKey(V4, Protocol.TCP, "203.0.113.10", 8443) not in merged.table
    assert set(merged.owners.values()) == {"shop/a", "shop/c"}
    assert {"shop/a", "shop/c"} <= set(seen)
    fallback_on_c = merged.table[service_keys(other.spec.service)[0]].dests
    assert DestKey(V4, "198.51.100.99", 80) in fallback_on_c
