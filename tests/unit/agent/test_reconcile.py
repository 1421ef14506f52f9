"""The reconcile pass and loop over the fake IpvsKernel: ownership, foreign services left alone,
zero writes when nothing changed (also across a restart), minimal operations, errno failures reported
and retried with backoff."""

from __future__ import annotations

import asyncio
import errno
import json
from pathlib import Path
from typing import Any

import pytest
from lvs_agent.desired import FileDesiredStateSource
from lvs_agent.netlink import FakeIpvsKernel
from lvs_agent.ownership import OwnershipRecord
from lvs_agent.reconcile import ReconcileLoop, Reconciler
from lvs_api.compiler import compile_resolved
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
    VirtualServer,
)
from lvs_api.models import ResolvedMember, ResolvedService
from lvs_api.planner import plan

# a hang (a blocked event loop, a stuck thread) fails with a traceback instead of stalling the suite
pytestmark = pytest.mark.timeout(120)

WEB = ServiceKey(Family.INET, Protocol.TCP, "203.0.113.10", 80)
KUBE_PROXY = ServiceKey(Family.INET, Protocol.TCP, "198.51.100.200", 443)
KUBE_PROXY_TABLE = VirtualServer(
    ServiceConfig("rr"), {DestKey(Family.INET, "10.0.0.5", 6443): DestConfig(ForwardMethod.MASQ, 1)}
)


def resolved(name: str = "web", vip: str = "203.0.113.10", members: tuple[tuple[str, int], ...] = (
        ("198.51.100.11", 1), ("198.51.100.12", 2)), port: int = 80, **service: Any) -> dict[str, Any]:
    return {
        "apiVersion": "lvs.io/v1alpha1", "kind": "ResolvedService",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "acceptedGeneration": 3, "virtualServiceUid": f"uid-{name}",
            "service": {"vip": vip, "ports": [{"port": port}], "poolRef": {"name": "pool"},
                        "scheduler": {"name": "wlc"}, **service},
            "members": [{"address": address, "weight": weight} for address, weight in members],
        },
    }


def state(*objects: dict[str, Any]) -> dict[str, ResolvedService]:
    parsed = [ResolvedService.model_validate(item) for item in objects]
    return {f"{item.metadata.namespace}/{item.metadata.name}": item for item in parsed}


def make(kernel: FakeIpvsKernel, tmp_path: Path, **kwargs: Any) -> Reconciler:
    return Reconciler(node_labels={"lvs.io/director": "true"}, kernel=kernel,
                      record=OwnershipRecord(tmp_path / "owned.json"), compile_service=compile_resolved,
                      plan=plan, **kwargs)


