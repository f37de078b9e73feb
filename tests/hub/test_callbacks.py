"""The host's callbacks: only coroutine functions are accepted, and on_dead_letter hears of every parked job once."""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from typing import Any

import anyio
import pytest

from norbit_connectors import (
    AgentReply,
    ConfigurationError,
    Conversation,
    DeadLetter,
    Message,
    PermissionDenied,
    User,
)
from norbit_connectors._events import HubEvent
from norbit_connectors._redact import protect
from norbit_connectors.hub import Hub
from norbit_connectors.store import Job

from ._recording import RecordingConnector

pytestmark = pytest.mark.anyio

CALLBACKS = [
    "on_agent_reply",
    "on_archive",
    "on_agent_edit",
    "on_agent_delete",
    "on_assigned",
    "on_offline",
    "on_dead_letter",
]


def plain(*args: object) -> None:
    return None


async def coroutine(*args: object) -> None:
    return None


class Host:
    async def method(self, *args: object) -> None:
        return None

    def sync_method(self, *args: object) -> None:
        return None


class AsyncCallable:
    async def __call__(self, *args: object) -> None:
        return None


class SyncCallable:
    def __call__(self, *args: object) -> None:
        return None


class PartialCall:
    """An object whose class's __call__ is a partial of an async function."""

    __call__ = functools.partial(coroutine, 1)


class PartialMethodCall:
    """An object whose class's __call__ is a partialmethod of an async method."""

    async def _call(self, *args: object) -> None:
        return None

    __call__ = functools.partialmethod(_call, 1)


class SyncPartial(functools.partial[Any]):
    """A partial whose own __call__ is plain: it runs instead of the async function it wraps."""

    def __call__(self, /, *args: Any, **keywords: Any) -> None:
        return None


def _returns_coroutine(*args: object) -> Awaitable[None]:
    return coroutine(*args)


REFUSED: list[tuple[str, Any]] = [
    ("def", plain),
    ("lambda", lambda reply: coroutine(reply)),
    ("function returning a coroutine", _returns_coroutine),
    ("bound sync method", Host().sync_method),
    ("partial of a sync function", functools.partial(plain, 1)),
    ("sync __call__", SyncCallable()),
    ("class", AsyncCallable),
    ("partial subclass with a plain __call__", SyncPartial(coroutine, 1)),
    ("not callable", "deliver"),
    ("coroutine object", None),
]

ACCEPTED: list[tuple[str, Any]] = [
    ("async def", coroutine),
    ("bound async method", Host().method),
    ("partial of an async function", functools.partial(coroutine, 1)),
    ("partial of a partial", functools.partial(functools.partial(coroutine, 1), 2)),
    ("partial of a bound async method", functools.partial(Host().method, 1)),
    ("async __call__", AsyncCallable()),
    ("partial of an async __call__", functools.partial(AsyncCallable(), 1)),
    ("__call__ a partial of an async function", PartialCall()),
    ("__call__ a partialmethod of an async method", PartialMethodCall()),
]


