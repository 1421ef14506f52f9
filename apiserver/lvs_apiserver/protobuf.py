"""Decoding of the Kubernetes protobuf wire format for the few built-in kinds kubectl's typed client
sends that way (`kubectl create namespace|configmap|secret|serviceaccount|service|token`).

Responses are always JSON (every client also accepts it); only request bodies need decoding.
The envelope is the 4-byte magic `k8s\\0` followed by a runtime.Unknown message.
"""

from __future__ import annotations

import base64
from typing import Any

from .errors import ApiError

JsonDict = dict[str, Any]
MAGIC = b"k8s\x00"

# message -> field number -> (json name, type, repeated). Types: string, bytes, bool, int, msg:<Name>,
# map:string, map:bytes. Field numbers from k8s.io/api generated.proto.
Field = tuple[str, str, bool]
SCHEMAS: dict[str, dict[int, Field]] = {
    "TypeMeta": {1: ("apiVersion", "string", False), 2: ("kind", "string", False)},
    "Unknown": {
        1: ("typeMeta", "msg:TypeMeta", False),
        2: ("raw", "rawbytes", False),
        3: ("contentEncoding", "string", False),
        4: ("contentType", "string", False),
    },
    "ObjectMeta": {
        1: ("name", "string", False),
        2: ("generateName", "string", False),
        3: ("namespace", "string", False),
        5: ("uid", "string", False),
        6: ("resourceVersion", "string", False),
        7: ("generation", "int", False),
        11: ("labels", "map:string", False),
        12: ("annotations", "map:string", False),
        13: ("ownerReferences", "msg:OwnerReference", True),
        14: ("finalizers", "string", True),
    },
    "OwnerReference": {
        1: ("kind", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
        5: ("apiVersion", "string", False),
        6: ("controller", "bool", False),
        7: ("blockOwnerDeletion", "bool", False),
    },
    "Namespace": {1: ("metadata", "msg:ObjectMeta", False), 2: ("spec", "msg:NamespaceSpec", False)},
    "NamespaceSpec": {1: ("finalizers", "string", True)},
    "ConfigMap": {
        1: ("metadata", "msg:ObjectMeta", False),
        2: ("data", "map:string", False),
        3: ("binaryData", "map:bytes", False),
        4: ("immutable", "bool", False),
    },
    "Secret": {
        1: ("metadata", "msg:ObjectMeta", False),
        2: ("data", "map:bytes", False),
        3: ("type", "string", False),
        4: ("stringData", "map:string", False),
        5: ("immutable", "bool", False),
    },
    "ServiceAccount": {
        1: ("metadata", "msg:ObjectMeta", False),
        4: ("automountServiceAccountToken", "bool", False),
    },
    "Service": {1: ("metadata", "msg:ObjectMeta", False), 2: ("spec", "msg:ServiceSpec", False)},
    "ServiceSpec": {
        1: ("ports", "msg:ServicePort", True),
        2: ("selector", "map:string", False),
        3: ("clusterIP", "string", False),
        4: ("type", "string", False),
        5: ("externalIPs", "string", True),
        7: ("sessionAffinity", "string", False),
        18: ("clusterIPs", "string", True),
    },
    "ServicePort": {
        1: ("name", "string", False),
        2: ("protocol", "string", False),
        3: ("port", "int", False),
        4: ("targetPort", "msg:IntOrString", False),
        5: ("nodePort", "int", False),
    },
    "IntOrString": {1: ("type", "int", False), 2: ("intVal", "int", False), 3: ("strVal", "string", False)},
    "TokenRequest": {1: ("metadata", "msg:ObjectMeta", False), 2: ("spec", "msg:TokenRequestSpec", False)},
    "TokenRequestSpec": {
        1: ("audiences", "string", True),
        3: ("boundObjectRef", "msg:BoundObjectReference", False),
        4: ("expirationSeconds", "int", False),
    },
    "BoundObjectReference": {
        1: ("kind", "string", False),
        2: ("apiVersion", "string", False),
        3: ("name", "string", False),
        4: ("uid", "string", False),
    },
    "SelfSubjectAccessReview": {
        1: ("metadata", "msg:ObjectMeta", False),
        2: ("spec", "msg:SelfSubjectAccessReviewSpec", False),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "msg:ResourceAttributes", False),
        2: ("nonResourceAttributes", "msg:NonResourceAttributes", False),
    },
    "SubjectAccessReview": {
        1: ("metadata", "msg:ObjectMeta", False),
        2: ("spec", "msg:SubjectAccessReviewSpec", False),
    },
    "SubjectAccessReviewSpec": {
        1: ("resourceAttributes", "msg:ResourceAttributes", False),
        2: ("nonResourceAttributes", "msg:NonResourceAttributes", False),
        3: ("user", "string", False),
        4: ("groups", "string", True),
        6: ("uid", "string", False),
    },
    "Role": {1: ("metadata", "msg:ObjectMeta", False), 2: ("rules", "msg:PolicyRule", True)},
    "ClusterRole": {
        1: ("metadata", "msg:ObjectMeta", False),
        2: ("rules", "msg:PolicyRule", True),
        3: ("aggregationRule", "msg:AggregationRule", False),
    },
    "PolicyRule": {
        1: ("verbs", "string", True),
        2: ("apiGroups", "string", True),
        3: ("resources", "string", True),
        4: ("resourceNames", "string", True),
        5: ("nonResourceURLs", "string", True),
    },
    "AggregationRule": {1: ("clusterRoleSelectors", "msg:LabelSelector", True)},
    "LabelSelector": {1: ("matchLabels", "map:string", False)},
    "RoleBinding": {
        1: ("metadata", "msg:ObjectMeta", False),
        2: ("subjects", "msg:Subject", True),
        3: ("roleRef", "msg:RoleRef", False),
    },
    "ClusterRoleBinding": {
        1: ("metadata", "msg:ObjectMeta", False),
        2: ("subjects", "msg:Subject", True),
        3: ("roleRef", "msg:RoleRef", False),
    },
    "Subject": {
        1: ("kind", "string", False),
        2: ("apiGroup", "string", False),
        3: ("name", "string", False),
        4: ("namespace", "string", False),
    },
    "RoleRef": {1: ("apiGroup", "string", False), 2: ("kind", "string", False), 3: ("name", "string", False)},
    "SelfSubjectRulesReview": {
        1: ("metadata", "msg:ObjectMeta", False),
        2: ("spec", "msg:SelfSubjectRulesReviewSpec", False),
    },
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string", False)},
    "ResourceAttributes": {
        1: ("namespace", "string", False),
        2: ("verb", "string", False),
        3: ("group", "string", False),
        4: ("version", "string", False),
        5: ("resource", "string", False),
        6: ("subresource", "string", False),
        7: ("name", "string", False),
    },
    "NonResourceAttributes": {1: ("path", "string", False), 2: ("verb", "string", False)},
}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    fields: list[tuple[int, int, Any]] = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value = data[position : position + length]
            position += length
        elif wire == 1:
            value = data[position : position + 8]
            position += 8
        elif wire == 5:
            value = data[position : position + 4]
            position += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.append((number, wire, value))
    return fields


