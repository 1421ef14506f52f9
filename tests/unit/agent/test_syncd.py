"""The agent's sync-daemon start-up (lvs_agent.syncd) over the in-memory SyncDaemonControl."""

from __future__ import annotations

import errno

import pytest
from lvs_agent.netlink import DaemonState, FakeSyncDaemons, IpvsError, SyncDaemon
from lvs_agent.syncd import NetlinkSyncDaemons, SyncDaemonConfig


def test_ensure_starts_master_and_backup_once() -> None:
    kernel = FakeSyncDaemons(interfaces=["eth1"])
    syncd = NetlinkSyncDaemons(kernel)
    config = SyncDaemonConfig("eth1", sync_id=7, multicast_group="239.1.2.3")
    assert syncd.ensure(config) == ["master", "backup"]
    assert kernel.daemons() == [
        SyncDaemon(DaemonState.MASTER, "eth1", 7, group="239.1.2.3"),
        SyncDaemon(DaemonState.BACKUP, "eth1", 7, group="239.1.2.3"),
    ]
    assert syncd.running() == {"master": "eth1", "backup": "eth1"}
    requests = kernel.requests
    assert syncd.ensure(SyncDaemonConfig("eth1", sync_id=7)) == []
    assert kernel.requests == requests  # read back, nothing sent


def test_ensure_starts_only_the_missing_daemon() -> None:
    kernel = FakeSyncDaemons(interfaces=["eth0", "eth1"])
    kernel.start_daemon(SyncDaemon(DaemonState.BACKUP, "eth0", 1))
    assert NetlinkSyncDaemons(kernel).ensure(SyncDaemonConfig("eth1", sync_id=2)) == ["master"]
    assert NetlinkSyncDaemons(kernel).running() == {"master": "eth1", "backup": "eth0"}


class StartedMeanwhile(FakeSyncDaemons):
    """Another process starts the master between the agent's read-back and its start request."""

    def daemons(self) -> list[SyncDaemon]:
        found = super().daemons()
        if not self.running:
            self.running[DaemonState.MASTER] = SyncDaemon(DaemonState.MASTER, "eth0")
        return found


def test_a_daemon_started_meanwhile_counts_as_running() -> None:
    kernel = StartedMeanwhile()
    assert NetlinkSyncDaemons(kernel).ensure(SyncDaemonConfig("eth0")) == ["backup"]
    assert set(kernel.running) == {DaemonState.MASTER, DaemonState.BACKUP}


@pytest.mark.parametrize(
    ("config", "code"),
    [
        (SyncDaemonConfig("eth9"), errno.ENODEV),
        (SyncDaemonConfig("eth0", multicast_group="192.0.2.1"), errno.EINVAL),
        (SyncDaemonConfig("an-interface-name-too-long"), errno.EINVAL),
    ],
)
def test_kernel_refusals_surface_with_their_errno(config: SyncDaemonConfig, code: int) -> None:
    kernel = FakeSyncDaemons()
    with pytest.raises(IpvsError) as raised:
        NetlinkSyncDaemons(kernel).ensure(config)
    assert raised.value.errno == code
    assert kernel.daemons() == []


def test_fake_stop_errors_like_the_kernel() -> None:
    kernel = FakeSyncDaemons()
    with pytest.raises(IpvsError) as raised:
        kernel.stop_daemon(DaemonState.MASTER)
    assert raised.value.errno == errno.ESRCH
    kernel.start_daemon(SyncDaemon(DaemonState.MASTER, "eth0"))
    with pytest.raises(IpvsError) as raised:
        kernel.start_daemon(SyncDaemon(DaemonState.MASTER, "eth0"))
    assert raised.value.errno == errno.EEXIST
    kernel.stop_daemon(DaemonState.MASTER)
    assert kernel.daemons() == []
