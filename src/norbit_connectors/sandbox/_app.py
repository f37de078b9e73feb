"""The sandbox's state and actions: a real Hub on SQLite with the Slack connector, and either the SlackEmulator
(agents act through signed Slack requests into ``handle_http``) or a real Slack workspace."""

from __future__ import annotations

import html
import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup

from .._models import Agent, AgentReply, Conversation, Delivery, Department, Message, User
from ..exceptions import ConfigurationError, NorbitError, UsageError
from ..hub import Hub
from ..slack import JOIN_ACTION_ID, SlackConfig, SlackConnector, SlackLimiter
from ..store import Batch, Put, SQLiteStore

__all__ = ["SEED_AGENTS", "SEED_DEPARTMENTS", "SandboxApp", "SandboxError"]

log = logging.getLogger("norbit_connectors.sandbox")

SEED_DEPARTMENTS = (Department(id="sales", name="Sales"), Department(id="billing", name="Billing"))
SEED_AGENTS = (
    Agent(id="ann", name="Ann Lee", email="ann@support.example", department_ids=frozenset({"sales"})),
    Agent(id="bob", name="Bob Marsh", email="bob@support.example", department_ids=frozenset({"billing"})),
    Agent(id="cara", name="Cara Diaz", email="cara@support.example"),
)
_SANDBOX = "sandbox"  # store namespace: settings and the Slack pane snapshot
_CUSTOMERS = "sandbox.customer"  # customer key -> name, department, chatbot
_HUMAN = re.compile(r"\b(human|agent|person|someone)\b", re.IGNORECASE)
MAX_TEXT = 4000


class SandboxError(NorbitError):
    """A sandbox request that cannot be done as asked (unknown agent, empty text, ...); status 400."""


