"""What a fresh cluster starts with: the well-known ClusterRoles, so manifests binding to them work."""

from __future__ import annotations

from typing import Any

from .semantics import ObjectService, WriteOptions

JsonDict = dict[str, Any]


def bootstrap_rbac(objects: ObjectService) -> None:
    """Create cluster-admin (bound to system:masters) and the aggregated admin/edit/view roles if missing."""
    cluster_roles = objects.registry.lookup("rbac.authorization.k8s.io", "v1", "clusterroles")
    bindings = objects.registry.lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
    assert cluster_roles is not None and bindings is not None
    for role in _BOOTSTRAP_CLUSTER_ROLES:
        if objects.store.get(cluster_roles.storage_key, "", role["metadata"]["name"]) is None:
            objects.create(cluster_roles, None, role, WriteOptions())
    if objects.store.get(bindings.storage_key, "", "cluster-admin") is None:
        admin_binding = {
            "metadata": {
                "name": "cluster-admin",
                "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}
            ],
        }
        objects.create(bindings, None, admin_binding, WriteOptions())


def _aggregated_role(name: str, label: str, rules: list[JsonDict] | None = None) -> JsonDict:
    role: JsonDict = {
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]},
        "rules": rules or [],
    }
    return role


_READ = ["get", "list", "watch"]
_BOOTSTRAP_CLUSTER_ROLES: list[JsonDict] = [
    {
        "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    },
    _aggregated_role("admin", "rbac.authorization.k8s.io/aggregate-to-admin"),
    _aggregated_role("edit", "rbac.authorization.k8s.io/aggregate-to-edit"),
    _aggregated_role("view", "rbac.authorization.k8s.io/aggregate-to-view"),
    {
        "metadata": {
            "name": "system:aggregate-to-view",
            "labels": {
                "kubernetes.io/bootstrapping": "rbac-defaults",
                "rbac.authorization.k8s.io/aggregate-to-view": "true",
                "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                "rbac.authorization.k8s.io/aggregate-to-admin": "true",
            },
        },
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps", "endpoints", "events", "pods", "services", "serviceaccounts"],
                "verbs": _READ,
            },
            {"apiGroups": ["apps"], "resources": ["deployments", "daemonsets"], "verbs": _READ},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
        ],
    },
    {
        "metadata": {
            "name": "system:aggregate-to-edit",
            "labels": {
                "kubernetes.io/bootstrapping": "rbac-defaults",
                "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                "rbac.authorization.k8s.io/aggregate-to-admin": "true",
            },
        },
        "rules": [
            {
                "apiGroups": [""],
                "resources": [
                    "configmaps",
                    "endpoints",
                    "events",
                    "pods",
                    "secrets",
                    "services",
                    "serviceaccounts",
                ],
                "verbs": ["create", "delete", "deletecollection", "patch", "update"],
            },
            {
                "apiGroups": ["apps"],
                "resources": ["deployments", "daemonsets"],
                "verbs": ["create", "delete", "deletecollection", "patch", "update"],
            },
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
        ],
    },
    {
        "metadata": {
            "name": "system:aggregate-to-admin",
            "labels": {
                "kubernetes.io/bootstrapping": "rbac-defaults",
                "rbac.authorization.k8s.io/aggregate-to-admin": "true",
            },
        },
        "rules": [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["roles", "rolebindings"],
                "verbs": ["*"],
            },
            {"apiGroups": [""], "resources": ["secrets"], "verbs": _READ},
        ],
    },
]
