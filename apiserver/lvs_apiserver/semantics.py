"""Write and read semantics of the API: identity, resourceVersion checks, generation, status
subresource, patches, server-side apply, finalizers, dry-run, namespaces and CRD registration."""

from __future__ import annotations

import base64
import datetime
import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import fieldmanager
from .conversion import from_storage, to_storage
from .encoding import encode_object, json_copy
from .errors import (
    ApiError,
    FieldCause,
    already_exists,
    bad_request,
    forbidden,
    invalid,
    not_found,
    stale_write,
)
from .patching import json_patch, merge_patch, parse_json, strategic_merge_patch
from .resources import ResourceRegistry, ResourceType
from .schema import Validator, apply_defaults, process_custom_resource
from .selectors import Predicate
from .storage import Store

JsonDict = dict[str, Any]
CauseList = list[FieldCause]
ManagedFields = list[JsonDict]

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_RBAC_KINDS = frozenset(
    ("rbac.authorization.k8s.io", plural)
    for plural in ("clusterroles", "clusterrolebindings", "roles", "rolebindings")
)
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAMESPACE_KEY = ("", "namespaces")
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
MAX_OBJECT_BYTES = 1_572_864  # etcd's default request size limit (1.5 MiB)
_CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")


_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    force: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListResult:
    items: list[JsonDict]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


