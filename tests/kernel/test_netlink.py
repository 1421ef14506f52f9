"""IpvsNetlink against the guest kernel's real IPVS.

Every test works in a network namespace of its own (IPVS tables are per namespace), so tests do not see
each other's entries and the kernel's destination trash list starts empty. ``ipvsadm`` is the independent
witness: the same table restored with ``ipvsadm -R`` into a second namespace must give the same
``ipvsadm -Sn``, and our dump of ipvsadm's table must be the table.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

import pytest
from lvs_agent.netlink import FakeIpvsKernel, IpvsNetlink
from lvs_api.ipvs import (
    DestConfig,
    DestKey,
    Family,
    ForwardMethod,
    Op,
    OpKind,
    Protocol,
    ServiceConfig,
    ServiceFlag,
    ServiceKey,
    Table,
    TunnelFlag,
    TunnelType,
    VirtualServer,
)

pytestmark = pytest.mark.kernel

KERNEL = os.uname().release
# GUE/GRE encapsulation of tunnelled destinations arrived in Linux 5.3 (IPVS_DEST_ATTR_TUN_*)
TUNNEL_ENCAPS = tuple(int(part) for part in re.findall(r"\d+", KERNEL)[:2]) >= (5, 3)
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos")
PERSISTENT = int(ServiceFlag.PERSISTENT)
_names = itertools.count()


# ------------------------------------------------------------------------------------------- helpers


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


class Namespace:
    """A fresh network namespace with ``lo`` up (destination adds fail until it is)."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise RuntimeError("kernel tests must run as root inside the guest (tests/kernel/conftest.py)")
        self.name = f"lvsnl{os.getpid()}-{next(_names)}"
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")

    def ipvsadm(self, *args: str, stdin: str | None = None) -> str:
        return sh("ip", "netns", "exec", self.name, "ipvsadm", *args, stdin=stdin)

    def saved_rules(self) -> list[str]:
        return sorted(line for line in self.ipvsadm("-Sn").splitlines() if line.strip())

    def delete(self) -> None:
        sh("ip", "netns", "del", self.name, check=False)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    namespace = Namespace()
    try:
        yield namespace
    finally:
        namespace.delete()


@pytest.fixture
def kernel(netns: Namespace) -> Iterator[IpvsNetlink]:
    adapter = IpvsNetlink(netns=netns.name)
    try:
        yield adapter
    finally:
        adapter.close()


def ops_to_create(table: Table) -> list[Op]:
    ops: list[Op] = []
    for key, server in table.items():
        ops.append(Op(OpKind.ADD_SERVICE, key, server.config))
        ops.extend(Op(OpKind.ADD_DEST, key, None, dest, config) for dest, config in server.dests.items())
    return ops


def host(family: Family, address: str) -> str:
    return f"[{address}]" if family == Family.INET6 else address


SCHED_FLAG_NAMES = {
    "sh": {ServiceFlag.SCHED1: "sh-fallback", ServiceFlag.SCHED2: "sh-port"},
    "mh": {ServiceFlag.SCHED1: "mh-fallback", ServiceFlag.SCHED2: "mh-port"},
}


def ipvsadm_service(key: ServiceKey) -> str:
    if key.fwmark:
        return f"-f {key.fwmark}" + (" -6" if key.family == Family.INET6 else "")
    option = {Protocol.TCP: "-t", Protocol.UDP: "-u", Protocol.SCTP: "--sctp-service"}[key.protocol]
    return f"{option} {host(key.family, key.address)}:{key.port}"


def ipvsadm_rules(table: Table) -> str:
    """The table as ``ipvsadm -R`` input: an independent way of programming the same kernel state."""
    lines: list[str] = []
    for key, server in table.items():
        c = server.config
        line = f"-A {ipvsadm_service(key)} -s {c.scheduler}"
        flag_names = [name for flag, name in SCHED_FLAG_NAMES.get(c.scheduler, {}).items() if c.flags & flag]
        if flag_names:
            line += " -b " + ",".join(flag_names)
        if c.flags & ServiceFlag.ONEPACKET:
            line += " -o"
        if c.flags & ServiceFlag.PERSISTENT:
            mask = str(c.netmask) if key.family == Family.INET6 else _ipv4_mask(c.netmask)
            line += f" -p {c.timeout} -M {mask}"
        lines.append(line)
        for dest, d in server.dests.items():
            forward = {ForwardMethod.MASQ: "-m", ForwardMethod.ROUTE: "-g", ForwardMethod.TUNNEL: "-i"}[
                d.forward
            ]
            rule = f"-a {ipvsadm_service(key)} -r {host(dest.family, dest.address)}:{dest.port} {forward}"
            rule += f" -w {d.weight} -x {d.upper_threshold} -y {d.lower_threshold}"
            if d.forward == ForwardMethod.TUNNEL and d.tunnel_type != TunnelType.IPIP:
                rule += f" --tun-type {d.tunnel_type.name.lower()}"
                if d.tunnel_port:
                    rule += f" --tun-port {d.tunnel_port}"
                rule += {0: " --tun-nocsum", 1: " --tun-csum", 2: " --tun-remcsum"}[d.tunnel_flags]
            lines.append(rule)
    return "\n".join(lines) + "\n"


