"""The IPVS connection-sync daemons over generic netlink (IPVS_CMD_*_DAEMON) against the guest kernel.

Two network namespaces joined by a veth pair (``eth0`` on each side, 192.0.2.1 and 192.0.2.2) stand for
two directors; each has its own IPVS and so its own pair of daemons. ``ipvsadm -L --daemon`` is the
independent witness of what we started, and our dump must read what ``ipvsadm --start-daemon`` started.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lvs_agent.netlink import DaemonState, IpvsError, IpvsNetlink, SyncDaemon
from lvs_agent.syncd import NetlinkSyncDaemons, SyncDaemonConfig, SyncDaemonRecord

pytestmark = pytest.mark.kernel

MASTER, BACKUP = DaemonState.MASTER, DaemonState.BACKUP
_names = itertools.count()


def sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


class Director:
    """One namespace of the pair: its name and a netlink adapter opened inside it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kernel = IpvsNetlink(netns=name)

    def ipvsadm(self, *args: str) -> str:
        return sh("ip", "netns", "exec", self.name, "ipvsadm", *args)

    def ipvsadm_daemons(self) -> dict[str, dict[str, str]]:
        """``ipvsadm -L --daemon`` as state -> {"mcast": interface, "syncid": ..., "group": ...}."""
        found: dict[str, dict[str, str]] = {}
        for line in self.ipvsadm("-L", "--daemon").splitlines():
            match = re.match(r"\s*(master|backup) sync daemon \((.*)\)\s*$", line)
            if match:
                found[match.group(1)] = dict(
                    part.strip().split("=", 1) for part in match.group(2).split(",")
                )
        return found


@pytest.fixture
def pair() -> Iterator[tuple[Director, Director]]:
    if os.geteuid() != 0:
        raise RuntimeError("kernel tests must run as root inside the guest (tests/kernel/conftest.py)")
    prefix = f"lvssd{os.getpid()}-{next(_names)}"
    names = (f"{prefix}a", f"{prefix}b")
    directors: list[Director] = []
    try:
        for name in names:
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "link", "add", "syncveth0", "netns", names[0], "type", "veth",
           "peer", "name", "syncveth1", "netns", names[1])
        for index, name in enumerate(names):
            sh("ip", "-n", name, "link", "set", f"syncveth{index}", "name", "eth0")
            sh("ip", "-n", name, "addr", "add", f"192.0.2.{index + 1}/24", "dev", "eth0")
            sh("ip", "-n", name, "link", "set", "eth0", "up")
            directors.append(Director(name))
        yield directors[0], directors[1]
    finally:
        for director in directors:
            for state in DaemonState:
                with contextlib.suppress(IpvsError):  # most tests stop their own
                    director.kernel.stop_daemon(state)
            director.kernel.close()
        for name in names:
            sh("ip", "netns", "del", name, check=False)


def test_master_and_backup_in_two_namespaces(pair: tuple[Director, Director]) -> None:
    a, b = pair
    a.kernel.start_daemon(SyncDaemon(MASTER, "eth0", 7))
    a.kernel.start_daemon(SyncDaemon(BACKUP, "eth0", 7))
    b.kernel.start_daemon(SyncDaemon(BACKUP, "eth0", 9, group="ff02::81"))

    by_state = {daemon.state: daemon for daemon in a.kernel.daemons()}
    assert set(by_state) == {MASTER, BACKUP}
    for daemon in by_state.values():
        # the kernel fills in its defaults: group 224.0.0.81, port 8848, TTL 1, a payload below the MTU
        assert (daemon.interface, daemon.sync_id, daemon.group, daemon.port, daemon.ttl) == (
            "eth0", 7, "224.0.0.81", 8848, 1
        )
        assert daemon.max_length is not None and 0 < daemon.max_length <= 1500
    assert [(d.state, d.interface, d.sync_id, d.group) for d in b.kernel.daemons()] == [
        (BACKUP, "eth0", 9, "ff02::81")
    ]

    witness_a, witness_b = a.ipvsadm_daemons(), b.ipvsadm_daemons()
    assert {state: (d["mcast"], d["syncid"]) for state, d in witness_a.items()} == {
        "master": ("eth0", "7"), "backup": ("eth0", "7")
    }
    assert set(witness_b) == {"backup"}
    assert (witness_b["backup"]["syncid"], witness_b["backup"]["group"]) == ("9", "ff02::81")

    a.kernel.stop_daemon(MASTER)
    assert [d.state for d in a.kernel.daemons()] == [BACKUP]
    assert set(a.ipvsadm_daemons()) == {"backup"}
    a.kernel.stop_daemon(BACKUP)
    b.kernel.stop_daemon(BACKUP)
    assert a.kernel.daemons() == [] and b.kernel.daemons() == []
    assert a.ipvsadm_daemons() == {} and b.ipvsadm_daemons() == {}


