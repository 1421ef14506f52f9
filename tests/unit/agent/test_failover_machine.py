"""The failover state machine on a fake clock: a small simulated cluster of directors exchanging
heartbeats over a network whose links can be cut, sharing one compare-and-swap Lease store whose API
can go away. Each scenario checks who holds the VIPs, when, and with which term."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from lvs_agent.failover.machine import (
    ActionKind,
    FailoverTiming,
    GroupMachine,
    LeaseView,
    Role,
    preference_order,
)

GROUP = "203.0.113.10"
TIMING = FailoverTiming()  # the defaults: 50 ms interval, dead after 3 missed


@dataclass
class Store:
    """In-memory Lease with the same compare-and-swap rule as the real stores."""

    holder: str = ""
    transitions: int = 0
    exists: bool = False
    writes: list[str] = field(default_factory=list)

    def view(self) -> LeaseView:
        return LeaseView(self.holder, self.transitions, expired=not self.exists)

    def acquire(self, node: str, expected: LeaseView | None) -> LeaseView | None:
        current = self.view()
        if expected is not None and expected.holder != current.holder:
            return None
        if self.exists and self.holder != node:
            self.transitions += 1
        self.holder, self.exists = node, True
        self.writes.append(node)
        return self.view()


@dataclass
class Cluster:
    nodes: list[str]
    now: float = 0.0
    alive: dict[str, bool] = field(default_factory=dict)
    api_up: dict[str, bool] = field(default_factory=dict)
    cut: set[frozenset[str]] = field(default_factory=set)
    store: Store = field(default_factory=Store)
    machines: dict[str, GroupMachine] = field(default_factory=dict)
    became_active: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.nodes:
            self.start(node)

    def start(self, node: str) -> None:
        peers = [other for other in self.nodes if other != node]
        self.machines[node] = GroupMachine(GROUP, node, peers, TIMING, self.now)
        self.alive[node] = True
        self.api_up.setdefault(node, True)

    def kill(self, node: str) -> None:
        self.alive[node] = False

    def active(self) -> list[str]:
        return sorted(
            node
            for node, machine in self.machines.items()
            if self.alive[node] and machine.role is Role.ACTIVE
        )

    def step(self) -> None:
        self.now = round(self.now + TIMING.interval, 6)
        for sender, machine in self.machines.items():
            if not self.alive[sender]:
                continue
            for receiver, other in self.machines.items():
                linked = frozenset((sender, receiver)) not in self.cut
                if receiver != sender and self.alive[receiver] and linked:
                    other.heartbeat(sender, machine.role is Role.ACTIVE, machine.term, self.now)
        for node, machine in self.machines.items():
            if not self.alive[node]:
                continue
            was_active = machine.role is Role.ACTIVE
            for action in machine.decide(self.now):
                self.execute(node, machine, action.kind, action.expected)
            if machine.role is Role.ACTIVE and not was_active:
                self.became_active.setdefault(node, []).append(self.now)

    def execute(self, node: str, machine: GroupMachine, kind: ActionKind, expected: LeaseView | None) -> None:
        if not self.api_up[node]:
            machine.lease_unavailable(self.now)
            return
        if kind is ActionKind.READ_LEASE:
            machine.lease_read(self.store.view(), self.now)
        elif kind is ActionKind.ACQUIRE_LEASE:
            view = self.store.acquire(node, expected)
            if view is None:
                machine.lease_lost(self.store.view(), self.now)
            else:
                machine.lease_acquired(view, self.now)
        elif kind is ActionKind.RENEW_LEASE:
            if self.store.holder == node:
                machine.lease_renewed(self.store.view(), self.now)
            else:
                machine.lease_lost(self.store.view(), self.now)

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / TIMING.interval)):
            self.step()
            assert len(self.active()) <= 1 or self.cut or not all(self.api_up.values()), self.active()


def test_initial_owner_is_the_preferred_node_and_only_one() -> None:
    nodes = ["director-a", "director-b", "director-c"]
    cluster = Cluster(nodes)
    cluster.run(1.0)
    assert cluster.active() == [preference_order(GROUP, nodes)[0]]
    assert cluster.store.writes == [preference_order(GROUP, nodes)[0]]  # no contention on the Lease


def test_preference_is_deterministic_and_spreads_groups() -> None:
    nodes = ["a", "b", "c"]
    assert preference_order("g1", nodes) == preference_order("g1", list(reversed(nodes)))
    firsts = {preference_order(f"203.0.113.{i}", nodes)[0] for i in range(30)}
    assert firsts == set(nodes)


def test_active_death_is_taken_over_within_dead_after_plus_one_interval() -> None:
    cluster = Cluster(["director-a", "director-b"])
    cluster.run(1.0)
    [first] = cluster.active()
    [second] = [node for node in cluster.nodes if node != first]
    died_at = cluster.now
    cluster.kill(first)
    cluster.run(1.0)
    assert cluster.active() == [second]
    took_over_at = cluster.became_active[second][-1]
    assert took_over_at - died_at <= TIMING.dead_after + TIMING.interval + 1e-9
    assert cluster.machines[second].term == 1  # the fencing token moved on
    assert cluster.store.holder == second


def test_with_three_directors_only_one_takes_over() -> None:
    cluster = Cluster(["d1", "d2", "d3"])
    cluster.run(1.0)
    [first] = cluster.active()
    cluster.kill(first)
    cluster.run(2.0)
    assert len(cluster.active()) == 1
    assert cluster.store.transitions == 1


def test_api_away_standby_cannot_take_over_and_active_keeps_vips_while_it_hears_peers() -> None:
    cluster = Cluster(["director-a", "director-b"])
    cluster.run(1.0)
    [first] = cluster.active()
    for node in cluster.nodes:
        cluster.api_up[node] = False
    cluster.run(30.0)  # far beyond the Lease duration: the active still hears its standby
    assert cluster.active() == [first]
    assert cluster.machines[first].wants_vips() is True


def test_api_away_and_active_dead_means_takeover_waits_for_the_api() -> None:
    cluster = Cluster(["director-a", "director-b"])
    cluster.run(1.0)
    [first] = cluster.active()
    [second] = [node for node in cluster.nodes if node != first]
    cluster.api_up[second] = False
    cluster.kill(first)
    cluster.run(3.0)
    assert cluster.active() == []
    cluster.api_up[second] = True
    cluster.run(1.0)
    assert cluster.active() == [second]


def test_heartbeat_partition_resolves_through_the_lease_and_terms() -> None:
    cluster = Cluster(["director-a", "director-b"])
    cluster.run(1.0)
    [first] = cluster.active()
    [second] = [node for node in cluster.nodes if node != first]
    cluster.cut.add(frozenset(cluster.nodes))
    cluster.run(0.5)
    # the standby cannot tell a cut link from a death: it takes the Lease (a new term)...
    assert cluster.machines[second].role is Role.ACTIVE
    assert cluster.machines[second].term == 1
    # ...and the old active steps down at its next renewal, when the Lease names someone else
    cluster.run(TIMING.renew_interval + TIMING.interval)
    assert cluster.active() == [second]
    assert cluster.machines[first].role is Role.STANDBY
    cluster.run(10 * TIMING.renew_interval)
    assert cluster.active() == [second]
    assert cluster.store.transitions == 1  # the cut link does not make them take turns
    cluster.cut.clear()
    cluster.run(1.0)
    assert cluster.active() == [second]  # no preemption back
    assert cluster.store.transitions == 1


def test_higher_term_heartbeat_makes_the_old_active_step_down_at_once() -> None:
    cluster = Cluster(["director-a", "director-b"])
    cluster.run(1.0)
    [first] = cluster.active()
    [second] = [node for node in cluster.nodes if node != first]
    cluster.cut.add(frozenset(cluster.nodes))
    cluster.api_up[first] = False  # the old active cannot learn it from the Lease
    cluster.run(0.5)
    assert cluster.machines[second].role is Role.ACTIVE
    cluster.cut.clear()
    cluster.step()
    cluster.step()
    assert cluster.active() == [second]


def test_isolated_active_steps_down_after_the_lease_duration() -> None:
    cluster = Cluster(["director-a", "director-b"])
    cluster.run(1.0)
    [first] = cluster.active()
    [second] = [node for node in cluster.nodes if node != first]
    cluster.cut.add(frozenset(cluster.nodes))
    cluster.api_up[first] = False
    cluster.api_up[second] = False  # nobody can take over, but the active cannot know that
    cluster.run(TIMING.lease_duration - 1.0)
    assert cluster.machines[first].role is Role.ACTIVE
    cluster.run(2.0)
    assert cluster.machines[first].role is Role.STANDBY


def test_single_director_without_peers_keeps_its_vips_when_the_api_is_away() -> None:
    cluster = Cluster(["solo"])
    cluster.run(0.5)
    assert cluster.active() == ["solo"]
    cluster.api_up["solo"] = False
    cluster.run(60.0)
    assert cluster.active() == ["solo"]


def test_restarted_holder_takes_its_vips_back_with_the_same_term_and_never_releases_them() -> None:
    cluster = Cluster(["director-a", "director-b"])
    cluster.run(1.0)
    [first] = cluster.active()
    term = cluster.machines[first].term
    cluster.kill(first)
    cluster.step()  # restarted within one interval: the standby has not declared it dead
    cluster.start(first)
    machine = cluster.machines[first]
    intents = []
    for _ in range(10):
        cluster.step()
        intents.append(machine.wants_vips())
    assert False not in intents  # never told to remove a serving VIP
    assert cluster.active() == [first]
    assert machine.term == term
    assert cluster.store.transitions == term


def test_a_standby_started_after_a_takeover_releases_stale_vips() -> None:
    machine = GroupMachine(GROUP, "director-a", ["director-b"], TIMING, started_at=0.0)
    assert machine.wants_vips() is None  # role unknown: do not touch
    [action] = machine.decide(0.0)
    assert action.kind is ActionKind.READ_LEASE
    machine.lease_read(LeaseView("director-b", 3), 0.01)
    machine.heartbeat("director-b", True, 3, 0.02)
    assert machine.decide(0.05) == []
    assert machine.wants_vips() is False


def test_unknown_holder_is_only_replaced_after_lease_expiry() -> None:
    machine = GroupMachine(GROUP, "director-a", ["director-b"], TIMING, started_at=0.0)
    machine.decide(0.0)
    machine.lease_read(LeaseView("removed-node", 4, expired=False), 0.0)
    assert machine.decide(1.0) == []
    machine.lease_read(LeaseView("removed-node", 4, expired=True), 1.0)
    [action] = machine.decide(1.05)
    assert action.kind is ActionKind.ACQUIRE_LEASE
    assert action.expected == LeaseView("removed-node", 4, expired=True)


@pytest.mark.parametrize("missed", [2, 3, 5])
def test_detection_time_follows_the_missed_count(missed: int) -> None:
    timing = FailoverTiming(missed=missed)
    machine = GroupMachine(GROUP, "b", ["a"], timing, started_at=0.0)
    machine.heartbeat("a", True, 0, 0.0)
    assert set(machine.live_peers(timing.dead_after - 0.001)) == {"a"}
    assert machine.live_peers(timing.dead_after + 0.001) == {}


def test_standby_started_while_the_holder_is_silent_waits_for_lease_expiry() -> None:
    machine = GroupMachine(GROUP, "director-b", ["director-a"], TIMING, started_at=0.0)
    [first_read] = machine.decide(0.0)
    assert first_read.kind is ActionKind.READ_LEASE
    machine.lease_read(LeaseView("director-a", 2, expired=False), 0.0)
    # never heard director-a in term 2: it may be alive behind a cut link
    actions = [action.kind for t in range(1, 100) for action in machine.decide(t * TIMING.interval)]
    assert ActionKind.ACQUIRE_LEASE not in actions
    assert ActionKind.READ_LEASE in actions  # keeps re-reading to learn the expiry
    machine.lease_read(LeaseView("director-a", 2, expired=True), 5.0)
    [acquire] = machine.decide(5.05)
    assert acquire.kind is ActionKind.ACQUIRE_LEASE
    machine.lease_acquired(LeaseView("director-b", 3), 5.06)
    assert machine.role is Role.ACTIVE and machine.term == 3
