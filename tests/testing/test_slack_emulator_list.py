"""conversations.list: what a token can see, as Slack lists it."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from norbit_connectors.testing import SlackEmulator


def test_private_channels_are_listed_to_members_only() -> None:
    with SlackEmulator() as emu:
        ann = emu.add_user("ann")
        emu.add_channel("open-one")
        mine = emu.add_channel("secret-mine", is_private=True, members=[emu.bot_user_id])
        emu.add_channel("secret-other", is_private=True, members=[ann])
        archived = emu.add_channel("old-one", members=[emu.bot_user_id])
        client = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        client.conversations_archive(channel=archived)

        private = client.conversations_list(types="private_channel")["channels"]
        public = client.conversations_list(exclude_archived=True)["channels"]
        everything = client.conversations_list(types="public_channel,private_channel")["channels"]

        assert [c["id"] for c in private] == [mine]
        assert "old-one" not in {c["name"] for c in public}
        assert "open-one" in {c["name"] for c in public}
        assert {"secret-mine", "old-one", "open-one"} <= {c["name"] for c in everything}
        assert "secret-other" not in {c["name"] for c in everything}
        with pytest.raises(SlackApiError) as info:
            client.conversations_list(types="nonsense")
        assert info.value.response["error"] == "invalid_types"


def test_listing_needs_the_read_scope() -> None:
    with SlackEmulator(bot_scopes={"chat:write", "channels:read"}) as emu:
        client = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        assert client.conversations_list()["ok"]
        with pytest.raises(SlackApiError) as info:
            client.conversations_list(types="private_channel")
        assert info.value.response["error"] == "missing_scope"
        assert info.value.response["needed"] == "groups:read"


def test_granted_scopes_are_reported_in_a_header() -> None:
    with SlackEmulator(bot_scopes={"chat:write", "channels:read"}) as emu:
        client = WebClient(token=emu.bot_token, base_url=emu.base_url, retry_handlers=[])
        response = client.auth_test()
        headers = {k.lower(): v for k, v in response.headers.items()}
        assert headers["x-oauth-scopes"] == "channels:read,chat:write"