def decode_message(data: bytes, message: str) -> JsonDict:
    schema = SCHEMAS[message]
    result: JsonDict = {}
    for number, _, value in _fields(data):
        if number not in schema:
            continue  # fields we do not model are dropped, like pruning
        name, kind, repeated = schema[number]
        decoded = _decode_value(value, kind)
        if kind.startswith("map:"):
            key, item = decoded
            result.setdefault(name, {})[key] = item
        elif repeated:
            result.setdefault(name, []).append(decoded)
        else:
            result[name] = decoded
    if message == "IntOrString":
        return result  # converted by the caller
    return result


def _decode_value(value: Any, kind: str) -> Any:
    if kind == "string":
        return bytes(value).decode()
    if kind == "rawbytes":
        return bytes(value)
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode()
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return value - (1 << 64) if value >= 1 << 63 else value
    if kind.startswith("map:"):
        entry = {number: item for number, _, item in _fields(bytes(value))}
        key = bytes(entry.get(1, b"")).decode()
        raw = bytes(entry.get(2, b""))
        return key, (base64.b64encode(raw).decode() if kind == "map:bytes" else raw.decode())
    if kind.startswith("msg:"):
        name = kind[4:]
        decoded = decode_message(bytes(value), name)
        if name == "IntOrString":
            return decoded.get("strVal", "") if decoded.get("type") == 1 else decoded.get("intVal", 0)
        return decoded
    raise ValueError(f"unknown field kind {kind}")


def decode_object(body: bytes) -> JsonDict:
    """A protobuf-encoded request body -> the equivalent JSON object."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "UnsupportedMediaType", "protobuf body without the k8s envelope")
    try:
        envelope = decode_message(body[len(MAGIC) :], "Unknown")
        type_meta = envelope.get("typeMeta") or {}
        kind = type_meta.get("kind", "")
        if kind not in SCHEMAS or kind in ("TypeMeta", "Unknown"):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"protobuf bodies of kind {kind!r} are not supported by this server; send JSON",
            )
        obj = decode_message(envelope.get("raw", b""), kind)
    except (ValueError, IndexError, UnicodeDecodeError) as error:
        raise ApiError(400, "BadRequest", f"invalid protobuf body: {error}") from error
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        # proto2 optional strings arrive as "" when unset by the Go client: treat them as absent
        obj["metadata"] = {key: value for key, value in metadata.items() if value not in ("", 0)}
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
