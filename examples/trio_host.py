"""A trio host: the hub runs on trio exactly as on asyncio (the library is written on anyio).

A customer writes, the hub opens a Slack channel and relays the message; an agent answers in Slack, the signed
event reaches ``slack.handle_http`` (what the host's trio web server would call for the Request URL) and the
answer comes back through ``on_agent_reply``. Runs against the local SlackEmulator.

Run: python examples/trio_host.py (``--demo`` is accepted too: it always runs against the emulator)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from norbit_connectors import AgentReply, Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.store import SQLiteStore
from norbit_connectors.testing._slack_emulator import SlackEmulator


async def main() -> None:
    replies: list[AgentReply] = []
    answered = trio.Event()

    async def on_agent_reply(reply: AgentReply) -> None:
        replies.append(reply)
        answered.set()

    with tempfile.TemporaryDirectory() as tmp, SlackEmulator() as emulator:
        ann = emulator.add_user("ann", real_name="Ann Agent")
        support = emulator.add_channel("support", members=[emulator.bot_user_id, ann])
        config = SlackConfig(
            bot_token=emulator.bot_token,
            signing_secret=emulator.signing_secret,
            main_channel=support,
            base_url=emulator.base_url,
        )
        slack = SlackConnector(config, limiter=SlackLimiter(enabled=False))
        hub = Hub(store=SQLiteStore(Path(tmp) / "norbit.sqlite3"), connectors=[slack], on_agent_reply=on_agent_reply)
        async with hub:
            conversation = Conversation(id="c1", user=User(id="u1", name="Zoë Smith"))
            await hub.customer_message(conversation, Message(id="m1", text="Hello from a trio host!"))
            await hub.wait_idle()
            channel = await slack.channel_for("c1")
            assert channel is not None
            print(f"Slack channel #{emulator.channels[channel]['name']}: {emulator.messages(channel)[-1]['text']}")

            emulator.join(channel, ann)
            response = await emulator.post_as_user(ann, channel, "Hi Zoë, answered on trio.").deliver(slack.handle_http)
            print(f"handle_http answered {response.status}")
            with trio.fail_after(30):
                await answered.wait()
        print(f"agent reply (on trio): {replies[0].message.text}")


if __name__ == "__main__":
    trio.run(main)
