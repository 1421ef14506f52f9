"""Sync-daemon requests (IPVS_CMD_*_DAEMON) byte for byte, and GET_DAEMON replies decoded.

pyroute2 0.9.7 does not model the daemon nest (its ``ipvsmsg`` types ``IPVS_CMD_ATTR_DAEMON`` as
``hex``), so the reference is pyroute2's own encoder given the nest's attribute types from the kernel's
``ip_vs_daemon_policy`` (u32 state, NUL-terminated name, u32 sync id, u16 payload length, IPv4 / IPv6
group, u16 port in host order, u8 TTL): its framing and padding, our layout tables. The kernel tests
(tests/kernel/test_netlink_syncd.py) prove the same bytes against real IPVS and ipvsadm.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lvs_agent.netlink import uapi
from lvs_agent.netlink.codec import DaemonState, DumpFormatError, IpvsEncoder, SyncDaemon, daemon_reply
from pyroute2.netlink import nla
from pyroute2.netlink.generic import ipvs as pr_ipvs

FAMILY_ID = 28
PID = 4242
ACKED = uapi.NLM_F_REQUEST | uapi.NLM_F_ACK


class daemon_ipvsmsg(pr_ipvs.ipvsmsg):
    """pyroute2's ipvsmsg with the daemon nest typed after the kernel's policy."""

    # pyroute2 marks a class's attribute table compiled in a class attribute, which a subclass would
    # inherit from an ipvsmsg used earlier (then keeping ipvsmsg's table): start uncompiled
    _nlmsg_base__compiled_nla = False
    nla_map = (
        ("IPVS_CMD_ATTR_UNSPEC", "none"),
        ("IPVS_CMD_ATTR_SERVICE", "service"),
        ("IPVS_CMD_ATTR_DEST", "dest"),
        ("IPVS_CMD_ATTR_DAEMON", "daemon"),
    )

    class daemon(nla):
        prefix = "IPVS_DAEMON_ATTR_"
        nla_map = (
            ("IPVS_DAEMON_ATTR_UNSPEC", "none"),
            ("IPVS_DAEMON_ATTR_STATE", "uint32"),
            ("IPVS_DAEMON_ATTR_MCAST_IFN", "asciiz"),
            ("IPVS_DAEMON_ATTR_SYNC_ID", "uint32"),
            ("IPVS_DAEMON_ATTR_SYNC_MAXLEN", "uint16"),
            ("IPVS_DAEMON_ATTR_MCAST_GROUP", "ip4addr"),
            ("IPVS_DAEMON_ATTR_MCAST_GROUP6", "ip6addr"),
            ("IPVS_DAEMON_ATTR_MCAST_PORT", "uint16"),
            ("IPVS_DAEMON_ATTR_MCAST_TTL", "uint8"),
        )


def pyroute2_bytes(cmd: int, attrs: list[tuple[str, Any]] | None, flags: int, seq: int) -> bytes:
    msg = daemon_ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = pr_ipvs.GENL_VERSION
    msg["attrs"] = [] if attrs is None else [("IPVS_CMD_ATTR_DAEMON", {"attrs": attrs})]
    header = msg["header"]
    header["type"] = FAMILY_ID
    header["flags"] = flags
    header["sequence_number"] = seq
    header["pid"] = PID
    msg.encode()
    return bytes(msg.data)


def pr_daemon(daemon: SyncDaemon) -> list[tuple[str, Any]]:
    attrs: list[tuple[str, Any]] = [
        ("IPVS_DAEMON_ATTR_STATE", int(daemon.state)),
        ("IPVS_DAEMON_ATTR_MCAST_IFN", daemon.interface),
        ("IPVS_DAEMON_ATTR_SYNC_ID", daemon.sync_id),
    ]
    if daemon.max_length is not None:
        attrs.append(("IPVS_DAEMON_ATTR_SYNC_MAXLEN", daemon.max_length))
    if daemon.group is not None:
        v6 = ":" in daemon.group
        attrs.append((f"IPVS_DAEMON_ATTR_MCAST_GROUP{'6' if v6 else ''}", daemon.group))
    if daemon.port is not None:
        attrs.append(("IPVS_DAEMON_ATTR_MCAST_PORT", daemon.port))
    if daemon.ttl is not None:
        attrs.append(("IPVS_DAEMON_ATTR_MCAST_TTL", daemon.ttl))
    return attrs


daemons = st.builds(
    SyncDaemon,
    state=st.sampled_from(DaemonState),
    interface=st.text("abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=15),
    sync_id=st.integers(0, 255),
    max_length=st.none() | st.integers(0, 0xFFFF),
    group=st.none() | st.sampled_from(["224.0.0.81", "239.255.1.2", "ff02::81", "ff15::1:2"]),
    port=st.none() | st.integers(0, 0xFFFF),
    ttl=st.none() | st.integers(0, 255),
)


@given(daemons, st.integers(1, 0xFFFFFFFF))
def test_new_daemon_matches_pyroute2(daemon: SyncDaemon, seq: int) -> None:
    ours = IpvsEncoder(FAMILY_ID, PID).new_daemon(daemon, flags=ACKED, seq=seq)
    assert ours == pyroute2_bytes(uapi.IPVS_CMD_NEW_DAEMON, pr_daemon(daemon), ACKED, seq)


@pytest.mark.parametrize("state", list(DaemonState))
def test_del_and_get_daemon_match_pyroute2(state: DaemonState) -> None:
    encoder = IpvsEncoder(FAMILY_ID, PID)
    assert encoder.del_daemon(state, flags=ACKED, seq=9) == pyroute2_bytes(
        uapi.IPVS_CMD_DEL_DAEMON, [("IPVS_DAEMON_ATTR_STATE", int(state))], ACKED, 9
    )
    dump = uapi.NLM_F_REQUEST | uapi.NLM_F_DUMP
    assert encoder.get_daemons(10) == pyroute2_bytes(uapi.IPVS_CMD_GET_DAEMON, None, dump, 10)


def test_new_daemon_bytes_spelled_out() -> None:
    """One request written out by hand, so that a shared mistake with pyroute2 cannot hide."""
    message = IpvsEncoder(FAMILY_ID, PID).new_daemon(
        SyncDaemon(DaemonState.BACKUP, "eth1", 7, 1400, "239.1.2.3", 8849, 2), flags=ACKED, seq=3
    )
    nest = (
        struct.pack("=HHI", 8, 1, 2)  # state backup
        + struct.pack("=HH", 9, 2) + b"eth1\0\0\0\0"  # name, NUL, padding
        + struct.pack("=HHI", 8, 3, 7)  # sync id
        + struct.pack("=HHH2x", 6, 4, 1400)  # max payload
        + struct.pack("=HH", 8, 5) + bytes([239, 1, 2, 3])  # group, network order
        + struct.pack("=HHH2x", 6, 7, 8849)  # port, host order
        + struct.pack("=HHB3x", 5, 8, 2)  # ttl
    )  # fmt: skip
    body = struct.pack("=BBH", uapi.IPVS_CMD_NEW_DAEMON, 1, 0) + struct.pack("=HH", 4 + len(nest), 3) + nest
    assert message == struct.pack("=IHHII", 16 + len(body), FAMILY_ID, ACKED, 3, PID) + body


@pytest.mark.parametrize(
    "daemon",
    [
        SyncDaemon(DaemonState.MASTER, "sixteen-chars-xx"),  # IP_VS_IFNAME_MAXLEN counts the NUL
        SyncDaemon(DaemonState.MASTER, ""),
        SyncDaemon(DaemonState.MASTER, "eth0", group="not-an-address"),
        SyncDaemon(DaemonState.MASTER, "eth0", port=70000),
        SyncDaemon(DaemonState.MASTER, "eth0", sync_id=-1),
    ],
)
def test_unencodable_daemons_are_value_errors(daemon: SyncDaemon) -> None:
    with pytest.raises(ValueError):
        IpvsEncoder(FAMILY_ID, PID).new_daemon(daemon, flags=ACKED, seq=1)


def kernel_reply(attrs: list[tuple[str, Any]]) -> bytes:
    """A GET_DAEMON answer as the kernel builds it (``ip_vs_genl_fill_daemon``: cmd NEW_DAEMON)."""
    return pyroute2_bytes(uapi.IPVS_CMD_NEW_DAEMON, attrs, uapi.NLM_F_MULTI, 4)


@given(daemons)
def test_reply_decodes_to_the_daemon(daemon: SyncDaemon) -> None:
    reply = kernel_reply(pr_daemon(daemon))
    assert daemon_reply(reply, 16, len(reply)) == daemon


def test_reply_of_a_kernel_before_4_3_has_no_optional_settings() -> None:
    reply = kernel_reply([
        ("IPVS_DAEMON_ATTR_STATE", 1),
        ("IPVS_DAEMON_ATTR_MCAST_IFN", "bond0"),
        ("IPVS_DAEMON_ATTR_SYNC_ID", 3),
    ])
    assert daemon_reply(reply, 16, len(reply)) == SyncDaemon(DaemonState.MASTER, "bond0", 3)


@pytest.mark.parametrize(
    "attrs",
    [
        [],
        [("IPVS_DAEMON_ATTR_STATE", 1), ("IPVS_DAEMON_ATTR_SYNC_ID", 3)],
        [("IPVS_DAEMON_ATTR_STATE", 3), ("IPVS_DAEMON_ATTR_MCAST_IFN", "e"), ("IPVS_DAEMON_ATTR_SYNC_ID", 0)],
    ],
)
def test_malformed_replies_are_format_errors(attrs: list[tuple[str, Any]]) -> None:
    reply = kernel_reply(attrs) if attrs else pyroute2_bytes(uapi.IPVS_CMD_NEW_DAEMON, None, 2, 4)
    with pytest.raises(DumpFormatError):
        daemon_reply(reply, 16, len(reply))
