"""Socket Mode: agents answer from Slack without a public Request URL.

With SLACK_APP_TOKEN (``xapp-``, scope ``connections:write``), SLACK_BOT_TOKEN and SLACK_MAIN_CHANNEL set (no
signing secret is needed over Socket Mode), it connects to Slack and prints agents' replies until Ctrl-C.
Without SLACK_APP_TOKEN, or with ``--demo``, it runs against the local SlackEmulator: a customer writes, an
agent answers in Slack, and the agent types /archive, all delivered over a real WebSocket.

Run: python examples/socket_mode.py --demo
"""

from __future__ import annotations

import os
import sys

import anyio

from norbit_connectors import Agent, AgentReply, Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.slack.socket_mode import SocketModeReceiver
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._slack_emulator import SlackEmulator


async def show(reply: AgentReply) -> None:
    print(f"agent reply: {reply.message.text}", flush=True)


async def demo() -> None:
    # The emulator listens on 127.0.0.1: a proxy from the environment must not get in the way.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(name, None)
    async with SlackEmulator() as emulator:
        ann = emulator.add_user("ann", email="ann@support.example", real_name="Ann Agent")
        support = emulator.add_channel("support", members=[emulator.bot_user_id, ann])
        config = SlackConfig(
            bot_token=emulator.bot_token,
            signing_secret=emulator.signing_secret,
            main_channel=support,
            agent_links={"ann": ann},
            base_url=emulator.base_url,
        )
        slack = SlackConnector(config, limiter=SlackLimiter(enabled=False))
        hub = Hub(store=MemoryStore(), connectors=[slack], agents=[Agent(id="ann", name="Ann")], on_agent_reply=show)
        async with hub, SocketModeReceiver(slack, emulator.app_token):
            conversation = Conversation(id="c1", user=User(id="u1", name="Zoë Smith"))
            await hub.customer_message(conversation, Message(id="m1", text="Where is my order?"))
            await hub.wait_idle()
            channel = await slack.channel_for("c1")
            assert channel is not None
            emulator.join(channel, ann)
            # What Slack would push over the WebSocket when Ann writes, then types /archive.
            await emulator.asocket_deliver(emulator.post_as_user(ann, channel, "Hello from Slack, Zoë!"))
            await hub.wait_idle()
            answer = await emulator.asocket_deliver(emulator.slash_command("/archive", ann, channel))
            print(f"/archive answered: {(answer or {}).get('text')}", flush=True)
            await hub.wait_idle()
        print(f"channel archived: {emulator.channels[channel]['is_archived']}", flush=True)


async def serve() -> None:
    config = SlackConfig(
        bot_token=os.environ["SLACK_BOT_TOKEN"],
        main_channel=os.environ["SLACK_MAIN_CHANNEL"],
    )
    slack = SlackConnector(config)
    async with (
        Hub(store=MemoryStore(), connectors=[slack], agents=[], on_agent_reply=show),
        SocketModeReceiver(slack, os.environ["SLACK_APP_TOKEN"]),
    ):
        print("connected to Slack over Socket Mode; Ctrl-C to stop", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    if "--demo" in sys.argv[1:] or not os.environ.get("SLACK_APP_TOKEN"):
        anyio.run(demo)
    else:
        anyio.run(serve)
