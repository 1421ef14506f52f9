"""Background controllers of the emulator: namespace termination and ownerReference garbage collection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .encoding import json_copy
from .endpoints import reconcile_endpoint_slices
from .errors import ApiError
from .resources import ResourceType
from .semantics import CRD_CLEANUP_FINALIZER, ObjectService, WriteOptions
from .storage import WatchEvent

JsonDict = dict[str, Any]
logger = logging.getLogger(__name__)

_NAMESPACE_KEY = ("", "namespaces")
_CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")


class BackgroundControllers:
    def __init__(self, objects: ObjectService, interval: float = 0.05, endpoint_slices: bool = False) -> None:
        self.objects = objects
        self.interval = interval
        self.endpoint_slices = endpoint_slices
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Every stored object's uid, kept up to date from the store's events: a write whose owners all
        # exist gives the garbage collector nothing to do, so it need not scan everything for it.
        self._uids: set[str] = {obj["metadata"].get("uid", "") for _, obj in objects.store.iter_all()}
        objects.store.add_listener(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        meta = event.object.get("metadata", {})
        if event.type == "DELETED":
            self._uids.discard(meta.get("uid", ""))
        else:
            self._uids.add(meta.get("uid", ""))
        watched_by_slices = self.endpoint_slices and event.storage_key in (("", "services"), ("", "pods"))
        orphaned = any(
            owner.get("uid") not in self._uids
            for owner in meta.get("ownerReferences") or []
            if isinstance(owner, dict)
        )
        if event.type == "DELETED" or meta.get("deletionTimestamp") or orphaned or watched_by_slices:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self.reconcile_once()
            except Exception:  # a bug here must not stop the server; it is logged and retried
                logger.exception("background controller pass failed")
            await asyncio.sleep(self.interval)

    def _types_by_storage(self) -> dict[tuple[str, str], ResourceType]:
        """One served type per storage key, the storage version preferred."""
        result: dict[tuple[str, str], ResourceType] = {}
        for rt in self.objects.registry.all_types():
            if rt.storage_key not in result or rt.storage_version:
                result[rt.storage_key] = rt
        return result

    def reconcile_once(self) -> None:
        store = self.objects.store
        uids: set[str] = set()
        pending_owner_finalizers: list[tuple[ResourceType, JsonDict]] = []
        dependents: list[tuple[ResourceType, JsonDict]] = []
        terminating: list[str] = []
        terminating_crds: list[JsonDict] = []
        namespaced_count: dict[str, int] = {}
        types = self._types_by_storage()
        for storage_key, obj in store.iter_all():
            meta = obj["metadata"]
            uids.add(meta.get("uid", ""))
            rt = types.get(storage_key)
            if rt is None:
                continue
            if storage_key == _NAMESPACE_KEY and meta.get("deletionTimestamp"):
                terminating.append(meta["name"])
            if storage_key == _CRD_KEY and meta.get("deletionTimestamp"):
                terminating_crds.append(obj)
            if rt.namespaced:
                namespaced_count[meta.get("namespace", "")] = (
                    namespaced_count.get(meta.get("namespace", ""), 0) + 1
                )
            if meta.get("ownerReferences"):
                dependents.append((rt, obj))
            if meta.get("deletionTimestamp") and {"orphan", "foregroundDeletion"} & set(
                meta.get("finalizers") or []
            ):
                pending_owner_finalizers.append((rt, obj))
        if self.endpoint_slices:
            reconcile_endpoint_slices(self.objects)
        self._collect_garbage(uids, dependents)
        self._release_owner_finalizers(pending_owner_finalizers, dependents)
        for crd in terminating_crds:
            self._clean_up_crd(crd)
        for namespace in terminating:
            self._terminate_namespace(namespace, namespaced_count.get(namespace, 0))

    def _collect_garbage(self, uids: set[str], dependents: list[tuple[ResourceType, JsonDict]]) -> None:
        for rt, obj in dependents:
            meta = obj["metadata"]
            owners = meta.get("ownerReferences") or []
            if meta.get("deletionTimestamp") or any(owner.get("uid") in uids for owner in owners):
                continue
            self._delete_quietly(rt, meta.get("namespace", ""), meta["name"])

    def _release_owner_finalizers(
        self, owners: list[tuple[ResourceType, JsonDict]], dependents: list[tuple[ResourceType, JsonDict]]
    ) -> None:
        for owner_rt, owner in owners:
            owner_uid = owner["metadata"].get("uid")
            finalizers = list(owner["metadata"].get("finalizers") or [])
            mine = [
                (rt, d)
                for rt, d in dependents
                if any(o.get("uid") == owner_uid for o in d["metadata"].get("ownerReferences") or [])
            ]
            if "orphan" in finalizers:
                for rt, dependent in mine:
                    updated = json_copy(dependent)
                    updated["metadata"]["ownerReferences"] = [
                        o
                        for o in dependent["metadata"].get("ownerReferences") or []
                        if o.get("uid") != owner_uid
                    ]
                    if not updated["metadata"]["ownerReferences"]:
                        del updated["metadata"]["ownerReferences"]
                    self._update_quietly(rt, updated)
                finalizers.remove("orphan")
            elif "foregroundDeletion" in finalizers:
                if mine:
                    for rt, dependent in mine:
                        self._delete_quietly(
                            rt, dependent["metadata"].get("namespace", ""), dependent["metadata"]["name"]
                        )
                    continue
                finalizers.remove("foregroundDeletion")
            updated_owner = json_copy(owner)
            updated_owner["metadata"]["finalizers"] = finalizers
            self._update_quietly(owner_rt, updated_owner)

    def _clean_up_crd(self, crd: JsonDict) -> None:
        """Delete a terminating CRD's custom resources; once none is left, release the CRD."""
        name = crd["metadata"]["name"]
        types = [rt for rt in self.objects.registry.all_types() if rt.crd_name == name]
        remaining = 0
        for rt in types[:1]:  # every version shares one storage
            for obj in self.objects.store.list(rt.storage_key):
                remaining += 1
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete_quietly(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if remaining:
            return
        crd_type = self.objects.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        released = json_copy(crd)
        released["metadata"]["finalizers"] = [
            f for f in crd["metadata"].get("finalizers") or [] if f != CRD_CLEANUP_FINALIZER
        ]
        self._update_quietly(crd_type, released)

    def _terminate_namespace(self, namespace: str, remaining: int) -> None:
        if remaining == 0:
            self.objects.finalize_namespace(namespace)
            return
        for rt in self._types_by_storage().values():
            if not rt.namespaced or "delete" not in rt.verbs:
                continue
            for obj in self.objects.store.list(rt.storage_key, namespace):
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete_quietly(rt, namespace, obj["metadata"]["name"])

    def _delete_quietly(self, rt: ResourceType, namespace: str, name: str) -> None:
        try:
            self.objects.delete(rt, namespace, name, options=WriteOptions())
        except ApiError as error:
            if error.code != 404:
                logger.warning(
                    "background delete of %s %s/%s failed: %s", rt.qualified, namespace, name, error.message
                )

    def _update_quietly(self, rt: ResourceType, obj: JsonDict) -> None:
        meta = obj["metadata"]
        try:
            self.objects.update(
                rt, meta.get("namespace", ""), meta["name"], obj, options=WriteOptions(), operation_manager=""
            )
        except ApiError as error:
            logger.warning("background update of %s %s failed: %s", rt.qualified, meta["name"], error.message)
