'''Regression tests for the IPVS fixes in ../patches (for pyroute2's tests/test_linux/).

Run as root with the ip_vs module loaded, preferably in a throw-away network
namespace (``ip netns exec``): the tests add and remove IPVS services on
documentation addresses. Each test fails on pyroute2 0.9.7 and passes with
the patches applied.
'''

import contextlib
import shutil
import subprocess
from socket import AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP

import pytest
from pyroute2 import IPVS, IPVSDest, IPVSService

IP_VS_CONN_F_MASQ = 0
IP_VS_CONN_F_TUNNEL = 2
IP_VS_CONN_F_TUNNEL_TYPE_GUE = 1
IP_VS_SVC_F_PERSISTENT = 0x1


class Context:
    def __init__(self):
        self.ipvs = IPVS()
        self.services = []

    def add_service(self, **kwarg):
        service = IPVSService(**kwarg)
        self.ipvs.service("add", service=service)
        self.services.append(service)
        return service

    def service_attrs(self, service):
        '''The kernel's attributes of one service, decoded by pyroute2.'''
        for msg in self.ipvs.service("dump"):
            attrs = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
            if service.get("fwmark"):
                if attrs.get_attr("IPVS_SVC_ATTR_FWMARK") == service["fwmark"]:
                    return msg
            elif attrs.get_attr("IPVS_SVC_ATTR_ADDR") == service[
                "addr"
            ] and attrs.get_attr("IPVS_SVC_ATTR_PORT") == service.get("port"):
                return msg
        return None

    def teardown(self):
        for service in self.services:
            with contextlib.suppress(Exception):
                self.ipvs.service("del", service=service)
        self.ipvs.close()


@pytest.fixture
def ipvs():
    ctx = Context()
    yield ctx
    ctx.teardown()


def test_sched_alias(ipvs):
    service = ipvs.add_service(
        addr="192.0.2.1", port=80, protocol=IPPROTO_TCP, sched="rr"
    )
    msg = ipvs.service_attrs(service)
    sched = msg.get_attr("IPVS_CMD_ATTR_SERVICE").get_attr(
        "IPVS_SVC_ATTR_SCHED_NAME"
    )
    assert sched == "rr"


def test_update_changes_and_does_not_delete(ipvs):
    service = ipvs.add_service(
        addr="192.0.2.2", port=80, protocol=IPPROTO_TCP, sched_name="rr"
    )
    dest = IPVSDest(addr="198.51.100.2", port=80, fwd_method=0, weight=1)
    ipvs.ipvs.dest("add", service=service, dest=dest)
    service["sched_name"] = "wrr"
    ipvs.ipvs.service("update", service=service)
    dest["weight"] = 5
    ipvs.ipvs.dest("update", service=service, dest=dest)
    msg = ipvs.service_attrs(service)
    assert msg is not None, "update deleted the service"
    attrs = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    assert attrs.get_attr("IPVS_SVC_ATTR_SCHED_NAME") == "wrr"
    (dest_msg,) = ipvs.ipvs.dest("dump", service=service)
    weight = dest_msg.get_attr("IPVS_CMD_ATTR_DEST").get_attr(
        "IPVS_DEST_ATTR_WEIGHT"
    )
    assert weight == 5


def test_from_message_reports_the_kernel_values(ipvs):
    service = ipvs.add_service(
        addr="192.0.2.3",
        port=443,
        protocol=IPPROTO_TCP,
        sched_name="wlc",
        timeout=300,
        flags={"flags": IP_VS_SVC_F_PERSISTENT, "mask": 0xFFFFFFFF},
        netmask="255.255.255.0",
    )
    ipvs.ipvs.dest(
        "add",
        service=service,
        dest=IPVSDest(
            addr="198.51.100.3",
            port=443,
            fwd_method=IP_VS_CONN_F_MASQ,
            weight=3,
            u_thresh=100,
            l_thresh=10,
        ),
    )
    read = IPVSService.from_message(ipvs.service_attrs(service))
    assert read["timeout"] == 300
    assert read["flags"]["flags"] & IP_VS_SVC_F_PERSISTENT
    assert read["netmask"] == "255.255.255.0"
    (dest_msg,) = ipvs.ipvs.dest("dump", service=service)
    dest = IPVSDest.from_message(dest_msg)
    assert dest["fwd_method"] == IP_VS_CONN_F_MASQ
    assert (dest["weight"], dest["u_thresh"], dest["l_thresh"]) == (3, 100, 10)


def test_ipv6_service_netmask_is_a_prefix_length(ipvs):
    plain = ipvs.add_service(
        addr="2001:db8::1", port=80, protocol=IPPROTO_TCP, sched_name="rr"
    )
    persistent = ipvs.add_service(
        addr="2001:db8::2",
        port=80,
        protocol=IPPROTO_TCP,
        sched_name="rr",
        timeout=60,
        flags={"flags": IP_VS_SVC_F_PERSISTENT, "mask": 0xFFFFFFFF},
        netmask=64,
    )
    for service, prefix in ((plain, 128), (persistent, 64)):
        read = IPVSService.from_message(ipvs.service_attrs(service))
        assert read["af"] == AF_INET6
        assert read["netmask"] == prefix


@pytest.mark.parametrize("family", [AF_INET, AF_INET6])
def test_fwmark_service(ipvs, family):
    kwarg = {"af": family} if family == AF_INET6 else {}
    service = ipvs.add_service(fwmark=4711, sched_name="rr", **kwarg)
    msg = ipvs.service_attrs(service)
    assert msg is not None
    assert msg.get_attr("IPVS_CMD_ATTR_SERVICE").get_attr(
        "IPVS_SVC_ATTR_AF"
    ) == (family)


@pytest.mark.skipif(
    shutil.which("ipvsadm") is None,
    reason="ipvsadm shows the port the kernel holds",
)
def test_gue_tunnel_port_is_big_endian(ipvs):
    service = ipvs.add_service(
        addr="192.0.2.5", port=80, protocol=IPPROTO_UDP, sched_name="rr"
    )
    ipvs.ipvs.dest(
        "add",
        service=service,
        dest=IPVSDest(
            addr="198.51.100.5",
            port=80,
            fwd_method=IP_VS_CONN_F_TUNNEL,
            tun_type=IP_VS_CONN_F_TUNNEL_TYPE_GUE,
            tun_port=6080,
        ),
    )
    saved = subprocess.run(
        ["ipvsadm", "-Sn"], capture_output=True, text=True, check=True
    ).stdout
    assert "--tun-port 6080" in saved
    (dest_msg,) = ipvs.ipvs.dest("dump", service=service)
    assert IPVSDest.from_message(dest_msg)["tun_port"] == 6080
