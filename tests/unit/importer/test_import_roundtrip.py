"""Round trip: legacy config -> manifests -> lvs_api compiler -> IPVS table, compared with the table the
legacy daemons (pulse/nanny, keepalived) program for the same file, written in `ipvsadm -S -n` form
beside each sample (tests/data/import/<sample>.ipvsadm)."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from import_helpers import DATA, convert_sample
from lvs_api.compiler import compile_service
from lvs_api.ipvs import (
    DestConfig,
    DestKey,
    Family,
    ForwardMethod,
    Protocol,
    ServiceConfig,
    ServiceFlag,
    ServiceKey,
    TunnelFlag,
    TunnelType,
    VirtualServer,
)
from lvs_api.models import ResolvedMember, VirtualServiceSpec
from lvs_api.models.pool import RealServerPoolSpec

SAMPLES = ["nat-lvs.cf", "direct-routing-lvs.cf", "keepalived.conf", "keepalived-ipv6.conf"]
_PROTOCOL_OPTIONS = {"-t": Protocol.TCP, "-u": Protocol.UDP, "--sctp-service": Protocol.SCTP}
_FORWARD = {"-m": ForwardMethod.MASQ, "-g": ForwardMethod.ROUTE, "-i": ForwardMethod.TUNNEL}
_SCHED_FLAGS = {
    "sh-fallback": ServiceFlag.SCHED1,
    "mh-fallback": ServiceFlag.SCHED1,
    "sh-port": ServiceFlag.SCHED2,
    "mh-port": ServiceFlag.SCHED2,
}


def _split_host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def _family(address: str) -> Family:
    return Family.INET6 if ":" in address else Family.INET


def _service_key(words: list[str]) -> ServiceKey:
    if words[0] == "-f":
        return ServiceKey(Family.INET, Protocol.NONE, "", 0, int(words[1]))  # the samples' marks are IPv4
    address, port = _split_host_port(words[1])
    return ServiceKey(_family(address), _PROTOCOL_OPTIONS[words[0]], address, port)


def parse_ipvsadm_save(text: str) -> dict[ServiceKey, VirtualServer]:
    """The subset of `ipvsadm -S -n` the samples use, into the kernel-table vocabulary."""
    configs: dict[ServiceKey, ServiceConfig] = {}
    dests: dict[ServiceKey, dict[DestKey, DestConfig]] = {}
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        words = shlex.split(raw)
        command, rest = words[0], words[1:]
        key = _service_key(rest)
        options = rest[2:]
        if command == "-A":
            scheduler, flags, timeout = "wlc", 0, 0
            netmask = 128 if key.family == Family.INET6 else 32
            while options:
                option = options.pop(0)
                if option == "-s":
                    scheduler = options.pop(0)
                elif option == "-p":
                    flags |= ServiceFlag.PERSISTENT
                    timeout = int(options.pop(0))
                elif option == "-M":
                    mask = options.pop(0)  # dotted for IPv4, a prefix length for IPv6
                    netmask = (
                        int(mask) if mask.isdigit() else sum(bin(int(o)).count("1") for o in mask.split("."))
                    )
                elif option == "-b":
                    for name in options.pop(0).split(","):
                        flags |= _SCHED_FLAGS[name]
                elif option == "-o":
                    flags |= ServiceFlag.ONEPACKET
                else:
                    raise AssertionError(f"unsupported option {option}")
            configs[key] = ServiceConfig(scheduler, int(flags), timeout, netmask)
            dests[key] = {}
        elif command == "-a":
            address, port = _split_host_port(options[1])
            config: dict[str, Any] = {}
            options = options[2:]
            while options:
                option = options.pop(0)
                if option in _FORWARD:
                    config["forward"] = _FORWARD[option]
                elif option == "-w":
                    config["weight"] = int(options.pop(0))
                elif option == "-x":
                    config["upper_threshold"] = int(options.pop(0))
                elif option == "-y":
                    config["lower_threshold"] = int(options.pop(0))
                elif option == "--tun-type":
                    config["tunnel_type"] = TunnelType[options.pop(0).upper()]
                elif option == "--tun-port":
                    config["tunnel_port"] = int(options.pop(0))
                elif option == "--tun-csum":
                    config["tunnel_flags"] = int(TunnelFlag.CSUM)
                else:
                    raise AssertionError(f"unsupported option {option}")
            dests[key][DestKey(_family(address), address, port)] = DestConfig(**config)
    return {key: VirtualServer(configs[key], dests[key]) for key in configs}


def imported_table(sample: str, healthy: bool | None = None) -> dict[ServiceKey, VirtualServer]:
    """Compile every imported VirtualService with its pool's static members as the agent would."""
    result, _ = convert_sample(sample)
    pools = {
        m.name: RealServerPoolSpec.model_validate(m.body["spec"])
        for m in result.manifests
        if m.kind == "RealServerPool"
    }
    table: dict[ServiceKey, VirtualServer] = {}
    for manifest in result.manifests:
        if manifest.kind != "VirtualService":
            continue
        spec = VirtualServiceSpec.model_validate(manifest.body["spec"])
        members = [
            ResolvedMember(
                address=m.address,
                port=m.port,
                weight=m.weight,
                upper_threshold=m.upper_threshold,
                lower_threshold=m.lower_threshold,
            )
            for m in pools[spec.pool_ref.name].members
        ]
        fallback = [ResolvedMember(address=f.address, port=f.port, weight=f.weight) for f in spec.fallback]
        compiled = compile_service(spec, members, fallback, health=lambda _member: healthy)
        assert not set(compiled) & set(table), f"{manifest.name} programs a service twice"
        table.update(compiled)
    return table


@pytest.mark.parametrize("sample", SAMPLES)
def test_imported_manifests_program_the_same_kernel_table(sample: str) -> None:
    expected = parse_ipvsadm_save((DATA / f"{sample}.ipvsadm").read_text())
    actual = imported_table(sample)
    assert set(actual) == set(expected)
    for key, service in expected.items():
        assert actual[key].config == service.config, key
        assert dict(actual[key].dests) == dict(service.dests), key


def test_sorry_server_takes_over_when_every_real_server_fails() -> None:
    """nat-lvs.cf: quiesce_server = 1 keeps the failed servers at weight 0 beside the sorry server."""
    table = imported_table("nat-lvs.cf", healthy=False)
    web = table[ServiceKey(Family.INET, Protocol.TCP, "192.0.2.10", 80)]
    assert dict(web.dests) == {
        DestKey(Family.INET, "198.51.100.11", 80): DestConfig(ForwardMethod.MASQ, weight=0),
        DestKey(Family.INET, "198.51.100.12", 80): DestConfig(ForwardMethod.MASQ, weight=0),
        DestKey(Family.INET, "198.51.100.99", 8080): DestConfig(ForwardMethod.MASQ, weight=1),
    }
    # quiesce_server = 0 (mail): failed servers leave the table, and there is no sorry server
    mail = table[ServiceKey(Family.INET, Protocol.TCP, "192.0.2.11", 25)]
    assert dict(mail.dests) == {}