def customer_key(name: str) -> str:
    """A stable id for a customer's name: ASCII-folded, lowercase, ``-`` between words; never empty."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    key = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:40].strip("-")
    return key or "customer-" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:8]


def _clean_text(value: object, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SandboxError(f"{what} must be non-empty text")
    text = value.strip()
    if len(text) > limit:
        raise SandboxError(f"{what} is longer than {limit} characters")
    return text


def _mrkdwn_to_text(text: str) -> str:
    # Enough of Slack's markup for display: mentions and links as their labels, entities decoded.
    text = re.sub(r"<#(\w+)(?:\|([^>]*))?>", lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = re.sub(r"<@(\w+)(?:\|([^>]*))?>", lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]*)>", r"\2", text)
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    return html.unescape(text)


class SandboxApp:
    """Everything behind the sandbox page. Use as ``async with SandboxApp(...) as app:``.

    ``mode="emulator"`` runs a SlackEmulator with seeded agents and channels; ``mode="slack"`` bridges to the
    workspace of ``slack_config`` (the customer pane only; Slack calls the Request URL ``/slack/events``).
    """

    def __init__(
        self,
        *,
        data: str,
        mode: Literal["emulator", "slack"] = "emulator",
        slack_config: SlackConfig | None = None,
    ) -> None:
        if mode == "slack" and slack_config is None:
            raise ConfigurationError("the Slack bridge needs a SlackConfig")
        self.mode = mode
        self._data = data
        self._slack_config = slack_config
        self.emulator: Any = None  # SlackEmulator in emulator mode (imported lazily: product code does not need it)
        self.slack: SlackConnector | None = None
        self.hub: Hub | None = None
        self.agent_users: dict[str, str] = {}  # host agent id -> Slack user id
        self.notes: list[dict[str, str]] = []  # ephemeral answers to agents (slash commands)
        self.archived_from_slack: list[str] = []
        self._history: dict[str, list[dict[str, Any]]] = {}  # channel id -> messages of earlier runs
        self._task_group: TaskGroup | None = None
        self._lock = anyio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> SandboxApp:
        store = SQLiteStore(self._data)
        if self.mode == "emulator":
            config = await self._start_emulator()
            self.slack = SlackConnector(config, limiter=SlackLimiter(enabled=False))
        else:
            assert self._slack_config is not None
            self.slack = SlackConnector(self._slack_config)
        self.hub = Hub(
            store=store,
            connectors=[self.slack],
            agents=SEED_AGENTS,
            departments=SEED_DEPARTMENTS,
            on_agent_reply=self._on_agent_reply,
            on_archive=self._on_archive,
        )
        try:
            await self.hub.__aenter__()
        except BaseException:
            if self.emulator is not None:
                self.emulator.close()
            raise
        if self.emulator is not None:
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._task_group.start_soon(self._pump_events)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            if self._task_group is not None:
                self._task_group.cancel_scope.cancel()
                await self._task_group.__aexit__(None, None, None)
                self._task_group = None
            if self.emulator is not None:
                with anyio.CancelScope(shield=True):
                    await self.save_slack_snapshot()
        finally:
            assert self.hub is not None
            await self.hub.__aexit__(*exc_info)
            if self.emulator is not None:
                await anyio.to_thread.run_sync(self.emulator.close)

    async def _start_emulator(self) -> SlackConfig:
        from ..testing._slack_emulator import SlackEmulator

        emu = SlackEmulator(rate_limits="off").start()
        self.emulator = emu
        for agent in SEED_AGENTS:
            handle = agent.id
            self.agent_users[agent.id] = emu.add_user(handle, email=agent.email, real_name=agent.name)
        everyone = [emu.bot_user_id, *self.agent_users.values()]
        main = emu.add_channel("support", members=everyone)
        departments = {
            "sales": emu.add_channel("sales", members=[emu.bot_user_id, self.agent_users["ann"]]),
            "billing": emu.add_channel("billing", members=[emu.bot_user_id, self.agent_users["bob"]]),
        }
        # A store of its own: the hub opens and closes the shared one.
        reader = SQLiteStore(self._data)
        await reader.open()
        try:
            await self._restore_slack(reader)
        finally:
            await reader.close()
        return SlackConfig(
            bot_token=emu.bot_token,
            signing_secret=emu.signing_secret,
            main_channel=main,
            department_channels=departments,
            agent_links=self.agent_users,
            user_details=("email", "location"),
            base_url=emu.base_url,
            bot_name="Sandbox bot",
        )

    async def _restore_slack(self, store: SQLiteStore) -> None:
        # The emulator keeps its workspace in memory. Channels of earlier runs are created again, in the order of
        # their ids, so that they get the same ids the connector stored; their messages are shown from the
        # snapshot (they are not in the emulator).
        doc = await store.get(_SANDBOX, "slack")
        if doc is None or not isinstance(doc.value, dict):
            return
        emu = self.emulator
        saved = [c for c in doc.value.get("channels", []) if isinstance(c, dict)]
        saved.sort(key=lambda c: (len(str(c.get("id"))), str(c.get("id"))))
        known_users = set(self.agent_users.values()) | {emu.bot_user_id}
        for channel in saved:
            cid = str(channel.get("id"))
            if cid not in emu.channels:
                members = [m for m in channel.get("members", []) if m in known_users]
                got = emu.add_channel(
                    str(channel.get("name")), is_private=bool(channel.get("is_private")), members=members
                )
                if got != cid:
                    log.warning("could not restore channel %s (got %s): earlier history is not shown", cid, got)
                    continue
                if channel.get("is_archived") and members:
                    emu.archive_as_user(members[0], cid)
            self._history[cid] = [dict(m, earlier=True) for m in channel.get("messages", []) if isinstance(m, dict)]

    async def save_slack_snapshot(self) -> None:
        """Keep the Slack pane in the store, so a later run shows it again."""
        if self.emulator is None or self.hub is None:
            return
        channels = [
            {k: c[k] for k in ("id", "name", "is_private", "is_archived", "members", "messages")}
            for c in self._slack_view()
        ]
        await self.hub.store.commit(
            Batch(puts=[Put(namespace=_SANDBOX, key="slack", value={"channels": channels})]), now=self.hub_now()
        )

    def hub_now(self) -> float:
        return time.time()

    async def _pump_events(self) -> None:
        # Slack sends the app events about its own calls too (its posts, archives): deliver them, as Slack would.
        emu = self.emulator
        assert self.slack is not None
        while True:
            for request in await anyio.to_thread.run_sync(emu.take_events):
                await request.deliver(self.slack.handle_http)
            await anyio.sleep(0.2)

    # -- hub callbacks ------------------------------------------------------------------------------------

    async def _on_agent_reply(self, reply: AgentReply) -> Delivery | None:
        # The page polls the transcript, where the hub records this reply once it is delivered here.
        log.info("agent reply for %s: %s", reply.conversation_id, reply.message.text[:80])
        return Delivery(notified_by=frozenset({"push"}))

    async def _on_archive(self, conversation_id: str) -> None:
        if conversation_id not in self.archived_from_slack:
            self.archived_from_slack.append(conversation_id)

    # -- settings and customers ---------------------------------------------------------------------------

    @property
    def _hub(self) -> Hub:
        if self.hub is None:
            raise UsageError("the sandbox is not running")
        return self.hub

    async def settings(self) -> dict[str, Any]:
        doc = await self._hub.store.get(_SANDBOX, "settings")
        value = doc.value if doc is not None and isinstance(doc.value, dict) else {}
        return {"chatbot": bool(value.get("chatbot", False))}

    async def set_chatbot(self, enabled: object) -> dict[str, Any]:
        if not isinstance(enabled, bool):
            raise SandboxError("enabled must be true or false")
        await self._hub.store.commit(
            Batch(puts=[Put(namespace=_SANDBOX, key="settings", value={"chatbot": enabled})]), now=self.hub_now()
        )
        return await self.settings()

    async def customers(self) -> list[dict[str, Any]]:
        found = await self._hub.store.scan(_CUSTOMERS)
        return [dict(doc.value) for _, doc in found if isinstance(doc.value, dict)]

    async def _customer(self, name: object, department: object = None) -> tuple[Conversation, dict[str, Any]]:
        clean = _clean_text(name, "the customer's name", 80)
        key = customer_key(clean)
        doc = await self._hub.store.get(_CUSTOMERS, key)
        if doc is not None and isinstance(doc.value, dict):
            record = dict(doc.value)
        else:
            if department not in (None, "", *[d.id for d in SEED_DEPARTMENTS]):
                raise SandboxError(f"unknown department {department!r}")
            record = {
                "key": key,
                "name": clean,
                "department": department or None,
                "chatbot": (await self.settings())["chatbot"],
            }
            await self._hub.store.commit(
                Batch(puts=[Put(namespace=_CUSTOMERS, key=key, value=record, expected_version=0)]), now=self.hub_now()
            )
            found = await self._hub.store.get(_CUSTOMERS, key)
            assert found is not None
            record = dict(found.value) if isinstance(found.value, dict) else record
        user = User(
            id=f"web-{key}",
            name=str(record["name"]),
            email=f"{key}@customer.example",
            details={"location": "Sandbox", "browser": "Sandbox page"},
        )
        conversation = Conversation(
            id=f"web-{key}",
            user=user,
            department_id=record.get("department"),
            bot_active=bool(record.get("chatbot")),
        )
        return conversation, record

    # -- customer side ------------------------------------------------------------------------------------

    async def customer_message(self, name: object, text: object, department: object = None) -> dict[str, Any]:
        body = _clean_text(text, "the message")
        hub = self._hub
        async with self._lock:
            conversation, _ = await self._customer(name, department)
            await hub.customer_message(conversation, Message(id=uuid.uuid4().hex, text=body))
            state = await hub.conversation(conversation.id)
            if conversation.bot_active and state is not None and not state.taken_over:
                if _HUMAN.search(body):
                    await hub.bot_message(
                        conversation, Message(id=uuid.uuid4().hex, text="Connecting you with a person…")
                    )
                    await hub.start_human_takeover(conversation)
                else:
                    answer = "I'm the sandbox bot. I can only echo: " + body[:200] + " (ask for a human any time)"
                    await hub.bot_message(conversation, Message(id=uuid.uuid4().hex, text=answer))
        return await self.customer_view(name)

    async def take_over(self, name: object) -> dict[str, Any]:
        conversation, _ = await self._customer(name)
        await self._hub.start_human_takeover(conversation)
        return await self.customer_view(name)

    async def customer_view(self, name: object) -> dict[str, Any]:
        clean = _clean_text(name, "the customer's name", 80)
        key = customer_key(clean)
        conversation_id = f"web-{key}"
        hub = self._hub
        state = await hub.conversation(conversation_id)
        doc = await hub.store.get(_CUSTOMERS, key)
        record = doc.value if doc is not None and isinstance(doc.value, dict) else {}
        entries = await hub.store.transcript(conversation_id) if state is not None else []
        messages = []
        for entry in entries:
            if entry.role == "customer":
                author = str(record.get("name", clean))
            elif entry.role == "agent":
                agent = hub.agents.get(entry.agent_id or "")
                author = agent.name if agent is not None else "Agent"
            else:
                author = "Bot"
            messages.append({"role": entry.role, "author": author, "text": entry.message.text, "id": entry.message.id})
        return {
            "name": record.get("name", clean),
            "conversation_id": conversation_id,
            "exists": state is not None,
            "status": state.status if state is not None else None,
            "chatbot": bool(state.conversation.bot_active) if state is not None else None,
            "taken_over": bool(state.taken_over) if state is not None else False,
            "messages": messages,
        }

    # -- Slack side (emulator mode) -----------------------------------------------------------------------

    def _emu(self) -> Any:
        if self.emulator is None:
            raise SandboxError("agents act in Slack itself when the sandbox bridges to a real workspace")
        return self.emulator

    def _agent_user(self, agent: object) -> str:
        if not isinstance(agent, str) or agent not in self.agent_users:
            raise SandboxError(f"unknown agent {agent!r}; choose one of {sorted(self.agent_users)}")
        return self.agent_users[agent]

    def _channel(self, channel: object) -> dict[str, Any]:
        emu = self._emu()
        if not isinstance(channel, str) or channel not in emu.channels:
            raise SandboxError(f"unknown channel {channel!r}")
        snapshot: dict[str, Any] = emu.channels[channel]
        return snapshot

    async def join(self, agent: object, channel: object, ts: object) -> dict[str, Any]:
        """The agent clicks Join on the notice card ``ts`` in ``channel``: a signed block_actions request."""
        emu = self._emu()
        user = self._agent_user(agent)
        record = self._channel(channel)
        message = next((m for m in emu.messages(record["id"]) if m["ts"] == ts), None)
        if message is None:
            raise SandboxError(f"no message {ts!r} in #{record['name']}")
        value = _join_value(message.get("blocks"))
        if value is None:
            raise SandboxError("that message has no Join button")
        if user not in record["members"]:
            emu.join(record["id"], user)  # the agent reads the notice channel
        request = emu.block_action(user, record["id"], message["ts"], JOIN_ACTION_ID, value=value)
        await self._deliver(request)
        return {"ok": True}

    async def agent_message(self, agent: object, channel: object, text: object) -> dict[str, Any]:
        """The agent writes in ``channel``; text starting with ``/`` is a slash command."""
        emu = self._emu()
        user = self._agent_user(agent)
        record = self._channel(channel)
        body = _clean_text(text, "the message")
        if body.startswith("/"):
            command, _, rest = body.partition(" ")
            request = emu.slash_command(command, user, record["id"], rest.strip())
            answer = await self._deliver(request)
            note = _ephemeral_text(answer)
            entry = {"agent": str(agent), "channel": record["id"], "text": note}
            self.notes.append(entry)
            return {"ok": True, "ephemeral": note}
        if user not in record["members"]:
            raise SandboxError(f"{agent} is not in #{record['name']}: join it first")
        if record["is_archived"]:
            raise SandboxError(f"#{record['name']} is archived")
        request = emu.post_as_user(user, record["id"], body)
        await self._deliver(request)
        return {"ok": True}

    async def _deliver(self, request: Any) -> Any:
        assert self.slack is not None
        response = await request.deliver(self.slack.handle_http)
        if response.status != 200:
            raise SandboxError(f"the app answered Slack with HTTP {response.status}")
        return response

    def slack_view(self) -> dict[str, Any]:
        """The workspace as the emulator holds it, for the page."""
        if self.emulator is None:
            return {"channels": [], "agents": []}
        agents = [
            {"id": a.id, "name": a.name, "slack_id": self.agent_users[a.id], "departments": sorted(a.department_ids)}
            for a in SEED_AGENTS
        ]
        return {"channels": self._slack_view(), "agents": agents, "notes": self.notes[-20:]}

    def _slack_view(self) -> list[dict[str, Any]]:
        emu = self.emulator
        names = {uid: a.name for a, uid in ((a, self.agent_users[a.id]) for a in SEED_AGENTS)}
        names[emu.bot_user_id] = "Sandbox app"
        channel_names = {cid: c["name"] for cid, c in emu.channels.items()}
        out = []
        for channel in emu.channels.values():
            if channel["is_general"]:
                continue
            messages = list(self._history.get(channel["id"], []))
            for m in emu.messages(channel["id"]):
                user = m.get("user") or ""
                # People by their full names; the app's posts by the name they were posted under.
                author = names[user] if m.get("bot_id") is None and user in names else m.get("author") or user or "?"
                messages.append(
                    {
                        "ts": m["ts"],
                        "author": author,
                        "text": _mrkdwn_to_text(m.get("text") or ""),
                        "from_app": m.get("bot_id") is not None,
                        "card": _card(m.get("blocks"), names, channel_names),
                        "earlier": False,
                    }
                )
            out.append(
                {
                    "id": channel["id"],
                    "name": channel["name"],
                    "is_private": channel["is_private"],
                    "is_archived": channel["is_archived"],
                    "members": channel["members"],
                    "member_names": [names.get(u, u) for u in channel["members"]],
                    "messages": messages,
                }
            )
        return out


def _join_value(blocks: object) -> str | None:
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, Mapping) and block.get("type") == "actions":
            for element in block.get("elements") or []:
                if isinstance(element, Mapping) and element.get("action_id") == JOIN_ACTION_ID:
                    value = element.get("value")
                    return str(value) if value else None
    return None


def _card(blocks: object, names: Mapping[str, str], channels: Mapping[str, str]) -> dict[str, Any] | None:
    """A Block Kit message as plain parts for the page: title, lines, fields, context, buttons."""
    if not isinstance(blocks, list) or not blocks:
        return None

    def text(node: object) -> str:
        raw = str(node.get("text", "")) if isinstance(node, Mapping) else ""
        raw = re.sub(r"<@(\w+)>", lambda m: "@" + names.get(m.group(1), m.group(1)), raw)
        raw = re.sub(r"<#(\w+)> \(#[^)]*\)", lambda m: "#" + channels.get(m.group(1), m.group(1)), raw)
        return _mrkdwn_to_text(raw).replace("*", "")

    card: dict[str, Any] = {"title": "", "lines": [], "fields": [], "context": [], "buttons": []}
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "header":
            card["title"] = text(block.get("text"))
        elif kind == "section":
            if block.get("text"):
                card["lines"].append(text(block.get("text")))
            card["fields"].extend(text(f) for f in block.get("fields") or [])
        elif kind == "context":
            card["context"].extend(text(e) for e in block.get("elements") or [])
        elif kind == "actions":
            for element in block.get("elements") or []:
                if isinstance(element, Mapping):
                    card["buttons"].append(
                        {
                            "label": text(element.get("text")),
                            "action_id": element.get("action_id"),
                            "join": element.get("action_id") == JOIN_ACTION_ID,
                            "url": element.get("url"),
                        }
                    )
    return card


def _ephemeral_text(response: Any) -> str:
    try:
        data = json.loads(response.body or b"{}")
    except ValueError:
        return ""
    return str(data.get("text", "")) if isinstance(data, dict) else ""
