"""The in-memory FakeIpvsKernel: the errors the kernel gives, per operation, and foreign entries kept.
(tests/kernel/test_netlink.py runs the same operations against real IPVS and compares with this fake.)"""

from __future__ import annotations

import errno

from lvs_agent.netlink import Counters, FakeIpvsKernel, IpvsKernel
from lvs_api.ipvs import (
    DestConfig,
    DestKey,
    Family,
    ForwardMethod,
    Op,
    OpKind,
    Protocol,
    ServiceConfig,
    ServiceKey,
    TunnelType,
    VirtualServer,
)

WEB = ServiceKey(Family.INET, Protocol.TCP, "192.0.2.1", 80)
FOREIGN = ServiceKey(Family.INET, Protocol.TCP, "192.0.2.200", 80)
MEMBER = DestKey(Family.INET, "198.51.100.1", 8080)


def add_web() -> list[Op]:
    return [
        Op(OpKind.ADD_SERVICE, WEB, ServiceConfig("rr")),
        Op(OpKind.ADD_DEST, WEB, None, MEMBER, DestConfig(ForwardMethod.MASQ, 2)),
    ]


def test_fake_satisfies_the_protocol() -> None:
    kernel: IpvsKernel = FakeIpvsKernel()
    assert kernel.apply(add_web()).ok


def test_apply_then_dump() -> None:
    kernel = FakeIpvsKernel()
    result = kernel.apply(add_web())
    assert result.ok and result.sent == 2
    assert kernel.dump() == {
        WEB: VirtualServer(ServiceConfig("rr"), {MEMBER: DestConfig(ForwardMethod.MASQ, 2)})
    }
    assert kernel.writes == 2


def test_errors_are_the_kernels() -> None:
    kernel = FakeIpvsKernel(schedulers={"rr", "wlc"})
    missing = ServiceKey(Family.INET, Protocol.UDP, "192.0.2.9", 53)
    v6 = ServiceKey(Family.INET6, Protocol.TCP, "2001:db8::1", 80)
    ops = [
        *add_web(),
        Op(OpKind.ADD_SERVICE, WEB, ServiceConfig("rr")),  # 2 EEXIST
        Op(OpKind.ADD_DEST, WEB, None, MEMBER, DestConfig()),  # 3 EEXIST
        Op(OpKind.EDIT_SERVICE, missing, ServiceConfig()),  # 4 ESRCH
        Op(OpKind.DEL_SERVICE, missing),  # 5 ESRCH
        Op(OpKind.ADD_DEST, missing, None, MEMBER, DestConfig()),  # 6 ESRCH
        Op(OpKind.DEL_DEST, WEB, None, MEMBER._replace(port=1)),  # 7 ENOENT
        Op(OpKind.EDIT_DEST, WEB, None, MEMBER._replace(port=1), DestConfig()),  # 8 ENOENT
        Op(OpKind.ADD_SERVICE, missing, ServiceConfig("twos")),  # 9 ENOENT: no such scheduler here
        Op(OpKind.ADD_SERVICE, v6, ServiceConfig("rr", netmask=0)),  # 10 EINVAL: IPv6 prefix 0
        Op(
            OpKind.ADD_DEST,
            WEB,
            None,
            MEMBER._replace(port=2),
            DestConfig(upper_threshold=1, lower_threshold=5),
        ),
        Op(
            OpKind.ADD_DEST,
            WEB,
            None,
            MEMBER._replace(port=3),
            DestConfig(ForwardMethod.TUNNEL, 1, 0, 0, TunnelType.GUE),
        ),
        Op(
            OpKind.ADD_DEST,
            WEB,
            None,
            DestKey(Family.INET6, "2001:db8::2", 80),
            DestConfig(ForwardMethod.MASQ),
        ),
        Op(
            OpKind.ADD_DEST,
            WEB,
            None,
            DestKey(Family.INET6, "2001:db8::2", 80),
            DestConfig(ForwardMethod.TUNNEL),
        ),
    ]
    result = kernel.apply(ops)
    assert [(f.position, f.errno) for f in result.failures] == [
        (2, errno.EEXIST),
        (3, errno.EEXIST),
        (4, errno.ESRCH),
        (5, errno.ESRCH),
        (6, errno.ESRCH),
        (7, errno.ENOENT),
        (8, errno.ENOENT),
        (9, errno.ENOENT),
        (10, errno.EINVAL),
        (11, errno.ERANGE),
        (12, errno.EINVAL),
        (13, errno.EINVAL),
    ]
    assert not result.ok and result.complete
    assert "EEXIST" in str(result.failures[0])
    # the last one (an IPv6 tunnelled member of an IPv4 service) went in
    assert DestKey(Family.INET6, "2001:db8::2", 80) in kernel.dump()[WEB].dests


def test_foreign_services_survive_and_a_failure_does_not_stop_the_batch() -> None:
    foreign = {FOREIGN: VirtualServer(ServiceConfig("wlc"), {MEMBER: DestConfig(ForwardMethod.ROUTE)})}
    kernel = FakeIpvsKernel(foreign)
    result = kernel.apply([Op(OpKind.DEL_DEST, WEB, None, MEMBER), *add_web()])
    assert [f.errno for f in result.failures] == [errno.ESRCH]
    table = kernel.dump()
    assert table[FOREIGN] == foreign[FOREIGN]
    assert MEMBER in table[WEB].dests


def test_injected_failure_happens_once() -> None:
    kernel = FakeIpvsKernel()
    kernel.inject_failure(OpKind.ADD_SERVICE, WEB, code=errno.ENOMEM)
    assert [f.errno for f in kernel.apply(add_web()).failures] == [errno.ENOMEM, errno.ESRCH]
    assert kernel.apply(add_web()).ok


def test_dump_is_a_snapshot() -> None:
    kernel = FakeIpvsKernel()
    kernel.apply(add_web())
    before = kernel.dump()
    kernel.apply([Op(OpKind.DEL_DEST, WEB, None, MEMBER)])
    assert MEMBER in before[WEB].dests
    assert MEMBER not in kernel.dump()[WEB].dests


def test_stats_cover_every_entry() -> None:
    kernel = FakeIpvsKernel()
    kernel.apply(add_web())
    kernel.counters[(WEB, MEMBER)] = Counters(conns=5)
    stats = kernel.dump_stats()
    assert stats[WEB].dests[MEMBER].counters.conns == 5
    assert stats[WEB].counters.conns == 0
