"""Hostile bodies at the customer-side webhooks: correctly signed, so they get past the signature check, and each
answered with a 4xx, never a server error, with nothing accepted."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors._connector import Connector
from norbit_connectors._validate import text_problem
from norbit_connectors.channels._http import MAX_JSON_DEPTH, json_depth, json_object
from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.channels.telegram import TelegramConfig, TelegramConnector
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.exceptions import InvalidRequest
from norbit_connectors.store import PostgresStore, SQLiteStore, Store
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


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "norbit.sqlite3")
        return
    server = os.environ.get("NORBIT_TEST_POSTGRES_DSN")
    if not server:
        pytest.skip("NORBIT_TEST_POSTGRES_DSN is not set: no PostgreSQL server to test against")
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"norbit_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PostgresStore(make_conninfo(server, dbname=name))
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


ODD = ["\ud800", "a\x00b", "tab\there", "\x1b[31m", "x" * 10_000]


async def test_odd_ids_and_text_reach_slack_or_get_a_400(workspace: Workspace, store: Store) -> None:
    """Lone surrogates, NUL and other control characters, 10 kB ids: every message is kept (its odd characters
    replaced, its overlong id shortened to a digest) or, when its conversation id is out of bounds, skipped with a
    warning and answered 200 (Meta would send the same body again after a 400); never a server error, never a dead
    letter."""
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, slack = workspace.hub(whatsapp, store=store)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            statuses = []
            for index, odd in enumerate(ODD):
                delivery = meta.whatsapp_text(maria, f"text {index} {odd}")
                payload = delivery.payload
                payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.{odd}"
                payload["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = f"Maria {odd}"
                statuses.append((await meta.signed(payload).deliver(whatsapp.handle_http)).status)
                statuses.append((await meta.signed(payload).deliver(whatsapp.handle_http)).status)  # Meta retries
            overlong = meta.whatsapp_text(maria, "from nowhere")
            value = overlong.payload["entry"][0]["changes"][0]["value"]
            value["messages"][0]["from"] = value["contacts"][0]["wa_id"] = "4" * 5000
            statuses.append((await meta.signed(overlong.payload).deliver(whatsapp.handle_http)).status)
            with anyio.fail_after(30):
                await hub.wait_idle()
            assert await hub.dead_letters() == []
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
            channel = await slack.channel_for(f"whatsapp:{maria.wa_id}")
            assert channel is not None
            posted = workspace.emu.messages(channel)
    assert statuses == [200] * (2 * len(ODD)) + [200]
    assert [e.message.text.split(" ")[1] for e in transcript] == [str(i) for i in range(len(ODD))]
    for index in range(len(ODD)):  # a 10 kB text is posted in several pieces
        assert any(m["text"].startswith(f"text {index} ") for m in posted), index
    for entry in transcript:
        assert "\x00" not in entry.message.text and "\ud800" not in entry.message.text
        assert len(entry.message.id) <= 128


any_text = st.text(alphabet=st.characters(codec=None), max_size=12)
json_with_odd_text = st.recursive(
    st.none() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=20,
)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    return []


def storable(value: Any) -> bool:
    return all(text_problem(s, limit=10**6) is None for s in strings(value))


@given(json_with_odd_text)
def test_json_object_returns_only_storable_text(value: Any) -> None:
    # ensure_ascii: every odd character arrives as a \\u escape; without it, as raw UTF-8 (C1 controls, DEL, and
    # surrogates encoded as if they were characters).
    for ensure_ascii in (True, False):
        body = json.dumps({"v": value}, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
        data = json_object(body)
        assert storable(data)
        assert json_depth(data) == json_depth({"v": value})
        if storable(value):
            assert data == {"v": value}  # nothing to clean: returned as parsed
