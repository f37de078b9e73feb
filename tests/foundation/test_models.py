"""Models: frozen, keyword-only, and a JSON round trip through the one converter for every model."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors import (
    Agent,
    AgentReply,
    Assignment,
    Attachment,
    Conversation,
    Delivery,
    Department,
    Message,
    User,
)
from norbit_connectors._models import converter

ids = st.text(min_size=1, max_size=30)
texts = st.text(max_size=200)
maybe_text = st.none() | texts

users = st.builds(
    User,
    id=ids,
    name=texts,
    email=maybe_text,
    avatar_url=maybe_text,
    details=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4),
)
agents = st.builds(
    Agent, id=ids, name=texts, email=maybe_text, department_ids=st.frozensets(ids, max_size=3), is_admin=st.booleans()
)
departments = st.builds(Department, id=ids, name=texts)
attachments = st.builds(
    Attachment, name=texts, url=maybe_text, content=st.none() | st.binary(max_size=64), content_type=maybe_text
)
messages = st.builds(Message, id=ids, text=texts, attachments=st.lists(attachments, max_size=3).map(tuple))
conversations = st.builds(
    Conversation,
    id=ids,
    user=users,
    department_id=st.none() | ids,
    agent_id=st.none() | ids,
    source=st.sampled_from(["web", "email", "whatsapp", "telegram"]),
    bot_active=st.booleans(),
)
replies = st.builds(
    AgentReply, conversation_id=ids, message=messages, agent=st.none() | agents, slack_user_id=st.none() | ids
)
deliveries = st.builds(Delivery, notified_by=st.frozensets(st.sampled_from(["push", "email", "sms"])))
assignments = st.builds(
    Assignment,
    conversation_id=ids,
    agent_id=st.none() | ids,
    queue_position=st.none() | st.integers(1, 10_000),
    wait_minutes=st.none() | st.integers(0, 100_000),
    event=st.sampled_from(["assigned", "queued", "queue_moved", "claimed", "unassigned"]),
    department_id=st.none() | ids,
)

MODELS: list[tuple[type[Any], st.SearchStrategy[Any]]] = [
    (User, users),
    (Agent, agents),
    (Department, departments),
    (Attachment, attachments),
    (Message, messages),
    (Conversation, conversations),
    (AgentReply, replies),
    (Delivery, deliveries),
    (Assignment, assignments),
]


@pytest.mark.parametrize(("cls", "strategy"), MODELS, ids=[m[0].__name__ for m in MODELS])
@given(data=st.data())
def test_json_round_trip(cls: type[Any], strategy: st.SearchStrategy[Any], data: st.DataObject) -> None:
    value = data.draw(strategy)
    wire = json.dumps(converter.unstructure(value))
    back = converter.structure(json.loads(wire), cls)
    assert back == value
    assert hash(back) == hash(value)


@pytest.mark.parametrize("cls", [m[0] for m in MODELS])
def test_frozen_and_keyword_only(cls: type[Any]) -> None:
    fields = attrs.fields(cls)
    assert all(f.kw_only for f in fields)
    assert cls.__setattr__ is not object.__setattr__  # attrs' frozen guard


def test_models_are_immutable() -> None:
    user = User(id="u", name="N", details={"a": "b"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        user.details["a"] = "c"  # type: ignore[index]
    with pytest.raises(TypeError):
        User("u", "N")  # type: ignore[misc]


def test_attachment_repr_hides_bytes() -> None:
    assert "secret" not in repr(Attachment(name="f", content=b"secret bytes"))
