from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from norbit_connectors.testing._slack_emulator import SlackEmulator

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "slack-reference"

# Free-form values: their keys are the caller's, not Slack's.
FREE_FORM = {"blocks", "event_payload", "attachments"}


def sample(relative: str) -> dict[str, Any]:
    data = json.loads((REFERENCE / "samples" / relative).read_text())
    assert isinstance(data, dict)
    return data


def method_doc(method: str) -> dict[str, Any]:
    data = json.loads((REFERENCE / "methods" / f"{method}.json").read_text())
    assert isinstance(data, dict)
    return data


def unknown_keys(ours: Any, reference: Any, path: str = "") -> list[str]:
    """Keys of ``ours`` (recursively) that the reference sample never has."""
    problems: list[str] = []
    if isinstance(ours, dict) and isinstance(reference, dict):
        for key, value in ours.items():
            if key not in reference:
                problems.append(f"{path}{key}")
            elif key not in FREE_FORM and reference[key] not in ({}, []):
                problems.extend(unknown_keys(value, reference[key], f"{path}{key}."))
    elif isinstance(ours, list) and isinstance(reference, list) and reference:
        for item in ours:
            problems.extend(unknown_keys(item, reference[0], f"{path}[]."))
    return problems


def assert_shaped_like(ours: Any, relative: str, *, at: str | None = None) -> None:
    reference: Any = sample(relative)
    if at is not None:
        for part in at.split("."):
            reference = reference[part]
    assert unknown_keys(ours, reference) == []


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
def bot(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])


@pytest.fixture
def user(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.user_token, base_url=emu.base_url, retry_handlers=[])
