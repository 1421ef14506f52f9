"""The API resources the product touches, and the URL paths that address them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

LVS_GROUP = "lvs.io"
LVS_VERSION = "v1alpha1"


@dataclass(frozen=True)
class Resource:
    """One REST resource: enough to build its paths and its apiVersion."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def kopf_name(self) -> str:
        """The ``plural.group`` spelling kopf accepts (``pods`` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def _base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """``/apis/g/v[/namespaces/ns]/plural[/name[/sub]]``; a collection across namespaces without ns."""
        parts = [self._base()]
        if self.namespaced and namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource is not None:
                parts.append(subresource)
        return "/".join(parts)


VIRTUAL_SERVICE = Resource(LVS_GROUP, LVS_VERSION, "virtualservices", "VirtualService", True)
REAL_SERVER_POOL = Resource(LVS_GROUP, LVS_VERSION, "realserverpools", "RealServerPool", True)
VIP_POOL = Resource(LVS_GROUP, LVS_VERSION, "vippools", "VIPPool", False)
RESOLVED_SERVICE = Resource(LVS_GROUP, LVS_VERSION, "resolvedservices", "ResolvedService", True)
DIRECTOR_REPORT = Resource(LVS_GROUP, LVS_VERSION, "directorreports", "DirectorReport", False)

SERVICE = Resource("", "v1", "services", "Service", True)
POD = Resource("", "v1", "pods", "Pod", True)
NODE = Resource("", "v1", "nodes", "Node", False)
CORE_EVENT = Resource("", "v1", "events", "Event", True)
NAMESPACE = Resource("", "v1", "namespaces", "Namespace", False)
ENDPOINT_SLICE = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
LEASE = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
