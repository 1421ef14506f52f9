"""The parse cache: one pydantic parse per cached object version, never a stale one."""

from __future__ import annotations

import pytest
from controller_fixtures import pool
from lvs_api.models import RealServerPoolSpec
from lvs_controller import validation
from pydantic import ValidationError


def test_same_object_is_parsed_once_and_a_new_version_again() -> None:
    spec = pool()["spec"]
    first = validation.parse_cached(RealServerPoolSpec, spec)
    assert validation.parse_cached(RealServerPoolSpec, spec) is first
    newer = {**spec, "members": [{"address": "198.51.100.99"}]}
    parsed = validation.parse_cached(RealServerPoolSpec, newer)
    assert [m.address for m in parsed.members] == ["198.51.100.99"]
    # An equal copy is another object: parsed again, to an equal model.
    copy = {**spec}
    again = validation.parse_cached(RealServerPoolSpec, copy)
    assert again is not first and again == first


def test_invalid_data_raises_every_time_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {"members": [{"address": "not-an-address"}]}
    for _ in range(2):
        with pytest.raises(ValidationError):
            validation.parse_cached(RealServerPoolSpec, bad)
    monkeypatch.setattr(validation, "PARSE_CACHE_SIZE", 3)
    specs = [pool()["spec"] for _ in range(5)]
    for spec in specs:
        validation.parse_cached(RealServerPoolSpec, spec)
    assert len(validation._PARSED) <= 3


def test_static_members_are_built_once_per_pool_version_and_follow_a_new_one() -> None:
    from lvs_controller.resolution import static_members

    spec = validation.parse_cached(RealServerPoolSpec, pool()["spec"])
    first = static_members(spec, ipv6=False)
    second = static_members(spec, ipv6=False)
    assert first == second and first is not second  # callers get their own list
    assert all(a is b for a, b in zip(first, second, strict=True))  # of the same frozen members
    assert [(m.address, m.weight) for m in first] == [("198.51.100.11", 1), ("198.51.100.12", 2)]
    assert static_members(spec, ipv6=True) == []
    newer = validation.parse_cached(
        RealServerPoolSpec, {"members": [{"address": "198.51.100.7", "weight": 5}]}
    )
    assert [(m.address, m.weight) for m in static_members(newer, ipv6=False)] == [("198.51.100.7", 5)]
