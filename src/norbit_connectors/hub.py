"""The Hub: takes the host's calls, writes them durably, and runs the delivery workers.

Every host call (:meth:`Hub.customer_message`, :meth:`Hub.archive`, ...) returns once its work is committed to the
store. Workers inside ``async with hub:`` then carry it out through the connectors: in order per conversation and
connector, concurrently across conversations, exactly once, surviving restarts (a job whose worker died is leased
again when its lease runs out). Inbound work from connectors (an agent's reply in Slack, a Telegram message) goes
through the same queue.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from attrs import evolve

from . import _redact, _validate
from ._callbacks import Callback, report, require_async
from ._connector import Connector, ConversationState, HubContext
from ._events import (
    AgentMessage,
    Archived,
    AssignmentChanged,
    BotMessage,
    CustomerMessage,
    DeliverReply,
    HubEvent,
    Notified,
    TakeOver,
    encode_event,
)
from ._groups import lone_exception, reraise
from ._models import (
    Agent,
    AgentReply,
    Assignment,
    Conversation,
    DeadLetter,
    Delivery,
    Department,
    Message,
    converter,
)
from ._reasons import clean_reason
from .exceptions import (
    AlreadyClaimed,
    ConfigurationError,
    NorbitError,
    NotFound,
    PermissionDenied,
    RateLimited,
    TransportError,
    UsageError,
)
from .routing import Routing, RoutingEngine
from .store import Batch, InboxKey, Job, MemoryStore, NewJob, Put, Store, TranscriptEntry
from .store._schema import UNDECODABLE

__all__ = ["DeadLetter", "Hub"]

log = logging.getLogger("norbit_connectors.hub")

OnAgentReply = Callable[[AgentReply], Awaitable[Delivery | None]]
OnArchive = Callable[[str], Awaitable[None]]
OnAgentEdit = Callable[[AgentReply], Awaitable[None]]
OnAgentDelete = Callable[[str, str], Awaitable[None]]
OnAssigned = Callable[[Assignment], Awaitable[None]]
OnOffline = Callable[[Conversation], Awaitable[None]]
OnDeadLetter = Callable[[DeadLetter], Awaitable[None]]

CONVERSATIONS = "conv"
ROUTING = "routing"
ROUTING_KEY = "state"
HUB = "hub"

#: Conversations whose last state the hub keeps in memory (see ``Hub._states``).
_STATE_CACHE_SIZE = 4096


class _RetrySoon(Exception):
    """Perform the job again at once (after a short wait), within the same lease."""


class _Unprocessable(Exception):
    """The job can never succeed as it is: park it with this reason."""


_QUICK_RETRIES = 40
_QUICK_WAIT = 2.0


class _HubJobs:
    """Job kinds the hub performs itself."""

    AGENT_REPLY = "agent_reply"
    ARCHIVED_REMOTELY = "archived_remotely"
    CUSTOMER_MESSAGE = "customer_message"
    AGENT_MESSAGE = "agent_message"
    AGENT_EDIT = "agent_edit"
    AGENT_DELETE = "agent_delete"
    ROUTE = "route"
    ASSIGNED = "assigned"
    OFFLINE = "offline"
    #: Tell the host (on_dead_letter) of a parked job: written in the same transaction as the park.
    DEAD_LETTER = "dead_letter"


def _state_from(doc_value: Any) -> ConversationState:
    state: ConversationState = converter.structure(doc_value, ConversationState)
    return state


class Hub:
    """Connects the host's conversations to agent-side and customer-side connectors. See the module docstring.

    Use it as ``async with hub:``; the host calls are made inside that block.
    """

    # The host's callbacks, checked whenever one is set (see Hub(...)'s parameters of the same names).
    on_agent_reply = Callback[OnAgentReply]()
    on_archive = Callback[OnArchive]()
    on_agent_edit = Callback[OnAgentEdit]()
    on_agent_delete = Callback[OnAgentDelete]()
    on_assigned = Callback[OnAssigned]()
    on_offline = Callback[OnOffline]()
    on_dead_letter = Callback[OnDeadLetter]()

    def __init__(
        self,
        *,
        store: Store | None = None,
        connectors: Sequence[Connector] = (),
        agents: Iterable[Agent] = (),
        departments: Iterable[Department] = (),
        on_agent_reply: OnAgentReply | None = None,
        on_archive: OnArchive | None = None,
        on_agent_edit: OnAgentEdit | None = None,
        on_agent_delete: OnAgentDelete | None = None,
        routing: Routing | None = None,
        on_assigned: OnAssigned | None = None,
        on_offline: OnOffline | None = None,
        on_dead_letter: OnDeadLetter | None = None,
        workers: int = 8,
        lease_seconds: float = 30.0,
        max_attempts: int = 12,
        retry_base: float = 0.5,
        poll_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        callbacks = {
            "on_agent_reply": on_agent_reply,
            "on_archive": on_archive,
            "on_agent_edit": on_agent_edit,
            "on_agent_delete": on_agent_delete,
            "on_assigned": on_assigned,
            "on_offline": on_offline,
            "on_dead_letter": on_dead_letter,
        }
        for name, callback in callbacks.items():
            require_async(name, callback)
        # What a failed job logs may quote a token of a library's request: mask it in every record.
        _redact.install()
        self.store: Store = store if store is not None else MemoryStore()
        self._connectors: dict[str, Connector] = {}
        for connector in connectors:
            if not isinstance(connector, Connector):
                raise ConfigurationError(f"{connector!r} is not a Connector")
            if not connector.name or connector.name == HUB:
                raise ConfigurationError(f"connector {type(connector).__name__} needs a name other than 'hub'")
            if connector.name in self._connectors:
                raise ConfigurationError(f"two connectors are named {connector.name!r}: give each its own name")
            self._connectors[connector.name] = connector
        self._departments = {d.id: d for d in departments}
        self._agents: dict[str, Agent] = {}
        for agent in agents:
            if agent.id in self._agents:
                raise ConfigurationError(f"two agents have the id {agent.id!r}")
            unknown = agent.department_ids - self._departments.keys()
            if unknown and self._departments:
                raise ConfigurationError(
                    f"agent {agent.id!r} names unknown departments {sorted(unknown)}: add them to departments="
                )
            self._agents[agent.id] = agent
        _validate.check_configured(self._agents, self._departments)
        if workers < 1:
            raise ConfigurationError("workers must be at least 1")
        if lease_seconds <= 0:
            raise ConfigurationError("lease_seconds must be positive")
        self.on_agent_reply = on_agent_reply
        self.on_archive = on_archive
        self.on_agent_edit = on_agent_edit
        self.on_agent_delete = on_agent_delete
        if routing is not None and not isinstance(routing, Routing):
            raise ConfigurationError("routing= takes a norbit_connectors.routing.Routing(...)")
        self.routing = routing
        self.on_assigned = on_assigned
        self.on_offline = on_offline
        self.on_dead_letter = on_dead_letter
        self._engine: tuple[int, RoutingEngine] | None = None
        self._workers = workers
        # Jobs held at once (running, or claimed and waiting for a worker).
        self._held_limit = workers * 2
        self._lease = lease_seconds
        self._max_attempts = max_attempts
        self._retry_base = retry_base
        self._poll = poll_interval
        self._clock = clock
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._context = _Context(self)
        self._task_group: TaskGroup | None = None
        self._inflight: dict[int, Job] = {}
        # conversation id -> (version, state, stored value) as this hub last committed it. Only a hint for planning
        # the next write: every write of a conversation is compare-and-swap on its version, so a state changed
        # meanwhile elsewhere (another hub process, a job) fails the write, and the state is read again.
        self._states: dict[str, tuple[int, ConversationState, dict[str, Any]]] = {}
        self._planned: tuple[ConversationState, dict[str, Any]] | None = None
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        self._running = False

    def __repr__(self) -> str:
        names = ", ".join(self._connectors)
        return f"<Hub connectors=[{names}] store={type(self.store).__name__} running={self._running}>"

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def agents(self) -> Mapping[str, Agent]:
        return MappingProxyType(self._agents)

    @property
    def departments(self) -> Mapping[str, Department]:
        return MappingProxyType(self._departments)

    @property
    def connectors(self) -> Mapping[str, Connector]:
        return MappingProxyType(self._connectors)

    def _agent_connectors(self) -> list[Connector]:
        return [c for c in self._connectors.values() if c.role == "agent"]

    async def __aenter__(self) -> Hub:
        if self._running:
            raise UsageError("this hub is already running")
        await self.store.open()
        self._states.clear()
        started: list[Connector] = []
        try:
            for connector in self._connectors.values():
                await connector.start(self._context)
                started.append(connector)
        except BaseException:
            for connector in reversed(started):
                await connector.stop()
            raise
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._running = True
        send, receive = anyio.create_memory_object_stream[Job](self._held_limit)
        for _ in range(self._workers):
            self._task_group.start_soon(self._worker, receive.clone())
        receive.close()
        self._task_group.start_soon(self._dispatcher, send)
        self._task_group.start_soon(self._heartbeat)
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        try:
            return await self._task_group.__aexit__(*exc_info)
        except BaseExceptionGroup as group:
            # One exception (the body's, or one failed task's) comes out as itself; several stay grouped.
            single = lone_exception(group)
            if single is None:
                raise
            del group
            reraise(single)
        finally:
            self._running = False
            self._task_group = None
            with anyio.CancelScope(shield=True):
                await self._release_inflight()
                for connector in reversed(list(self._connectors.values())):
                    await connector.stop()
                await self.store.close()

    async def _release_inflight(self) -> None:
        # Jobs cut short by the exit go back to the queue at once instead of waiting for their lease to end.
        now = self._clock()
        for job in list(self._inflight.values()):
            await self.store.retry_job(job.id, self._owner, not_before=now, error="hub stopped", now=now)
        self._inflight.clear()

    def _require_running(self) -> None:
        if not self._running:
            raise UsageError("the hub is not running: make this call inside `async with hub:`")

    # -- host calls --------------------------------------------------------------------------------------

    async def customer_message(self, conversation: Conversation, message: Message) -> None:
        """The customer wrote ``message``: relay it to the agents (the first one opens the channel)."""
        _validate.check_conversation(conversation)
        _validate.check_message(message)
        await self._commit_planned(conversation.id, lambda s, v: self._plan_customer(conversation, message, s, v))

    async def agent_message(self, conversation: Conversation, message: Message, agent: Agent | None) -> None:
        """An agent replied in the host's own dashboard: mirror it to the agent side as that agent."""
        _validate.check_conversation(conversation)
        _validate.check_message(message)
        if agent is not None:
            _validate.check_agent(agent)
        await self._commit_planned(
            conversation.id,
            lambda s, v: self._plan_other(conversation, message, s, v, role="agent", agent=agent),
        )

    async def bot_message(self, conversation: Conversation, message: Message) -> None:
        """The chatbot answered: kept for the transcript (relayed once a human takes over)."""
        _validate.check_conversation(conversation)
        _validate.check_message(message)
        await self._commit_planned(
            conversation.id,
            lambda s, v: self._plan_other(conversation, message, s, v, role="bot", agent=None),
        )

    async def start_human_takeover(self, conversation: Conversation) -> None:
        """A human takes over from the chatbot: open the channel if needed, relay the transcript so far in
        order, then relay live."""
        _validate.check_conversation(conversation)
        self._require_running()
        while True:
            doc = await self.store.get(CONVERSATIONS, conversation.id)
            state = _state_from(doc.value) if doc is not None else None
            version = doc.version if doc is not None else 0
            if state is not None and state.taken_over:
                return
            was_relaying = state is not None and state.relaying
            transcript = await self.store.transcript(conversation.id) if state is not None else []
            now = self._clock()
            if state is None:
                state = ConversationState(conversation=conversation, created_at=now)
            state = evolve(state, conversation=self._merge(state.conversation, conversation), taken_over=True)
            jobs: list[NewJob] = []
            if self.routing is not None and not state.routed:
                state = evolve(state, routed=True)
                jobs.append(self._route_job("add", conversation.id))
            if not was_relaying and state.status == "open":
                for connector in self._agent_connectors():
                    jobs.append(
                        self._event_job(connector.name, conversation.id, TakeOver(conversation=state.conversation))
                    )
                    jobs.extend(
                        self._event_job(connector.name, conversation.id, _replay(state.conversation, e, self._agents))
                        for e in transcript
                    )
            batch = Batch(puts=[self._put_state(state, version)], jobs=jobs)
            self._planned = None
            result = await self.store.commit(batch, now=now)
            self._forget_states(batch)
            if result.ok:
                self._wake_up()
                return

    async def archive(self, conversation_id: str | int) -> None:
        """The conversation was archived in the host: archive its channel on the agent side."""
        conversation_id = _validate.check_id(conversation_id, "conversation_id")
        self._require_running()
        doc = await self.store.get(CONVERSATIONS, conversation_id)
        if doc is None:
            raise UsageError(f"unknown conversation {conversation_id!r}: nothing was ever sent for it")

        def plan(state: ConversationState | None, version: int) -> Batch | None:
            if state is None or state.status == "archived":
                return None
            state = evolve(state, status="archived")
            jobs = []
            if state.relaying:
                jobs = [
                    self._event_job(c.name, conversation_id, Archived(conversation_id=conversation_id))
                    for c in self._agent_connectors()
                ]
            if state.routed:
                jobs.append(self._route_job("release", conversation_id))
            return Batch(puts=[self._put_state(state, version)], jobs=jobs)

        await self._commit_planned(conversation_id, plan)

    async def wait_idle(self) -> None:
        """Return once all accepted work, in both directions, has been processed (or dead-lettered, and the
        dead letter reported to on_dead_letter)."""
        self._require_running()
        while True:
            changed = self._changed
            if not self._inflight and await self.store.pending_jobs() == 0:
                return
            with anyio.move_on_after(0.05):
                await changed.wait()

    async def conversation(self, conversation_id: str | int) -> ConversationState | None:
        """What the hub remembers of a conversation (status, takeover), or None when it has no record of it.
        An id out of bounds (see :mod:`._validate`) raises UsageError."""
        return await self._state_of(_validate.check_id(conversation_id, "conversation_id"))

    async def _state_of(self, conversation_id: str) -> ConversationState | None:
        doc = await self.store.get(CONVERSATIONS, conversation_id)
        return _state_from(doc.value) if doc is not None else None

    async def dead_letters(self) -> list[DeadLetter]:
        """Jobs parked because they cannot succeed as they are, oldest first. Each one's ``parked_at`` is the
        stored ``not_before`` of the parked job: the time it was parked (see :class:`DeadLetter`)."""
        parked = await self.store.dead_letters()
        return [
            _dead_letter(job, reason=job.last_error or "", attempts=job.attempts, parked_at=job.not_before)
            for job in parked
        ]

    async def retry_dead_letter(self, dead_letter_id: int) -> None:
        """Queue a parked job again (after fixing its cause)."""
        if not await self.store.requeue_dead_letter(dead_letter_id, now=self._clock()):
            raise UsageError(f"no dead letter with id {dead_letter_id}")
        self._wake_up()

    # -- planning ----------------------------------------------------------------------------------------

    def _merge(self, known: Conversation, given: Conversation) -> Conversation:
        # The host's latest value wins, except an agent the hub's routing assigned.
        if self.routing is not None and known.agent_id is not None:
            return evolve(given, agent_id=known.agent_id)
        return given

    def _put_state(self, state: ConversationState, version: int) -> Put:
        cached = self._states.get(state.conversation.id)
        if cached is not None and cached[0] == version and cached[1] == state:
            value = cached[2]  # unchanged: the stores copy what they are given, so the value can be shared
        else:
            value = converter.unstructure(state)
        self._planned = (state, value)
        return Put(namespace=CONVERSATIONS, key=state.conversation.id, value=value, expected_version=version)

    def _remember(
        self,
        conversation_id: str,
        batch: Batch,
        versions: Sequence[int],
        planned: tuple[ConversationState, dict[str, Any]] | None,
    ) -> None:
        """Keep the conversation's state (``planned``) as ``batch``, just committed with ``versions``, wrote it."""
        self._states.pop(conversation_id, None)
        if planned is None:
            return
        for put, version in zip(batch.puts, versions, strict=False):
            if put.namespace == CONVERSATIONS and put.key == conversation_id:
                if put.value is planned[1] and not put.delete:
                    if len(self._states) >= _STATE_CACHE_SIZE:
                        del self._states[next(iter(self._states))]
                    self._states[conversation_id] = (version, planned[0], planned[1])
                return

    def _forget_states(self, batch: Batch | None) -> None:
        """Drop the kept state of the conversations ``batch`` writes other than through ``_commit_planned``."""
        if batch is not None:
            for put in batch.puts:
                if put.namespace == CONVERSATIONS:
                    self._states.pop(put.key, None)

    def _event_job(self, connector: str, conversation_id: str, event: HubEvent) -> NewJob:
        kind, payload = encode_event(event)
        return NewJob(queue_key=f"{connector}:{conversation_id}", connector=connector, kind=kind, payload=payload)

    def _plan_customer(
        self, conversation: Conversation, message: Message, state: ConversationState | None, version: int
    ) -> Batch:
        now = self._clock()
        if state is None:
            state = ConversationState(conversation=conversation, created_at=now)
        else:
            state = evolve(state, conversation=self._merge(state.conversation, conversation))
        reopened = state.status == "archived"
        if reopened:
            state = evolve(state, status="open", epoch=state.epoch + 1)
        jobs: list[NewJob] = []
        if state.relaying:
            event = CustomerMessage(conversation=state.conversation, message=message, reopened=reopened)
            jobs = [self._event_job(c.name, conversation.id, event) for c in self._agent_connectors()]
        if self.routing is not None:
            if state.relaying and not state.routed:
                state = evolve(state, routed=True)
                jobs.append(self._route_job("add", conversation.id))
            elif reopened and state.routed:
                jobs.append(self._route_job("reopen", conversation.id))
            if self.routing.office_hours is not None:
                jobs.append(self._route_job("offline", conversation.id))
        return Batch(
            puts=[self._put_state(state, version)],
            transcript=[TranscriptEntry(conversation_id=conversation.id, role="customer", message=message, at=now)],
            inbox=[_message_key(conversation.id, message.id)],
            jobs=jobs,
        )

    def _plan_other(
        self,
        conversation: Conversation,
        message: Message,
        state: ConversationState | None,
        version: int,
        *,
        role: str,
        agent: Agent | None,
    ) -> Batch:
        now = self._clock()
        if state is None:
            state = ConversationState(conversation=conversation, created_at=now)
        else:
            state = evolve(state, conversation=self._merge(state.conversation, conversation))
        jobs: list[NewJob] = []
        if state.relaying and state.status == "open":
            event: HubEvent
            if role == "agent":
                event = AgentMessage(conversation=state.conversation, message=message, agent=agent)
            else:
                event = BotMessage(conversation=state.conversation, message=message)
            jobs = [self._event_job(c.name, conversation.id, event) for c in self._agent_connectors()]
        entry = TranscriptEntry(
            conversation_id=conversation.id,
            role="agent" if role == "agent" else "bot",
            message=message,
            agent_id=agent.id if agent is not None else None,
            at=now,
        )
        return Batch(
            puts=[self._put_state(state, version)],
            transcript=[entry],
            inbox=[_message_key(conversation.id, message.id)],
            jobs=jobs,
        )

    async def _commit_planned(
        self, conversation_id: str, plan: Callable[[ConversationState | None, int], Batch | None]
    ) -> None:
        self._require_running()
        cached = self._states.get(conversation_id)
        while True:
            state: ConversationState | None
            if cached is not None:
                version, state = cached[0], cached[1]
            else:
                doc = await self.store.get(CONVERSATIONS, conversation_id)
                state = _state_from(doc.value) if doc is not None else None
                version = doc.version if doc is not None else 0
            self._planned = None
            batch = plan(state, version)
            planned, self._planned = self._planned, None
            if batch is None:
                if cached is not None:
                    # Nothing to write is a decision no version check confirms: make it on the stored state.
                    self._states.pop(conversation_id, None)
                    cached = None
                    continue
                return
            result = await self.store.commit(batch, now=self._clock())
            if result.ok:
                self._remember(conversation_id, batch, result.versions, planned)
                if batch.jobs:
                    self._wake_up()
                return
            if result.duplicate is not None:
                log.debug("conversation %s: message already accepted, ignored", conversation_id)
                return
            # Written meanwhile by someone else: plan again on the stored state.
            self._states.pop(conversation_id, None)
            cached = None

    # -- hub jobs ----------------------------------------------------------------------------------------

    async def _perform_hub_job(self, job: Job) -> Batch | None:
        payload = job.payload
        if job.kind == _HubJobs.AGENT_REPLY:
            return await self._job_agent_reply(payload)
        if job.kind == _HubJobs.ARCHIVED_REMOTELY:
            await self._job_archived_remotely(str(payload["conversation_id"]))
            return None
        if job.kind == _HubJobs.CUSTOMER_MESSAGE:
            conversation = converter.structure(payload["conversation"], Conversation)
            message = converter.structure(payload["message"], Message)
            doc = await self.store.get(CONVERSATIONS, conversation.id)
            state = _state_from(doc.value) if doc is not None else None
            batch = self._plan_customer(conversation, message, state, doc.version if doc is not None else 0)
            # The connector deduplicated the platform's delivery when it accepted it.
            return evolve(batch, inbox=())
        if job.kind == _HubJobs.AGENT_MESSAGE:
            # An agent answered on the customer's app itself (a page inbox): into the transcript and to Slack.
            conversation = converter.structure(payload["conversation"], Conversation)
            message = converter.structure(payload["message"], Message)
            agent = converter.structure(payload["agent"], Agent) if payload.get("agent") else None
            doc = await self.store.get(CONVERSATIONS, conversation.id)
            state = _state_from(doc.value) if doc is not None else None
            batch = self._plan_other(
                conversation, message, state, doc.version if doc is not None else 0, role="agent", agent=agent
            )
            return evolve(batch, inbox=())
        if job.kind == _HubJobs.ROUTE:
            await self._job_route(str(payload["op"]), str(payload["conversation_id"]))
            return None
        if job.kind == _HubJobs.ASSIGNED:
            if self.on_assigned is not None:
                await self.on_assigned(converter.structure(payload["assignment"], Assignment))
            return None
        if job.kind == _HubJobs.OFFLINE:
            state = await self._state_of(str(payload["conversation_id"]))
            if self.on_offline is not None and state is not None:
                await self.on_offline(state.conversation)
            return None
        if job.kind == _HubJobs.AGENT_EDIT:
            if self.on_agent_edit is not None:
                await self.on_agent_edit(converter.structure(payload["reply"], AgentReply))
            return None
        if job.kind == _HubJobs.AGENT_DELETE:
            if self.on_agent_delete is not None:
                await self.on_agent_delete(str(payload["conversation_id"]), str(payload["message_id"]))
            return None
        if job.kind == _HubJobs.DEAD_LETTER:
            await self._job_report(payload)
            return None
        # Written by another version of the hub, or damaged: retrying cannot help.
        raise _Unprocessable(f"the hub has no job kind {job.kind!r}")

    async def _job_report(self, payload: Mapping[str, Any]) -> None:
        try:
            letter = converter.structure(payload["letter"], DeadLetter)
        except Exception as exc:
            raise _Unprocessable(f"the dead letter to report cannot be read ({type(exc).__name__})") from None
        if self.on_dead_letter is None:
            # Queued by a hub with on_dead_letter on a store this one shares: give every hub the same callbacks.
            log.warning("job %s parked as a dead letter: this hub has no on_dead_letter to report it", letter.id)
            return
        await report("on_dead_letter", self.on_dead_letter, letter)

    async def _job_agent_reply(self, payload: Mapping[str, Any]) -> Batch | None:
        reply = converter.structure(payload["reply"], AgentReply)
        origin = str(payload.get("origin", ""))
        state = await self._state_of(reply.conversation_id)
        if state is None:
            raise _Unprocessable(
                f"an agent reply for unknown conversation {reply.conversation_id!r}: the hub has no record of it"
            )
        delivery = await self.on_agent_reply(reply) if self.on_agent_reply is not None else None
        jobs: list[NewJob] = []
        source = self._connectors.get(state.conversation.source)
        if source is not None and source.role == "customer":
            jobs.append(
                self._event_job(
                    source.name,
                    reply.conversation_id,
                    DeliverReply(conversation=state.conversation, reply=reply),
                )
            )
        if delivery is not None and origin in self._connectors:
            shown = delivery.notified_by & {"email", "sms"}
            if shown:
                jobs.append(
                    self._event_job(
                        origin,
                        reply.conversation_id,
                        Notified(conversation_id=reply.conversation_id, notified_by=shown),
                    )
                )
        entry = TranscriptEntry(
            conversation_id=reply.conversation_id,
            role="agent",
            message=reply.message,
            agent_id=reply.agent.id if reply.agent is not None else None,
            at=self._clock(),
        )
        return Batch(transcript=[entry], jobs=jobs)

    async def _job_archived_remotely(self, conversation_id: str) -> None:
        # Archived on the agent side (/archive, or the channel archived in Slack). The host hears of it once per
        # archive: an echo of an archive the host made itself finds the conversation archived already. The host
        # is told before the state is written, so a crash in between repeats the call rather than losing it.
        state = await self._state_of(conversation_id)
        if state is None or state.status == "archived":
            return
        if self.on_archive is not None:
            await self.on_archive(conversation_id)

        def plan(state: ConversationState | None, version: int) -> Batch | None:
            if state is None or state.status == "archived":
                return None
            jobs = [self._route_job("release", conversation_id)] if state.routed else []
            return Batch(puts=[self._put_state(evolve(state, status="archived"), version)], jobs=jobs)

        await self._commit_planned(conversation_id, plan)

    # -- routing ---------------------------------------------------------------------------------------------

    def _route_job(self, op: str, conversation_id: str) -> NewJob:
        # One queue for every routing decision: they are taken in order, first come first served.
        return NewJob(
            queue_key=f"{HUB}:routing",
            connector=HUB,
            kind=_HubJobs.ROUTE,
            payload={"op": op, "conversation_id": conversation_id},
        )

    def _require_routing(self) -> Routing:
        if self.routing is None:
            raise UsageError("this hub has no routing: pass routing=Routing(...) to Hub()")
        return self.routing

    async def _load_engine(self) -> tuple[RoutingEngine, int]:
        routing = self._require_routing()
        doc = await self.store.get(ROUTING, ROUTING_KEY)
        version = doc.version if doc is not None else 0
        if self._engine is not None and self._engine[0] == version:
            return self._engine[1], version
        if doc is None:
            engine = RoutingEngine(routing, self._agents.values())
        else:
            engine = RoutingEngine.from_snapshot(routing, self._agents.values(), doc.value)
            engine.place_waiting(now=self._now_dt())
        return engine, version

    def _now_dt(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    async def _routing_op(
        self, decide: Callable[[RoutingEngine, datetime], tuple[list[Assignment], list[NewJob]]]
    ) -> list[Assignment]:
        """Apply one routing decision: load the engine's state, decide, and store the state together with what
        the decision sets off (conversation agents, Slack updates, the host's on_assigned), compare-and-swap."""
        while True:
            engine, version = await self._load_engine()
            self._engine = None  # the decision mutates the engine: cache it again only once stored
            now = self._now_dt()
            events, extra = decide(engine, now)
            batch = await self._assignment_batch(events)
            result = await self.store.commit(
                Batch(
                    puts=[
                        Put(namespace=ROUTING, key=ROUTING_KEY, value=engine.snapshot(), expected_version=version),
                        *batch.puts,
                    ],
                    jobs=[*batch.jobs, *extra],
                ),
                now=self._clock(),
            )
            self._forget_states(batch)
            if result.ok:
                self._engine = (result.versions[0], engine)
                if batch.jobs or extra:
                    self._wake_up()
                return events

    async def _assignment_batch(self, events: Sequence[Assignment]) -> Batch:
        puts: list[Put] = []
        jobs: list[NewJob] = []
        for assignment in events:
            cid = assignment.conversation_id
            if self.on_assigned is not None:
                jobs.append(
                    NewJob(
                        queue_key=f"{HUB}:{cid}",
                        connector=HUB,
                        kind=_HubJobs.ASSIGNED,
                        payload={"assignment": converter.unstructure(assignment)},
                    )
                )
            if assignment.event == "queue_moved":
                continue
            doc = await self.store.get(CONVERSATIONS, cid)
            if doc is None:
                continue
            state = _state_from(doc.value)
            if state.conversation.agent_id != assignment.agent_id:
                state = evolve(state, conversation=evolve(state.conversation, agent_id=assignment.agent_id))
                puts.append(self._put_state(state, doc.version))
            event = AssignmentChanged(conversation=state.conversation, assignment=assignment)
            jobs.extend(self._event_job(c.name, cid, event) for c in self._agent_connectors())
        return Batch(puts=puts, jobs=jobs)

    async def _job_route(self, op: str, conversation_id: str) -> None:
        state = await self._state_of(conversation_id)
        if state is None:
            return
        conversation = state.conversation

        def decide(engine: RoutingEngine, now: datetime) -> tuple[list[Assignment], list[NewJob]]:
            known = engine.assignment(conversation_id) is not None
            if op == "add":
                if known:  # a repeat after a crash: already routed
                    return [], []
                return (
                    engine.add_conversation(
                        conversation_id,
                        department_id=conversation.department_id,
                        agent_id=conversation.agent_id,
                        now=now,
                    ),
                    [],
                )
            if op == "release":
                return (engine.release(conversation_id, now=now) if known else []), []
            if op == "reopen":
                return (engine.reopen(conversation_id, now=now) if known else []), []
            if op == "offline":
                if engine.is_open(now) or not engine.offline_notice(conversation.user.id, now=now):
                    return [], []
                notice = NewJob(
                    queue_key=f"{HUB}:{conversation_id}",
                    connector=HUB,
                    kind=_HubJobs.OFFLINE,
                    payload={"conversation_id": conversation_id},
                )
                return [], [notice]
            raise UsageError(f"unknown routing operation {op!r}")

        await self._routing_op(decide)

    async def set_agent_online(self, agent_id: str | int, online: bool) -> None:
        """An agent came online or went offline. Coming online pulls queued conversations."""
        agent_id = _validate.check_id(agent_id, "agent_id")
        self._require_running()
        self._require_routing()
        if agent_id not in self._agents:
            raise UsageError(f"unknown agent {agent_id!r}: pass it in Hub(agents=...)")
        await self._routing_op(lambda engine, now: (engine.set_online(agent_id, bool(online), now=now), []))

    async def claim(self, conversation_id: str | int, agent_id: str | int) -> Assignment:
        """``agent_id`` takes the conversation (manual routing): the first claim wins; a later claim by another
        agent raises :class:`~norbit_connectors.AlreadyClaimed`."""
        conversation_id = _validate.check_id(conversation_id, "conversation_id")
        agent_id = _validate.check_id(agent_id, "agent_id")
        self._require_running()
        self._require_routing()
        if agent_id not in self._agents:
            raise UsageError(f"unknown agent {agent_id!r}: pass it in Hub(agents=...)")
        state = await self._state_of(conversation_id)
        if state is None:
            raise UsageError(f"unknown conversation {conversation_id!r}")

        def decide(engine: RoutingEngine, now: datetime) -> tuple[list[Assignment], list[NewJob]]:
            if engine.assignment(conversation_id) is None:
                engine.add_conversation(conversation_id, department_id=state.conversation.department_id, now=now)
            return engine.claim(conversation_id, agent_id, now=now), []

        await self._routing_op(decide)
        result = await self.assignment(conversation_id)
        assert result is not None
        return result

    async def assignment(self, conversation_id: str | int) -> Assignment | None:
        """Where the conversation stands in routing (agent, or queue position and wait), or None."""
        conversation_id = _validate.check_id(conversation_id, "conversation_id")
        engine, _ = await self._load_engine()
        return engine.assignment(conversation_id)

    # -- workers -----------------------------------------------------------------------------------------

    def _wake_up(self) -> None:
        self._wake.set()

    def _notify_changed(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _dispatcher(self, send: MemoryObjectSendStream[Job]) -> None:
        # Jobs are claimed in batches, up to ``_held_limit`` at a time: those beyond the free workers wait in the
        # stream (leased, kept alive by the heartbeat), so a finishing worker takes its next job at once and the
        # store sees one claim per batch instead of one per job. Claiming again waits until at most ``workers``
        # are held, i.e. the backlog has been taken up.
        async with send:
            while True:
                self._wake = anyio.Event()
                held = len(self._inflight)
                if held > self._workers:
                    # Every worker has a job and the backlog is not empty: a finishing worker wakes us.
                    await self._wake.wait()
                    continue
                limit = self._held_limit - held
                jobs: list[Job] = []
                next_time: float | None = None
                try:
                    jobs = await self.store.claim_jobs(
                        self._owner, now=self._clock(), lease_seconds=self._lease, limit=limit
                    )
                    if len(jobs) < limit:
                        next_time = await self.store.next_job_time()
                except Exception:
                    # The store failed (locked, unreachable, a damaged row): keep the hub alive and try again.
                    log.exception("claiming jobs failed; trying again in %.1fs", self._poll)
                    await anyio.sleep(self._poll)
                    continue
                for job in jobs:
                    self._inflight[job.id] = job
                    await send.send(job)
                if len(jobs) == limit:
                    continue
                # Everything due is claimed (or leased by a worker: its end wakes us, or the poll finds it when a
                # dead worker's lease runs out). Wait for new work, a finished job, or a retry coming due.
                delay = self._poll
                now = self._clock()
                if next_time is not None and next_time > now:
                    delay = min(delay, next_time - now)
                with anyio.move_on_after(delay):
                    await self._wake.wait()

    async def _heartbeat(self) -> None:
        # Long-running jobs (waiting for a rate limit) keep their lease while this process lives.
        while True:
            await anyio.sleep(self._lease / 3)
            until = self._clock() + self._lease
            for job_id in list(self._inflight):
                try:
                    await self.store.extend_lease(job_id, self._owner, until=until)
                except Exception:
                    log.exception("extending the lease of job %s failed", job_id)

    async def _worker(self, receive: MemoryObjectReceiveStream[Job]) -> None:
        async with receive:
            async for job in receive:
                try:
                    await self._run_job(job)
                except Exception:
                    # Recording the outcome failed (the store): the lease runs out and the job is done again,
                    # where the connectors' reconciliation keeps it from doubling.
                    log.exception("job %s (%s/%s): recording its outcome failed", job.id, job.connector, job.kind)
                # Cut short instead (the hub is stopping), the job stays held: leaving, the hub hands it back to
                # the queue at once rather than at the end of its lease.
                self._inflight.pop(job.id, None)
                if len(self._inflight) <= self._workers:
                    self._wake_up()
                if not self._inflight:
                    self._notify_changed()

    async def _run_job(self, job: Job) -> None:
        store = self.store
        if UNDECODABLE in job.payload:
            await self._park(job, "the stored payload is damaged and cannot be read")
            return
        for _ in range(_QUICK_RETRIES):
            try:
                await self._attempt(job)
                return
            except _RetrySoon:
                continue
        await store.retry_job(job.id, self._owner, not_before=self._clock() + 1.0, error="busy", now=self._clock())

    async def _attempt(self, job: Job) -> None:
        store = self.store
        try:
            if job.connector == HUB:
                batch = await self._perform_hub_job(job)
            else:
                connector = self._connectors.get(job.connector)
                if connector is None:
                    await self._park(job, f"no connector named {job.connector!r} in this hub")
                    return
                batch = await connector.perform(job)
        except RateLimited as exc:
            wait = max(exc.retry_after, 0.05)
            if wait <= _QUICK_WAIT:
                # A short wait (another worker is creating the channel; a brief rate limit): keep the job and
                # try again here, rather than counting an attempt.
                await anyio.sleep(wait)
                raise _RetrySoon from None
            log.info("job %s (%s/%s) rate limited, retrying in %.2fs", job.id, job.connector, job.kind, wait)
            await store.retry_job(
                job.id, self._owner, not_before=self._clock() + wait, error=str(exc), now=self._clock()
            )
            return
        except _Unprocessable as exc:
            await self._park(job, str(exc))
            return
        except (PermissionDenied, ConfigurationError, NotFound) as exc:
            # Retrying cannot help: bad credentials, a missing scope, a chat or channel that is gone.
            await self._park(job, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            await self._failed(job, exc)
            return
        self._planned = None
        finished = await store.finish_job(job.id, self._owner, batch=batch, now=self._clock())
        self._forget_states(batch)
        if not finished:
            # A concurrent writer changed the conversation first: plan the job again.
            await store.retry_job(job.id, self._owner, not_before=self._clock(), error="conflict", now=self._clock())

    async def _park(self, job: Job, reason: str) -> None:
        """Park ``job`` as a dead letter and, in the same write, queue the job that tells the host of it
        (on_dead_letter): a crash in between cannot lose the report, and only the hub that parked it queues one."""
        reason = clean_reason(reason)
        now = self._clock()
        if job.connector == HUB and job.kind == _HubJobs.DEAD_LETTER:
            # A report that failed every attempt is not reported in turn: the job it was about stays parked.
            if await self.store.finish_job(job.id, self._owner, now=now):
                letter = job.payload.get("letter")
                about = letter.get("id") if isinstance(letter, Mapping) else None
                log.error("on_dead_letter for job %s failed every attempt; report dropped: %s", about, reason)
            return
        batch = None
        if self.on_dead_letter is not None:
            letter = _dead_letter(job, reason=reason, attempts=job.attempts + 1, parked_at=now)
            batch = Batch(jobs=[_report_job(letter)])
        if not await self.store.dead_letter_job(job.id, self._owner, reason=reason, now=now, batch=batch):
            return  # the lease was lost: whoever holds the job now decides what becomes of it
        log.error("job %s (%s/%s) parked as a dead letter: %s", job.id, job.connector, job.kind, reason)
        if batch is not None:
            self._wake_up()

    async def _failed(self, job: Job, exc: Exception) -> None:
        attempts = job.attempts + 1
        limit = self._max_attempts * 4 if isinstance(exc, TransportError) else self._max_attempts
        reason = clean_reason(f"{type(exc).__name__}: {exc}")
        if attempts >= limit:
            await self._park(job, reason)
            return
        if isinstance(exc, NorbitError):
            log.warning("job %s (%s/%s) failed (attempt %d): %s", job.id, job.connector, job.kind, attempts, reason)
        else:
            log.exception("job %s (%s/%s) raised (attempt %d)", job.id, job.connector, job.kind, attempts)
        delay = _backoff(attempts, self._retry_base)
        await self.store.retry_job(
            job.id, self._owner, not_before=self._clock() + delay, error=reason, now=self._clock()
        )


class _Context(HubContext):
    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self.store = hub.store
        self.agents = hub.agents
        self.departments = hub.departments

    def now(self) -> float:
        return self._hub._clock()

    async def accept_inbound(self, source: str, event_id: str | None, jobs: Sequence[NewJob]) -> bool:
        inbox = [InboxKey(source=source, event_id=event_id)] if event_id else []
        result = await self._hub.store.commit(Batch(inbox=inbox, jobs=jobs), now=self.now())
        if result.ok:
            self._hub._wake_up()
            return True
        return False

    async def conversation_state(self, conversation_id: str) -> ConversationState | None:
        return await self._hub._state_of(conversation_id)

    async def transcript(self, conversation_id: str) -> list[TranscriptEntry]:
        return await self._hub.store.transcript(conversation_id)

    def hub_job(self, kind: str, conversation_id: str, payload: Mapping[str, Any]) -> NewJob:
        return NewJob(queue_key=f"{HUB}:{conversation_id}", connector=HUB, kind=kind, payload=dict(payload))

    @property
    def routing_mode(self) -> str | None:
        return self._hub.routing.mode if self._hub.routing is not None else None

    async def claim(self, conversation_id: str, agent_id: str) -> str:
        try:
            assignment = await self._hub.claim(conversation_id, agent_id)
        except AlreadyClaimed as exc:
            return exc.agent_id
        return assignment.agent_id or agent_id

    def wake(self) -> None:
        self._hub._wake_up()


def _backoff(attempts: int, base: float) -> float:
    # Jitter over an exponential ceiling: base, 2 x base, 4 x base, ... capped at 60 s.
    ceiling = min(60.0, base * math.pow(2, max(0, attempts - 1)))
    return random.uniform(ceiling / 2, ceiling)


def _message_key(conversation_id: str, message_id: str) -> InboxKey:
    return InboxKey(source="message", event_id=f"{conversation_id}\x1f{message_id}")


def _conversation_of(job: Job) -> str | None:
    payload = job.payload
    for outer, inner in (("conversation_id", None), ("conversation", "id"), ("reply", "conversation_id")):
        value = payload.get(outer)
        if inner is not None:
            value = value.get(inner) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return value
    _, _, rest = job.queue_key.partition(":")
    return rest if rest and rest != "routing" else None


def _dead_letter(job: Job, *, reason: str, attempts: int, parked_at: float | None) -> DeadLetter:
    return DeadLetter(
        id=job.id,
        connector=job.connector,
        kind=job.kind,
        conversation_id=_conversation_of(job),
        reason=reason,
        attempts=attempts,
        parked_at=parked_at,
    )


def _report_job(letter: DeadLetter) -> NewJob:
    # A queue of its own: a host whose on_dead_letter fails holds up nothing else.
    return NewJob(
        queue_key=f"{HUB}:dead_letter:{letter.id}",
        connector=HUB,
        kind=_HubJobs.DEAD_LETTER,
        payload={"letter": converter.unstructure(letter)},
    )


def _replay(conversation: Conversation, entry: TranscriptEntry, agents: Mapping[str, Agent]) -> HubEvent:
    if entry.role == "customer":
        return CustomerMessage(conversation=conversation, message=entry.message, replay=True)
    if entry.role == "agent":
        agent = agents.get(entry.agent_id) if entry.agent_id else None
        return AgentMessage(conversation=conversation, message=entry.message, agent=agent, replay=True)
    return BotMessage(conversation=conversation, message=entry.message, replay=True)
