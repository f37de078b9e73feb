"""Cleaning a webhook's odd characters never makes two ids one: an id that cleaning would change becomes a digest
of its raw value, so that a second message is not taken for a duplicate of the first."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from norbit_connectors.channels._http import json_object
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._slack_emulator import SlackEmulator

from ..channels.conftest import Workspace
from ..channels.test_conformance import whatsapp_config


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator(rate_limits="off") as emulator:
        yield Workspace(emulator)


@pytest.mark.anyio
async def test_ids_differing_only_in_odd_characters_stay_two_messages(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            for index, odd in enumerate(["\ud800", "\udfff", "\x00", "\x85"]):
                payload = meta.whatsapp_text(maria, f"message {index}").payload
                payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.{odd}"
                assert (await meta.signed(payload).deliver(whatsapp.handle_http)).status == 200
            with anyio.fail_after(30):
                await hub.wait_idle()
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    assert [e.message.text for e in transcript] == [f"message {i}" for i in range(4)]
    assert len({e.message.id for e in transcript}) == 4


odd_text = st.text(
    alphabet=st.one_of(st.sampled_from("\ud800\udfff\x00\x85\x7fa"), st.characters(exclude_categories=())),
    max_size=8,
)


@given(odd_text, odd_text)
@example("wamid.\ud800", "wamid.\udfff")
def test_distinct_ids_stay_distinct_after_cleaning(first: str, second: str) -> None:
    for ensure_ascii in (True, False):
        bodies = [
            json.dumps({"id": value, "text": value}, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
            for value in (first, second)
        ]
        cleaned = [json_object(body) for body in bodies]
        assert (cleaned[0]["id"] == cleaned[1]["id"]) == (first == second)
        for data in cleaned:
            data["id"].encode("utf-8")  # storable
            data["text"].encode("utf-8")
