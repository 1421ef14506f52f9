"""One VirtualService reconcile: validate, resolve, publish the ResolvedService, write status and events.

Reads come from the cache only; every write is preceded by a comparison with what the cache holds, so an
unchanged world causes no write at all (re-applied manifests, a controller restart, a resync).

Field ownership (one writer per field):
- ``ResolvedService`` (whole object): server-side apply, field manager ``lvs-controller``, ownerReference
  to the VirtualService (garbage collection removes it with the VirtualService on a real cluster).
- ``VirtualService.status``: merge patch through the status subresource, controller only.
- ``VirtualService.metadata.finalizers``: the ``lvs.io/cleanup`` entry, controller only, added once a
  director reports the service (deletion waits only for directors that report it, so before that the
  finalizer would be added and removed for nothing: one write per VirtualService saved in a burst).

Writes per change: the ResolvedService (what the agents wait for) is published by the reconcile itself;
the status is written by ``reconcile_status``, which the controller runs on a lane of its own shortly
after, so a burst publishes every ResolvedService first and a status write folds the changes of its
debounce window (a publish and the directors' first reports) into one.
- ``DirectorReport.status``: the agents; the controller only reads them.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lvs_api.models import RealServerPoolSpec, ResolvedServiceSpec, VirtualServiceSpec
from lvs_kube import ApiError, EventRecorder, KubeClient, NotFound
from lvs_kube import resources as res
from pydantic import ValidationError

from lvs_controller.dependencies import DependencyIndex
from lvs_controller.pool_status import pool_status, pool_status_differs, vip_pool_status
from lvs_controller.resolution import resolve_fallback, resolve_members
from lvs_controller.status import DirectorFold, Evaluation, desired_status, fold_reports, status_differs
from lvs_controller.validation import (
    ConflictFinding,
    Problem,
    canonical_address,
    check_gateway_tenancy,
    check_pool,
    check_tenancy,
    find_address_conflict,
    find_conflict,
    parse_cached,
    parse_spec,
)
from lvs_controller.world import JsonObject, Kind, ObjectKey, World

logger = logging.getLogger("lvs_controller.reconciler")

FINALIZER = "lvs.io/cleanup"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
VIRTUAL_SERVICE_LABEL = "lvs.io/virtual-service"

# (kind, event type, object as the server returned it, the key reconciled, whether others may be affected)
WrittenCallback = Callable[[Kind, str, JsonObject, ObjectKey, bool], None]
# A VirtualService whose status should be brought up to date (by ``reconcile_status``).
StatusDueCallback = Callable[[ObjectKey], None]


@dataclass(frozen=True)
class ReconcilerOptions:
    field_manager: str = "lvs-controller"
    finalizer: str = FINALIZER
    finalizer_timeout: float = 300.0
    finalizer_poll: float = 2.0


@dataclass(frozen=True)
class Outcome:
    """What one reconcile decided (tests and the bench read it)."""

    evaluation: Evaluation | None
    resolved: ResolvedServiceSpec | None
    status: JsonObject | None


def _name(key: ObjectKey) -> str:
    return f"VirtualService {key[0]}/{key[1]}"


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Reconciler:
    def __init__(
        self,
        client: KubeClient,
        world: World,
        recorder: EventRecorder,
        options: ReconcilerOptions | None = None,
    ) -> None:
        self.client = client
        self.world = world
        self.recorder = recorder
        self.options = options or ReconcilerOptions()
        self.index = DependencyIndex()
        self.on_written: WrittenCallback | None = None
        # Set by the controller: status writes go to their own lane; without it they are written inline.
        self.on_status_due: StatusDueCallback | None = None

    # ---- pure part -------------------------------------------------------------------------------

    def evaluate(
        self, key: ObjectKey, vs: Mapping[str, Any]
    ) -> tuple[Evaluation, ResolvedServiceSpec | None]:
        """Validate the spec against the cache and compute the ResolvedService spec to publish."""
        namespace = key[0]
        metadata = vs.get("metadata") or {}
        generation = int(metadata.get("generation") or 1)
        uid = str(metadata.get("uid") or "")
        spec, problems = parse_spec(vs, VirtualServiceSpec)
        conflict: ConflictFinding | None = None
        pool: RealServerPoolSpec | None = None
        if spec is not None:
            problems += check_tenancy(spec, namespace, self.world)
            problems += check_gateway_tenancy(spec, namespace, self.world)
            candidates = self._claim_candidates(spec)
            conflict = find_conflict(key, vs, spec, candidates, self.world)
            address_conflict = find_address_conflict(
                key, vs, spec, candidates, self.world, otherwise_valid=self._otherwise_valid
            )
            for found in (conflict, address_conflict):
                if found is not None:
                    problems.append(found.problem())
            conflict = conflict or address_conflict
            pool, pool_problems = check_pool(spec, namespace, self.world)
            problems += pool_problems

        current_rs = self._current_resolved(key, uid)
        effective_spec: VirtualServiceSpec | None
        effective_pool: RealServerPoolSpec | None
        if not problems and spec is not None and pool is not None:
            effective_spec, effective_generation, effective_pool = spec, generation, pool
        elif current_rs is not None:
            # Rejected: keep programming the last accepted spec, with fresh members if its pool is there.
            effective_spec = current_rs.service
            effective_generation = current_rs.accepted_generation
            effective_pool, _ = self._pool_for(effective_spec, namespace)
        else:
            effective_spec, effective_pool = None, None
            effective_generation = 0

        resolved: ResolvedServiceSpec | None = None
        resolved_count = 0
        if effective_spec is not None and effective_pool is not None:
            members = resolve_members(effective_spec, effective_pool, namespace, self.world)
            resolved = ResolvedServiceSpec(
                accepted_generation=effective_generation,
                virtual_service_uid=uid,
                service=effective_spec,
                members=members,
                fallback=resolve_fallback(effective_spec),
            )
            resolved_count = sum(1 for m in members if not m.terminating and m.weight > 0)
        elif current_rs is not None:
            resolved = current_rs  # its pool is gone: leave what is programmed untouched
            resolved_count = sum(1 for m in current_rs.members if not m.terminating and m.weight > 0)
        evaluation = Evaluation(
            generation=generation,
            problems=problems,
            conflict=conflict,
            programmed_generation=resolved.accepted_generation if resolved is not None else None,
            resolved_members=resolved_count,
            has_fallback=bool(resolved.fallback) if resolved is not None else False,
        )
        return evaluation, resolved

    def _otherwise_valid(self, key: ObjectKey, vs: JsonObject, spec: VirtualServiceSpec) -> bool:
        """Whether another VirtualService's spec would be accepted, address clashes aside."""
        namespace = key[0]
        if check_tenancy(spec, namespace, self.world) or check_gateway_tenancy(spec, namespace, self.world):
            return False
        pool, problems = check_pool(spec, namespace, self.world)
        if pool is None or problems:
            return False
        return find_conflict(key, vs, spec, self._claim_candidates(spec), self.world) is None

    def _claim_candidates(self, spec: VirtualServiceSpec) -> list[tuple[ObjectKey, JsonObject]]:
        """VirtualServices that may claim what ``spec`` claims: on its VIP or its natGateway address (as VIP
        or gateway), or with its firewall mark."""
        keys = set(self.index.by_vip.get(canonical_address(spec.vip), set()))
        if spec.nat_gateway is not None:
            keys |= self.index.by_vip.get(canonical_address(spec.nat_gateway.address), set())
        if spec.firewall_mark is not None:
            keys |= self.index.by_mark.get(str(spec.firewall_mark), set())
        candidates = []
        for other in keys:
            obj = self.world.get(Kind.VIRTUAL_SERVICE, other)
            if obj is not None:
                candidates.append((other, obj))
        return candidates

    def _pool_for(
        self, spec: VirtualServiceSpec, namespace: str
    ) -> tuple[RealServerPoolSpec | None, list[Problem]]:
        pool_obj = self.world.get(Kind.REAL_SERVER_POOL, (namespace, spec.pool_ref.name))
        if pool_obj is None:
            return None, []
        pool, problems = parse_spec(pool_obj, RealServerPoolSpec)
        return pool, problems

    def _current_resolved(self, key: ObjectKey, uid: str) -> ResolvedServiceSpec | None:
        obj = self.world.get(Kind.RESOLVED_SERVICE, key)
        if obj is None:
            return None
        try:
            spec = parse_cached(ResolvedServiceSpec, obj.get("spec") or {})
        except ValidationError:
            return None
        if uid and spec.virtual_service_uid != uid:
            return None  # left over from a deleted VirtualService of the same name
        return spec

    def fold(
        self, key: ObjectKey, vs: Mapping[str, Any], resolved: ResolvedServiceSpec | None
    ) -> DirectorFold:
        spec = resolved.service if resolved is not None else None
        vip = spec.vip if spec is not None else str(((vs.get("spec") or {}).get("vip")) or "")
        group = (spec.vip_group if spec is not None else None) or vip
        return fold_reports(f"{key[0]}/{key[1]}", vip, group, self.world.values(Kind.DIRECTOR_REPORT))

    # ---- the reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> float | None:
        """Bring one VirtualService's derived state up to date; returns seconds until a retry, or None."""
        vs = self.world.get(Kind.VIRTUAL_SERVICE, key)
        if vs is None:
            await self._delete_resolved(key)
            return None
        metadata = vs.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return await self._finalize(key, vs)
        outcome = self.compute(key, vs)
        # Publish first (it is what agents wait for), then the finalizer: a VirtualService deleted in
        # between has its ResolvedService withdrawn by the next reconcile (and by ownerReference GC).
        await self._publish(key, vs, outcome.resolved)
        if self.options.finalizer not in (metadata.get("finalizers") or []) and self._listed_by(key):
            vs = await self._add_finalizer(key, vs)
        assert outcome.status is not None
        if self.on_status_due is not None:
            # The status lane recomputes before writing; asking it only when a write is due keeps a
            # resync of an unchanged cluster at one computation per VirtualService.
            if status_differs(outcome.status, vs.get("status")):
                self.on_status_due(key)
            return None
        await self._write_status(key, vs, outcome)
        return None

    async def reconcile_status(self, key: ObjectKey) -> None:
        """Write the status the cache calls for, once what it describes is published.

        When the cache holds an older ResolvedService than the one to publish, the reconcile of ``key``
        is pending (it publishes, then asks for the status again): writing now would show a state that
        is not out yet.
        """
        vs = self.world.get(Kind.VIRTUAL_SERVICE, key)
        if vs is None or (vs.get("metadata") or {}).get("deletionTimestamp"):
            return
        outcome = self.compute(key, vs)
        if outcome.resolved is not None and self._needs_publish(key, vs, outcome.resolved):
            return
        await self._write_status(key, vs, outcome)

    def compute(self, key: ObjectKey, vs: Mapping[str, Any]) -> Outcome:
        evaluation, resolved = self.evaluate(key, vs)
        fold = self.fold(key, vs, resolved)
        status = desired_status(evaluation, fold, vs.get("status"))
        return Outcome(evaluation, resolved, status)

    def _recorded(
        self, kind: Kind, obj: JsonObject, key: ObjectKey, affects_others: bool, event_type: str = "MODIFIED"
    ) -> None:
        """Put what a write returned into the cache at once (the watch echo is then ignored as stale)."""
        if self.on_written is not None:
            self.on_written(kind, event_type, obj, key, affects_others)
        else:
            previous, current = self.world.apply_event(kind, event_type, obj)
            self.index.update(self.world, kind, previous, current)

    async def _add_finalizer(self, key: ObjectKey, vs: JsonObject) -> JsonObject:
        metadata = vs.get("metadata") or {}
        finalizers = [*(metadata.get("finalizers") or []), self.options.finalizer]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": metadata.get("resourceVersion")}}
        # A Conflict (stale cache) propagates: the worker retries once the newer version is in the cache.
        updated = await self.client.patch(res.VIRTUAL_SERVICE, key[1], patch, key[0])
        self._recorded(Kind.VIRTUAL_SERVICE, updated, key, False)
        return updated

    def _owner_and_labels(
        self, key: ObjectKey, vs: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        metadata = vs.get("metadata") or {}
        owner = {
            "apiVersion": res.VIRTUAL_SERVICE.api_version,
            "kind": res.VIRTUAL_SERVICE.kind,
            "name": key[1],
            "uid": metadata.get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
        labels = {MANAGED_BY_LABEL: self.options.field_manager, VIRTUAL_SERVICE_LABEL: key[1]}
        return owner, labels

    def _needs_publish(self, key: ObjectKey, vs: Mapping[str, Any], resolved: ResolvedServiceSpec) -> bool:
        """Whether the cached ResolvedService differs from ``resolved`` (spec, owner or labels)."""
        current = self.world.get(Kind.RESOLVED_SERVICE, key)
        if current is None:
            return True
        owner, labels = self._owner_and_labels(key, vs)
        current_metadata = current.get("metadata") or {}
        same_labels = all((current_metadata.get("labels") or {}).get(k) == v for k, v in labels.items())
        owners = current_metadata.get("ownerReferences") or []
        same_owner = any(o.get("uid") == owner["uid"] for o in owners)
        try:
            same_spec = parse_cached(ResolvedServiceSpec, current.get("spec") or {}) == resolved
        except ValidationError:
            same_spec = False
        return not (same_labels and same_owner and same_spec)

    async def _publish(
        self, key: ObjectKey, vs: Mapping[str, Any], resolved: ResolvedServiceSpec | None
    ) -> None:
        if resolved is None or not self._needs_publish(key, vs, resolved):
            return
        owner, labels = self._owner_and_labels(key, vs)
        body = {
            "apiVersion": res.RESOLVED_SERVICE.api_version,
            "kind": res.RESOLVED_SERVICE.kind,
            "metadata": {"name": key[1], "namespace": key[0], "labels": labels, "ownerReferences": [owner]},
            "spec": resolved.to_wire(),
        }
        written = await self.client.apply(
            res.RESOLVED_SERVICE, body, field_manager=self.options.field_manager
        )
        logger.info(
            "published resolved state",
            extra={
                "object": _name(key),
                "acceptedGeneration": resolved.accepted_generation,
                "members": len(resolved.members),
            },
        )
        self._recorded(Kind.RESOLVED_SERVICE, written, key, True)

    async def _write_status(self, key: ObjectKey, vs: Mapping[str, Any], outcome: Outcome) -> None:
        desired = outcome.status
        assert desired is not None and outcome.evaluation is not None
        current = vs.get("status") or {}
        if not status_differs(desired, current):
            return
        try:
            written = await self.client.patch_status(res.VIRTUAL_SERVICE, key[1], desired, key[0])
        except NotFound:
            return
        self._recorded(Kind.VIRTUAL_SERVICE, written, key, False)
        await self._emit_transitions(vs, current, desired, outcome.evaluation)

    async def _emit_transitions(
        self,
        vs: Mapping[str, Any],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        evaluation: Evaluation,
    ) -> None:
        def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
            for entry in status.get("conditions") or []:
                if entry.get("type") == kind:
                    return dict(entry)
            return {}

        old_accepted, new_accepted = condition(before, "Accepted"), condition(after, "Accepted")
        if new_accepted.get("status") == "False" and (
            old_accepted.get("status") != "False"
            or old_accepted.get("message") != new_accepted.get("message")
        ):
            await self.recorder.emit(vs, "Warning", str(new_accepted["reason"]), str(new_accepted["message"]))
        elif new_accepted.get("status") == "True" and old_accepted.get("status") == "False":
            # Only a recovery is news; a first acceptance shows in the conditions (no Event per object).
            await self.recorder.emit(
                vs, "Normal", "Accepted", f"generation {evaluation.generation} accepted and published"
            )
        old_conflict, new_conflict = condition(before, "Conflict"), condition(after, "Conflict")
        if new_conflict.get("status") == "True" and old_conflict.get("message") != new_conflict.get(
            "message"
        ):
            await self.recorder.emit(vs, "Warning", str(new_conflict["reason"]), str(new_conflict["message"]))
        elif new_conflict.get("status") == "False" and old_conflict.get("status") == "True":
            await self.recorder.emit(
                vs,
                "Normal",
                "ConflictResolved",
                "no other VirtualService claims these ports, firewall mark, addresses or VIP group",
            )

    async def _delete_resolved(self, key: ObjectKey) -> None:
        current = self.world.get(Kind.RESOLVED_SERVICE, key)
        if current is None:
            return
        await self.client.delete(res.RESOLVED_SERVICE, key[1], key[0])
        logger.info("withdrew resolved state", extra={"object": _name(key)})
        gone = {**current, "metadata": {**(current.get("metadata") or {}), "resourceVersion": ""}}
        self._recorded(Kind.RESOLVED_SERVICE, gone, key, True, event_type="DELETED")

    async def reconcile_pool_status(self, kind: Kind, key: ObjectKey) -> None:
        """Write a RealServerPool's or VIPPool's status when it differs from what the cache shows."""
        obj = self.world.get(kind, key)
        if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return
        if kind is Kind.REAL_SERVER_POOL:
            users = [
                vs_key
                for vs_key in self.index.by_pool.get(key, set())
                if ((self.world.get(Kind.VIRTUAL_SERVICE, vs_key) or {}).get("spec") or {})
                .get("poolRef", {})
                .get("name")
                == key[1]
            ]
            desired = pool_status(key, obj, users, self.world)
            resource = res.REAL_SERVER_POOL
        else:
            desired = vip_pool_status(obj, self.world)
            resource = res.VIP_POOL
        if not pool_status_differs(desired, obj.get("status")):
            return
        try:
            written = await self.client.patch_status(resource, key[1], desired, key[0] or None)
        except NotFound:
            return
        self._recorded(kind, written, key, False)

    def _listed_by(self, key: ObjectKey) -> list[str]:
        name = f"{key[0]}/{key[1]}"
        nodes = []
        for report in self.world.values(Kind.DIRECTOR_REPORT):
            services = (report.get("status") or {}).get("services") or {}
            if name in services:
                nodes.append(str((report.get("metadata") or {}).get("name") or ""))
        return sorted(nodes)

    async def _finalize(self, key: ObjectKey, vs: JsonObject) -> float | None:
        """Withdraw the ResolvedService, then wait until no director reports the service any more."""
        metadata = vs.get("metadata") or {}
        finalizers = list(metadata.get("finalizers") or [])
        if self.options.finalizer not in finalizers:
            return None
        await self._delete_resolved(key)
        listed = self._listed_by(key)
        if listed:
            deleted_at = _parse_time(metadata.get("deletionTimestamp"))
            waited = (
                (datetime.datetime.now(datetime.UTC) - deleted_at).total_seconds()
                if deleted_at is not None
                else 0.0
            )
            if waited < self.options.finalizer_timeout:
                return self.options.finalizer_poll
            await self.recorder.emit(
                vs,
                "Warning",
                "FinalizerTimeout",
                f"directors {', '.join(listed)} still report the service after "
                f"{self.options.finalizer_timeout:.0f}s; removing the finalizer anyway",
            )
        remaining = [f for f in finalizers if f != self.options.finalizer]
        patch = {"metadata": {"finalizers": remaining, "resourceVersion": metadata.get("resourceVersion")}}
        try:
            updated = await self.client.patch(res.VIRTUAL_SERVICE, key[1], patch, key[0])
        except NotFound:
            return None
        except ApiError as error:
            if error.status == 409:
                return 0.5
            raise
        logger.info("finalized", extra={"object": _name(key), "stillListedBy": ",".join(listed)})
        if (updated.get("metadata") or {}).get("name"):
            self._recorded(Kind.VIRTUAL_SERVICE, updated, key, False)
        return None
