"""Rise/fall counting (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lvs_agent.health.state import RiseFall, Transition


def feed(state: RiseFall, results: str) -> list[Transition]:
    """Feed results written as a string of '+' (success) and '-' (failure)."""
    transitions = []
    for index, char in enumerate(results):
        transition = state.observe(char == "+", f"probe {index}", float(index))
        if transition is not None:
            transitions.append(transition)
    return transitions


def test_starts_unknown_until_a_threshold_is_met() -> None:
    state = RiseFall(rise=2, fall=3)
    assert feed(state, "+") == []
    assert state.healthy is None
    assert feed(state, "+") == [Transition(None, True, "probe 0", 0.0)]
    assert state.healthy is True


def test_first_decision_can_be_unhealthy() -> None:
    state = RiseFall(rise=2, fall=3)
    transitions = feed(state, "+---")
    assert [(t.previous, t.healthy, t.at) for t in transitions] == [(None, False, 3.0)]
    assert state.flaps == 0


def test_fall_needs_consecutive_failures() -> None:
    state = RiseFall(rise=1, fall=3)
    feed(state, "+")
    assert feed(state, "--+--+--") == []
    assert state.healthy is True
    transitions = feed(state, "---")
    assert len(transitions) == 1
    assert transitions[0].previous is True
    assert transitions[0].healthy is False


def test_rise_needs_consecutive_successes_after_failure() -> None:
    state = RiseFall(rise=3, fall=1)
    feed(state, "-")
    assert state.healthy is False
    assert feed(state, "++-++-") == []
    transitions = feed(state, "+++")
    assert [t.healthy for t in transitions] == [True]


def test_flaps_count_flips_not_the_first_decision() -> None:
    state = RiseFall(rise=1, fall=1)
    transitions = feed(state, "+-+-+")
    assert [t.healthy for t in transitions] == [True, False, True, False, True]
    assert state.flaps == 4


def test_repeated_results_do_not_emit_again() -> None:
    state = RiseFall(rise=1, fall=1)
    assert len(feed(state, "++++")) == 1
    assert len(feed(state, "----")) == 1


def test_reason_and_time_of_the_crossing_probe() -> None:
    state = RiseFall(rise=2, fall=2)
    state.observe(False, "refused", 10.0)
    transition = state.observe(False, "timeout", 11.0)
    assert transition == Transition(None, False, "timeout", 11.0)
    assert state.changed_at == 11.0
    assert state.last_reason == "timeout"


@pytest.mark.parametrize(("rise", "fall"), [(0, 1), (1, 0), (-1, 3)])
def test_rejects_non_positive_thresholds(rise: int, fall: int) -> None:
    with pytest.raises(ValueError, match="rise and fall"):
        RiseFall(rise, fall)


@given(
    rise=st.integers(1, 5),
    fall=st.integers(1, 5),
    results=st.lists(st.booleans(), max_size=60),
)
def test_state_matches_a_reference_of_trailing_runs(rise: int, fall: int, results: list[bool]) -> None:
    """The state after any sequence equals the last threshold-length run that occurred."""
    state = RiseFall(rise, fall)
    for index, ok in enumerate(results):
        state.observe(ok, "", float(index))
    expected = None
    run_value: bool | None = None
    run_length = 0
    for ok in results:
        run_length = run_length + 1 if ok == run_value else 1
        run_value = ok
        if ok and run_length >= rise:
            expected = True
        elif not ok and run_length >= fall:
            expected = False
    assert state.healthy is expected
