"""Random webhook bodies, signed and unsigned: the parsers raise nothing but InvalidRequest, and every connector
answers 2xx or 4xx, never 5xx."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from norbit_connectors._connector import Connector
from norbit_connectors.channels import messenger, telegram, whatsapp
from norbit_connectors.exceptions import InvalidRequest
from norbit_connectors.hub import Hub
from norbit_connectors.store import MemoryStore

NOWHERE = "http://127.0.0.1:9"
SECRET = "fuzz-app-secret"
TG_SECRET = "fuzz-secret-token"

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
ids = st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=12), json_values)
texts = st.one_of(st.text(max_size=50), json_values)


def maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


telegram_updates = st.fixed_dictionaries(
    {"update_id": st.one_of(st.integers(0, 2**31), json_values)},
    optional={
        "message": st.one_of(
            json_values,
            maybe(
                message_id=ids,
                chat=st.one_of(json_values, maybe(id=ids, type=st.sampled_from(["private", "group", 3]))),
                text=texts,
                caption=texts,
                date=ids,
                photo=st.lists(st.one_of(json_values, maybe(file_id=ids, file_size=ids, width=ids)), max_size=3),
                document=st.one_of(json_values, maybe(file_id=ids, file_name=texts, mime_type=texts, file_size=ids)),
                **{"from": st.one_of(json_values, maybe(id=ids, first_name=texts, is_bot=json_values))},
            ),
        )
    },
)

wa_messages = maybe(
    **{"from": ids},
    id=ids,
    type=st.sampled_from(["text", "image", "document", "button", "interactive", "location", "reaction", 5]),
    text=st.one_of(json_values, maybe(body=texts)),
    image=st.one_of(json_values, maybe(id=ids, caption=texts, mime_type=texts)),
    document=st.one_of(json_values, maybe(id=ids, filename=texts)),
    timestamp=ids,
)
whatsapp_bodies = maybe(
    object=st.sampled_from(["whatsapp_business_account", "page", 1]),
    entry=st.one_of(
        json_values,
        st.lists(
            maybe(
                changes=st.one_of(
                    json_values,
                    st.lists(
                        maybe(
                            field=st.sampled_from(["messages", "x"]),
                            value=st.one_of(
                                json_values,
                                maybe(
                                    messages=st.one_of(json_values, st.lists(wa_messages, max_size=3)),
                                    contacts=json_values,
                                    metadata=json_values,
                                ),
                            ),
                        ),
                        max_size=2,
                    ),
                )
            ),
            max_size=2,
        ),
    ),
)

messenger_events = maybe(
    sender=st.one_of(json_values, maybe(id=ids)),
    recipient=st.one_of(json_values, maybe(id=ids)),
    timestamp=ids,
    message=st.one_of(
        json_values,
        maybe(
            mid=ids,
            text=texts,
            is_echo=json_values,
            attachments=st.one_of(json_values, st.lists(maybe(type=texts, payload=json_values), max_size=2)),
        ),
    ),
    postback=st.one_of(json_values, maybe(title=texts, payload=texts, mid=ids)),
)
messenger_bodies = maybe(
    object=st.sampled_from(["page", "instagram", "other"]),
    entry=st.one_of(json_values, st.lists(maybe(id=ids, messaging=st.one_of(json_values, st.lists(messenger_events))))),
)

raw_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    telegram_updates.map(lambda v: json.dumps(v).encode()),
    whatsapp_bodies.map(lambda v: json.dumps(v).encode()),
    messenger_bodies.map(lambda v: json.dumps(v).encode()),
)


def refusal(parse: Callable[[], object]) -> int | None:
    """The status of the InvalidRequest ``parse`` raises, or None when it parses."""
    try:
        parse()
    except InvalidRequest as exc:
        return exc.status
    return None


@given(telegram_updates)
def test_telegram_parser(data: dict[str, Any]) -> None:
    assert refusal(lambda: telegram.parse_update(data)) in (None, 400)


@given(whatsapp_bodies)
def test_whatsapp_parser(data: dict[str, Any]) -> None:
    assert refusal(lambda: whatsapp.parse_webhook(data)) in (None, 400)
    if refusal(lambda: whatsapp.parse_webhook(data)) is None:
        assert all(m.conversation.id.startswith("whatsapp:") for m in whatsapp.parse_webhook(data))


@given(messenger_bodies)
def test_messenger_parser(data: dict[str, Any]) -> None:
    assert refusal(lambda: messenger.parse_webhook(data)) in (None, 400)


def connectors() -> list[Connector]:
    return [
        telegram.TelegramConnector(telegram.TelegramConfig(bot_token="1:x", secret_token=TG_SECRET, base_url=NOWHERE)),
        whatsapp.WhatsAppConnector(
            whatsapp.WhatsAppConfig(
                access_token="t", app_secret=SECRET, verify_token="v", phone_number_id="1", base_url=NOWHERE
            )
        ),
        messenger.MessengerConnector(
            messenger.MessengerConfig(
                page_access_token="t", app_secret=SECRET, verify_token="v", page_id="1", base_url=NOWHERE
            )
        ),
    ]


def signed_headers(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-Telegram-Bot-Api-Secret-Token": TG_SECRET,
    }


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    body=raw_bodies,
    signed=st.booleans(),
    method=st.sampled_from(["POST", "POST", "GET"]),
    query=st.text(max_size=40),
)
def test_handle_http_answers_only_2xx_or_4xx(
    anyio_backend: str, body: bytes, signed: bool, method: str, query: str
) -> None:
    async def run() -> list[int]:
        items = connectors()
        statuses = []
        async with Hub(store=MemoryStore(), connectors=items, poll_interval=60, workers=1):
            headers = signed_headers(body) if signed else {"Content-Type": "application/json"}
            for connector in items:
                response = await connector.handle_http(headers, body, method=method, query=query)
                statuses.append(response.status)
        return statuses

    for status in anyio.run(run, backend=anyio_backend):
        assert 200 <= status < 300 or 400 <= status < 500, status


@pytest.mark.parametrize("body", [b"", b"{", b"\xff", b"[]"])
def test_unsigned_is_refused_before_parsing(anyio_backend: str, body: bytes) -> None:
    async def run() -> list[int]:
        items = connectors()
        async with Hub(store=MemoryStore(), connectors=items, poll_interval=60, workers=1):
            return [(await c.handle_http({}, body)).status for c in items]

    assert anyio.run(run, backend=anyio_backend) == [401, 401, 401]
