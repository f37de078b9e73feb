"""The routing decision engine: pure state, no I/O, no clock reads.

Every operation takes the current time (``now``) from the caller and returns the :class:`Assignment` events it
caused, in order. The whole state round-trips through :meth:`RoutingEngine.snapshot` (JSON-compatible), so a hub
can keep it in its store and several processes can agree on it (load, apply, save under compare-and-swap).

Cost: choosing an agent is O(log n) in the number of agents. Each agent sits in one binary heap per department
it serves (plus one for agents serving every department, and one of all agents for conversations without a
department), once for "online" and once for "any"; heap entries are invalidated lazily with a per-agent version
and the heaps are rebuilt when stale entries outnumber live ones. Queues are deques with per-queue tickets, so
enqueue, dequeue and position look-ups are O(1). Reporting ``queue_moved`` for every conversation behind a
departure is inherently O(queue length); it is done once per operation and per queue, however many
conversations left that queue during the operation.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime
from itertools import islice
from typing import Any, Literal

from .._models import Agent, Assignment
from ..exceptions import AlreadyClaimed, UsageError
from ._config import Routing

__all__ = ["RoutingEngine"]

_SNAPSHOT_FORMAT = 1
_NOTICE_SECONDS = 3600.0

_State = Literal["active", "queued", "unassigned", "archived"]
_How = Literal["assigned", "claimed"]
_Kind = Literal["assigned", "queued", "queue_moved", "claimed", "unassigned"]
# Pools: ("dep", id) agents listing the department; ("gen", None) agents serving all departments;
# ("all", None) every non-admin agent (conversations without a department).
_Pool = tuple[str, str | None]
_GENERAL: _Pool = ("gen", None)
_ALL: _Pool = ("all", None)
# (load, last assignment time, last assignment sequence, agent id, version)
_Entry = tuple[int, float, int, str, int]


class _Conversation:
    __slots__ = ("agent_id", "department_id", "how", "queued_seq", "state")

    def __init__(
        self,
        *,
        department_id: str | None,
        agent_id: str | None,
        state: _State,
        how: _How = "assigned",
        queued_seq: int | None = None,
    ) -> None:
        self.department_id = department_id
        self.agent_id = agent_id
        self.state: _State = state
        self.how: _How = how
        self.queued_seq = queued_seq


class _Queue:
    """A FIFO with O(1) append, popleft and position; removal from the middle renumbers those behind."""

    __slots__ = ("base", "items", "next_ticket", "tickets")

    def __init__(self) -> None:
        self.items: deque[str] = deque()
        self.tickets: dict[str, int] = {}
        self.base = 0
        self.next_ticket = 0

    def __len__(self) -> int:
        return len(self.items)

    def append(self, conversation_id: str) -> int:
        self.tickets[conversation_id] = self.next_ticket
        self.next_ticket += 1
        self.items.append(conversation_id)
        return len(self.items)

    def position(self, conversation_id: str) -> int:
        return self.tickets[conversation_id] - self.base + 1

    def popleft(self) -> str:
        conversation_id = self.items.popleft()
        del self.tickets[conversation_id]
        self.base += 1
        return conversation_id

    def remove(self, conversation_id: str) -> int:
        """Remove one conversation; returns the index from which positions changed."""
        index = self.tickets.pop(conversation_id) - self.base
        del self.items[index]
        for behind in islice(self.items, index, None):
            self.tickets[behind] -= 1
        self.next_ticket -= 1
        return index


def _require_now(now: object) -> float:
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise UsageError(f"now must be a timezone-aware datetime (e.g. datetime.now(UTC)), got {now!r}")
    return now.timestamp()


def _require_id(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _require_department(value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise UsageError(f"department_id must be a non-empty string or None, got {value!r}")
    return value


class RoutingEngine:
    """Decides who gets which conversation under a :class:`Routing` configuration.

    Eligibility: an agent with no department serves every department; otherwise the conversation's department
    must be among the agent's ``department_ids``. A conversation without a department may go to any agent.
    Admins are never assigned automatically (they may claim).

    How the hub drives it (each call returns the events to pass on to ``on_assigned``):

    - new conversation (or human takeover of a bot conversation): :meth:`add_conversation`
    - conversation archived: :meth:`release`; reopened: :meth:`reopen`
    - agent online/offline: :meth:`set_online`; agent list changed: :meth:`set_agents`
    - an agent joins/claims: :meth:`claim` (raises :class:`AlreadyClaimed` if someone else has it)
    - customer writes while closed: :meth:`offline_notice` says whether to send the offline message
    """

    def __init__(self, routing: Routing, agents: Iterable[Agent] = ()) -> None:
        if not isinstance(routing, Routing):
            raise UsageError(f"RoutingEngine needs a Routing(...), got {routing!r}")
        self._routing = routing
        self._cap = routing.max_concurrent
        self._agents: dict[str, Agent] = {}
        self._online: set[str] = set()
        self._load: dict[str, int] = {}
        self._last: dict[str, tuple[float, int]] = {}
        self._version: dict[str, int] = {}
        self._pools_of: dict[str, tuple[_Pool, ...]] = {}
        self._members: dict[_Pool, list[str]] = {}
        self._heap_online: dict[_Pool, list[_Entry]] = {}
        self._heap_any: dict[_Pool, list[_Entry]] = {}
        self._conversations: dict[str, _Conversation] = {}
        self._queues: dict[str | None, _Queue] = {}
        self._seq = 0
        self._notices: dict[str, float] = {}
        self._notice_prune_at = 1024
        self._install_agents(agents)

    @property
    def routing(self) -> Routing:
        return self._routing

    # -- agents and heaps ----------------------------------------------------------------------------------

    def _install_agents(self, agents: Iterable[Agent]) -> None:
        installed: dict[str, Agent] = {}
        for agent in agents:
            if not isinstance(agent, Agent):
                raise UsageError(f"agents must be Agent(...) values, got {agent!r}")
            if agent.id in installed:
                raise UsageError(f"agent id {agent.id!r} is given twice")
            installed[agent.id] = agent
        self._agents = installed
        self._online &= installed.keys()
        self._pools_of = {}
        self._members = {}
        for agent in installed.values():
            if agent.is_admin:
                continue
            if agent.department_ids:
                pools: tuple[_Pool, ...] = (*(("dep", d) for d in sorted(agent.department_ids)), _ALL)
            else:
                pools = (_GENERAL, _ALL)
            self._pools_of[agent.id] = pools
            for pool in pools:
                self._members.setdefault(pool, []).append(agent.id)
        self._rebuild_heaps()

    def _entry(self, agent_id: str) -> _Entry:
        last_at, last_seq = self._last.get(agent_id, (float("-inf"), -1))
        return (self._load.get(agent_id, 0), last_at, last_seq, agent_id, self._version.get(agent_id, 0))

    def _rebuild_heaps(self, only: _Pool | None = None) -> None:
        if only is None:
            self._heap_online = {}
            self._heap_any = {}
            pools = list(self._members)
        else:
            pools = [only]
        online = self._online
        for pool in pools:
            entries = [self._entry(agent_id) for agent_id in self._members[pool]]
            heapq.heapify(entries)
            self._heap_any[pool] = entries
            live = [entry for entry in entries if entry[3] in online]
            heapq.heapify(live)
            self._heap_online[pool] = live

    def _touch(self, agent_id: str) -> None:
        """The agent's load, recency or presence changed: invalidate its heap entries and push fresh ones."""
        self._version[agent_id] = self._version.get(agent_id, 0) + 1
        pools = self._pools_of.get(agent_id)
        if pools is None:
            return
        entry = self._entry(agent_id)
        online = agent_id in self._online
        for pool in pools:
            heap = self._heap_any[pool]
            heapq.heappush(heap, entry)
            if online:
                heapq.heappush(self._heap_online[pool], entry)
            if max(len(heap), len(self._heap_online[pool])) > 4 * len(self._members[pool]) + 64:
                self._rebuild_heaps(pool)

    def _top(self, heap: list[_Entry] | None, online: bool) -> _Entry | None:
        if not heap:
            return None
        version = self._version
        while heap:
            entry = heap[0]
            agent_id = entry[3]
            if entry[4] == version.get(agent_id, 0) and (not online or agent_id in self._online):
                return entry
            heapq.heappop(heap)
        return None

    def _best(self, department_id: str | None, online: bool) -> _Entry | None:
        heaps = self._heap_online if online else self._heap_any
        if department_id is None:
            return self._top(heaps.get(_ALL), online)
        a = self._top(heaps.get(("dep", department_id)), online)
        b = self._top(heaps.get(_GENERAL), online)
        if a is None:
            return b
        if b is None:
            return a
        return min(a, b)

    def _candidate(self, department_id: str | None) -> str | None:
        """The agent to take a conversation of this department now, or None if it has to wait."""
        best = self._best(department_id, True) or self._best(department_id, False)
        if best is None or (self._cap is not None and best[0] >= self._cap):
            return None
        return best[3]

    def _serves(self, agent_id: str) -> list[str | None]:
        """The non-empty queues this agent could take from."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.is_admin:
            return []
        if not agent.department_ids:
            return list(self._queues)
        keys: list[str | None] = [d for d in sorted(agent.department_ids) if d in self._queues]
        if None in self._queues:
            keys.append(None)
        return keys

    # -- state changes -------------------------------------------------------------------------------------

    def _give(self, conversation: _Conversation, agent_id: str, how: _How, at: float) -> None:
        conversation.agent_id = agent_id
        conversation.state = "active"
        conversation.how = how
        conversation.queued_seq = None
        self._load[agent_id] = self._load.get(agent_id, 0) + 1
        self._seq += 1
        self._last[agent_id] = (at, self._seq)
        self._touch(agent_id)

    def _take_back(self, conversation: _Conversation) -> None:
        agent_id = conversation.agent_id
        if conversation.state == "active" and agent_id is not None:
            remaining = self._load[agent_id] - 1
            if remaining:
                self._load[agent_id] = remaining
            else:
                del self._load[agent_id]
            self._touch(agent_id)

    def _event(self, conversation_id: str, conversation: _Conversation, event: _Kind | None = None) -> Assignment:
        if conversation.state == "queued":
            position = self._queues[conversation.department_id].position(conversation_id)
            return Assignment(
                conversation_id=conversation_id,
                agent_id=None,
                queue_position=position,
                wait_minutes=position * self._routing.response_minutes,
                event="queued" if event is None else event,
                department_id=conversation.department_id,
            )
        kind: _Kind = conversation.how if conversation.agent_id is not None else "unassigned"
        return Assignment(
            conversation_id=conversation_id,
            agent_id=conversation.agent_id,
            queue_position=None,
            wait_minutes=None,
            event=kind if event is None else event,
            department_id=conversation.department_id,
        )

    def _enqueue(self, conversation_id: str, conversation: _Conversation) -> None:
        queue = self._queues.get(conversation.department_id)
        if queue is None:
            queue = self._queues[conversation.department_id] = _Queue()
        self._seq += 1
        conversation.state = "queued"
        conversation.agent_id = None
        conversation.queued_seq = self._seq
        queue.append(conversation_id)

    def _dequeue(self, conversation_id: str, conversation: _Conversation, moved: dict[str | None, int]) -> None:
        key = conversation.department_id
        queue = self._queues[key]
        index = queue.remove(conversation_id)
        conversation.queued_seq = None
        self._note_moved(key, index, moved)

    def _note_moved(self, key: str | None, index: int, moved: dict[str | None, int]) -> None:
        queue = self._queues[key]
        if not queue:
            del self._queues[key]
            moved.pop(key, None)
        else:
            moved[key] = min(index, moved.get(key, index))

    def _moved_events(self, moved: dict[str | None, int]) -> list[Assignment]:
        events: list[Assignment] = []
        response = self._routing.response_minutes
        for key in sorted(moved, key=lambda k: (k is not None, k or "")):
            queue = self._queues.get(key)
            if queue is None:
                continue
            position = moved[key]
            for conversation_id in islice(queue.items, moved[key], None):
                position += 1
                events.append(
                    Assignment(
                        conversation_id=conversation_id,
                        agent_id=None,
                        queue_position=position,
                        wait_minutes=position * response,
                        event="queue_moved",
                        department_id=key,
                    )
                )
        return events

    def _route(self, conversation_id: str, conversation: _Conversation, at: float) -> list[Assignment]:
        """Route a conversation that has no agent, per the mode."""
        mode = self._routing.mode
        if mode == "auto":
            agent_id = self._candidate(conversation.department_id)
            if agent_id is not None and conversation.department_id not in self._queues:
                self._give(conversation, agent_id, "assigned", at)
            else:
                # Someone already waits in this department (or nobody can take it): keep FIFO order.
                self._enqueue(conversation_id, conversation)
            return [self._event(conversation_id, conversation)]
        conversation.state = "unassigned"
        conversation.agent_id = None
        return [self._event(conversation_id, conversation)] if mode == "manual" else []

    def _drain(self, keys: Iterable[str | None], at: float, moved: dict[str | None, int]) -> list[Assignment]:
        """Place waiting conversations while someone can take them, oldest first across ``keys``."""
        if self._routing.mode != "auto":
            return []
        events: list[Assignment] = []
        open_keys = {k for k in keys if k in self._queues}
        while open_keys:
            key = min(open_keys, key=lambda k: self._conversations[self._queues[k].items[0]].queued_seq or 0)
            agent_id = self._candidate(key)
            if agent_id is None:
                # Everyone in this queue shares its department, so nobody behind the head can be placed either.
                open_keys.discard(key)
                continue
            queue = self._queues[key]
            conversation_id = queue.popleft()
            conversation = self._conversations[conversation_id]
            self._give(conversation, agent_id, "assigned", at)
            events.append(self._event(conversation_id, conversation))
            self._note_moved(key, 0, moved)
            if key not in self._queues:
                open_keys.discard(key)
        return events

    def _conversation(self, conversation_id: str) -> _Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise UsageError(f"unknown conversation {conversation_id!r}; add it with add_conversation() first")
        return conversation

    # -- public operations ---------------------------------------------------------------------------------

    def add_conversation(
        self,
        conversation_id: str,
        *,
        department_id: str | None,
        agent_id: str | None = None,
        now: datetime,
    ) -> list[Assignment]:
        """A new conversation needs routing. One with ``agent_id`` keeps that agent (counted in their load)."""
        _require_id(conversation_id, "conversation_id")
        department_id = _require_department(department_id)
        at = _require_now(now)
        if conversation_id in self._conversations:
            raise UsageError(f"conversation {conversation_id!r} is already known; use reopen() after release()")
        conversation = _Conversation(department_id=department_id, agent_id=None, state="unassigned")
        self._conversations[conversation_id] = conversation
        if agent_id is not None:
            self._give(conversation, _require_id(agent_id, "agent_id"), "assigned", at)
            return [self._event(conversation_id, conversation)]
        return self._route(conversation_id, conversation, at)

    def release(self, conversation_id: str, *, now: datetime) -> list[Assignment]:
        """The conversation was archived: its agent's slot frees up and pulls the next waiting conversation."""
        at = _require_now(now)
        conversation = self._conversation(conversation_id)
        if conversation.state == "archived":
            return []
        moved: dict[str | None, int] = {}
        events: list[Assignment] = []
        if conversation.state == "queued":
            self._dequeue(conversation_id, conversation, moved)
        elif conversation.state == "active" and conversation.agent_id is not None:
            self._take_back(conversation)
            events = self._drain(self._serves(conversation.agent_id), at, moved)
        conversation.state = "archived"
        return events + self._moved_events(moved)

    def reopen(self, conversation_id: str, *, now: datetime) -> list[Assignment]:
        """An archived conversation is active again.

        It stays with its agent, unless routing is automatic and that agent is offline (or gone): then it is
        routed like a new conversation.
        """
        at = _require_now(now)
        conversation = self._conversation(conversation_id)
        if conversation.state != "archived":
            return []
        agent_id = conversation.agent_id
        if agent_id is None or (
            self._routing.mode == "auto" and (agent_id not in self._online or agent_id not in self._agents)
        ):
            conversation.agent_id = None
            conversation.state = "unassigned"
            return self._route(conversation_id, conversation, at)
        self._give(conversation, agent_id, conversation.how, at)
        return [self._event(conversation_id, conversation)]

    def claim(self, conversation_id: str, agent_id: str, *, now: datetime) -> list[Assignment]:
        """``agent_id`` takes the conversation; the first claim wins.

        Raises :class:`AlreadyClaimed` if another agent has it. Claims are not limited by departments, admin
        status or ``max_concurrent``; claiming a conversation one already has changes nothing.
        """
        _require_id(agent_id, "agent_id")
        at = _require_now(now)
        conversation = self._conversation(conversation_id)
        if conversation.state == "archived":
            raise UsageError(f"conversation {conversation_id!r} is archived; reopen() it before claiming")
        if conversation.agent_id is not None:
            if conversation.agent_id == agent_id:
                return []
            raise AlreadyClaimed(conversation_id, conversation.agent_id)
        moved: dict[str | None, int] = {}
        if conversation.state == "queued":
            self._dequeue(conversation_id, conversation, moved)
        self._give(conversation, agent_id, "claimed", at)
        return [self._event(conversation_id, conversation), *self._moved_events(moved)]

    def set_online(self, agent_id: str, online: bool, *, now: datetime) -> list[Assignment]:
        """An agent came online (and pulls waiting conversations) or went offline (and keeps theirs)."""
        at = _require_now(now)
        if agent_id not in self._agents:
            raise UsageError(f"unknown agent {agent_id!r}; pass it to set_agents() first")
        if online == (agent_id in self._online):
            return []
        if online:
            self._online.add(agent_id)
        else:
            self._online.discard(agent_id)
        self._touch(agent_id)
        moved: dict[str | None, int] = {}
        # Going offline can matter too: a department left with nobody online falls back to offline agents.
        events = self._drain(self._serves(agent_id), at, moved)
        return events + self._moved_events(moved)

    def set_agents(self, agents: Iterable[Agent], *, now: datetime) -> list[Assignment]:
        """Replace the agent list. Conversations keep their agents; waiting ones are placed if now possible."""
        at = _require_now(now)
        self._install_agents(agents)
        moved: dict[str | None, int] = {}
        events = self._drain(list(self._queues), at, moved)
        return events + self._moved_events(moved)

    def place_waiting(self, *, now: datetime) -> list[Assignment]:
        """Place every waiting conversation someone can take now.

        Operations keep the queues settled on their own; call this after :meth:`from_snapshot` with a changed
        configuration (a higher ``max_concurrent``, "auto" after "manual") so the new settings apply at once.
        """
        at = _require_now(now)
        moved: dict[str | None, int] = {}
        events = self._drain(list(self._queues), at, moved)
        return events + self._moved_events(moved)

    def forget(self, conversation_id: str) -> None:
        """Drop an archived conversation from the state (it can no longer be reopened here)."""
        conversation = self._conversation(conversation_id)
        if conversation.state != "archived":
            raise UsageError(f"conversation {conversation_id!r} is not archived; release() it first")
        del self._conversations[conversation_id]

    def offline_notice(self, user_id: str, *, now: datetime) -> bool:
        """Whether to send the offline message to this user now: outside office hours, once per user per hour."""
        _require_id(user_id, "user_id")
        at = _require_now(now)
        hours = self._routing.office_hours
        if hours is None or hours.is_open(now):
            return False
        last = self._notices.get(user_id)
        if last is not None and at - last < _NOTICE_SECONDS:
            return False
        self._notices[user_id] = at
        if len(self._notices) >= self._notice_prune_at:
            self._notices = {u: t for u, t in self._notices.items() if at - t < _NOTICE_SECONDS}
            self._notice_prune_at = max(1024, 2 * len(self._notices))
        return True

    def is_open(self, now: datetime) -> bool:
        """Whether office hours are open at ``now`` (always, without office hours)."""
        _require_now(now)
        hours = self._routing.office_hours
        return hours is None or hours.is_open(now)

    # -- queries -------------------------------------------------------------------------------------------

    def assignment(self, conversation_id: str) -> Assignment | None:
        """Where the conversation stands (None if unknown). An archived one reports its last agent."""
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return None
        return self._event(conversation_id, conversation)

    def load(self, agent_id: str) -> int:
        """How many active conversations the agent has."""
        return self._load.get(agent_id, 0)

    def is_online(self, agent_id: str) -> bool:
        return agent_id in self._online

    @property
    def agents(self) -> Mapping[str, Agent]:
        return dict(self._agents)

    def queue(self, department_id: str | None) -> list[str]:
        """The conversations waiting for this department (None: those without one), next first."""
        queue = self._queues.get(department_id)
        return [] if queue is None else list(queue.items)

    # -- persistence ---------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The engine's state as JSON-compatible data (agents themselves are not included)."""
        return {
            "format": _SNAPSHOT_FORMAT,
            "seq": self._seq,
            "online": sorted(self._online),
            "last": {agent_id: [at, seq] for agent_id, (at, seq) in sorted(self._last.items())},
            "conversations": {
                conversation_id: {
                    "department_id": c.department_id,
                    "agent_id": c.agent_id,
                    "state": c.state,
                    "how": c.how,
                    "queued_seq": c.queued_seq,
                }
                for conversation_id, c in sorted(self._conversations.items())
            },
            "queues": [
                {"department_id": key, "conversations": list(self._queues[key].items)}
                for key in sorted(self._queues, key=lambda k: (k is not None, k or ""))
            ],
            "notices": dict(sorted(self._notices.items())),
        }

    @classmethod
    def from_snapshot(cls, routing: Routing, agents: Iterable[Agent], data: Mapping[str, Any]) -> RoutingEngine:
        """Rebuild an engine from :meth:`snapshot` data; raises :class:`UsageError` if the data is malformed."""
        engine = cls(routing, agents)
        try:
            engine._load_snapshot(data)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"malformed routing snapshot: {exc!r}") from exc
        return engine

    def _load_snapshot(self, data: Mapping[str, Any]) -> None:
        if data.get("format") != _SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported snapshot format {data.get('format')!r}")
        self._seq = int(data["seq"])
        self._online = {str(a) for a in data["online"] if a in self._agents}
        self._last = {str(a): (float(v[0]), int(v[1])) for a, v in data["last"].items()}
        for conversation_id, raw in data["conversations"].items():
            state = raw["state"]
            how = raw["how"]
            if state not in ("active", "queued", "unassigned", "archived") or how not in ("assigned", "claimed"):
                raise ValueError(f"conversation {conversation_id!r}: bad state {state!r} or {how!r}")
            queued_seq = raw["queued_seq"]
            conversation = _Conversation(
                department_id=_require_department(raw["department_id"]),
                agent_id=raw["agent_id"] if raw["agent_id"] is None else str(raw["agent_id"]),
                state=state,
                how=how,
                queued_seq=None if queued_seq is None else int(queued_seq),
            )
            self._conversations[str(conversation_id)] = conversation
            if state == "active":
                if conversation.agent_id is None:
                    raise ValueError(f"active conversation {conversation_id!r} has no agent")
                self._load[conversation.agent_id] = self._load.get(conversation.agent_id, 0) + 1
        for raw_queue in data["queues"]:
            key = _require_department(raw_queue["department_id"])
            queue = _Queue()
            for conversation_id in raw_queue["conversations"]:
                conversation = self._conversations[conversation_id]
                if conversation.state != "queued" or conversation.department_id != key:
                    raise ValueError(f"queued conversation {conversation_id!r} does not belong in queue {key!r}")
                queue.append(conversation_id)
            if queue:
                self._queues[key] = queue
        queued = sum(len(q) for q in self._queues.values())
        if queued != sum(1 for c in self._conversations.values() if c.state == "queued"):
            raise ValueError("queued conversations and queues disagree")
        self._notices = {str(u): float(t) for u, t in data["notices"].items()}
        self._rebuild_heaps()
