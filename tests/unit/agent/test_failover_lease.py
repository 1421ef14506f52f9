"""The file Lease store's compare-and-swap and term rules (the same ones KubeLeaseStore implements)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lvs_agent.failover.lease import FileLeaseStore, LeaseConflictError, lease_name
from lvs_agent.failover.machine import LeaseView


async def test_first_acquire_creates_term_zero_then_takeover_increments(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path, duration_seconds=10)
    assert await store.read("g") == LeaseView("", 0, expired=True)
    assert await store.acquire("g", "a", LeaseView("", 0, expired=True)) == LeaseView("a", 0)
    assert await store.renew("g", "a") == LeaseView("a", 0)
    assert await store.acquire("g", "a", LeaseView("a", 0)) == LeaseView("a", 0)  # restarted holder
    taken = await store.acquire("g", "b", LeaseView("a", 0))
    assert taken == LeaseView("b", 1)


async def test_acquire_fails_when_the_holder_changed_and_renew_fails_for_a_non_holder(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path)
    await store.acquire("g", "a", None)
    await store.acquire("g", "b", LeaseView("a", 0))
    with pytest.raises(LeaseConflictError) as conflict:
        await store.acquire("g", "c", LeaseView("a", 0))  # c decided a was dead, but b already took it
    assert conflict.value.current == LeaseView("b", 1)
    with pytest.raises(LeaseConflictError):
        await store.renew("g", "a")


async def test_expiry(tmp_path: Path) -> None:
    store = FileLeaseStore(tmp_path, duration_seconds=0.0)
    await store.acquire("g", "a", None)
    assert (await store.read("g")).expired


def test_lease_names_are_dns_labels_and_distinct() -> None:
    names = {lease_name(group) for group in ("203.0.113.10", "2001:db8::10", "2001:DB8::10", "web/prod")}
    assert len(names) == 4
    for name in names:
        assert len(name) <= 63
        assert name.replace("-", "").isalnum() and name == name.lower()
