"""Health changes through compiler + planner: the kernel sees edits, never a service churn."""

from __future__ import annotations

from typing import Any

from api_samples import vs_spec
from hypothesis import given, settings
from hypothesis import strategies as st
from lvs_api.compiler import compile_service
from lvs_api.ipvs import OpKind
from lvs_api.models import ResolvedMember, VirtualServiceSpec
from lvs_api.planner import plan
from lvs_api.simulate import apply_ops

ADDRESSES = [f"198.51.100.{i}" for i in range(1, 7)]
FALLBACK = [ResolvedMember(address="198.51.100.99", weight=2)]

_members = st.lists(
    st.builds(
        ResolvedMember,
        address=st.sampled_from(ADDRESSES),
        weight=st.integers(0, 3),
        ready=st.booleans(),
        terminating=st.booleans(),
    ),
    max_size=5,
    unique_by=lambda m: m.address,
)
_health = st.dictionaries(st.sampled_from(ADDRESSES), st.sampled_from([True, False, None]))


def _spec(on_failure: str, forwarding: str) -> VirtualServiceSpec:
    extra: dict[str, Any] = {"onFailure": on_failure, "forwarding": forwarding}
    return VirtualServiceSpec.model_validate(vs_spec(**extra))


def _usable(member: ResolvedMember, health: dict[str, bool | None]) -> bool:
    return (
        member.ready
        and not member.terminating
        and health.get(member.address) is not False
        and member.weight > 0
    )


@settings(max_examples=80, deadline=None)
@given(
    members=_members,
    before=_health,
    after=_health,
    on_failure=st.sampled_from(["Quiesce", "Remove"]),
    forwarding=st.sampled_from(["NAT", "DirectRouting"]),
    with_fallback=st.booleans(),
)
def test_health_changes_are_destination_edits(
    *,
    members: list[ResolvedMember],
    before: dict[str, bool | None],
    after: dict[str, bool | None],
    on_failure: str,
    forwarding: str,
    with_fallback: bool,
) -> None:
    spec = _spec(on_failure, forwarding)
    fallback = FALLBACK if with_fallback else []
    old = compile_service(spec, members, fallback, lambda m: before.get(m.address))
    new = compile_service(spec, members, fallback, lambda m: after.get(m.address))
    kernel = apply_ops({}, plan(old, {}, set()))
    ops = plan(new, kernel, set(kernel))

    assert apply_ops(kernel, ops) == new
    kinds = {op.kind for op in ops}
    assert not kinds & {OpKind.ADD_SERVICE, OpKind.DEL_SERVICE, OpKind.EDIT_SERVICE}
    if on_failure == "Quiesce" and not with_fallback:
        assert kinds <= {OpKind.EDIT_DEST}, "quiescing must only change weights"

    sorry_programmed = any(
        dest.address == "198.51.100.99" for server in new.values() for dest in server.dests
    )
    assert sorry_programmed == (with_fallback and not any(_usable(m, after) for m in members))
    for server in new.values():
        for dest, config in server.dests.items():
            member = next((m for m in members if m.address == dest.address), None)
            if member is None:
                continue
            if after.get(member.address) is False:
                assert on_failure == "Quiesce" and config.weight == 0
            elif not member.ready or member.terminating:
                assert config.weight == 0
            else:
                assert config.weight == member.weight
