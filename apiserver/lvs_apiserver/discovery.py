"""Discovery documents: legacy (/api, /apis, per group-version) and aggregated (apidiscovery v2, v2beta1)."""

from __future__ import annotations

from typing import Any

from .resources import ResourceRegistry, ResourceType

JsonDict = dict[str, Any]

SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "token": ["create"],
    "finalize": ["update"],
}


def api_versions(server_address: str) -> JsonDict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str, versions: list[str]) -> JsonDict:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: ResourceRegistry) -> JsonDict:
    groups = [_group_entry(g, vs) for g, vs in registry.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: ResourceRegistry, group: str) -> JsonDict | None:
    versions = registry.group_versions().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def _types_in(registry: ResourceRegistry, group: str, version: str) -> list[ResourceType]:
    return [rt for rt in registry.all_types() if rt.group == group and rt.version == version]


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> JsonDict | None:
    types = _types_in(registry, group, version)
    if not types:
        return None
    resources: list[JsonDict] = []
    for rt in types:
        entry: JsonDict = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in rt.subresources:
            resources.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": "TokenRequest" if sub == "token" else ("Scale" if sub == "scale" else rt.kind),
                    "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _aggregated_resource(rt: ResourceType) -> JsonDict:
    entry: JsonDict = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    if rt.subresources:
        entry["subresources"] = [
            {
                "subresource": sub,
                "responseKind": {
                    "group": "authentication.k8s.io"
                    if sub == "token"
                    else ("autoscaling" if sub == "scale" else rt.group),
                    "version": "v1",
                    "kind": "TokenRequest" if sub == "token" else ("Scale" if sub == "scale" else rt.kind),
                }
                if sub in ("token", "scale")
                else {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
            for sub in rt.subresources
        ]
    return entry


def aggregated(registry: ResourceRegistry, legacy: bool, api_version: str) -> JsonDict:
    """APIGroupDiscoveryList for /api (legacy=True, the core group) or /apis (every named group)."""
    items: list[JsonDict] = []
    for group, versions in registry.group_versions().items():
        if (group == "") != legacy:
            continue
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": version,
                        "resources": [_aggregated_resource(rt) for rt in _types_in(registry, group, version)],
                        "freshness": "Current",
                    }
                    for version in versions
                ],
            }
        )
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}
