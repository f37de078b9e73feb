from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from norbit_connectors.testing._slack_emulator import SlackEmulator

# Slack's method docs and response/payload samples, vendored (tests/data/slack-reference/README.md). A sample's
# lists keep their first item only: the shape checks below compare against that item.
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "slack-reference"
if not (REFERENCE / "methods" / "_common_errors.json").is_file():  # never compare against nothing
    raise RuntimeError(f"the vendored Slack reference is missing: {REFERENCE}")

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


# Errors the emulator returns that the method reference does not list, each for a reason:
UNLISTED_ERRORS = {
    ("chat.postMessage", "thread_not_found"),  # Slack's answer for an unknown thread_ts
    # Slack truncates chat.postMessage text beyond 40,000 characters; the emulator refuses it, as chat.update
    # does, so that a connector that would lose text finds out in tests.
    ("chat.postMessage", "msg_too_long"),
    ("conversations.replies", "thread_not_found"),  # method not in the reference set
    ("conversations.replies", "channel_not_found"),
    ("conversations.replies", "not_in_channel"),
    ("users.getPresence", "user_not_found"),
    ("conversations.explode", "unknown_method"),
}


def documented(method: str, code: str) -> bool:
    common = json.loads((REFERENCE / "methods" / "_common_errors.json").read_text())
    path = REFERENCE / "methods" / f"{method}.json"
    listed = json.loads(path.read_text()).get("errors", {}) if path.exists() else {}
    return code in listed or code in common or (method, code) in UNLISTED_ERRORS


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator
    # Every error a test provoked is one Slack documents for that method.
    undocumented = {(c.method, c.error) for c in emulator.calls if c.error and c.fault is None}
    assert {(m, e) for m, e in undocumented if e and not documented(m, e)} == set()


@pytest.fixture
def bot(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])


@pytest.fixture
def user(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.user_token, base_url=emu.base_url, retry_handlers=[])
