"""pytest plugin: the ``slack_emulator`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._slack_emulator import SlackEmulator

__all__ = ["slack_emulator"]


@pytest.fixture
def slack_emulator() -> Iterator[SlackEmulator]:
    """A started :class:`SlackEmulator` (rate limits off), stopped after the test."""
    with SlackEmulator(rate_limits="off") as emulator:
        yield emulator
