"""handle_http never answers 5xx and never crashes, whatever arrives (signed or not)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norbit_connectors import Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConnector, SlackLimiter
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._slack_emulator import SlackEmulator

from .conftest import Workspace

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["event_callback", "url_verification", "block_actions", "x"])},
    optional={
        "event_id": st.text(max_size=10) | st.integers(),
        "challenge": json_values,
        "event": st.fixed_dictionaries(
            {"type": st.sampled_from(["message", "channel_archive", "group_archive", "reaction_added"])},
            optional={
                "channel": st.text(max_size=12) | st.integers(),
                "user": st.text(max_size=12),
                "text": json_values,
                "ts": json_values,
                "subtype": st.sampled_from(["file_share", "message_changed", "message_deleted", "bot_message"]),
                "files": json_values,
                "message": json_values,
            },
        ),
    },
)
bodies = (
    st.binary(max_size=300)
    | event_like.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda d: json.dumps(d).encode())
    | st.text(max_size=200).map(lambda t: ("payload=" + t).encode())
    | st.dictionaries(
        st.sampled_from(["command", "channel_id", "user_id", "text", "trigger_id"]), st.text(max_size=10)
    ).map(lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode())
)
content_types = st.sampled_from(
    [None, "application/json", "application/x-www-form-urlencoded", "text/plain", "application/json; charset=utf-8"]
)


_names = itertools.count(1)


@pytest.fixture(scope="module")
def workspace_module() -> Iterator[Workspace]:
    with SlackEmulator() as emulator:
        yield Workspace(emulator)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=content_types, signed=st.booleans())
def test_handle_http_never_answers_5xx(
    workspace_module: Workspace, backend: str, body: bytes, content_type: str | None, signed: bool
) -> None:
    ws = workspace_module

    n = next(_names)

    async def run() -> int:
        slack = SlackConnector(ws.config(), limiter=SlackLimiter(enabled=False))
        async with Hub(store=MemoryStore(), connectors=[slack]) as hub:
            await hub.customer_message(
                Conversation(id="c1", user=User(id=f"u{n}", name=f"Fuzz {n}")), Message(id="m1", text="hi")
            )
            headers = dict(ws.emu.sign(body)) if signed else {}
            if content_type is not None:
                headers["Content-Type"] = content_type
            response = await slack.handle_http(headers, body)
            await hub.wait_idle()
            dead = await hub.dead_letters()
        assert dead == []
        return response.status

    status = anyio.run(run, backend=backend)
    assert 200 <= status < 500
    if not signed:
        assert status == 401