def test_every_setting_reaches_the_kernel(pair: tuple[Director, Director]) -> None:
    a, _ = pair
    wanted = SyncDaemon(MASTER, "eth0", 200, max_length=1200, group="239.1.2.3", port=8850, ttl=3)
    a.kernel.start_daemon(wanted)
    assert a.kernel.daemons() == [wanted]
    assert a.ipvsadm_daemons()["master"] == {
        "mcast": "eth0", "syncid": "200", "maxlen": "1200", "group": "239.1.2.3", "port": "8850", "ttl": "3"
    }


def test_our_dump_reads_what_ipvsadm_started(pair: tuple[Director, Director]) -> None:
    _, b = pair
    b.ipvsadm("--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "42", "--sync-maxlen",
              "1000", "--mcast-group", "239.9.9.9", "--mcast-port", "9000", "--mcast-ttl", "5")
    [daemon] = b.kernel.daemons()
    # a backup's length is the kernel's to adjust (6.1 keeps 1024 for 1000): both readers must agree on it
    assert daemon.max_length is not None and daemon.max_length >= 1000
    assert str(daemon.max_length) == b.ipvsadm_daemons()["backup"]["maxlen"]
    assert daemon == SyncDaemon(BACKUP, "eth0", 42, daemon.max_length, "239.9.9.9", 9000, 5)
    b.kernel.stop_daemon(BACKUP)
    assert b.ipvsadm_daemons() == {}


def test_refusals_carry_the_kernels_errno(pair: tuple[Director, Director]) -> None:
    a, _ = pair

    def refused(action: object) -> int:
        assert callable(action)
        with pytest.raises(IpvsError) as raised:
            action()
        assert raised.value.errno is not None
        return raised.value.errno

    a.kernel.start_daemon(SyncDaemon(MASTER, "eth0", 1))
    assert refused(lambda: a.kernel.start_daemon(SyncDaemon(MASTER, "eth0", 1))) == errno.EEXIST
    assert refused(lambda: a.kernel.stop_daemon(BACKUP)) == errno.ESRCH
    assert refused(lambda: a.kernel.start_daemon(SyncDaemon(BACKUP, "eth9", 1))) == errno.ENODEV
    assert refused(lambda: a.kernel.start_daemon(SyncDaemon(BACKUP, "eth0", 1, group="192.0.2.9"))) == (
        errno.EINVAL
    )
    # refused before anything is sent: a name the kernel's IP_VS_IFNAME_MAXLEN cannot hold
    assert refused(lambda: a.kernel.start_daemon(SyncDaemon(BACKUP, "x" * 16, 1))) == errno.EINVAL
    # none of the refusals disturbed the running master, and the socket still answers
    assert [(d.state, d.sync_id) for d in a.kernel.daemons()] == [(MASTER, 1)]


