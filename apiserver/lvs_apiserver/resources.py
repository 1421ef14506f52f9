"""Resource types the server knows: the built-in kinds it stores and the ones CRDs define."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    format: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # For custom resources: the validation schema of this version and its printer columns.
    schema: JsonDict | None = field(default=None, compare=False, hash=False)
    printer_columns: tuple[PrinterColumn, ...] = field(default=(), compare=False, hash=False)
    crd_name: str | None = None
    storage_version: bool = True
    # Field-selector labels beyond metadata.name/namespace (a CRD version's selectableFields).
    selectable_fields: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def storage_key(self) -> tuple[str, str]:
        """All versions of one resource share the same storage (events.k8s.io Events: core Events)."""
        if self.group == "events.k8s.io" and self.plural == "events":
            return ("", "events")
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def is_custom(self) -> bool:
        return self.crd_name is not None

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    *,
    short_names: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short_names,
        categories=categories,
        subresources=subresources,
        verbs=verbs,
    )


BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _builtin(
        "", "v1", "namespaces", "Namespace", False, short_names=("ns",), subresources=("status", "finalize")
    ),
    _builtin(
        "",
        "v1",
        "services",
        "Service",
        True,
        short_names=("svc",),
        subresources=("status",),
        categories=("all",),
    ),
    _builtin("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
    _builtin(
        "", "v1", "pods", "Pod", True, short_names=("po",), subresources=("status",), categories=("all",)
    ),
    _builtin("", "v1", "nodes", "Node", False, short_names=("no",), subresources=("status",)),
    _builtin("", "v1", "events", "Event", True, short_names=("ev",)),
    _builtin("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    _builtin("", "v1", "secrets", "Secret", True),
    _builtin(
        "", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",), subresources=("token",)
    ),
    _builtin("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    _builtin("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", True),
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        short_names=("deploy",),
        subresources=("status",),
        categories=("all",),
    ),
    _builtin(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        True,
        short_names=("ds",),
        subresources=("status",),
        categories=("all",),
    ),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        subresources=("status",),
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
    ),
    _builtin(
        "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=("create",)
    ),
    _builtin(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        verbs=("create",),
    ),
)

# Group preference order for discovery, like a real server (core first, then well-known groups).
BUILTIN_GROUP_ORDER = (
    "",
    "apps",
    "events.k8s.io",
    "authorization.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
)


def types_from_crd(crd: JsonDict) -> list[ResourceType]:
    """One ResourceType per served version of a CRD."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    group = spec.get("group", "")
    result: list[ResourceType] = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or spec.get("subresources") or {}
        sub_names = tuple(name for name in ("status", "scale") if name in subresources)
        schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        columns = version.get("additionalPrinterColumns") or spec.get("additionalPrinterColumns") or []
        result.append(
            ResourceType(
                group=group,
                version=version.get("name", ""),
                plural=names.get("plural", ""),
                singular=names.get("singular") or names.get("kind", "").lower(),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=sub_names,
                schema=schema,
                printer_columns=tuple(
                    PrinterColumn(
                        name=column.get("name", ""),
                        type=column.get("type", "string"),
                        json_path=column.get("jsonPath", ""),
                        description=column.get("description", ""),
                        format=column.get("format", ""),
                        priority=int(column.get("priority", 0)),
                    )
                    for column in columns
                ),
                crd_name=crd.get("metadata", {}).get("name"),
                storage_version=bool(version.get("storage", False)),
                selectable_fields=tuple(
                    str(selectable.get("jsonPath", "")).lstrip(".")
                    for selectable in version.get("selectableFields") or []
                    if isinstance(selectable, dict) and selectable.get("jsonPath")
                ),
            )
        )
    return result


class ResourceRegistry:
    """Lookup of resource types by group/version/plural, updated as CRDs come and go."""

    def __init__(self) -> None:
        self._builtin: dict[tuple[str, str, str], ResourceType] = {
            (t.group, t.version, t.plural): t for t in BUILTIN_TYPES
        }
        self._custom: dict[str, list[ResourceType]] = {}

    def set_crd(self, crd: JsonDict) -> None:
        name = crd.get("metadata", {}).get("name", "")
        established = any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in crd.get("status", {}).get("conditions", [])
        )
        self._custom[name] = types_from_crd(crd) if established else []

    def remove_crd(self, name: str) -> None:
        self._custom.pop(name, None)

    def all_types(self) -> list[ResourceType]:
        types = list(self._builtin.values())
        for custom in self._custom.values():
            types.extend(custom)
        return types

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        found = self._builtin.get((group, version, plural))
        if found is not None:
            return found
        for custom in self._custom.values():
            for rt in custom:
                if (rt.group, rt.version, rt.plural) == (group, version, plural):
                    return rt
        return None

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        for rt in self.all_types():
            if (rt.group, rt.version, rt.kind) == (group, version, kind):
                return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions per group, in discovery order (preferred version first)."""
        result: dict[str, list[str]] = {}
        for group in BUILTIN_GROUP_ORDER:
            result[group] = []
        for rt in self.all_types():
            versions = result.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        builtin_groups = {t.group for t in self._builtin.values()}
        for group, versions in result.items():
            if group in BUILTIN_GROUP_ORDER:
                continue
            versions.sort(key=_version_priority, reverse=True)
        # CRD groups share one priority on a real server, which breaks ties by group name: the order
        # decides which group an ambiguous plural (virtualservices: lvs.io or networking.istio.io) means.
        ordered = [g for g in result if g in builtin_groups or g in BUILTIN_GROUP_ORDER]
        ordered += sorted(g for g in result if g not in ordered)
        return {group: result[group] for group in ordered if result[group]}


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, then by numbers."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (-1, 0, 0)
    major = int(match.group(1))
    stage = {"alpha": 0, "beta": 1, None: 2}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, major, minor)
