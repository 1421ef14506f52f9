"""Errors raised by the guest harness. Each says what is wrong and how to fix it."""

from __future__ import annotations


class GuestError(Exception):
    """Base class for every guest harness error."""


class GuestUnavailable(GuestError):
    """No guest can start on this machine: a prerequisite is missing.

    `missing` names what is missing; `fix` is the command or step that repairs it.
    """

    def __init__(self, missing: str, fix: str) -> None:
        self.missing = missing
        self.fix = fix
        super().__init__(f"kernel guest unavailable: {missing}. Fix: {fix}")


class GuestBootFailed(GuestError):
    """The guest ended without reporting the command's exit status."""

    def __init__(self, message: str, console_tail: str) -> None:
        self.console_tail = console_tail
        tail = f"\n--- last guest console lines ---\n{console_tail}" if console_tail else ""
        super().__init__(message + tail)


class GuestTimeout(GuestError):
    """The guest ran past its deadline and was killed."""

    def __init__(self, seconds: float, console_tail: str) -> None:
        self.seconds = seconds
        self.console_tail = console_tail
        tail = f"\n--- last guest console lines ---\n{console_tail}" if console_tail else ""
        super().__init__(f"kernel guest timed out after {seconds:.0f} s and was killed{tail}")
