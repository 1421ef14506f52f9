"""The agent's reconcile loop: desired state -> compile -> diff against the kernel -> minimal ops.

One pass (``Reconciler.reconcile_once``):

1. Select the ``ResolvedService`` objects whose ``directorSelector`` matches this node's labels.
2. Compile each with lvs_api's compiler and the health engine's verdicts into its IPVS services. A
   service key that the kernel already holds and the ownership record does not name is *foreign*
   (kube-proxy, keepalived, an operator's ``ipvsadm``): that VirtualService is reported ``Conflict`` and
   none of its services is programmed; the foreign one is never touched. Two VirtualServices compiling to
   the same key (the controller should have caught it) are reported the same way.
3. Dump the kernel, plan with lvs_api's planner over the keys we own, and apply. The ownership record is
   written ahead (new keys before they are created) and pruned only after the kernel confirmed deletions.
4. Failed operations (errno) mark their VirtualService ``Programmed=False`` with the errno name; the loop
   retries with exponential backoff (0.2 s doubling to 30 s) and never exits on a netlink error.
5. The VIP groups (``vipGroup`` or the VIP itself) go to the failover runner, which moves the VIPs,
   and with them each NAT service's ``natGateway`` (the real servers' floating default gateway).
   ``on_groups`` is called on the reconcile thread: hand it over to the event loop (the agent does).

Nothing is written when the kernel already matches: an agent restart adopts the table as it is.
Standby directors program the same table (only the VIP moves at failover), so they are warm.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from lvs_api.compiler import dest_port, service_keys
from lvs_api.ipvs import DestKey, Op, OpKind, ServiceKey, Table, VirtualServer
from lvs_api.models import CheckType, OnFailure, ResolvedMember, ResolvedService

from lvs_agent.desired import DesiredState, DesiredStateSource
from lvs_agent.netlink.kernel import ApplyResult, IpvsError, IpvsKernel, StatsTable
from lvs_agent.ownership import OwnershipRecord

logger = logging.getLogger("lvs_agent.reconcile")

HealthLookup = Callable[[str, ResolvedMember], bool | None]  # (object key, member) -> verdict
CompileFn = Callable[[ResolvedService, Callable[[ResolvedMember], bool | None]], Table]
PlanFn = Callable[[Table, Table, AbstractSet[ServiceKey]], Sequence[Op]]

RETRY_FIRST = 0.2
RETRY_MAX = 30.0


def vip_group_of(resolved: ResolvedService) -> str:
    """The failover group of a VirtualService: its ``vipGroup``, or a group of its own per VIP."""
    return resolved.spec.service.vip_group or resolved.spec.service.vip


@dataclass
class ServiceOutcome:
    """What one pass did for one VirtualService (feeds its ServiceReport)."""

    programmed: bool
    reason: str
    message: str = ""
    keys: frozenset[ServiceKey] = frozenset()
    accepted_generation: int | None = None
    group: str = ""
    healthy_members: int = 0  # members whose verdict is not "failed" (unknown counts as healthy)
    total_members: int = 0


@dataclass
class PassResult:
    ops: list[Op] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    outcomes: dict[str, ServiceOutcome] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    nat_gateways: dict[str, str | None] = field(default_factory=dict)  # address -> interface (None: route)
    owned: int = 0
    owned_dests: int = 0
    foreign: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.error


def _errno_name(code: int) -> str:
    return errno.errorcode.get(code, str(code))


class Reconciler:
    def __init__(
        self,
        *,
        node_labels: Mapping[str, str],
        kernel: IpvsKernel,
        record: OwnershipRecord,
        compile_service: CompileFn,
        plan: PlanFn,
        health: HealthLookup | None = None,
        on_groups: Callable[[Mapping[str, frozenset[str]], Mapping[str, str | None]], None] | None = None,
        stats_interval: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_labels = dict(node_labels)
        self.kernel = kernel
        self.record = record
        self._compile = compile_service
        self._plan = plan
        self._health = health or (lambda _key, _member: None)
        self._on_groups = on_groups
        self.last: PassResult | None = None
        # IPVS counters for the report, read at most every stats_interval seconds (a dump costs time)
        self._stats_interval = stats_interval
        self._monotonic = monotonic
        self._stats_read_at: float | None = None
        self.stats: StatsTable | None = None
        # the kernel as found at agent start, for members whose health is not known yet (see below)
        self._startup: Table | None = None
        self._startup_owned: frozenset[ServiceKey] = frozenset()

    def _health_or_adopted(self, key: str, resolved: ResolvedService, member: ResolvedMember) -> bool | None:
        """The engine's verdict; while there is none yet, what the kernel said at agent start.

        The compiler counts unknown as healthy. Right after an agent restart every member is unknown, so
        a member that was quiesced (weight 0) or removed for failing its check would be put back until
        its first checks fail again: a write, and traffic to a dead server. Instead, until the member has
        a verdict, a checked member that the kernel held quiesced (or, with ``onFailure: Remove``, did not
        hold) in a service of ours at start stays that way. Services without checks are not affected.
        """
        verdict = self._health(key, member)
        if verdict is not None or self._startup is None:
            return verdict
        spec = resolved.spec.service
        if spec.health_check.type is CheckType.NONE:
            return None
        for service in service_keys(spec):
            if service not in self._startup_owned or service not in self._startup:
                continue
            dest = DestKey(service.family, member.address, dest_port(spec, service, member.port))
            current = self._startup[service].dests.get(dest)
            if current is None and spec.on_failure is OnFailure.REMOVE:
                return False
            usable = member.weight > 0 and member.ready and not member.terminating
            if current is not None and current.weight == 0 and usable:
                return False
        return None

    # --- one pass -----------------------------------------------------------------------------------

    def selected(self, desired: DesiredState) -> dict[str, ResolvedService]:
        chosen: dict[str, ResolvedService] = {}
        for key, resolved in desired.items():
            selector = resolved.spec.service.director_selector
            if selector is None or selector.matches(self.node_labels):
                chosen[key] = resolved
        return chosen

    def reconcile_once(self, desired: DesiredState) -> PassResult:
        result = PassResult()
        selected = self.selected(desired)
        for key in desired.keys() - selected.keys():
            message = "directorSelector does not match this node"
            result.outcomes[key] = ServiceOutcome(False, "NotSelected", message)
        try:
            observed = self.kernel.dump()
        except IpvsError as error:
            result.error = f"reading the kernel's IPVS table failed: {_errno_name(error.errno or 0)} {error}"
            for key in selected:
                result.outcomes[key] = ServiceOutcome(False, "NetlinkError", result.error)
            self.last = result
            return result
        owned_before = self.record.keys
        if self._startup is None:
            self._startup, self._startup_owned = observed, owned_before
        compiled: dict[str, Table] = {}
        claimed_by: dict[ServiceKey, str] = {}
        gateway_groups: dict[str, str] = {}  # NAT gateway address -> the VIP group it follows
        for key, resolved in sorted(selected.items()):
            generation = resolved.spec.accepted_generation
            group = vip_group_of(resolved)
            try:
                table = self._compile(resolved, functools.partial(self._health_or_adopted, key, resolved))
            except ValueError as error:
                result.outcomes[key] = ServiceOutcome(False, "CompileError", str(error), group=group)
                continue
            foreign = sorted(
                str(service) for service in table if service in observed and service not in owned_before
            )
            if foreign:
                message = (f"IPVS service(s) {', '.join(foreign)} exist in the kernel and are not "
                           "this agent's (kube-proxy, keepalived or ipvsadm?): left untouched")
                result.outcomes[key] = ServiceOutcome(
                    False, "Conflict", message, group=group, accepted_generation=generation)
                continue
            duplicate = sorted({claimed_by[service] for service in table if service in claimed_by})
            if duplicate:
                result.outcomes[key] = ServiceOutcome(
                    False, "Conflict", f"same IPVS service as {', '.join(duplicate)}", group=group,
                    accepted_generation=generation)
                continue
            for service in table:
                claimed_by[service] = key
            compiled[key] = table
            members = resolved.spec.members
            verdicts = [self._health_or_adopted(key, resolved, member) for member in members]
            healthy = sum(1 for verdict in verdicts if verdict is not False)
            result.outcomes[key] = ServiceOutcome(True, "Programmed", keys=frozenset(table),
                                                  accepted_generation=generation, group=group,
                                                  healthy_members=healthy, total_members=len(members))
            result.groups.setdefault(group, frozenset())
            result.groups[group] = result.groups[group] | {resolved.spec.service.vip}
            gateway = resolved.spec.service.nat_gateway
            if gateway is not None:  # the real servers' gateway follows the group's active director too
                address = str(ipaddress.ip_address(gateway.address))
                holder = gateway_groups.setdefault(address, group)
                if holder == group:
                    result.groups[group] = result.groups[group] | {address}
                    result.nat_gateways[address] = gateway.interface
                else:  # in two groups it could be held by two directors at once: the first group keeps it
                    result.outcomes[key].message = (
                        f"natGateway {address} already follows VIP group {holder}; put both services in "
                        "one vipGroup")
                    logger.error("%s: %s", key, result.outcomes[key].message)
        vips = {str(ipaddress.ip_address(r.spec.service.vip)) for k, r in selected.items() if k in compiled}
        for address in sorted(vips & result.nat_gateways.keys()):  # a VIP is never also a gateway
            group = gateway_groups[address]
            result.groups[group] = result.groups[group] - {address}
            del result.nat_gateways[address]
            logger.error("natGateway %s is also a VIP: not moved as a gateway of group %s", address, group)
        desired_table: dict[ServiceKey, VirtualServer] = {}
        for table in compiled.values():
            desired_table.update(table)
        # Ownership: what we recorded, restricted to what is still in the kernel (a service deleted behind
        # our back is simply re-created), plus nothing else: foreign keys never enter the planner's view.
        owned = frozenset(key for key in owned_before if key in observed)
        ops = list(self._plan(desired_table, observed, owned))
        result.ops = ops
        adds = {op.service for op in ops if op.kind is OpKind.ADD_SERVICE}
        if adds:
            self.record.add(adds)  # write-ahead: recorded before they exist
        applied: ApplyResult | None = None
        if ops:
            applied = self.kernel.apply(ops)
            result.sent = applied.sent
            result.failed = len(applied.failures)
            failed_services: dict[ServiceKey, list[str]] = {}
            for failure in applied.failures:
                failed_services.setdefault(failure.op.service, []).append(str(failure))
            for outcome in result.outcomes.values():
                reasons = [text for service in outcome.keys for text in failed_services.get(service, [])]
                if reasons:
                    outcome.programmed = False
                    outcome.reason = "NetlinkError"
                    outcome.message = "; ".join(reasons[:8])
            if not applied.complete:
                result.error = "some netlink error reports were lost; the next pass re-reads the kernel"
        deleted = {op.service for op in ops if op.kind is OpKind.DEL_SERVICE}
        failed_deletes = {f.op.service for f in applied.failures} if applied is not None else set()
        # prune: confirmed deletions, and recorded keys no longer in the kernel nor desired
        vanished = {key for key in owned_before if key not in observed and key not in desired_table}
        gone = (deleted - failed_deletes) | vanished
        if gone:
            self.record.discard(gone)
        result.owned = len(self.record.keys)
        result.owned_dests = sum(len(desired_table[key].dests) for key in desired_table)
        result.foreign = len([key for key in observed if key not in owned_before and key not in adds])
        if self._on_groups is not None:
            self._on_groups(result.groups, result.nat_gateways)
        self._read_stats()
        self.last = result
        return result

    def _read_stats(self) -> None:
        if self._stats_interval is None:
            return
        now = self._monotonic()
        if self._stats_read_at is not None and now - self._stats_read_at < self._stats_interval:
            return
        self._stats_read_at = now
        try:
            self.stats = self.kernel.dump_stats()
        except IpvsError as error:
            logger.warning("reading IPVS counters failed: %s", error)


class ReconcileLoop:
    """Runs passes when the desired state, health or role changes, and retries failures with backoff."""

    def __init__(
        self,
        reconciler: Reconciler,
        source: DesiredStateSource,
        *,
        resync_interval: float = 60.0,
        on_pass: Callable[[PassResult], None] | None = None,
        before_pass: Callable[[dict[str, ResolvedService]], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reconciler = reconciler
        self.source = source
        self.resync_interval = resync_interval
        self._on_pass = on_pass
        self._before_pass = before_pass  # on the event loop, with the services this node serves
        self._monotonic = monotonic
        self._kick = asyncio.Event()
        self._desired: DesiredState | None = None
        self.passes = 0
        # one thread: the kernel adapter and the ownership record are used from it only
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile")

    def kick(self) -> None:
        """Ask for a pass soon (health change, role change)."""
        self._kick.set()

    async def _watch_source(self) -> None:
        while True:
            self._desired = await self.source.wait_for_change()
            self._kick.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        watcher = loop.create_task(self._watch_source(), name="desired-state")
        retry = RETRY_FIRST
        wait: float = self.resync_interval
        try:
            while True:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that arrives as the
                # event is set, and the loop would never stop (seen as a hung shutdown)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._kick.wait()
                self._kick.clear()
                if self._desired is None:
                    wait = self.resync_interval
                    continue
                if self._before_pass is not None:
                    self._before_pass(self.reconciler.selected(self._desired))
                # A pass does blocking netlink I/O (a dump of a large table takes seconds): it runs on its
                # own thread so that the event loop keeps sending heartbeats meanwhile.
                result = await loop.run_in_executor(
                    self._worker, self.reconciler.reconcile_once, self._desired
                )
                self.passes += 1
                if result.ops or not result.ok or self.passes == 1:
                    # one line per pass that wrote (and for the first): "sent" counts netlink writes
                    logger.info("pass %d: %d op(s), sent %d, %d failed%s", self.passes, len(result.ops),
                                result.sent, result.failed, f", {result.error}" if result.error else "")
                if self._on_pass is not None:
                    self._on_pass(result)
                if result.ok:
                    retry = RETRY_FIRST
                    wait = self.resync_interval
                else:
                    wait = retry
                    retry = min(retry * 2, RETRY_MAX)
        finally:
            watcher.cancel()
            self._worker.shutdown(wait=False)
