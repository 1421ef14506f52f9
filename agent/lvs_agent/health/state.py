"""Rise/fall counting: the pure core of the health policy.

A member starts *unknown* (``None``). ``rise`` consecutive successes make it healthy, ``fall``
consecutive failures make it unhealthy; from unknown, whichever threshold is met first decides. The
compiler (``lvs_api``) treats unknown as healthy, so a new member takes traffic until checks say
otherwise and a restarted agent does not pull every member while its first probes are in flight.
"""

from __future__ import annotations

from typing import NamedTuple

Health = bool | None  # True healthy, False unhealthy, None unknown (not yet decided)


class Transition(NamedTuple):
    previous: Health
    healthy: bool
    reason: str  # the probe result that crossed the threshold
    at: float  # clock time of the probe result


class RiseFall:
    """Counts consecutive results and reports when the state flips.

    ``flaps`` counts flips between healthy and unhealthy (not the first decision out of unknown).
    """

    __slots__ = ("changed_at", "failures", "fall", "flaps", "healthy", "last_reason", "rise", "successes")

    def __init__(self, rise: int, fall: int) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be >= 1, got {rise}/{fall}")
        self.rise = rise
        self.fall = fall
        self.healthy: Health = None
        self.successes = 0
        self.failures = 0
        self.flaps = 0
        self.last_reason = ""
        self.changed_at: float | None = None

    def observe(self, ok: bool, reason: str, now: float) -> Transition | None:
        """Count one probe result; returns the transition it caused, if any."""
        self.last_reason = reason
        if ok:
            self.successes += 1
            self.failures = 0
            if self.healthy is not True and self.successes >= self.rise:
                return self._flip(True, reason, now)
        else:
            self.failures += 1
            self.successes = 0
            if self.healthy is not False and self.failures >= self.fall:
                return self._flip(False, reason, now)
        return None

    def _flip(self, healthy: bool, reason: str, now: float) -> Transition:
        previous = self.healthy
        if previous is not None:
            self.flaps += 1
        self.healthy = healthy
        self.changed_at = now
        return Transition(previous, healthy, reason, now)
