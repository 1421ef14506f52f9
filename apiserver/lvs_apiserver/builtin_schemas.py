"""OpenAPI v3 schemas of the built-in kinds the product uses (fields and descriptions from the
Kubernetes API reference, abridged), so `kubectl explain lease.spec` and friends answer. The server does
not validate built-in objects against them."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


def _s(description: str, **extra: Any) -> JsonDict:
    return {"type": "string", "description": description, **extra}


def _i(description: str) -> JsonDict:
    return {"type": "integer", "format": "int32", "description": description}


def _b(description: str) -> JsonDict:
    return {"type": "boolean", "description": description}


def _obj(description: str, properties: JsonDict, **extra: Any) -> JsonDict:
    return {"type": "object", "description": description, "properties": properties, **extra}


def _map(description: str) -> JsonDict:
    return {"type": "object", "description": description, "additionalProperties": {"type": "string"}}


def _list(description: str, items: JsonDict, **extra: Any) -> JsonDict:
    return {"type": "array", "description": description, "items": items, **extra}


_OBJECT_REFERENCE = _obj(
    "A reference to an object.",
    {
        "apiVersion": _s("API version of the referent."),
        "kind": _s("Kind of the referent."),
        "name": _s("Name of the referent."),
        "namespace": _s("Namespace of the referent."),
        "uid": _s("UID of the referent."),
        "fieldPath": _s("A field within the referent, e.g. spec.containers{name}."),
        "resourceVersion": _s("Specific resourceVersion of the referent."),
    },
)
_CONDITIONS = _list(
    "Latest available observations of the object's state.",
    _obj(
        "One condition.",
        {
            "type": _s("Type of the condition."),
            "status": _s("True, False or Unknown."),
            "reason": _s("Machine-readable reason for the last transition."),
            "message": _s("Human-readable details of the last transition."),
            "lastTransitionTime": _s("Last time the condition changed.", format="date-time"),
        },
    ),
)
_SERVICE_PORT = _obj(
    "A port the service exposes.",
    {
        "name": _s("Name of this port within the service (DNS label)."),
        "protocol": _s("TCP, UDP or SCTP. Default TCP.", enum=["TCP", "UDP", "SCTP"]),
        "port": _i("The port exposed by this service."),
        "targetPort": {
            "x-kubernetes-int-or-string": True,
            "description": "Number or name of the port on the pods.",
        },
        "nodePort": _i("The port on each node (NodePort/LoadBalancer)."),
        "appProtocol": _s("Application protocol of this port."),
    },
    required=["port"],
)

BUILTIN_SCHEMAS: dict[tuple[str, str], JsonDict] = {
    ("coordination.k8s.io", "leases"): _obj(
        "Lease defines a lease concept (leader election, node heartbeats).",
        {
            "spec": _obj(
                "Specification of the Lease.",
                {
                    "holderIdentity": _s("Identity of the holder of a current lease."),
                    "leaseDurationSeconds": _i(
                        "Duration candidates wait before forcefully acquiring the lease."
                    ),
                    "acquireTime": _s("When the current lease was acquired.", format="date-time"),
                    "renewTime": _s("When the current holder last updated the lease.", format="date-time"),
                    "leaseTransitions": _i("Number of transitions of the lease between holders."),
                    "strategy": _s("Strategy for picking the leader for coordinated leader election."),
                    "preferredHolder": _s(
                        "Signals to a lease holder that the lease has a more optimal holder."
                    ),
                },
            )
        },
    ),
    ("discovery.k8s.io", "endpointslices"): _obj(
        "EndpointSlice represents a subset of the endpoints that implement a service.",
        {
            "addressType": _s("IPv4, IPv6 or FQDN.", enum=["IPv4", "IPv6", "FQDN"]),
            "endpoints": _list(
                "Unique endpoints in this slice.",
                _obj(
                    "One endpoint.",
                    {
                        "addresses": _list("Addresses of this endpoint.", {"type": "string"}),
                        "conditions": _obj(
                            "Current state of the endpoint.",
                            {
                                "ready": _b("The endpoint is ready to receive traffic."),
                                "serving": _b("The endpoint is serving (even while terminating)."),
                                "terminating": _b("The endpoint is terminating."),
                            },
                        ),
                        "hostname": _s("Hostname of this endpoint."),
                        "nodeName": _s("Node hosting this endpoint."),
                        "zone": _s("Zone this endpoint exists in."),
                        "targetRef": _OBJECT_REFERENCE,
                    },
                    required=["addresses"],
                ),
                **{"x-kubernetes-list-type": "atomic"},
            ),
            "ports": _list(
                "Network ports exposed by each endpoint.",
                _obj(
                    "One port.",
                    {
                        "name": _s("Port name."),
                        "port": _i("Port number."),
                        "protocol": _s("TCP, UDP or SCTP."),
                    },
                ),
                **{"x-kubernetes-list-type": "atomic"},
            ),
        },
        required=["addressType", "endpoints"],
    ),
    ("", "services"): _obj(
        "Service is a named abstraction of a software service.",
        {
            "spec": _obj(
                "Desired behaviour of the service.",
                {
                    "ports": _list(
                        "Ports exposed by this service.",
                        _SERVICE_PORT,
                        **{
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["port", "protocol"],
                        },
                    ),
                    "selector": _map("Route traffic to pods with labels matching this selector."),
                    "clusterIP": _s("IP address of the service."),
                    "type": _s(
                        "ClusterIP, NodePort, LoadBalancer or ExternalName.",
                        enum=["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
                    ),
                    "externalIPs": _list(
                        "IPs for which nodes accept traffic for this service.", {"type": "string"}
                    ),
                    "sessionAffinity": _s("ClientIP or None."),
                    "externalTrafficPolicy": _s("Cluster or Local."),
                },
            ),
            "status": _obj(
                "Current status of the service.",
                {"loadBalancer": {"type": "object"}, "conditions": _CONDITIONS},
            ),
        },
    ),
    ("", "nodes"): _obj(
        "Node is a worker node.",
        {
            "spec": _obj(
                "Behaviour of the node.",
                {
                    "podCIDR": _s("Pod IP range assigned to the node."),
                    "unschedulable": _b("Controls node schedulability of new pods."),
                    "taints": _list(
                        "Taints of the node.",
                        {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    ),
                },
            ),
            "status": _obj(
                "Most recently observed status of the node.",
                {
                    "addresses": _list(
                        "Addresses reachable to the node.",
                        _obj(
                            "One address.",
                            {
                                "type": _s("Hostname, InternalIP, ExternalIP..."),
                                "address": _s("The address."),
                            },
                        ),
                    ),
                    "conditions": _CONDITIONS,
                },
            ),
        },
    ),
    ("", "events"): _obj(
        "Event is a report of an event somewhere in the cluster.",
        {
            "involvedObject": _OBJECT_REFERENCE,
            "reason": _s("Short, machine understandable reason for the transition."),
            "message": _s("Human-readable description of the status of this operation."),
            "type": _s("Normal or Warning."),
            "count": _i("Times this event has occurred."),
            "firstTimestamp": _s("First time the event was recorded.", format="date-time"),
            "lastTimestamp": _s("Most recent time the event was recorded.", format="date-time"),
            "eventTime": _s("Time when this Event was first observed.", format="date-time"),
            "source": _obj(
                "Component reporting this event.", {"component": _s("Component."), "host": _s("Node.")}
            ),
            "reportingComponent": _s("Name of the controller that emitted this Event."),
            "reportingInstance": _s("ID of the controller instance."),
            "action": _s("What action was taken/failed regarding the involved object."),
        },
    ),
    ("", "configmaps"): _obj(
        "ConfigMap holds configuration data for pods to consume.",
        {
            "data": _map("Configuration data (UTF-8)."),
            "binaryData": _map("Binary configuration data (base64)."),
            "immutable": _b("Data cannot be updated when true."),
        },
    ),
    ("", "secrets"): _obj(
        "Secret holds secret data of a certain type.",
        {
            "data": _map("Secret data (base64)."),
            "stringData": _map("Write-only convenience field for non-binary secret data."),
            "type": _s("Used to facilitate programmatic handling of secret data."),
            "immutable": _b("Data cannot be updated when true."),
        },
    ),
    ("", "namespaces"): _obj(
        "Namespace provides a scope for Names.",
        {
            "spec": _obj(
                "Behaviour of the namespace.", {"finalizers": _list("Finalizers.", {"type": "string"})}
            ),
            "status": _obj(
                "Status of the namespace.", {"phase": _s("Active or Terminating."), "conditions": _CONDITIONS}
            ),
        },
    ),
}
