"""Hostile bodies at the customer-side webhooks: correctly signed, so they get past the signature check, and each
answered with a 4xx, never a server error, with nothing accepted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors._connector import Connector
from norbit_connectors.channels._http import MAX_JSON_DEPTH, json_depth, json_object
from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.exceptions import InvalidRequest
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._slack_emulator import SlackEmulator
from norbit_connectors.testing._telegram import TelegramEmulator
from norbit_connectors.testing._webhook import Webhook

from ..channels.conftest import Workspace
from ..channels.test_conformance import messenger_config, whatsapp_config

pytestmark = pytest.mark.anyio

Signer = Callable[[bytes], Webhook]


def deep(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


def deep_objects(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


BODIES = {
    "200,000 nested arrays": deep(200_000),
    "5,000 nested arrays": deep(5_000),
    "200 nested arrays": deep(200),
    "100,000 nested objects": deep_objects(100_000),
    "deep inside an entry": b'{"object": "page", "entry": ' + deep(50_000) + b"}",
    "deep inside a message": b'{"update_id": 1, "message": ' + deep_objects(50_000) + b"}",
    "unclosed nesting": b"[" * 300_000,
}


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


@pytest.fixture(params=["telegram", "whatsapp", "messenger"])
def channel(request: pytest.FixtureRequest) -> Iterator[tuple[Connector, Signer]]:
    if request.param == "telegram":
        with TelegramEmulator() as tg:
            config = TelegramConfig(bot_token=tg.bot_token, secret_token=tg.secret_token, base_url=tg.base_url)
            yield TelegramConnector(config), tg.update
    else:
        with MetaEmulator() as meta:
            if request.param == "whatsapp":
                yield WhatsAppConnector(whatsapp_config(meta)), meta.signed
            else:
                yield MessengerConnector(messenger_config(meta)), meta.signed


@pytest.mark.parametrize("name", sorted(BODIES))
async def test_deeply_nested_json_is_a_400(workspace: Workspace, channel: tuple[Connector, Signer], name: str) -> None:
    connector, sign = channel
    hub, _ = workspace.hub(connector)
    async with hub:
        response = await sign(BODIES[name]).deliver(connector.handle_http)
        assert response.status == 400, (name, response.status)
        await hub.wait_idle()
        assert await hub.dead_letters() == []


async def test_a_normal_message_still_goes_through_after_hostile_bodies(workspace: Workspace) -> None:
    with TelegramEmulator() as tg:
        telegram = TelegramConnector(
            TelegramConfig(bot_token=tg.bot_token, secret_token=tg.secret_token, base_url=tg.base_url)
        )
        hub, slack = workspace.hub(telegram)
        zoe = tg.add_customer("Zoë")
        async with hub:
            for body in BODIES.values():
                assert (await tg.update(body).deliver(telegram.handle_http)).status == 400
            assert (await tg.send_text(zoe, "still here").deliver(telegram.handle_http)).status == 200
            await hub.wait_idle()
            channel = await slack.channel_for(f"telegram:{zoe.chat_id}")
            assert channel is not None
            assert [m["text"] for m in workspace.emu.messages(channel)] == ["still here"]


nested = st.recursive(
    st.none() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=30,
)


def reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


@given(nested)
def test_json_depth_counts_the_nesting(value: Any) -> None:
    assert json_depth(value) == reference_depth(value)


@given(st.integers(1, 3000), st.sampled_from([b"[", b'{"k": ']))
def test_json_object_answers_any_nesting_with_a_value_or_a_400(depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    body = b'{"x": ' + opener * depth + (b"" if opener == b"[" else b"1") + closer * depth + b"}"
    if depth + 1 <= MAX_JSON_DEPTH:
        assert json_depth(json_object(body)) == depth + 1
    else:
        with pytest.raises(InvalidRequest, match="deeper"):
            json_object(body)


@given(st.binary(max_size=200))
def test_json_object_raises_only_invalid_request(body: bytes) -> None:
    status = 200
    try:
        json_object(body)
    except InvalidRequest as exc:
        status = exc.status
    assert status in (200, 400)
