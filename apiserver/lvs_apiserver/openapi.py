"""OpenAPI v3 documents (index + one per group-version) built from stored CRD schemas, with loose
schemas for the built-in kinds. kubectl reads them for `explain` and to see that the server does
field validation (the `fieldValidation` parameter on PATCH), so it leaves validation to the server."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .builtin_schemas import BUILTIN_SCHEMAS
from .resources import ResourceRegistry, ResourceType

JsonDict = dict[str, Any]

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_META_REF = {"$ref": f"#/components/schemas/{OBJECT_META}"}

_OBJECT_META_SCHEMA: JsonDict = {
    "description": "ObjectMeta is metadata that all persisted resources must have.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {"type": "string", "description": "Optional prefix used to generate a unique name."},
        "namespace": {
            "type": "string",
            "description": "Namespace defines the space within which each name must be unique.",
        },
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string", "default": ""},
            "description": "Map of string keys and values to organize and categorize objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string", "default": ""},
            "description": "Unstructured key value map stored with a resource.",
        },
        "uid": {
            "type": "string",
            "description": "UID is the unique in time and space value for this object.",
        },
        "resourceVersion": {
            "type": "string",
            "description": "An opaque value that represents the internal version of this object.",
        },
        "generation": {
            "type": "integer",
            "format": "int64",
            "description": "A sequence number representing a specific generation of the desired state.",
        },
        "creationTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "Time when this object was created.",
        },
        "deletionTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "Time at which this resource will be deleted.",
        },
        "finalizers": {
            "type": "array",
            "items": {"type": "string", "default": ""},
            "x-kubernetes-list-type": "set",
            "description": "Must be empty before the object is deleted from the registry.",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["uid"],
            "description": "List of objects depended by this object.",
        },
        "managedFields": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "description": "The set of fields each field manager owns.",
        },
    },
}


def schema_name(rt: ResourceType) -> str:
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> list[JsonDict]:
    return [{"group": rt.group, "version": rt.version, "kind": rt.kind}]


def _resource_schema(rt: ResourceType) -> JsonDict:
    if rt.is_custom and rt.schema:
        schema = copy.deepcopy(rt.schema)
    elif (rt.group, rt.plural) in BUILTIN_SCHEMAS:
        schema = copy.deepcopy(BUILTIN_SCHEMAS[(rt.group, rt.plural)])
    else:
        schema = {
            "type": "object",
            "description": f"{rt.kind} (stored by the embedded API server; fields are not validated).",
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-preserve-unknown-fields": True,
        }
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object.",
    }
    properties["kind"] = {
        "type": "string",
        "description": "Kind is a string value representing the REST resource this object represents.",
    }
    properties["metadata"] = {
        "allOf": [_META_REF],
        "default": {},
        "description": "Standard object's metadata.",
    }
    schema["x-kubernetes-group-version-kind"] = _gvk(rt)
    return schema


def _operation(rt: ResourceType, action: str, patch_types: list[str] | None = None) -> JsonDict:
    ref = {"$ref": f"#/components/schemas/{schema_name(rt)}"}
    operation: JsonDict = {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "parameters": [
            {
                "name": "dryRun",
                "in": "query",
                "schema": {"type": "string"},
                "description": "When present, indicates that modifications should not be persisted.",
            },
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {
                "name": "fieldValidation",
                "in": "query",
                "schema": {"type": "string"},
                "description": "Instructs the server how to handle objects with unknown or duplicate fields.",
            },
        ],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
    }
    if patch_types is not None:
        operation["parameters"].append({"name": "force", "in": "query", "schema": {"type": "boolean"}})
        operation["requestBody"] = {
            "content": {media: {"schema": {"type": "object"}} for media in patch_types},
            "required": True,
        }
    elif action in ("post", "put"):
        operation["requestBody"] = {"content": {"application/json": {"schema": ref}}, "required": True}
    return operation


def _paths(rt: ResourceType) -> JsonDict:
    prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    collection = (
        f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
    )
    patch_types = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ]
    paths: JsonDict = {
        collection: {"get": _operation(rt, "list"), "post": _operation(rt, "post")},
        f"{collection}/{{name}}": {
            "get": _operation(rt, "get"),
            "put": _operation(rt, "put"),
            "patch": _operation(rt, "patch", patch_types),
            "delete": _operation(rt, "delete"),
        },
    }
    if rt.has_status:
        paths[f"{collection}/{{name}}/status"] = {
            "get": _operation(rt, "get"),
            "put": _operation(rt, "put"),
            "patch": _operation(rt, "patch", patch_types),
        }
    return paths


def group_version_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def document(registry: ResourceRegistry, group: str, version: str) -> JsonDict | None:
    types = [rt for rt in registry.all_types() if rt.group == group and rt.version == version]
    if not types:
        return None
    paths: JsonDict = {}
    schemas: JsonDict = {OBJECT_META: copy.deepcopy(_OBJECT_META_SCHEMA)}
    for rt in types:
        if rt.verbs == ("create",):
            continue
        paths.update(_paths(rt))
        schemas[schema_name(rt)] = _resource_schema(rt)
        schemas[f"{schema_name(rt)}List"] = {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{schema_name(rt)}"}},
                "metadata": {"type": "object"},
            },
            "x-kubernetes-group-version-kind": [
                {"group": rt.group, "version": rt.version, "kind": rt.list_kind}
            ],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def index(registry: ResourceRegistry) -> JsonDict:
    paths: JsonDict = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = document(registry, group, version)
            if doc is None:
                continue
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
            key = group_version_key(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}
