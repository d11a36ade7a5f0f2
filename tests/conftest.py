"""Shared fixtures: a fake clock so TTL behaviour is tested without sleeping."""

from __future__ import annotations

import pytest


class FakeClock:
    """A mutable clock: call it for the current time, ``advance()`` it by hand."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"


@pytest.fixture
def clock() -> FakeClock:
    """A fresh FakeClock starting at 1_000_000.0."""
    return FakeClock(1_000_000.0)


@pytest.fixture(scope="session")
def clock_factory() -> type[FakeClock]:
    """The FakeClock class, for tests needing a fresh clock per example (hypothesis machines)."""
    return FakeClock
