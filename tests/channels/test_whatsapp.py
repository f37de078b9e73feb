from __future__ import annotations

import pytest

from norbit_connectors.channels.whatsapp import Template, WhatsAppConnector, template_parameter
from norbit_connectors.exceptions import ConfigurationError, NotFound, PermissionDenied, RateLimited
from norbit_connectors.testing._meta import MetaEmulator

from .conftest import Clock, Workspace
from .test_conformance import whatsapp_config

pytestmark = pytest.mark.anyio

DAY = 24 * 3600.0
TEMPLATE = Template(name="new_reply", languages=("en_US", "de_DE"), parameters=("{text}",))


def connector(emu: MetaEmulator, **kw: object) -> WhatsAppConnector:
    emu.add_template("new_reply", languages=("en_US", "de_DE"), body_parameters=1)
    return WhatsAppConnector(whatsapp_config(emu, **{"fallback_template": TEMPLATE, **kw}))


async def test_customer_to_slack_reply_back_and_template_after_24_hours(workspace: Workspace) -> None:
    clock = Clock()
    with MetaEmulator(clock=clock) as meta:
        whatsapp = connector(meta, department_id="sales")
        hub, slack = workspace.hub(whatsapp, clock=clock)
        maria = meta.whatsapp_customer("Maria Rossi")
        conversation_id = f"whatsapp:{maria.wa_id}"
        async with hub:
            assert (await meta.whatsapp_text(maria, "Ciao, help please").deliver(whatsapp.handle_http)).status == 200
            await hub.wait_idle()
            state = await hub.conversation(conversation_id)
            assert state is not None
            assert (state.conversation.source, state.conversation.department_id) == ("whatsapp", "sales")
            assert state.conversation.user.name == "Maria Rossi"
            channel = await slack.channel_for(conversation_id)
            assert channel is not None
            assert [m["text"] for m in workspace.emu.messages(channel)] == ["Ciao, help please"]

            await workspace.agent_answers(slack, conversation_id, "Hi Maria!")
            await hub.wait_idle()
            clock.now += DAY + 3600
            await workspace.agent_answers(slack, conversation_id, "Any news?\nWe are here.")
            await hub.wait_idle()
            assert await hub.dead_letters() == []
    sent = meta.sent_to(maria)
    assert [m.type for m in sent] == ["text", "template"]
    assert sent[0].text == "Hi Maria!"
    template = sent[1].body["template"]
    assert template["name"] == "new_reply"
    assert template["language"] == {"code": "en_US"}
    assert template["components"][0]["parameters"] == [{"type": "text", "text": "Any news? We are here."}]
    assert [r.message.text for r in workspace.replies] == ["Hi Maria!", "Any news?\nWe are here."]


async def test_re_engagement_error_falls_back_to_the_template(workspace: Workspace) -> None:
    hub_clock = Clock()
    platform_clock = Clock()
    with MetaEmulator(clock=platform_clock) as meta:
        whatsapp = connector(meta)
        hub, slack = workspace.hub(whatsapp, clock=hub_clock)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            await meta.whatsapp_text(maria, "hello").deliver(whatsapp.handle_http)
            await hub.wait_idle()
            platform_clock.now += 2 * DAY  # WhatsApp's window closed; ours still looks open
            await workspace.agent_answers(slack, f"whatsapp:{maria.wa_id}", "late answer")
            await hub.wait_idle()
            assert await hub.dead_letters() == []
    assert [m.type for m in meta.sent_to(maria)] == ["template"]


async def test_without_a_template_the_reply_is_parked_with_the_reason(workspace: Workspace) -> None:
    clock = Clock()
    with MetaEmulator(clock=clock) as meta:
        whatsapp = WhatsAppConnector(whatsapp_config(meta))
        hub, slack = workspace.hub(whatsapp, clock=clock)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            await meta.whatsapp_text(maria, "hello").deliver(whatsapp.handle_http)
            await hub.wait_idle()
            clock.now += 2 * DAY
            await workspace.agent_answers(slack, f"whatsapp:{maria.wa_id}", "late answer")
            await hub.wait_idle()
            dead = await hub.dead_letters()
    assert len(dead) == 1
    assert dead[0].connector == "whatsapp" and "fallback_template" in dead[0].reason
    assert meta.sent_to(maria) == []


async def test_template_language_follows_the_customer() -> None:
    assert TEMPLATE.language_for("de") == "de_DE"
    assert TEMPLATE.language_for("de-DE") == "de_DE"
    assert TEMPLATE.language_for("fr") == "en_US"
    assert TEMPLATE.language_for(None) == "en_US"
    assert template_parameter("a\n\tb     c") == "a b   c"
    assert template_parameter("\n") == "-"
    assert len(template_parameter("x" * 5000)) == 1024
    with pytest.raises(ConfigurationError):
        Template(name="", languages=())


