"""Changed sync settings reach the kernel: a daemon the agent started (its record says so) is restarted
when its settings read back from the kernel differ from the configured ones; any other daemon is left
running and reported as foreign. Over the in-memory SyncDaemonControl; tests/kernel/test_netlink_syncd.py
does the same against the guest kernel."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from lvs_agent.netlink import DaemonState, FakeSyncDaemons, IpvsError, SyncDaemon
from lvs_agent.syncd import NetlinkSyncDaemons, SyncDaemonConfig, SyncDaemonRecord, same_settings

MASTER, BACKUP = DaemonState.MASTER, DaemonState.BACKUP


def agent(kernel: FakeSyncDaemons, tmp_path: Path) -> NetlinkSyncDaemons:
    """A fresh agent process: a new NetlinkSyncDaemons reading the record file from disk."""
    return NetlinkSyncDaemons(kernel, SyncDaemonRecord(tmp_path / "syncd.json"))


def settings(kernel: FakeSyncDaemons) -> list[tuple[str, str, int, str | None]]:
    return [(d.state.label, d.interface, d.sync_id, d.group) for d in kernel.daemons()]


def test_a_changed_interface_or_syncid_restarts_our_daemons_across_agent_restarts(tmp_path: Path) -> None:
    kernel = FakeSyncDaemons(interfaces=["eth0", "eth1"])
    assert agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth0", sync_id=5)) == ["master", "backup"]
    # the agent restarts with another interface: both daemons move
    assert agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth1", sync_id=5)) == ["master", "backup"]
    assert settings(kernel) == [("master", "eth1", 5, None), ("backup", "eth1", 5, None)]
    # then another syncid, then a multicast group
    assert agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth1", sync_id=9)) == ["master", "backup"]
    config = SyncDaemonConfig("eth1", sync_id=9, multicast_group="239.1.2.3")
    assert agent(kernel, tmp_path).ensure(config) == ["master", "backup"]
    assert settings(kernel) == [("master", "eth1", 9, "239.1.2.3"), ("backup", "eth1", 9, "239.1.2.3")]
    requests = kernel.requests
    assert agent(kernel, tmp_path).ensure(config) == []  # unchanged: read back, nothing sent
    assert kernel.requests == requests


def test_the_kernels_defaults_read_back_count_as_the_same_settings(tmp_path: Path) -> None:
    kernel = FakeSyncDaemons()
    syncd = agent(kernel, tmp_path)
    syncd.ensure(SyncDaemonConfig("eth0", sync_id=3))
    # a real kernel reports the defaults it filled in (group, port, TTL, payload length)
    for state in (MASTER, BACKUP):
        kernel.running[state] = SyncDaemon(state, "eth0", 3, 1472, "224.0.0.81", 8848, 1)
    requests = kernel.requests
    assert agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth0", sync_id=3)) == []
    assert kernel.requests == requests
    assert agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth0", sync_id=4)) == ["master", "backup"]
    assert not same_settings(SyncDaemon(MASTER, "eth0", 3, port=8849), SyncDaemon(MASTER, "eth0", 3))


def test_a_daemon_we_did_not_start_is_left_alone_and_reported(tmp_path: Path) -> None:
    kernel = FakeSyncDaemons(interfaces=["eth0", "eth1"])
    foreign = SyncDaemon(BACKUP, "eth0", 42)  # keepalived's, or an operator's ipvsadm --start-daemon
    kernel.start_daemon(foreign)
    syncd = agent(kernel, tmp_path)
    assert syncd.ensure(SyncDaemonConfig("eth1", sync_id=5)) == ["master"]
    assert kernel.running[BACKUP] == foreign
    assert syncd.foreign == {"backup": foreign}
    # ours moves with the configuration, the foreign one still does not
    syncd = agent(kernel, tmp_path)
    assert syncd.ensure(SyncDaemonConfig("eth0", sync_id=6)) == ["master"]
    assert settings(kernel) == [("master", "eth0", 6, None), ("backup", "eth0", 42, None)]
    assert syncd.foreign == {"backup": foreign}


def test_a_daemon_restarted_by_someone_else_with_other_settings_is_no_longer_ours(tmp_path: Path) -> None:
    kernel = FakeSyncDaemons(interfaces=["eth0", "eth1"])
    agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth0", sync_id=5))
    kernel.stop_daemon(MASTER)
    kernel.start_daemon(SyncDaemon(MASTER, "eth1", 77))
    syncd = agent(kernel, tmp_path)
    assert syncd.ensure(SyncDaemonConfig("eth0", sync_id=6)) == ["backup"]
    assert kernel.running[MASTER] == SyncDaemon(MASTER, "eth1", 77)
    assert list(syncd.foreign) == ["master"]


def test_without_a_record_nothing_is_restarted() -> None:
    kernel = FakeSyncDaemons(interfaces=["eth0", "eth1"])
    NetlinkSyncDaemons(kernel).ensure(SyncDaemonConfig("eth0", sync_id=5))
    assert NetlinkSyncDaemons(kernel).ensure(SyncDaemonConfig("eth1", sync_id=5)) == []
    assert settings(kernel) == [("master", "eth0", 5, None), ("backup", "eth0", 5, None)]


def test_refused_new_settings_put_the_old_daemon_back(tmp_path: Path) -> None:
    kernel = FakeSyncDaemons(interfaces=["eth0"])
    agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth0", sync_id=5))
    with pytest.raises(IpvsError) as raised:
        agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth9", sync_id=5))  # no such interface
    assert raised.value.errno == errno.ENODEV
    assert settings(kernel) == [("master", "eth0", 5, None), ("backup", "eth0", 5, None)]
    # the record still names the daemons that run, so a corrected configuration restarts them
    assert agent(kernel, tmp_path).ensure(SyncDaemonConfig("eth0", sync_id=8)) == ["master", "backup"]


def test_the_record_is_written_before_the_start(tmp_path: Path) -> None:
    recorded: list[SyncDaemon | None] = []

    class Watching(FakeSyncDaemons):
        def start_daemon(self, daemon: SyncDaemon) -> None:
            recorded.append(SyncDaemonRecord(tmp_path / "syncd.json").get(daemon.state))
            super().start_daemon(daemon)

    agent(Watching(), tmp_path).ensure(SyncDaemonConfig("eth0", sync_id=1))
    assert recorded == [SyncDaemon(MASTER, "eth0", 1), SyncDaemon(BACKUP, "eth0", 1)]


def test_foreign_daemons_are_described_for_the_report(tmp_path: Path) -> None:
    kernel = FakeSyncDaemons(interfaces=["eth0"])
    kernel.start_daemon(SyncDaemon(BACKUP, "eth0", 42))
    syncd = agent(kernel, tmp_path)
    syncd.ensure(SyncDaemonConfig("eth0", sync_id=5))
    assert syncd.problems() == ["IPVS backup sync daemon runs as backup on eth0 syncid 42 group 224.0.0.81, "
                                "not as configured; not started by this agent, so left running"]
    kernel.stop_daemon(BACKUP)
    syncd.ensure(SyncDaemonConfig("eth0", sync_id=5))
    assert syncd.problems() == []
