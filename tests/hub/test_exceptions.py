"""`async with hub:` lets a single exception out as itself, on asyncio and trio; several stay grouped."""

from __future__ import annotations

import anyio
import pytest

from norbit_connectors import Conversation, Message, NorbitError, UsageError, User
from norbit_connectors._events import HubEvent
from norbit_connectors.hub import Hub
from norbit_connectors.store import Job, MemoryStore

from ._recording import RecordingConnector

pytestmark = pytest.mark.anyio


class Fatal(BaseException):
    """Not an Exception: nothing in the hub catches it."""


async def test_an_exception_in_the_body_comes_out_as_itself() -> None:
    caught: list[UsageError] = []
    try:
        async with Hub(connectors=[RecordingConnector()]) as hub:
            await hub.archive("never-seen")
    except UsageError as exc:
        caught.append(exc)
    assert len(caught) == 1
    assert "unknown conversation" in str(caught[0])
    assert not isinstance(caught[0], BaseExceptionGroup)


async def test_the_hosts_own_exception_keeps_its_type_and_traceback() -> None:
    class HostError(Exception):
        pass

    def fail() -> None:
        raise HostError("the host's bug")

    with pytest.raises(HostError) as caught:
        async with Hub():
            fail()
    assert caught.traceback[-1].name == "fail"


async def test_an_exception_group_raised_by_the_body_is_kept() -> None:
    errors = [ValueError("a"), KeyError("b")]
    with pytest.raises(ExceptionGroup) as caught:
        async with Hub():
            raise ExceptionGroup("host", errors)
    # The host's own group, not one around it (trio hands back a copy of it, with the same exceptions).
    assert caught.value.message == "host"
    assert all(a is b for a, b in zip(caught.value.exceptions, errors, strict=True))


class FailingStore(MemoryStore):
    """A store that dies with a non-Exception while the hub claims work."""

    async def claim_jobs(self, owner: str, *, now: float, lease_seconds: float, limit: int) -> list[Job]:
        raise Fatal("the store is gone")


async def test_a_single_failing_background_task_comes_out_as_itself() -> None:
    with pytest.raises(Fatal, match="the store is gone"):
        async with Hub(store=FailingStore()):
            await anyio.sleep(5)


class TwoFailures(RecordingConnector):
    """Two workers each fail with their own error at the same moment."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = 0
        self.both = anyio.Event()

    async def _deliver(self, event: HubEvent, job: Job) -> None:
        with anyio.CancelScope(shield=True):
            self.arrived += 1
            if self.arrived == 2:
                self.both.set()
            await self.both.wait()
        raise Fatal(f"worker for {job.queue_key}")


async def _two_failing_workers() -> None:
    user = User(id="u1", name="Zoë")
    async with Hub(connectors=[TwoFailures()], workers=2) as hub:
        await hub.customer_message(Conversation(id="a", user=user), Message(id="1", text="a"))
        await hub.customer_message(Conversation(id="b", user=user), Message(id="1", text="b"))
        await anyio.sleep(5)


async def test_several_failures_stay_in_a_group() -> None:
    with pytest.raises(BaseExceptionGroup) as caught:
        await _two_failing_workers()
    assert sorted(str(e) for e in caught.value.exceptions) == ["worker for rec:a", "worker for rec:b"]


async def test_cancelling_from_outside_still_stops_the_hub() -> None:
    with anyio.move_on_after(0.2) as scope:
        async with Hub(connectors=[RecordingConnector()]) as hub:
            await anyio.sleep(5)
    assert scope.cancelled_caught
    assert not hub._running


async def test_norbit_errors_from_the_body_can_be_caught_by_their_root() -> None:
    with pytest.raises(NorbitError):
        async with Hub(routing=None) as hub:
            await hub.claim("c1", "a1")