async def test_subscription_handshake(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = connector(meta)
        hub, _ = workspace.hub(whatsapp)
        async with hub:
            ok = await meta.handshake(challenge="12345").deliver(whatsapp.handle_http)
            assert (ok.status, ok.body) == (200, b"12345")
            wrong = await meta.handshake(verify_token="nope").deliver(whatsapp.handle_http)
            assert wrong.status == 403
            missing = await whatsapp.handle_http({}, b"", method="GET", query="hub.challenge=1")
            assert missing.status == 400
            assert (await whatsapp.handle_http({}, b"", method="PUT")).status == 405


async def test_media_in_and_out(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = connector(meta)
        hub, slack = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        picture = b"\xff\xd8\xff picture"
        async with hub:
            await meta.whatsapp_media(maria, picture, caption="look").deliver(whatsapp.handle_http)
            document = meta.whatsapp_media(
                maria, b"%PDF doc", kind="document", mime_type="application/pdf", filename="bill.pdf"
            )
            await document.deliver(whatsapp.handle_http)
            await hub.wait_idle()
            conversation_id = f"whatsapp:{maria.wa_id}"
            transcript = await hub.store.transcript(conversation_id)
            files = [("shot.png", b"\x89PNG", "image/png"), ("notes.txt", b"notes", "text/plain")]
            await workspace.agent_answers(slack, conversation_id, "thanks", files=files)
            await hub.wait_idle()
            assert await hub.dead_letters() == []
    assert [e.message.text for e in transcript] == ["look", ""]
    assert transcript[0].message.attachments[0].content == picture
    attachment = transcript[1].message.attachments[0]
    assert (attachment.name, attachment.content, attachment.content_type) == (
        "bill.pdf",
        b"%PDF doc",
        "application/pdf",
    )
    sent = meta.sent_to(maria)
    assert [m.type for m in sent] == ["text", "image", "document"]
    image_id = sent[1].body["image"]["id"]
    assert meta.media_content(image_id) == b"\x89PNG"
    assert sent[2].body["document"]["filename"] == "notes.txt"
    assert meta.media_content(sent[2].body["document"]["id"]) == b"notes"


async def test_large_media_arrives_as_a_name(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = connector(meta, max_file_bytes=10)
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            await meta.whatsapp_media(maria, b"x" * 100, caption="big").deliver(whatsapp.handle_http)
            await hub.wait_idle()
            transcript = await hub.store.transcript(f"whatsapp:{maria.wa_id}")
    (attachment,) = transcript[0].message.attachments
    assert attachment.content is None and attachment.name.startswith("image-")
    assert transcript[0].message.text == "big\n[image: not fetched (larger than 10 bytes)]"


async def test_statuses_and_other_numbers_are_acknowledged_and_ignored(workspace: Workspace) -> None:
    with MetaEmulator() as meta:
        whatsapp = connector(meta)
        hub, _ = workspace.hub(whatsapp)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            for status in ("sent", "delivered", "read"):
                assert (await meta.whatsapp_status("wamid.x", status).deliver(whatsapp.handle_http)).status == 200
            failed = meta.whatsapp_status("wamid.x", "failed", error_code=131047)
            assert (await failed.deliver(whatsapp.handle_http)).status == 200
            other = meta.whatsapp_text(maria, "to another number")
            payload = other.payload
            payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
            assert (await meta.signed(payload).deliver(whatsapp.handle_http)).status == 200
            await hub.wait_idle()
            assert await hub.conversation(f"whatsapp:{maria.wa_id}") is None


async def test_graph_errors_are_mapped() -> None:
    with MetaEmulator() as meta:
        whatsapp = connector(meta)
        maria = meta.whatsapp_customer("Maria")
        path = f"{meta.phone_number_id}/messages"
        body = {"messaging_product": "whatsapp", "to": maria.wa_id, "type": "text", "text": {"body": "x"}}
        meta.fail_next("messages", 429, retry_after=3)
        with pytest.raises(RateLimited) as limited:
            await whatsapp.call("messages", "POST", path, json=body)
        assert limited.value.retry_after == 3
        with pytest.raises(NotFound):
            await whatsapp.call("messages", "POST", path, json={**body, "to": "123"})
        wrong = WhatsAppConnector(whatsapp_config(meta, access_token="EAAwrong-secret"))
        with pytest.raises(PermissionDenied) as denied:
            await wrong.call("messages", "POST", path, json=body)
        assert "EAAwrong-secret" not in str(denied.value)
        assert "wrong-secret" not in repr(wrong.config)


async def test_re_engagement_failure_reported_later_falls_back_to_the_template(workspace: Workspace) -> None:
    hub_clock = Clock()
    platform_clock = Clock()
    with MetaEmulator(clock=platform_clock, window_errors="status") as meta:
        whatsapp = connector(meta)
        hub, slack = workspace.hub(whatsapp, clock=hub_clock)
        maria = meta.whatsapp_customer("Maria")
        async with hub:
            await meta.whatsapp_text(maria, "hello").deliver(whatsapp.handle_http)
            await hub.wait_idle()
            platform_clock.now += 2 * DAY
            await workspace.agent_answers(slack, f"whatsapp:{maria.wa_id}", "late answer")
            await hub.wait_idle()
            (failed,) = meta.take_statuses()
            for _ in range(2):  # a repeated status delivery sends one template
                assert (await failed.deliver(whatsapp.handle_http)).status == 200
            await hub.wait_idle()
            (template_status,) = meta.take_statuses()
            assert (await template_status.deliver(whatsapp.handle_http)).status == 200
            await hub.wait_idle()
            assert await hub.dead_letters() == []
    sent = meta.sent_to(maria)
    assert [(m.type, m.delivered) for m in sent] == [("text", False), ("template", True)]
    assert sent[1].body["template"]["components"][0]["parameters"][0]["text"] == "late answer"