def _ipv4_mask(prefix: int) -> str:
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return ".".join(str((mask >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def v4(address: str, port: int, protocol: Protocol = Protocol.TCP) -> ServiceKey:
    return ServiceKey(Family.INET, protocol, address, port)


def v6(address: str, port: int, protocol: Protocol = Protocol.TCP) -> ServiceKey:
    return ServiceKey(Family.INET6, protocol, address, port)


def member(address: str, port: int) -> DestKey:
    return DestKey(Family.INET6 if ":" in address else Family.INET, address, port)


ENCAPSULATED_MEMBERS = (
    {
        member("198.51.100.5", 443): DestConfig(
            ForwardMethod.TUNNEL, 1, 0, 0, TunnelType.GUE, 6080, int(TunnelFlag.CSUM)
        ),
        member("198.51.100.6", 443): DestConfig(
            ForwardMethod.TUNNEL, 1, 0, 0, TunnelType.GRE, 0, int(TunnelFlag.CSUM)
        ),
    }
    if TUNNEL_ENCAPS
    else {}
)

# Every attribute we write, in the combinations the kernel accepts.
EVERY_ATTRIBUTE: Table = {
    v4("192.0.2.1", 80): VirtualServer(
        ServiceConfig("wlc", 0, 0, 32),
        {
            member("198.51.100.1", 8080): DestConfig(ForwardMethod.MASQ, 3, 1000, 100),
            member("198.51.100.2", 8080): DestConfig(ForwardMethod.MASQ, 0),  # quiesced
        },
    ),
    v4("192.0.2.2", 443): VirtualServer(
        ServiceConfig("rr", PERSISTENT, 300, 24),  # persistence with an IPv4 netmask
        {
            member("198.51.100.3", 443): DestConfig(ForwardMethod.ROUTE, 1),
            member("198.51.100.4", 443): DestConfig(ForwardMethod.TUNNEL, 2),  # ipip
            **ENCAPSULATED_MEMBERS,
            member("2001:db8::20", 443): DestConfig(ForwardMethod.TUNNEL, 1),  # IPv6 member of an IPv4 VIP
        },
    ),
    v4("192.0.2.3", 53, Protocol.UDP): VirtualServer(
        ServiceConfig("sh", int(ServiceFlag.SCHED1 | ServiceFlag.SCHED2 | ServiceFlag.ONEPACKET), 0, 32),
        {member("198.51.100.7", 53): DestConfig(ForwardMethod.MASQ, 1)},
    ),
    v4("192.0.2.4", 3868, Protocol.SCTP): VirtualServer(
        ServiceConfig("mh", int(ServiceFlag.SCHED1 | ServiceFlag.SCHED2), 0, 32),
        {member("198.51.100.8", 3868): DestConfig(ForwardMethod.ROUTE, 5)},
    ),
    v6("2001:db8::1", 80): VirtualServer(
        ServiceConfig("wrr", PERSISTENT, 60, 64),  # persistence with an IPv6 prefix length
        {
            member("2001:db8:1::10", 80): DestConfig(ForwardMethod.MASQ, 2, 50, 10),
            member("2001:db8:1::11", 80): DestConfig(ForwardMethod.ROUTE, 1),
        },
    ),
    v6("2001:db8::2", 8443, Protocol.UDP): VirtualServer(
        ServiceConfig("lc", 0, 0, 128),
        {
            member("2001:db8:1::12", 8443): DestConfig(
                ForwardMethod.TUNNEL, 1, 0, 0, TunnelType.GUE, 5555, int(TunnelFlag.REMCSUM)
            )
        },
    ),
    ServiceKey(Family.INET, Protocol.NONE, "", 0, 7): VirtualServer(
        ServiceConfig("rr", PERSISTENT, 120, 16),
        {member("198.51.100.9", 0): DestConfig(ForwardMethod.ROUTE, 1)},
    ),
    ServiceKey(Family.INET6, Protocol.NONE, "", 0, 4_000_000_000): VirtualServer(
        ServiceConfig("sed", 0, 0, 128),
        {member("2001:db8:1::13", 0): DestConfig(ForwardMethod.MASQ, 1)},
    ),
}


def assert_ok(result: object) -> None:
    assert getattr(result, "ok", False), result


# --------------------------------------------------------------------------------------------- tests


def test_kernel_has_gue_and_gre_tunnels() -> None:
    """The round-trip tables include GUE/GRE members only where the kernel has them; say so when not."""
    if not TUNNEL_ENCAPS:
        pytest.skip(f"kernel {KERNEL} has no GUE/GRE tunnel encapsulation for IPVS (needs Linux 5.3)")
    assert len(ENCAPSULATED_MEMBERS) == 2


def test_every_attribute_round_trips(kernel: IpvsNetlink, netns: Namespace) -> None:
    result = kernel.apply(ops_to_create(EVERY_ATTRIBUTE))
    assert_ok(result)
    assert result.sent == len(ops_to_create(EVERY_ATTRIBUTE))
    assert kernel.dump() == EVERY_ATTRIBUTE
    # a second adapter (an agent restart) reads the same
    with IpvsNetlink(netns=netns.name) as again:
        assert again.dump() == EVERY_ATTRIBUTE


def test_ipvsadm_agrees_both_ways(kernel: IpvsNetlink, netns: Namespace) -> None:
    assert_ok(kernel.apply(ops_to_create(EVERY_ATTRIBUTE)))
    witness = Namespace()
    try:
        witness.ipvsadm("-R", stdin=ipvsadm_rules(EVERY_ATTRIBUTE))
        # what we programmed, as ipvsadm saves it == what ipvsadm programmed from the same table
        assert netns.saved_rules() == witness.saved_rules()
        # and our decoder reads ipvsadm's programming as the table
        with IpvsNetlink(netns=witness.name) as theirs:
            assert theirs.dump() == EVERY_ATTRIBUTE
    finally:
        witness.delete()


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_scheduler(kernel: IpvsNetlink, scheduler: str) -> None:
    key = v4("192.0.2.50", 80)
    result = kernel.apply([Op(OpKind.ADD_SERVICE, key, ServiceConfig(scheduler))])
    if result.failures and result.failures[0].errno == errno.ENOENT:
        assert scheduler == "twos", f"kernel {KERNEL} should have ip_vs_{scheduler}"
        pytest.skip(f"kernel {KERNEL} has no ip_vs_{scheduler} module (twos arrived in Linux 6.2)")
    assert_ok(result)
    assert kernel.dump()[key].config == ServiceConfig(scheduler)


def test_edits_are_in_place(kernel: IpvsNetlink, netns: Namespace) -> None:
    key = v4("192.0.2.60", 80)
    a, b = member("198.51.100.60", 80), member("198.51.100.61", 80)
    assert_ok(
        kernel.apply(
            ops_to_create({key: VirtualServer(ServiceConfig("rr"), {a: DestConfig(), b: DestConfig()})})
        )
    )
    new_config = ServiceConfig("sh", PERSISTENT | int(ServiceFlag.SCHED1), 900, 28)
    tunnel = DestConfig(ForwardMethod.TUNNEL, 9, 500, 5, TunnelType.GUE, 7777, int(TunnelFlag.REMCSUM))
    result = kernel.apply(
        [Op(OpKind.EDIT_SERVICE, key, new_config), Op(OpKind.EDIT_DEST, key, None, a, tunnel)]
    )
    assert_ok(result)
    assert kernel.dump() == {key: VirtualServer(new_config, {a: tunnel, b: DestConfig()})}
    # and back: nothing of the old values lingers
    assert_ok(kernel.apply([Op(OpKind.EDIT_DEST, key, None, a, DestConfig(ForwardMethod.ROUTE, 2))]))
    assert kernel.dump()[key].dests[a] == DestConfig(ForwardMethod.ROUTE, 2)
    assert "-s sh -p 900 -M 255.255.255.240 -b sh-fallback" in netns.ipvsadm("-Sn")


def test_deletes(kernel: IpvsNetlink) -> None:
    table = {k: v for k, v in EVERY_ATTRIBUTE.items() if k.family == Family.INET}
    assert_ok(kernel.apply(ops_to_create(table)))
    first, second = list(table)[:2]
    gone = next(iter(table[second].dests))
    assert_ok(kernel.apply([Op(OpKind.DEL_SERVICE, first), Op(OpKind.DEL_DEST, second, None, gone)]))
    dumped = kernel.dump()
    assert first not in dumped
    assert gone not in dumped[second].dests
    assert len(dumped[second].dests) == len(table[second].dests) - 1


def error_scenario() -> list[Op]:
    web = v4("192.0.2.70", 80)
    missing = v4("192.0.2.71", 80)
    web6 = v6("2001:db8::70", 80)
    a = member("198.51.100.70", 80)
    return [
        Op(OpKind.ADD_SERVICE, web, ServiceConfig("rr")),
        Op(OpKind.ADD_DEST, web, None, a, DestConfig()),
        Op(OpKind.ADD_SERVICE, web, ServiceConfig("rr")),  # EEXIST
        Op(OpKind.ADD_DEST, web, None, a, DestConfig()),  # EEXIST
        Op(OpKind.EDIT_SERVICE, missing, ServiceConfig()),  # ESRCH
        Op(OpKind.DEL_SERVICE, missing),  # ESRCH
        Op(OpKind.ADD_DEST, missing, None, a, DestConfig()),  # ESRCH
        Op(OpKind.DEL_DEST, web, None, a._replace(port=81)),  # ENOENT
        Op(OpKind.EDIT_DEST, web, None, a._replace(port=81), DestConfig()),  # ENOENT
        Op(OpKind.ADD_SERVICE, missing, ServiceConfig("nosuchsched")),  # ENOENT
        Op(OpKind.ADD_SERVICE, web6, ServiceConfig("rr", 0, 0, 0)),  # EINVAL: IPv6 prefix 0
        Op(OpKind.ADD_SERVICE, web6, ServiceConfig("rr", 0, 0, 129)),  # EINVAL: IPv6 prefix 129
        Op(OpKind.ADD_SERVICE, web6, ServiceConfig("rr", 0, 0, 128)),
        Op(OpKind.ADD_DEST, web, None, a._replace(port=82), DestConfig(upper_threshold=1, lower_threshold=2)),
        Op(
            OpKind.ADD_DEST,
            web,
            None,
            a._replace(port=83),
            DestConfig(ForwardMethod.TUNNEL, 1, 0, 0, TunnelType.GUE),
        ),
        Op(
            OpKind.ADD_DEST, web, None, member("2001:db8::71", 80), DestConfig(ForwardMethod.MASQ)
        ),  # mixed, NAT
        Op(OpKind.ADD_DEST, web, None, member("2001:db8::71", 80), DestConfig(ForwardMethod.TUNNEL)),
        Op(
            OpKind.ADD_DEST, web, None, DestKey(Family.INET, "not-an-address", 80), DestConfig()
        ),  # not encodable
        Op(OpKind.DEL_DEST, web, None, a),
        Op(OpKind.DEL_SERVICE, web),
    ]


def test_errors_per_operation_match_the_fake(kernel: IpvsNetlink) -> None:
    """The kernel's errno for each refused operation, and the fake kernel gives the same ones."""
    ops = error_scenario()
    result = kernel.apply(ops)
    assert result.complete and result.sent == len(ops) - 1  # the unencodable one is never sent
    got = [(f.position, f.errno) for f in result.failures]
    assert got == [
        (2, errno.EEXIST),
        (3, errno.EEXIST),
        (4, errno.ESRCH),
        (5, errno.ESRCH),
        (6, errno.ESRCH),
        (7, errno.ENOENT),
        (8, errno.ENOENT),
        (9, errno.ENOENT),
        (10, errno.EINVAL),
        (11, errno.EINVAL),
        (13, errno.ERANGE),
        (14, errno.EINVAL),
        (15, errno.EINVAL),
        (17, errno.EINVAL),
    ]
    fake = FakeIpvsKernel(schedulers=[s for s in SCHEDULERS if s != "nosuchsched"])
    fake_result = fake.apply(ops)
    # the fake cannot refuse what the adapter refuses before sending (an unencodable address)
    assert [(f.position, f.errno) for f in fake_result.failures] == [x for x in got if x[0] != 17]
    assert kernel.dump() == fake.dump()


@pytest.mark.parametrize("batch_size", [1000, 7, 1])
def test_failures_map_to_their_operation_across_batches(netns: Namespace, batch_size: int) -> None:
    """2,500 operations; every third is a duplicate add that fails, wherever it falls in a batch."""
    count = 2500 if batch_size > 1 else 300
    with IpvsNetlink(netns=netns.name, batch_size=batch_size) as kernel:
        ops: list[Op] = []
        expected: list[int] = []
        for i in range(count):
            key = v4(f"192.0.2.{1 + i % 200}", 1000 + i // 200)
            if i % 3 == 2:
                key = ops[-1].service  # the previous op's service again: EEXIST
                expected.append(i)
            ops.append(Op(OpKind.ADD_SERVICE, key, ServiceConfig("rr")))
        result = kernel.apply(ops)
        assert result.complete and result.sent == count
        assert [f.position for f in result.failures] == expected
        assert {f.errno for f in result.failures} == {errno.EEXIST}
        assert all(f.op is ops[f.position] for f in result.failures)
        assert len(kernel.dump()) == count - len(expected)


def test_a_whole_batch_of_failures_is_reported(kernel: IpvsNetlink) -> None:
    """Without NLM_F_ACK the kernel still answers each failure; a full batch of them must fit."""
    missing = v4("192.0.2.90", 80)
    ops = [Op(OpKind.DEL_DEST, missing, None, member("198.51.100.90", port)) for port in range(1, 3001)]
    result = kernel.apply(ops)
    assert result.complete
    assert [f.position for f in result.failures] == list(range(3000))
    assert {f.errno for f in result.failures} == {errno.ESRCH}


def test_foreign_services_are_untouched(kernel: IpvsNetlink, netns: Namespace) -> None:
    foreign_rules = (
        "-A -t 203.0.113.1:80 -s wlc\n"
        "-a -t 203.0.113.1:80 -r 198.51.100.200:80 -m -w 1\n"
        "-A -u [2001:db8:ff::1]:53 -s rr -p 120 -M 64\n"
        "-a -u [2001:db8:ff::1]:53 -r [2001:db8:ff::2]:53 -g -w 3\n"
        "-A -f 99 -s sh -b sh-port\n"
    )
    netns.ipvsadm("-R", stdin=foreign_rules)
    before = netns.saved_rules()
    foreign_table = kernel.dump()
    assert len(foreign_table) == 3
    ours = {k: v for k, v in EVERY_ATTRIBUTE.items() if k.family == Family.INET}
    for _ in range(3):  # create, churn, delete
        assert_ok(kernel.apply(ops_to_create(ours)))
        edits = [
            Op(OpKind.EDIT_DEST, key, None, dest, config._replace(weight=config.weight + 1))
            for key, server in ours.items()
            for dest, config in server.dests.items()
        ]
        assert_ok(kernel.apply(edits))
        assert_ok(kernel.apply([Op(OpKind.DEL_SERVICE, key) for key in ours]))
    assert netns.saved_rules() == before
    assert kernel.dump() == foreign_table


def test_dump_stats_counts_connections(kernel: IpvsNetlink, netns: Namespace) -> None:
    """Three TCP connections from inside the namespace to a local virtual service."""
    vip = "192.0.2.99"
    key = v4(vip, 8099)
    dest = member(vip, 8099)  # a local address: IPVS hands the connection to the local stack
    sh("ip", "-n", netns.name, "addr", "add", f"{vip}/32", "dev", "lo")
    assert_ok(kernel.apply(ops_to_create({key: VirtualServer(ServiceConfig("rr"), {dest: DestConfig()})})))
    client = (
        "import socket\n"
        f"server = socket.create_server(({vip!r}, 8099))\n"
        "for _ in range(3):\n"
        f"    c = socket.create_connection(({vip!r}, 8099), timeout=5)\n"
        "    s, _ = server.accept(); c.sendall(b'ping'); s.recv(4); s.close(); c.close()\n"
    )
    sh("ip", "netns", "exec", netns.name, sys.executable, "-c", client)
    # the gauges are live; the counters are folded in by the kernel's estimator every 2 s (generous
    # deadline: a loaded guest's timers run late)
    deadline = time.monotonic() + 30
    stats = kernel.dump_stats()
    while stats[key].counters.conns < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
        stats = kernel.dump_stats()
    assert stats[key].dests[dest].inactive_conns + stats[key].dests[dest].active_conns == 3
    assert stats[key].counters.conns == 3
    assert stats[key].counters.inpkts > 0
    assert stats[key].dests[dest].counters.conns == 3
    assert stats[key].counters.inbytes >= stats[key].dests[dest].counters.inbytes > 0


def test_dump_of_an_empty_namespace(kernel: IpvsNetlink) -> None:
    assert kernel.dump() == {}
    assert kernel.dump_stats() == {}
    assert kernel.apply([]).ok


def apply_in_steps(kernel: IpvsNetlink, ops: Sequence[Op], step: int) -> None:
    for start in range(0, len(ops), step):
        assert_ok(kernel.apply(ops[start : start + step]))


def test_large_dump_spans_many_reads(kernel: IpvsNetlink) -> None:
    """Enough entries that service and destination dumps each take several receive buffers."""
    table: Table = {
        v4(f"192.0.2.{1 + i % 250}", 2000 + i // 250): VirtualServer(
            ServiceConfig("wlc"),
            {member(f"198.51.100.{1 + j}", 80 + i % 50): DestConfig() for j in range(40)},
        )
        for i in range(1500)
    }
    apply_in_steps(kernel, ops_to_create(table), 20000)
    assert kernel.dump() == table
    stats = kernel.dump_stats()
    assert set(stats) == set(table)
    assert all(set(stats[k].dests) == set(v.dests) for k, v in table.items())


def test_lost_error_reports_are_flagged_and_the_socket_recovers(netns: Namespace) -> None:
    """With a tiny receive buffer a batch of failures overruns it (ENOBUFS): the result says the report
    is incomplete instead of pretending success, and the next apply is exact again."""
    missing = v4("192.0.2.91", 80)
    ops = [Op(OpKind.DEL_DEST, missing, None, member("198.51.100.91", port)) for port in range(1, 1001)]
    with IpvsNetlink(netns=netns.name, rcvbuf=4096) as kernel:
        overrun = kernel.apply(ops)
        assert not overrun.complete and not overrun.ok
        assert len(overrun.failures) < len(ops)
        assert {f.errno for f in overrun.failures} <= {errno.ESRCH}
        small = kernel.apply([*ops[:3], Op(OpKind.ADD_SERVICE, missing, ServiceConfig("rr"))])
        assert small.complete
        assert [(f.position, f.errno) for f in small.failures] == [(i, errno.ESRCH) for i in range(3)]
        assert missing in kernel.dump()


def test_a_missing_namespace_is_an_error_not_created() -> None:
    name = f"lvsnl-missing-{os.getpid()}"
    with pytest.raises(OSError):
        IpvsNetlink(netns=name)
    assert name not in sh("ip", "netns", "list")


def test_without_cap_net_admin_errors_are_eperm(netns: Namespace) -> None:
    """As an unprivileged user: dumps raise IpvsError EPERM, apply reports EPERM per operation."""
    code = (
        "import errno\n"
        "from lvs_agent.netlink import IpvsNetlink, IpvsError\n"
        "from lvs_api.ipvs import *\n"
        "k = IpvsNetlink()\n"
        "try:\n"
        "    k.dump(); print('dumped')\n"
        "except IpvsError as e:\n"
        "    print('dump', errno.errorcode[e.errno])\n"
        "key = ServiceKey(Family.INET, Protocol.TCP, '192.0.2.1', 80)\n"
        "r = k.apply([Op(OpKind.ADD_SERVICE, key, ServiceConfig()), Op(OpKind.DEL_SERVICE, key)])\n"
        "print('apply', r.complete, [errno.errorcode[f.errno] for f in r.failures])\n"
    )
    out = sh(
        "ip", "netns", "exec", netns.name, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c", code,
    )  # fmt: skip
    assert out.splitlines() == ["dump EPERM", "apply True ['EPERM', 'EPERM']"]


def test_usable_from_an_asyncio_agent(netns: Namespace) -> None:
    """Created inside a running event loop (pyroute2's sync socket cannot set up there by itself),
    then used through asyncio.to_thread as the agent does."""

    async def agent() -> Table:
        kernel = IpvsNetlink(netns=netns.name)
        try:
            key = v4("192.0.2.111", 80)
            result = await asyncio.to_thread(kernel.apply, [Op(OpKind.ADD_SERVICE, key, ServiceConfig("rr"))])
            assert_ok(result)
            return await asyncio.to_thread(kernel.dump)
        finally:
            kernel.close()

    assert list(asyncio.run(agent())) == [v4("192.0.2.111", 80)]
