"""lvs_api: the pure core shared by the controller and the agent (no I/O imports).

- ``lvs_api.models``: pydantic models of lvs.io/v1alpha1 (VirtualService, RealServerPool, VIPPool, and the
  internal ResolvedService and DirectorReport).
- ``lvs_api.rules``: cross-field rules, each a CEL expression (into the CRDs) plus a python predicate.
- ``lvs_api.crdgen``: ``python -m lvs_api.crdgen --out crds`` writes the CRDs from the models.
- ``lvs_api.validation``: ``validate(kind, obj) -> list[FieldError]`` for the controller.
- ``lvs_api.ipvs``: the kernel-table vocabulary (ServiceKey, VirtualServer, Op...).
- ``lvs_api.compiler``: accepted spec + members + health -> desired IPVS table (the only API-to-kernel step).
- ``lvs_api.planner``: desired x observed x owned -> minimal ordered ops and conflicts.
- ``lvs_api.simulate``: ``apply_ops(table, ops)``, a pure kernel model for tests.
"""