@pytest.mark.parametrize("name", CALLBACKS)
@pytest.mark.parametrize(("what", "value"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_callback_that_is_not_a_coroutine_function_is_refused_naming_the_parameter(
    name: str, what: str, value: Any
) -> None:
    made = coroutine() if value is None else None
    try:
        with pytest.raises(ConfigurationError) as caught:
            Hub(**{name: made if value is None else value})
    finally:
        if made is not None:
            made.close()
    assert f"{name}=" in str(caught.value)
    assert "async def" in str(caught.value)


@pytest.mark.parametrize("name", CALLBACKS)
@pytest.mark.parametrize(("what", "value"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_coroutine_functions_in_every_form_are_accepted(name: str, what: str, value: Any) -> None:
    hub = Hub(**{name: value})
    assert getattr(hub, name) is value


@pytest.mark.parametrize("name", CALLBACKS)
def test_a_callback_set_after_hub_is_checked_too(name: str) -> None:
    hub = Hub()
    with pytest.raises(ConfigurationError, match=f"{name}=.*async def"):
        setattr(hub, name, plain)
    assert getattr(hub, name) is None
    setattr(hub, name, coroutine)
    assert getattr(hub, name) is coroutine
    setattr(hub, name, None)
    assert getattr(hub, name) is None


def test_none_leaves_a_callback_unset() -> None:
    hub = Hub(**dict.fromkeys(CALLBACKS))
    assert all(getattr(hub, name) is None for name in CALLBACKS)


async def test_a_sync_on_agent_reply_never_runs() -> None:
    calls: list[AgentReply] = []

    def on_agent_reply(reply: AgentReply) -> None:
        calls.append(reply)

    with pytest.raises(ConfigurationError, match="on_agent_reply="):
        Hub(on_agent_reply=on_agent_reply)  # type: ignore[arg-type]
    assert calls == []


# -- on_dead_letter ----------------------------------------------------------------------------------------


class Refusing(RecordingConnector):
    """Fails every message whose text starts with "refuse" (PermissionDenied unless told otherwise)."""

    def __init__(self, *, error: Exception | None = None) -> None:
        super().__init__()
        self.error = error or PermissionDenied("missing_scope: chat:write", code="missing_scope", needed="chat:write")

    async def _deliver(self, event: HubEvent, job: Job) -> None:
        self.attempts += 1
        message = getattr(event, "message", None)
        if message is not None and message.text.startswith("refuse"):
            raise self.error
        self.events.append(event)


class OtherRefusing(Refusing):
    name = "rec2"


class ThirdRefusing(Refusing):
    name = "rec3"


def conv(cid: str = "c1") -> Conversation:
    return Conversation(id=cid, user=User(id="u1", name="Zoë"))


class Letters:
    def __init__(self, fail: bool = False) -> None:
        self.letters: list[DeadLetter] = []
        self.fail = fail

    async def __call__(self, letter: DeadLetter) -> None:
        self.letters.append(letter)
        if self.fail:
            raise RuntimeError("the pager is down")


async def test_on_dead_letter_is_called_once_for_a_job_parked_at_once() -> None:
    rec = Refusing()
    letters = Letters()
    clock = [1_000.0]
    hub = Hub(connectors=[rec], on_dead_letter=letters, clock=lambda: clock[0])
    async with hub:
        await hub.customer_message(conv(), Message(id="m1", text="refuse me"))
        await hub.customer_message(conv(), Message(id="m2", text="fine"))
        await hub.wait_idle()
        await anyio.sleep(0.05)
        parked = await hub.dead_letters()
    assert rec.texts() == ["fine"]
    assert len(letters.letters) == 1
    (letter,) = letters.letters
    assert letter == parked[0]
    assert (letter.connector, letter.kind, letter.conversation_id, letter.attempts) == (
        "rec",
        "customer_message",
        "c1",
        1,
    )
    assert letter.reason.startswith("PermissionDenied: missing_scope")
    assert letter.parked_at == 1_000.0
    assert letter.job_id == letter.id


async def test_on_dead_letter_is_called_once_when_the_attempts_run_out() -> None:
    rec = Refusing(error=RuntimeError("always broken"))
    letters = Letters()
    async with Hub(connectors=[rec], on_dead_letter=letters, max_attempts=3, retry_base=0.001) as hub:
        await hub.customer_message(conv(), Message(id="m1", text="refuse me"))
        await hub.wait_idle()
        await anyio.sleep(0.05)
    assert rec.attempts == 3
    assert [(d.attempts, d.reason) for d in letters.letters] == [(3, "RuntimeError: always broken")]


async def test_dead_letter_reasons_carry_no_secrets() -> None:
    rec = Refusing(error=RuntimeError("POST https://api.telegram.org/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/x"))
    rec2 = OtherRefusing(error=RuntimeError("Authorization: Bearer xoxb-1234-5678-abcdefghijkl refused"))
    # A token of no recognisable shape, registered by its connector as connectors do.
    rec3 = ThirdRefusing(error=RuntimeError("GET /v21.0/123/media with EAAGm0PX4ZCpsBAplainTOKEN failed"))
    protect(rec3, "EAAGm0PX4ZCpsBAplainTOKEN")
    letters = Letters()
    async with Hub(connectors=[rec, rec2, rec3], on_dead_letter=letters, max_attempts=1) as hub:
        await hub.customer_message(conv(), Message(id="m1", text="refuse me"))
        await hub.wait_idle()
        parked = await hub.dead_letters()
    assert len(letters.letters) == 3
    secrets = ("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "xoxb-1234-5678-abcdefghijkl", "EAAGm0PX4ZCpsBAplainTOKEN")
    for letter in [*letters.letters, *parked]:
        assert not any(secret in letter.reason for secret in secrets)
        assert "***" in letter.reason