def test_agent_start_up_ensures_both_daemons_once(pair: tuple[Director, Director]) -> None:
    a, _ = pair
    syncd = NetlinkSyncDaemons(a.kernel)
    a.kernel.start_daemon(SyncDaemon(BACKUP, "eth0", 5))  # say, left by a previous agent
    assert syncd.ensure(SyncDaemonConfig("eth0", sync_id=5)) == ["master"]
    assert syncd.ensure(SyncDaemonConfig("eth0", sync_id=5)) == []
    assert syncd.running() == {"master": "eth0", "backup": "eth0"}
    assert set(a.ipvsadm_daemons()) == {"master", "backup"}


def add_dummy(director: Director, name: str) -> None:
    sh("ip", "-n", director.name, "link", "add", name, "type", "dummy")
    sh("ip", "-n", director.name, "link", "set", name, "up")


def test_changed_settings_restart_the_agents_own_daemons(pair: tuple[Director, Director],
                                                         tmp_path: Path) -> None:
    a, _ = pair
    add_dummy(a, "sync1")
    record = tmp_path / "syncd.json"

    def agent() -> NetlinkSyncDaemons:  # a new agent process: the record is read back from disk
        return NetlinkSyncDaemons(a.kernel, SyncDaemonRecord(record))

    assert agent().ensure(SyncDaemonConfig("eth0", sync_id=5)) == ["master", "backup"]
    assert {state: (d["mcast"], d["syncid"]) for state, d in a.ipvsadm_daemons().items()} == {
        "master": ("eth0", "5"), "backup": ("eth0", "5")}
    # the kernel reads back its defaults (group, port, TTL, length): still the configured settings
    assert agent().ensure(SyncDaemonConfig("eth0", sync_id=5)) == []

    assert agent().ensure(SyncDaemonConfig("sync1", sync_id=5)) == ["master", "backup"]
    assert [(d.state, d.interface, d.sync_id) for d in a.kernel.daemons()] == [
        (MASTER, "sync1", 5), (BACKUP, "sync1", 5)]
    assert agent().ensure(SyncDaemonConfig("sync1", sync_id=9, multicast_group="239.1.2.3")) == [
        "master", "backup"]
    witness = a.ipvsadm_daemons()
    assert {state: (d["mcast"], d["syncid"], d["group"]) for state, d in witness.items()} == {
        "master": ("sync1", "9", "239.1.2.3"), "backup": ("sync1", "9", "239.1.2.3")}

    # new settings the kernel refuses: the daemons that worked are put back
    with pytest.raises(IpvsError) as refused:
        agent().ensure(SyncDaemonConfig("eth9", sync_id=9))
    assert refused.value.errno == errno.ENODEV
    assert [(d.state, d.interface, d.sync_id, d.group) for d in a.kernel.daemons()] == [
        (MASTER, "sync1", 9, "239.1.2.3"), (BACKUP, "sync1", 9, "239.1.2.3")]


def test_a_daemon_the_agent_did_not_start_is_never_touched(pair: tuple[Director, Director],
                                                           tmp_path: Path) -> None:
    _, b = pair
    b.ipvsadm("--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "42")  # keepalived, say
    syncd = NetlinkSyncDaemons(b.kernel, SyncDaemonRecord(tmp_path / "syncd.json"))
    assert syncd.ensure(SyncDaemonConfig("eth0", sync_id=7)) == ["master"]
    assert list(syncd.foreign) == ["backup"]
    assert {state: d["syncid"] for state, d in b.ipvsadm_daemons().items()} == {"master": "7", "backup": "42"}
    syncd = NetlinkSyncDaemons(b.kernel, SyncDaemonRecord(tmp_path / "syncd.json"))
    assert syncd.ensure(SyncDaemonConfig("eth0", sync_id=8)) == ["master"]  # ours follows, theirs stays
    assert {state: d["syncid"] for state, d in b.ipvsadm_daemons().items()} == {"master": "8", "backup": "42"}
