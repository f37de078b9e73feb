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
    DeadLetter,
    Delivery,
    Department,
    Message,
    User,
)
from norbit_connectors._models import converter

ids = st.text(min_size=1, max_size=30)
int_ids = st.integers(min_value=-(2**70), max_value=2**70)
any_ids = ids | int_ids
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
    id=any_ids,
    user=users,
    department_id=st.none() | any_ids,
    agent_id=st.none() | any_ids,
    source=st.sampled_from(["web", "email", "whatsapp", "telegram"]),
    bot_active=st.booleans(),
)
replies = st.builds(
    AgentReply, conversation_id=any_ids, message=messages, agent=st.none() | agents, slack_user_id=st.none() | ids
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

dead_letters = st.builds(
    DeadLetter,
    id=st.integers(1, 2**62),
    connector=texts,
    kind=texts,
    conversation_id=st.none() | ids,
    reason=texts,
    attempts=st.integers(0, 1000),
    parked_at=st.none() | st.floats(0, 2e9),
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
    (DeadLetter, dead_letters),
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


@given(n=int_ids)
def test_integer_ids_are_kept_as_text_and_match_their_text(n: int) -> None:
    text = str(n)
    user = User(id=n, name="Zoë")
    assert user.id == text
    assert user == User(id=text, name="Zoë")
    conversation = Conversation(id=n, user=user, department_id=n, agent_id=n)
    assert (conversation.id, conversation.department_id, conversation.agent_id) == (text, text, text)
    assert conversation == Conversation(id=text, user=user, department_id=text, agent_id=text)
    assert Message(id=n, text="hi").id == text
    agent = Agent(id=n, name="Ann", department_ids={n, "sales"})
    assert (agent.id, agent.department_ids) == (text, frozenset({text, "sales"}))
    assert Department(id=n, name="Sales").id == text
    reply = AgentReply(conversation_id=n, message=Message(id=1, text="x"), agent=None, slack_user_id=None)
    assert reply.conversation_id == text
    # Evolving and the JSON round trip keep them text.
    assert attrs.evolve(conversation, id=n + 1).id == str(n + 1)
    assert converter.structure(json.loads(json.dumps(converter.unstructure(conversation))), Conversation).id == text


def test_stored_integer_ids_of_earlier_versions_read_back_as_text() -> None:
    stored = {"id": 42, "user": {"id": 7, "name": "Zoë"}, "department_id": 3, "agent_id": None}
    conversation = converter.structure(stored, Conversation)
    assert (conversation.id, conversation.user.id, conversation.department_id) == ("42", "7", "3")


@pytest.mark.parametrize("bad", [True, False, 1.5, None, b"42", ["42"], object()])
def test_ids_of_other_types_are_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="an id must be a str or an int"):
        User(id=bad, name="Zoë")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="an id must be a str or an int"):
        Message(id=bad, text="hi")  # type: ignore[arg-type]
    if bad is not None:
        with pytest.raises(TypeError, match="an id must be a str or an int"):
            Conversation(id="c1", user=User(id="u", name="Z"), agent_id=bad)  # type: ignore[arg-type]
