"""The emulators are strict the way the platforms are: auth, required fields, error shapes, signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._telegram import TelegramEmulator

pytestmark = pytest.mark.anyio


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False)


async def test_telegram_token_methods_and_error_shape() -> None:
    with TelegramEmulator() as tg:
        async with client() as http:
            wrong = await http.post(f"{tg.base_url}/bot1:nope/getMe")
            assert (wrong.status_code, wrong.json()) == (
                401,
                {"ok": False, "error_code": 401, "description": "Unauthorized"},
            )
            unknown = await http.post(f"{tg.base_url}/bot{tg.bot_token}/sendTelepathy")
            assert unknown.json()["error_code"] == 404
            me = await http.get(f"{tg.base_url}/bot{tg.bot_token}/getMe")
            assert me.json()["result"]["is_bot"] is True
            empty = await http.post(f"{tg.base_url}/bot{tg.bot_token}/sendMessage", json={"chat_id": 1})
            assert empty.status_code == 400 and empty.json()["ok"] is False
            zoe = tg.add_customer("Zoë")
            url = f"{tg.base_url}/bot{tg.bot_token}/sendMessage"
            too_long = await http.post(url, json={"chat_id": zoe.chat_id, "text": "x" * 4097})
            assert too_long.json()["description"] == "Bad Request: message is too long"
            form = await http.post(url, data={"chat_id": str(zoe.chat_id), "text": "form encoded"})
            assert form.json()["result"]["text"] == "form encoded"
            tg.fail_next("sendMessage", 429, retry_after=4)
            limited = await http.post(url, json={"chat_id": zoe.chat_id, "text": "x"})
            assert limited.status_code == 429
            assert limited.json()["parameters"] == {"retry_after": 4}
            assert [m.text for m in tg.sent_to(zoe)] == ["form encoded"]
            files = await http.get(f"{tg.base_url}/file/bot1:nope/photos/file_0.jpg")
            assert files.status_code == 401


async def test_telegram_updates_carry_the_secret_token() -> None:
    with TelegramEmulator(secret_token="abc") as tg:
        zoe = tg.add_customer("Zoë", username="zoe", language_code="it")
        update = tg.send_text(zoe, "hi")
        assert update.headers["X-Telegram-Bot-Api-Secret-Token"] == "abc"
        message: dict[str, Any] = json.loads(update.body)["message"]
        assert message["chat"] == {"id": zoe.chat_id, "type": "private", "first_name": "Zoë", "username": "zoe"}
        assert message["from"]["language_code"] == "it"
        second = tg.send_text(zoe, "again")
        assert json.loads(second.body)["update_id"] == json.loads(update.body)["update_id"] + 1


def check_signature(emu: MetaEmulator, body: bytes, header: str) -> bool:
    expected = hmac.new(emu.app_secret.encode(), body, hashlib.sha256).hexdigest()
    return header == f"sha256={expected}"


async def test_graph_auth_and_error_shape() -> None:
    with MetaEmulator() as meta:
        url = f"{meta.base_url}/{meta.phone_number_id}/messages"
        async with client() as http:
            missing = await http.post(url, json={})
            error = missing.json()["error"]
            assert missing.status_code == 400 and error["code"] == 2500
            assert set(error) >= {"message", "type", "code", "fbtrace_id"}
            wrong = await http.post(url, json={}, headers={"Authorization": "Bearer nope"})
            assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, 190)
            auth = {"Authorization": f"Bearer {meta.access_token}"}
            no_product = await http.post(url, json={"to": "1"}, headers=auth)
            assert no_product.json()["error"]["code"] == 100
            # The page token is not the WhatsApp token, and the other way round.
            page = await http.post(url, json={}, headers={"Authorization": f"Bearer {meta.page_access_token}"})
            assert page.json()["error"]["code"] == 190
            other = await http.get(f"{meta.base_url}/nothing-here", headers=auth)
            assert other.json()["error"]["error_subcode"] == 33


async def test_whatsapp_window_templates_and_media() -> None:
    with MetaEmulator() as meta:
        meta.add_template("hello", languages=("en_US",), body_parameters=1)
        maria = meta.whatsapp_customer("Maria")
        url = f"{meta.base_url}/{meta.phone_number_id}/messages"
        auth = {"Authorization": f"Bearer {meta.access_token}"}
        base = {"messaging_product": "whatsapp", "to": maria.wa_id}
        async with client() as http:
            text = {**base, "type": "text", "text": {"body": "hi"}}
            outside = (await http.post(url, json=text, headers=auth)).json()["error"]
            assert (outside["code"], outside["message"]) == (131047, "Re-engagement message")

            def template(language: str, *params: str) -> dict[str, Any]:
                body = [{"type": "text", "text": p} for p in params]
                return {
                    **base,
                    "type": "template",
                    "template": {
                        "name": "hello",
                        "language": {"code": language},
                        "components": [{"type": "body", "parameters": body}],
                    },
                }

            assert (await http.post(url, json=template("de_DE", "x"), headers=auth)).json()["error"]["code"] == 132001
            assert (await http.post(url, json=template("en_US"), headers=auth)).json()["error"]["code"] == 132000
            bad_param = await http.post(url, json=template("en_US", "a\nb"), headers=auth)
            assert bad_param.json()["error"]["code"] == 132018
            ok = await http.post(url, json=template("en_US", "fine"), headers=auth)
            assert ok.json()["messages"][0]["id"].startswith("wamid.")
            meta.whatsapp_text(maria, "now I write")
            assert (await http.post(url, json=text, headers=auth)).status_code == 200
            upload = await http.post(
                f"{meta.base_url}/{meta.phone_number_id}/media",
                data={"messaging_product": "whatsapp", "type": "image/png"},
                files={"file": ("a.png", b"\x89PNG", "image/png")},
                headers=auth,
            )
            media_id = upload.json()["id"]
            info = (await http.get(f"{meta.base_url}/{media_id}", headers=auth)).json()
            assert info["file_size"] == 4
            assert (await http.get(info["url"])).status_code == 400  # the download needs the token too
            assert (await http.get(info["url"], headers=auth)).content == b"\x89PNG"
            both = {**base, "type": "image", "image": {"id": media_id, "link": "https://x"}}
            assert (await http.post(url, json=both, headers=auth)).json()["error"]["code"] == 100


async def test_meta_webhooks_are_signed() -> None:
    with MetaEmulator() as meta:
        maria = meta.whatsapp_customer("Maria")
        delivery = meta.whatsapp_text(maria, "hi")
        assert check_signature(meta, delivery.body, delivery.headers["X-Hub-Signature-256"])
        lea = meta.messenger_user("Lea")
        delivery = meta.messenger_text(lea, "hi")
        assert check_signature(meta, delivery.body, delivery.headers["X-Hub-Signature-256"])
        assert json.loads(delivery.body)["object"] == "page"
        assert json.loads(meta.messenger_text(meta.messenger_user("I", platform="instagram"), "x").body)["object"] == (
            "instagram"
        )


async def test_messenger_send_rules() -> None:
    with MetaEmulator() as meta:
        lea = meta.messenger_user("Lea")
        url = f"{meta.base_url}/me/messages"
        auth = {"Authorization": f"Bearer {meta.page_access_token}"}
        async with client() as http:
            body = {"recipient": {"id": lea.id}, "messaging_type": "RESPONSE", "message": {"text": "hi"}}
            outside = (await http.post(url, json=body, headers=auth)).json()["error"]
            assert (outside["code"], outside["error_subcode"]) == (10, 2018278)
            meta.messenger_text(lea, "hello")
            assert (await http.post(url, json={**body, "messaging_type": "NOPE"}, headers=auth)).status_code == 400
            tagless = {**body, "messaging_type": "MESSAGE_TAG"}
            assert (await http.post(url, json=tagless, headers=auth)).status_code == 400
            long = {**body, "message": {"text": "x" * 2001}}
            assert (await http.post(url, json=long, headers=auth)).status_code == 400
            ok = (await http.post(url, json=body, headers=auth)).json()
            assert ok["recipient_id"] == lea.id and ok["message_id"].startswith("m_")
            meta.fail_next("messages", 500)
            failed = await http.post(url, json=body, headers=auth)
            assert failed.status_code == 500 and failed.json()["error"]["code"] == 1
        (echo,) = meta.take_echoes()
        assert json.loads(echo.body)["entry"][0]["messaging"][0]["message"]["is_echo"] is True


async def test_webhooks_post_to_a_url_as_sent() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, str, dict[str, str], bytes]] = []

    class App(BaseHTTPRequestHandler):
        def answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.command, self.path, dict(self.headers.items()), body))
            self.send_response(202 if self.command == "POST" else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        with MetaEmulator() as meta:
            delivery = meta.messenger_text(meta.messenger_user("Lea"), "hi")
            result = await delivery.apost(url)
            handshake = await meta.handshake(challenge="42").apost(url)
    finally:
        server.shutdown()
        server.server_close()
    assert (result.status, result.body, handshake.status) == (202, b"ok", 200)
    (method, path, headers, body), (get, get_path, _, _) = received
    assert (method, path, body) == ("POST", "/hook", delivery.body)
    assert headers["X-Hub-Signature-256"] == delivery.headers["X-Hub-Signature-256"]
    assert get == "GET" and get_path.startswith("/hook?hub.mode=subscribe&hub.challenge=42")
