"""lvs_apiserver: an embedded Kubernetes API server (emulator) that kubectl, the `kubernetes` client and
kopf use unmodified. In-memory by default, optional sqlite store; see README.md beside this file.

Modules:
  storage       objects, the global resourceVersion counter, bounded event history, watch fan-out
  semantics     create/update/patch/apply/delete rules (identity, 409s, generation, /status, finalizers,
                dry-run, namespaces, CRD registration)
  fieldmanager  managedFields and server-side apply (ownership per leaf field and keyed list item)
  schema, cel   CRD structural schema: pruning, defaults, validation, x-kubernetes-validations (cel-python)
  patching      JSON merge patch, JSON patch, strategic merge patch (approximation with merge keys)
  server        HTTP routing (aiohttp) of the REST paths onto the modules below
  watch         watch streams (history replay, selectors, bookmarks, 410 Gone)
  discovery, openapi, tables, jsonpath, auth, conversion, protobuf, encoding, bootstrap, controllers
  (namespace termination, ownerReference GC), endpoints (opt-in EndpointSlice controller),
  testing (ServerThread for tests), kubeconfig, tls
"""

from .server import ApiServer
from .storage import Store
from .testing import ServerThread

__all__ = ["ApiServer", "ServerThread", "Store"]