class ObjectService:
    def __init__(self, store: Store, registry: ResourceRegistry, clock: Callable[[], str] = utc_now) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self.validator = Validator()
        self.max_object_bytes = MAX_OBJECT_BYTES
        for crd in store.list(_CRD_KEY):
            registry.set_crd(crd)

    # ---- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def present(rt: ResourceType, obj: JsonDict) -> JsonDict:
        """The stored object as served at the requested group/version."""
        return from_storage(rt.group, rt.version, obj)

    def _load(self, rt: ResourceType, namespace: str, name: str) -> JsonDict:
        obj = self.store.get(rt.storage_key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return obj

    def _schema_node(self, rt: ResourceType) -> fieldmanager.SchemaNode:
        return fieldmanager.root_node(rt.schema if rt.is_custom else None)

    def _check_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get(_NAMESPACE_KEY, "", namespace)
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise forbidden(
                f'{rt.qualified} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                {"name": name, "group": rt.group, "kind": rt.plural},
            )

    # ---- reads ---------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> JsonDict:
        return self.present(rt, self._load(rt, namespace, name))

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Predicate | None = None,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        after = None
        if continue_token:
            try:
                position = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                after = (str(position["ns"]), str(position["name"]))
            except (ValueError, KeyError, TypeError) as error:
                raise bad_request("invalid continue token") from error
        objects = self.store.list(rt.storage_key, namespace if rt.namespaced else None, after)
        if predicate is not None:
            objects = [obj for obj in objects if predicate(obj)]
        result = ListResult([], self.store.resource_version)
        if limit and len(objects) > limit:
            last = objects[limit - 1]["metadata"]
            token = {"ns": last.get("namespace", ""), "name": last["name"], "rv": self.store.resource_version}
            result.continue_token = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            result.remaining = len(objects) - limit
            objects = objects[:limit]
        result.items = [self.present(rt, obj) for obj in objects]
        return result

    # ---- create --------------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: JsonDict,
        options: WriteOptions,
        managed_fields: ManagedFields | None = None,
    ) -> JsonDict:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        obj = to_storage(rt.group, json_copy(body))
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        self._check_kind(rt, obj)
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            namespace = namespace or body_ns or "default"
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        name = meta.get("name", "")
        self._validate_name(rt, name)
        _drop_empty_metadata(meta)
        self._validate_metadata(rt, obj)
        if rt.is_custom and rt.crd_name:
            crd = self.store.get(_CRD_KEY, "", rt.crd_name)
            if crd is not None and crd["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    405,
                    "MethodNotAllowed",
                    "create not allowed while custom resource definition is terminating",
                )
        self._check_namespace(rt, namespace, name)
        if self.store.get(rt.storage_key, namespace, name) is not None:
            raise already_exists(rt.group, rt.plural, name)
        for server_field in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
        ):
            meta.pop(server_field, None)
        meta.pop("managedFields", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.clock()
        if _tracks_generation(rt):
            meta["generation"] = 1
        obj["apiVersion"] = _storage_api_version(rt)
        obj["kind"] = rt.kind
        if rt.is_custom and rt.has_status:
            obj.pop("status", None)  # upstream: create cannot set status when the status subresource is on
        obj = self._prepare_builtin(rt, obj, None)
        obj = self._admit_custom(rt, obj, None, options)
        # Admission may rebuild metadata (a CRD schema that declares `metadata` makes pruning and
        # defaulting copy it), so write through the admitted object, never the dict read above.
        if managed_fields:
            obj["metadata"]["managedFields"] = managed_fields
        elif options.field_manager:
            fieldmanager.record_update(
                None,
                obj,
                self._schema_node(rt),
                manager=options.field_manager,
                api_version=rt.api_version,
                now=self.clock(),
            )
        return self._commit(rt, obj, "ADDED", options)

    def _check_kind(self, rt: ResourceType, obj: JsonDict) -> None:
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(f"the kind {kind!r} of the object does not match the resource {rt.qualified}")

    def _validate_name(self, rt: ResourceType, name: Any) -> None:
        if not name:
            raise invalid(
                rt.kind,
                rt.group,
                "",
                [
                    FieldCause(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        problem = _name_problem(rt, name)
        if problem:
            cause = FieldCause(
                "FieldValueInvalid", "metadata.name", f"Invalid value: {json.dumps(name)}: {problem}"
            )
            raise invalid(rt.kind, rt.group, str(name), [cause])

    def _validate_metadata(self, rt: ResourceType, obj: JsonDict) -> None:
        """Label keys and values as the real server checks them (422 otherwise)."""
        labels = obj["metadata"].get("labels") or {}
        causes: CauseList = []
        if not isinstance(labels, dict):
            causes.append(FieldCause("FieldValueInvalid", "metadata.labels", "Invalid value: must be a map"))
            labels = {}
        for key, value in labels.items():
            key_problem = _qualified_name_problem(str(key))
            if key_problem:
                causes.append(
                    FieldCause(
                        "FieldValueInvalid",
                        "metadata.labels",
                        f"Invalid value: {json.dumps(key)}: {key_problem}",
                    )
                )
            if not isinstance(value, str) or (
                value and not (len(value) <= 63 and _LABEL_VALUE.fullmatch(value))
            ):
                causes.append(
                    FieldCause(
                        "FieldValueInvalid",
                        "metadata.labels",
                        f"Invalid value: {json.dumps(value)}: a valid label must be an empty string or "
                        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                        "alphanumeric character (max 63 characters)",
                    )
                )
        if causes:
            raise invalid(rt.kind, rt.group, str(obj["metadata"].get("name", "")), causes)

    def _prepare_builtin(self, rt: ResourceType, obj: JsonDict, old: JsonDict | None) -> JsonDict:
        if rt.storage_key == _NAMESPACE_KEY:
            status = obj.setdefault("status", {})
            if not status.get("phase"):
                status["phase"] = "Active"
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        if rt.storage_key == _CRD_KEY:
            obj = self._prepare_crd(obj, old)
        if rt.storage_key == ("", "services"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            for port in spec.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
                    port.setdefault("targetPort", port.get("port"))
        if rt.storage_key == ("", "pods"):
            obj.setdefault("status", {}).setdefault("phase", "Pending")
            for container in (obj.get("spec") or {}).get("containers") or []:
                for port in (container.get("ports") or []) if isinstance(container, dict) else []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
        return obj

    def _prepare_crd(self, obj: JsonDict, old: JsonDict | None) -> JsonDict:
        if not obj["metadata"].get("deletionTimestamp"):
            # Like upstream: deleting a CRD first deletes its custom resources (honouring their finalizers).
            finalizers = obj["metadata"].setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in finalizers:
                finalizers.append(CRD_CLEANUP_FINALIZER)
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        causes: CauseList = []
        expected = f"{names.get('plural', '')}.{spec.get('group', '')}"
        if obj["metadata"]["name"] != expected:
            causes.append(
                FieldCause(
                    "FieldValueInvalid",
                    "metadata.name",
                    f"Invalid value: {json.dumps(obj['metadata']['name'])}: "
                    'must be spec.names.plural+"."+spec.group',
                )
            )
        if not spec.get("versions"):
            causes.append(
                FieldCause(
                    "FieldValueRequired",
                    "spec.versions",
                    "Required value: must have exactly one version marked as storage version",
                )
            )
        for index, version in enumerate(spec.get("versions") or []):
            schema = (version.get("schema") or {}).get("openAPIV3Schema") or {}
            self._check_cel_rules(schema, f"spec.versions[{index}].schema.openAPIV3Schema", causes)
        if causes:
            raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", obj["metadata"]["name"], causes)
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind', '')}List")
        status = obj.setdefault("status", {})
        now = self.clock()
        wanted = [
            ("NamesAccepted", "NoConflicts", "no conflicts found"),
            ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ]
        previous = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
        conditions = []
        for kind, reason, message in wanted:
            kept = previous.get(kind)
            if kept is not None and kept.get("status") == "True":
                conditions.append(kept)  # unchanged: keep its lastTransitionTime, as upstream does
            else:
                conditions.append(
                    {
                        "type": kind,
                        "status": "True",
                        "reason": reason,
                        "message": message,
                        "lastTransitionTime": now,
                    }
                )
        status["conditions"] = conditions
        status["acceptedNames"] = dict(names)
        stored = {v.get("name") for v in spec.get("versions") or [] if v.get("storage")}
        status["storedVersions"] = sorted(stored | set(status.get("storedVersions") or []))
        return obj

    def _check_cel_rules(self, schema: Any, path: str, causes: CauseList) -> None:
        if not isinstance(schema, dict):
            return
        for index, rule in enumerate(schema.get("x-kubernetes-validations") or []):
            error = self.validator._cel.compile_error(str(rule.get("rule", "")))
            if error:
                causes.append(
                    FieldCause(
                        "FieldValueInvalid",
                        f"{path}.x-kubernetes-validations[{index}].rule",
                        f"Invalid value: {json.dumps(rule.get('rule'))}: compilation failed: {error}",
                    )
                )
        for name, child in (schema.get("properties") or {}).items():
            self._check_cel_rules(child, f"{path}.properties[{name}]", causes)
        self._check_cel_rules(schema.get("items"), f"{path}.items", causes)
        self._check_cel_rules(schema.get("additionalProperties"), f"{path}.additionalProperties", causes)

    def _admit_custom(
        self, rt: ResourceType, obj: JsonDict, old: JsonDict | None, options: WriteOptions
    ) -> JsonDict:
        if not rt.is_custom:
            return obj
        processed, result = process_custom_resource(obj, rt.schema, old, self.validator)
        if result.unknown_fields:
            notes = [f'unknown field "{path}"' for path in result.unknown_fields]
            if options.field_validation == "Strict":
                raise bad_request(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    "strict decoding error: " + ", ".join(notes)
                )
            if options.field_validation == "Warn":
                options.warnings.extend(notes)
        if result.causes:
            raise invalid(rt.kind, rt.group, obj["metadata"].get("name", ""), result.causes)
        return processed

    # ---- commit --------------------------------------------------------------------------------------

    def _commit(self, rt: ResourceType, obj: JsonDict, event_type: str, options: WriteOptions) -> JsonDict:
        meta = obj["metadata"]
        if options.dry_run:
            meta["resourceVersion"] = (
                str(self.store.resource_version + 1)
                if event_type == "ADDED"
                else meta.get("resourceVersion", "")
            )
            self._check_size(obj)
            return self.present(rt, obj)
        meta["resourceVersion"] = str(self.store.next_resource_version())
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and rt.storage_key != _NAMESPACE_KEY:
            self.store.remove(rt.storage_key, obj)
            self._after_delete(rt, obj)
            return self.present(rt, obj)
        self._check_size(obj)
        self.store.put(rt.storage_key, obj, event_type)
        if rt.storage_key == _CRD_KEY:
            self.registry.set_crd(obj)
        return self.present(rt, obj)

    def _check_size(self, obj: JsonDict) -> None:
        """etcd's limit: a real cluster refuses such objects too, so "giant blob" designs fail here first.

        Runs once the object is final: its JSON is cached by identity and reused for every response.
        """
        size = len(encode_object(obj))
        if size > self.max_object_bytes:
            raise ApiError(
                413,
                "RequestEntityTooLarge",
                f"Request entity too large: etcdserver: request is too large "
                f"({size} bytes, limit {self.max_object_bytes})",
            )

    def _after_delete(self, rt: ResourceType, obj: JsonDict) -> None:
        if rt.storage_key == _CRD_KEY:
            name = obj["metadata"]["name"]
            for custom in [t for t in self.registry.all_types() if t.crd_name == name]:
                for item in self.store.list(custom.storage_key):
                    final = json_copy(item)
                    final["metadata"]["resourceVersion"] = str(self.store.next_resource_version())
                    self.store.remove(custom.storage_key, final)
                self.store.close_subscriptions(custom.storage_key)
            self.registry.remove_crd(name)

    # ---- update --------------------------------------------------------------------------------------

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: JsonDict,
        *,
        options: WriteOptions,
        subresource: str = "",
        operation_manager: str | None = None,
    ) -> JsonDict:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        old = self._load(rt, namespace, name)
        self._check_kind(rt, body)
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != name:
            raise bad_request("the name of the object does not match the name on the URL")
        requested_rv = body_meta.get("resourceVersion")
        if not requested_rv and rt.is_custom:
            # Custom resources allow no unconditional update (upstream's CR strategy), unlike most built-ins.
            cause = FieldCause(
                "FieldValueInvalid",
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            )
            raise invalid(rt.kind, rt.group, name, [cause])
        if requested_rv and str(requested_rv) != old["metadata"]["resourceVersion"]:
            raise stale_write(rt.group, rt.plural, name)
        new = self._merge_identity(rt, old, to_storage(rt.group, json_copy(body)), subresource)
        return self._finish_update(
            rt, old, new, options=options, subresource=subresource, operation_manager=operation_manager
        )

    def _merge_identity(self, rt: ResourceType, old: JsonDict, new: JsonDict, subresource: str) -> JsonDict:
        old_meta = old["metadata"]
        if subresource == "status":
            status = new.get("status")
            result = json_copy(old)
            if status is None:
                result.pop("status", None)
            else:
                result["status"] = status
            return result
        meta = new.setdefault("metadata", {})
        for fixed in (
            "name",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        if "namespace" in old_meta:
            meta["namespace"] = old_meta["namespace"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta[
                "managedFields"
            ]  # clients may rewrite managedFields; omitting keeps them
        new["apiVersion"] = _storage_api_version(rt)
        new["kind"] = rt.kind
        if rt.has_status or rt.storage_key == _NAMESPACE_KEY:
            if "status" in old:
                new["status"] = json_copy(old["status"])
            else:
                new.pop("status", None)
        return new

    def _finish_update(
        self,
        rt: ResourceType,
        old: JsonDict,
        new: JsonDict,
        *,
        options: WriteOptions,
        subresource: str,
        operation_manager: str | None,
        managed_already: bool = False,
    ) -> JsonDict:
        if old["metadata"].get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(
                old["metadata"].get("finalizers") or []
            )
            if added:
                raise forbidden(
                    f'{rt.qualified} "{old["metadata"]["name"]}" is forbidden: '
                    "no new finalizers can be added if the object is being deleted"
                )
        if _drop_empty_metadata(new["metadata"]) and managed_already:
            fieldmanager.forget_missing(new, self._schema_node(rt))
        self._validate_metadata(rt, new)
        new = self._prepare_builtin(rt, new, old)
        new = self._admit_custom(rt, new, old, options)
        if _tracks_generation(rt) and self._spec_changed(rt, old, new):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        manager = operation_manager if operation_manager is not None else options.field_manager
        client_wrote_managers = new["metadata"].get("managedFields") != old["metadata"].get("managedFields")
        if not new["metadata"].get("managedFields"):
            new["metadata"].pop("managedFields", None)
        if manager and not managed_already and not client_wrote_managers:
            fieldmanager.record_update(
                old,
                new,
                self._schema_node(rt),
                manager=manager,
                api_version=rt.api_version,
                now=self.clock(),
                subresource=subresource,
            )
        if _same_content(old, new):
            return self.present(rt, old)
        return self._commit(rt, new, "MODIFIED", options)

    @staticmethod
    def _spec_changed(rt: ResourceType, old: JsonDict, new: JsonDict) -> bool:
        ignored = {"metadata", "apiVersion", "kind"}
        if rt.is_custom:
            if rt.has_status:
                ignored.add("status")
        else:
            ignored.add("status")
        return {k: v for k, v in old.items() if k not in ignored} != {
            k: v for k, v in new.items() if k not in ignored
        }

    # ---- patch ---------------------------------------------------------------------------------------

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        content_type: str,
        raw: bytes,
        options: WriteOptions,
        subresource: str = "",
    ) -> tuple[JsonDict, bool]:
        """Returns the object and whether it was created (server-side apply of a new object)."""
        media = content_type.split(";", maxsplit=1)[0].strip()
        if media in ("application/apply-patch+yaml", "application/apply-patch+cbor"):
            return self._apply(rt, namespace, name, raw=raw, options=options, subresource=subresource)
        old = self._load(rt, namespace, name)
        current = json_copy(self.present(rt, old))
        if media == "application/json-patch+json":
            patched = json_patch(current, parse_json(raw))
        elif media == "application/merge-patch+json":
            patch = parse_json(raw)
            if not isinstance(patch, dict):
                raise bad_request("merge patch must be a JSON object")
            patched = merge_patch(current, patch)
        elif media == "application/strategic-merge-patch+json":
            if rt.is_custom:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                )
            patched = strategic_merge_patch(current, parse_json(raw))
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {media!r}")
        if not isinstance(patched, dict):
            raise bad_request("patch must produce an object")
        patched_meta = patched.get("metadata") or {}
        requested_rv = patched_meta.get("resourceVersion")
        if requested_rv and str(requested_rv) != old["metadata"]["resourceVersion"]:
            raise stale_write(rt.group, rt.plural, name)
        if patched_meta.get("name", name) != name:
            raise bad_request("metadata.name cannot be changed by a patch")
        new = self._merge_identity(rt, old, to_storage(rt.group, patched), subresource)
        return self._finish_update(
            rt, old, new, options=options, subresource=subresource, operation_manager=None
        ), False

    def _apply(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        raw: bytes,
        options: WriteOptions,
        subresource: str,
    ) -> tuple[JsonDict, bool]:
        try:
            # Clients mostly send JSON (valid YAML): the C JSON parser is ~50x faster than PyYAML's.
            applied = json.loads(raw)
        except ValueError:
            try:
                applied = yaml.load(raw, Loader=_YAML_LOADER)  # a safe loader (C when built)
            except yaml.YAMLError as error:
                raise bad_request(f"error decoding YAML: {error}") from error
        if not isinstance(applied, dict):
            raise bad_request("apply configuration must be an object")
        if not options.field_manager:
            raise bad_request("PATCH requests of type apply must specify fieldManager")
        api_version = applied.get("apiVersion")
        if api_version and api_version != rt.api_version:
            raise bad_request(f"apiVersion {api_version!r} does not match the request's {rt.api_version!r}")
        self._check_kind(rt, applied)
        meta = applied.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise bad_request("the name of the object does not match the name on the URL")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request("the namespace of the object does not match the namespace on the URL")
        meta.pop("managedFields", None)
        requested_rv = meta.pop("resourceVersion", None)
        applied = to_storage(rt.group, applied)
        applied_fields = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")}
        node = self._schema_node(rt)
        old = self.store.get(rt.storage_key, namespace if rt.namespaced else "", name)
        now = self.clock()
        if old is None:
            if subresource:
                raise not_found(rt.group, rt.plural, name)
            merged = fieldmanager.apply(
                None,
                applied_fields,
                node,
                manager=options.field_manager,
                api_version=rt.api_version,
                now=now,
                force=options.force,
            )
            merged["metadata"]["name"] = name
            if rt.namespaced:
                merged["metadata"]["namespace"] = namespace
            managed = merged["metadata"].pop("managedFields", None)
            creation_options = WriteOptions(
                options.dry_run, "", options.field_validation, warnings=options.warnings
            )
            return self.create(rt, namespace, merged, creation_options, managed_fields=managed), True
        if requested_rv and str(requested_rv) != old["metadata"]["resourceVersion"]:
            raise stale_write(rt.group, rt.plural, name)
        live = json_copy(old)
        if subresource == "status":
            applied_fields = {"status": applied_fields.get("status", {})}
        # kubectl moving an object from client-side to server-side apply: like the real server, fields
        # its last-applied annotation still describes are taken over without conflicts, and the
        # annotation then follows what kubectl applies (so a later client-side apply stays consistent).
        last_applied = _last_applied(old) if options.field_manager == "kubectl" and not subresource else None
        merged = fieldmanager.apply(
            live,
            applied_fields,
            node,
            manager=options.field_manager,
            api_version=rt.api_version,
            now=now,
            force=options.force,
            subresource=subresource,
            normalize=self._defaulter(rt),
            forgiven=fieldmanager.last_applied_fields(old, last_applied, node) if last_applied else None,
        )
        if last_applied is not None:
            annotations = merged["metadata"].setdefault("annotations", {})
            annotations[LAST_APPLIED] = _build_last_applied(applied)
        merged["apiVersion"] = _storage_api_version(rt)
        merged["kind"] = rt.kind
        managed = merged["metadata"].get("managedFields", [])
        new = self._merge_identity(rt, old, merged, subresource)
        new["metadata"]["managedFields"] = managed
        if not new["metadata"]["managedFields"]:
            new["metadata"].pop("managedFields")
        return self._finish_update(
            rt,
            old,
            new,
            options=options,
            subresource=subresource,
            operation_manager=None,
            managed_already=True,
        ), False

    @staticmethod
    def _defaulter(rt: ResourceType) -> Callable[[JsonDict], JsonDict] | None:
        schema = rt.schema
        if not rt.is_custom or not schema:
            return None
        return lambda obj: apply_defaults(obj, schema)

    # ---- delete --------------------------------------------------------------------------------------

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        options: WriteOptions,
        preconditions: JsonDict | None = None,
        propagation: str = "Background",
    ) -> tuple[JsonDict, bool]:
        """Returns (object, finished): finished is False while finalizers hold the object."""
        old = self._load(rt, namespace, name)
        meta = old["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                    f"UID in object meta: {meta.get('uid')}",
                )
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get(
                "resourceVersion"
            ):
                raise stale_write(rt.group, rt.plural, name)
        new = json_copy(old)
        new_meta = new["metadata"]
        finalizers = list(new_meta.get("finalizers") or [])
        if propagation == "Orphan" and "orphan" not in finalizers and not new_meta.get("deletionTimestamp"):
            finalizers.append("orphan")
        elif (
            propagation == "Foreground"
            and "foregroundDeletion" not in finalizers
            and not new_meta.get("deletionTimestamp")
        ):
            finalizers.append("foregroundDeletion")
        if finalizers:
            new_meta["finalizers"] = finalizers
        if rt.storage_key == _NAMESPACE_KEY:
            finalizers = finalizers or list((new.get("spec") or {}).get("finalizers") or [])
        if not finalizers:
            if options.dry_run:
                return self.present(rt, old), True
            new_meta["resourceVersion"] = str(self.store.next_resource_version())
            self.store.remove(rt.storage_key, new)
            self._after_delete(rt, new)
            return self.present(rt, new), True
        if new_meta.get("deletionTimestamp"):
            return self.present(rt, old), False
        new_meta["deletionTimestamp"] = self.clock()
        new_meta["deletionGracePeriodSeconds"] = 0
        if rt.storage_key == _NAMESPACE_KEY:
            new.setdefault("status", {})["phase"] = "Terminating"
        return self._commit(rt, new, "MODIFIED", options), False

    def finalize_namespace(self, name: str) -> None:
        """Remove a terminating namespace once it is empty (called by the namespace controller)."""
        ns = self.store.get(_NAMESPACE_KEY, "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp") or ns["metadata"].get("finalizers"):
            return
        final = json_copy(ns)
        final["metadata"]["resourceVersion"] = str(self.store.next_resource_version())
        final.setdefault("spec", {})["finalizers"] = []
        self.store.remove(_NAMESPACE_KEY, final)


def _same_content(old: JsonDict, new: JsonDict) -> bool:
    """No-op writes keep the resourceVersion (managedFields timestamps aside), as upstream does."""

    def strip(obj: JsonDict) -> JsonDict:
        meta = {
            k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")
        }
        managers = [
            {k: v for k, v in entry.items() if k != "time"}
            for entry in obj.get("metadata", {}).get("managedFields") or []
        ]
        return {**obj, "metadata": meta, "_managers": managers}

    return strip(old) == strip(new)


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _last_applied(obj: JsonDict) -> JsonDict | None:
    text = (obj["metadata"].get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _build_last_applied(applied: JsonDict) -> str:
    """The apply configuration as the annotation's JSON, without the annotation itself."""
    config = json_copy(applied)
    annotations = (config.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
    return json.dumps(config, separators=(",", ":"))


# ObjectMeta fields serialised with omitempty: a real server never stores or serves them empty, so
# `kubectl label x k-` leaves no `labels: {}` behind (nor a manager owning it).
_OMITTED_WHEN_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences", "generateName")


def _drop_empty_metadata(meta: JsonDict) -> bool:
    """Remove empty omitempty fields from metadata; whether any was removed."""
    dropped = False
    for name in _OMITTED_WHEN_EMPTY:
        if name in meta and not meta[name]:
            del meta[name]
            dropped = True
    return dropped


def _storage_api_version(rt: ResourceType) -> str:
    """The apiVersion objects are stored under (events.k8s.io Events are stored as core Events)."""
    return "v1" if rt.storage_key == ("", "events") else rt.api_version


# Built-in kinds whose metadata.generation the real server maintains (ConfigMaps, Leases... have none).
_GENERATION_KINDS = frozenset(
    {
        ("", "pods"),
        ("apps", "deployments"),
        ("apps", "daemonsets"),
        ("discovery.k8s.io", "endpointslices"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    }
)


def _tracks_generation(rt: ResourceType) -> bool:
    return rt.is_custom or rt.storage_key in _GENERATION_KINDS


def _name_problem(rt: ResourceType, name: Any) -> str:
    """Why `name` is not a valid name for this kind ("" when it is), in the real server's words."""
    if not isinstance(name, str):
        return "name must be a string"
    if rt.storage_key in _RBAC_KINDS:
        return (
            ""
            if "/" not in name and "%" not in name and name not in (".", "..")
            else "may not contain '/' or '%'"
        )
    if rt.storage_key == ("", "namespaces"):
        if len(name) <= 63 and _DNS_LABEL.fullmatch(name):
            return ""
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
            "start and end with an alphanumeric character"
        )
    if rt.storage_key == ("", "services"):
        if len(name) <= 63 and _DNS_1035_LABEL.fullmatch(name):
            return ""
        return (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character"
        )
    if len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name):
        return ""
    return (
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
        "must start and end with an alphanumeric character"
    )


def _qualified_name_problem(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _LABEL_VALUE.fullmatch(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character"
        )
    return ""
