"""The DirectorReport errors docs/operations.md quotes are the agent's own words: the foreign sync daemon
("Connection sync") and the IPv6 interface that cannot answer for its proxied VIPs ("IPv6 VIPs: proxy
NDP"). Each message is produced by the agent's code on a fake kernel or a fake /proc/sys tree, then looked
up in the document."""

from __future__ import annotations

import re
from pathlib import Path

from lvs_agent.addresses import NetlinkVipAddresses
from lvs_agent.netlink import DaemonState, FakeSyncDaemons, SyncDaemon
from lvs_agent.syncd import NetlinkSyncDaemons, SyncDaemonConfig, SyncDaemonRecord

REPO = Path(__file__).resolve().parents[2]
OPERATIONS = (REPO / "docs" / "operations.md").read_text()


def prose(text: str) -> str:
    """The document's text with line breaks and backticks out of the way, for quotes that wrap."""
    return re.sub(r"\s+", " ", text.replace("`", ""))


def test_the_foreign_sync_daemon_message_is_quoted_as_the_agent_words_it(tmp_path: Path) -> None:
    kernel = FakeSyncDaemons(interfaces=("eth0", "eth1"))
    kernel.start_daemon(SyncDaemon(DaemonState.MASTER, "eth1", 7))  # keepalived's, say; no backup yet
    daemons = NetlinkSyncDaemons(kernel, SyncDaemonRecord(tmp_path / "owned.syncd.json"))
    started = daemons.ensure(SyncDaemonConfig("eth0", 0))
    assert started == ["backup"]
    assert kernel.running[DaemonState.MASTER].interface == "eth1"  # left running, as the doc says
    (problem,) = daemons.problems()
    assert problem in prose(OPERATIONS), problem


def test_the_ipv6_answer_problems_are_quoted_as_the_agent_words_them(tmp_path: Path) -> None:
    conf = tmp_path / "eth0"
    conf.mkdir()
    (conf / "proxy_ndp").mkdir()  # unwritable even for root: what a read-only /proc/sys is to the agent
    (conf / "forwarding").write_text("0\n")
    vips = NetlinkVipAddresses(interface="lvsdoc0", ipv6_conf=tmp_path)
    try:
        vips._check_ipv6_answers("eth0")
    finally:
        vips.close()
    cannot_set, forwarding_off = vips.problems["eth0"].split("; net.ipv6.conf.")
    forwarding_off = "net.ipv6.conf." + forwarding_off
    documented = prose(OPERATIONS)
    # the doc quotes the read-only case: the agent puts the OS error's text in parentheses
    cannot_set = re.sub(r"\(([^)]*)\)", "(Read-only file system)", cannot_set, count=1)
    assert cannot_set in documented, cannot_set
    assert forwarding_off.split(" on the node ")[0] + " on the node ..." in documented, forwarding_off