def test_first_pass_programs_then_nothing_more_even_after_a_restart(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    desired = state(resolved())
    first = make(kernel, tmp_path).reconcile_once(desired)
    assert [op.kind for op in first.ops] == [OpKind.ADD_SERVICE, OpKind.ADD_DEST, OpKind.ADD_DEST]
    assert first.outcomes["shop/web"].programmed
    assert first.outcomes["shop/web"].reason == "Programmed"
    assert set(kernel.dump()) == {WEB}
    writes = kernel.writes
    again = make(kernel, tmp_path).reconcile_once(desired)  # a restarted agent: new reconciler, same record
    assert again.ops == []
    assert kernel.writes == writes
    assert json.loads((tmp_path / "owned.json").read_text())["services"] == [[2, 6, "203.0.113.10", 80, 0]]


def test_foreign_services_are_never_touched_and_a_clash_is_a_conflict(tmp_path: Path) -> None:
    clash = VirtualServer(ServiceConfig("sh"), {DestKey(Family.INET, "192.0.2.99", 80): DestConfig()})
    kernel = FakeIpvsKernel({KUBE_PROXY: KUBE_PROXY_TABLE, WEB: clash})
    before = kernel.dump()
    reconciler = make(kernel, tmp_path)
    result = reconciler.reconcile_once(state(resolved(), resolved("api", vip="203.0.113.20")))
    web = result.outcomes["shop/web"]
    assert not web.programmed and web.reason == "Conflict"
    assert "TCP 203.0.113.10:80" in web.message
    assert result.outcomes["shop/api"].programmed
    after = kernel.dump()
    assert after[KUBE_PROXY] == before[KUBE_PROXY] and after[WEB] == before[WEB]
    # nothing desired any more: ours goes, foreign ones stay
    reconciler.reconcile_once({})
    assert kernel.dump() == before
    assert result.foreign == 2


def test_deleted_service_is_removed_and_unrecorded(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    reconciler = make(kernel, tmp_path)
    reconciler.reconcile_once(state(resolved(), resolved("api", vip="203.0.113.20")))
    result = reconciler.reconcile_once(state(resolved("api", vip="203.0.113.20")))
    assert [(op.kind, op.service) for op in result.ops] == [(OpKind.DEL_SERVICE, WEB)]
    assert WEB not in reconciler.record.keys
    assert WEB not in kernel.dump()


def test_one_member_change_is_one_operation(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    reconciler = make(kernel, tmp_path)
    reconciler.reconcile_once(state(resolved()))
    result = reconciler.reconcile_once(state(resolved(members=(("198.51.100.11", 1), ("198.51.100.12", 5)))))
    assert [op.kind for op in result.ops] == [OpKind.EDIT_DEST]
    assert result.sent == 1


def test_health_verdicts_reach_the_compiler(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()

    def health(key: str, member: ResolvedMember) -> bool | None:
        return False if (key, member.address) == ("shop/web", "198.51.100.12") else None

    make(kernel, tmp_path, health=health).reconcile_once(state(resolved()))
    dests = kernel.dump()[WEB].dests
    assert dests[DestKey(Family.INET, "198.51.100.12", 80)].weight == 0
    assert dests[DestKey(Family.INET, "198.51.100.11", 80)].weight == 1


def test_errno_failure_is_reported_then_fixed_by_the_next_pass(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    kernel.inject_failure(OpKind.ADD_DEST, WEB, DestKey(Family.INET, "198.51.100.12", 80), code=errno.ENOMEM)
    reconciler = make(kernel, tmp_path)
    result = reconciler.reconcile_once(state(resolved()))
    outcome = result.outcomes["shop/web"]
    assert not result.ok
    assert (outcome.programmed, outcome.reason) == (False, "NetlinkError")
    assert "ENOMEM" in outcome.message
    retry = reconciler.reconcile_once(state(resolved()))
    assert [op.kind for op in retry.ops] == [OpKind.ADD_DEST]
    assert retry.ok and retry.outcomes["shop/web"].programmed


def test_director_selector_and_vip_groups(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    groups: list[dict[str, frozenset[str]]] = []
    reconciler = make(kernel, tmp_path, on_groups=lambda value, _gateways: groups.append(dict(value)))
    result = reconciler.reconcile_once(state(
        resolved("a", vip="203.0.113.1", vipGroup="front"),
        resolved("b", vip="203.0.113.2", vipGroup="front"),
        resolved("c", vip="203.0.113.3"),
        resolved("d", vip="203.0.113.4", directorSelector={"matchLabels": {"lvs.io/director": "other"}}),
    ))
    assert groups[-1] == {"front": {"203.0.113.1", "203.0.113.2"}, "203.0.113.3": {"203.0.113.3"}}
    assert result.outcomes["shop/d"].reason == "NotSelected"
    assert ServiceKey(Family.INET, Protocol.TCP, "203.0.113.4", 80) not in kernel.dump()


def test_a_nat_gateway_joins_its_vip_group(tmp_path: Path) -> None:
    calls: list[tuple[dict[str, frozenset[str]], dict[str, str | None]]] = []
    reconciler = make(FakeIpvsKernel(), tmp_path,
                      on_groups=lambda value, gateways: calls.append((dict(value), dict(gateways))))
    reconciler.reconcile_once(state(
        resolved("a", vip="203.0.113.1", vipGroup="front", natGateway={"address": "198.51.100.1",
                                                                       "interface": "eth1"}),
        resolved("b", vip="203.0.113.2", vipGroup="front"),
        resolved("c", vip="203.0.113.3", natGateway={"address": "198.51.100.2"}),
    ))
    groups, gateways = calls[-1]
    assert groups == {"front": {"203.0.113.1", "203.0.113.2", "198.51.100.1"},
                      "203.0.113.3": {"203.0.113.3", "198.51.100.2"}}
    assert gateways == {"198.51.100.1": "eth1", "198.51.100.2": None}



def test_a_nat_gateway_follows_one_group_only(tmp_path: Path) -> None:
    calls: list[dict[str, frozenset[str]]] = []
    reconciler = make(FakeIpvsKernel(), tmp_path,
                      on_groups=lambda value, _gateways: calls.append(dict(value)))
    result = reconciler.reconcile_once(state(
        resolved("a", vip="203.0.113.1", natGateway={"address": "198.51.100.1"}),
        resolved("b", vip="203.0.113.2", natGateway={"address": "198.51.100.1"}),
    ))
    assert calls[-1] == {"203.0.113.1": {"203.0.113.1", "198.51.100.1"}, "203.0.113.2": {"203.0.113.2"}}
    assert result.outcomes["shop/b"].programmed
    assert "already follows VIP group 203.0.113.1" in result.outcomes["shop/b"].message



def test_a_nat_gateway_that_is_another_service_vip_is_not_moved_as_a_gateway(tmp_path: Path) -> None:
    calls: list[dict[str, frozenset[str]]] = []
    reconciler = make(FakeIpvsKernel(), tmp_path,
                      on_groups=lambda value, _gateways: calls.append(dict(value)))
    reconciler.reconcile_once(state(
        resolved("a", vip="203.0.113.1", natGateway={"address": "203.0.113.2"}),
        resolved("b", vip="203.0.113.2"),
    ))
    assert calls[-1] == {"203.0.113.1": {"203.0.113.1"}, "203.0.113.2": {"203.0.113.2"}}


def test_a_service_deleted_behind_our_back_is_recreated(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    reconciler = make(kernel, tmp_path)
    reconciler.reconcile_once(state(resolved()))
    kernel.apply([Op(OpKind.DEL_SERVICE, WEB)])
    result = reconciler.reconcile_once(state(resolved()))
    assert result.ops[0].kind is OpKind.ADD_SERVICE
    assert WEB in kernel.dump()


async def test_loop_retries_with_backoff_until_the_kernel_accepts(tmp_path: Path) -> None:
    desired_file = tmp_path / "desired.json"
    desired_file.write_text(json.dumps(resolved()))
    kernel = FakeIpvsKernel()
    kernel.inject_failure(OpKind.ADD_SERVICE, WEB, code=errno.EBUSY)
    passes: list[bool] = []
    loop = ReconcileLoop(make(kernel, tmp_path), FileDesiredStateSource(desired_file, poll_interval=0.01),
                         on_pass=lambda result: passes.append(result.ok))
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(200):
            if WEB in kernel.dump():
                break
            await asyncio.sleep(0.01)
        assert WEB in kernel.dump()
        assert passes[:2] == [False, True]
        # a change in the source is picked up without waiting for the resync
        desired_file.write_text(json.dumps(resolved(port=8080)))
        for _ in range(200):
            if ServiceKey(Family.INET, Protocol.TCP, "203.0.113.10", 8080) in kernel.dump():
                break
            await asyncio.sleep(0.01)
        assert set(kernel.dump()) == {ServiceKey(Family.INET, Protocol.TCP, "203.0.113.10", 8080)}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_restart_keeps_a_quiesced_member_quiesced_until_its_check_decides(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    down = DestKey(Family.INET, "198.51.100.12", 80)
    verdicts: dict[str, bool | None] = {"198.51.100.12": False}

    def health(_key: str, member: ResolvedMember) -> bool | None:
        return verdicts.get(member.address)

    make(kernel, tmp_path, health=health).reconcile_once(state(resolved()))
    assert kernel.dump()[WEB].dests[down].weight == 0
    writes = kernel.writes
    verdicts.clear()  # restarted agent: every member unknown
    restarted = make(kernel, tmp_path, health=health)
    assert restarted.reconcile_once(state(resolved())).ops == []
    assert restarted.reconcile_once(state(resolved())).ops == []  # still unknown: still adopted
    assert kernel.writes == writes
    verdicts["198.51.100.12"] = True  # the check passes: back in service with one edit
    result = restarted.reconcile_once(state(resolved()))
    assert [op.kind for op in result.ops] == [OpKind.EDIT_DEST]
    assert kernel.dump()[WEB].dests[down].weight == 2


def test_without_health_checks_unknown_means_the_spec_weight(tmp_path: Path) -> None:
    kernel = FakeIpvsKernel()
    unchecked = resolved(members=(("198.51.100.11", 0),), healthCheck={"type": "None"})
    make(kernel, tmp_path).reconcile_once(state(unchecked))
    raised = resolved(members=(("198.51.100.11", 4),), healthCheck={"type": "None"})
    result = make(kernel, tmp_path).reconcile_once(state(raised))  # restarted, spec changed meanwhile
    assert [op.kind for op in result.ops] == [OpKind.EDIT_DEST]
    assert kernel.dump()[WEB].dests[DestKey(Family.INET, "198.51.100.11", 80)].weight == 4


class SlowKernel(FakeIpvsKernel):
    """A kernel whose dump takes as long as a 110,000-entry table's does."""

    def dump(self) -> Any:
        import time

        time.sleep(0.5)
        return super().dump()


async def test_a_slow_kernel_dump_does_not_stall_the_event_loop(tmp_path: Path) -> None:
    """Heartbeats run on the event loop: a reconcile pass must never block it."""
    desired_file = tmp_path / "desired.json"
    desired_file.write_text(json.dumps(resolved()))
    kernel = SlowKernel()
    loop = ReconcileLoop(make(kernel, tmp_path), FileDesiredStateSource(desired_file, poll_interval=0.01))
    task = asyncio.create_task(loop.run())
    lags: list[float] = []
    kicked = False
    try:
        clock = asyncio.get_running_loop().time
        while loop.passes < 2:
            started = clock()
            await asyncio.sleep(0.01)
            lags.append(clock() - started - 0.01)
            if len(lags) > 1000:
                break
            if loop.passes == 1 and not kicked:
                loop.kick()  # a second slow pass
                kicked = True
        assert loop.passes >= 2
        assert max(lags) < 0.1, max(lags)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_cancel_that_arrives_with_a_kick_stops_the_loop(tmp_path: Path) -> None:
    """3.11's wait_for returns the result and drops a cancel that lands as its event fires (a CI hang)."""
    desired_file = tmp_path / "desired.json"
    desired_file.write_text(json.dumps(resolved()))
    source = FileDesiredStateSource(desired_file, poll_interval=0.01)
    loop = ReconcileLoop(make(FakeIpvsKernel(), tmp_path), source)
    task = asyncio.create_task(loop.run())
    while loop.passes < 1:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)  # parked on the kick event again
    loop.kick()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.0)
    assert done, "the reconcile loop ignored its cancellation"
    assert task.cancelled()
