"""Quickstart: a customer writes, Slack gets a channel and a notice card, an agent joins and answers.

Runs entirely on this machine against the SlackEmulator (a local Slack Web API). Run: python examples/quickstart.py
"""

from __future__ import annotations

import anyio

from norbit_connectors import Agent, AgentReply, Conversation, Message, User
from norbit_connectors.hub import Hub
from norbit_connectors.slack import JOIN_ACTION_ID, SlackConfig, SlackConnector, SlackLimiter
from norbit_connectors.store import MemoryStore
from norbit_connectors.testing._slack_emulator import SlackEmulator


async def main() -> None:
    async with SlackEmulator() as emulator:
        # The workspace: an agent, and a #support channel the app's bot is in.
        ann = emulator.add_user("ann", email="ann@support.example", real_name="Ann Agent")
        support = emulator.add_channel("support", members=[emulator.bot_user_id, ann])
        slack = SlackConnector(
            SlackConfig(
                bot_token=emulator.bot_token,
                signing_secret=emulator.signing_secret,
                main_channel=support,
                agent_links={"ann": ann},
                user_details=("email", "location"),
                base_url=emulator.base_url,
            ),
            limiter=SlackLimiter(enabled=False),  # the emulator does not rate-limit here
        )

        async def deliver(reply: AgentReply) -> None:
            print(f"\n→ to the customer, from {reply.agent.name if reply.agent else 'an agent'}: {reply.message.text}")

        hub = Hub(store=MemoryStore(), connectors=[slack], agents=[Agent(id="ann", name="Ann")], on_agent_reply=deliver)
        async with hub:
            zoe = User(id="u1", name="Zoë Smith", email="zoe@example.com", details={"location": "Oslo"})
            conversation = Conversation(id="c1", user=zoe)
            await hub.customer_message(conversation, Message(id="m1", text="Hello! My order has not arrived."))
            await hub.wait_idle()

            # Ann clicks Join on the notice card, then answers in the new channel: both are signed Slack requests.
            card = emulator.messages(support)[-1]
            click = emulator.block_action(ann, support, card["ts"], JOIN_ACTION_ID, value="c1")
            await click.deliver(slack.handle_http)
            await hub.wait_idle()
            channel = await slack.channel_for("c1")
            assert channel is not None
            answer = emulator.post_as_user(ann, channel, "Hi Zoë, I'm on it :rocket:")
            await answer.deliver(slack.handle_http)
            await hub.wait_idle()

        print("\nWhat Slack shows:")
        for info in emulator.channels.values():
            if info["is_general"]:
                continue
            print(f"\n#{info['name']} (members: {len(info['members'])})")
            for message in emulator.messages(info["id"]):
                print(f"  {message['author']}: {message['text']}")
                for block in message["blocks"] or []:
                    text = block.get("text") or {}
                    if text.get("text"):
                        print(f"      | {text['text']}")


if __name__ == "__main__":
    anyio.run(main)
