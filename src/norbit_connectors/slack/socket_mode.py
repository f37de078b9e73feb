"""Socket Mode: receive Slack's events, slash commands and interactions over a WebSocket instead of a Request URL.

The app needs Socket Mode turned on and an app-level token (``xapp-...``, scope ``connections:write``). Every
envelope takes the same path as the HTTP request it replaces (deduplication, fast acknowledgement, processing by
the hub's workers), and its answer (the ephemeral reply of ``/archive``, ...) is the payload of the ack::

    slack = SlackConnector(config)
    async with Hub(store=store, connectors=[slack], ...) as hub:
        async with SocketModeReceiver(slack, app_token="xapp-..."):
            ...  # serve until done

slack_sdk's thread-based Socket Mode client does the connection work (reconnects, ``disconnect`` requests,
ping/pong), so the receiver runs the same under asyncio and trio: each envelope hops from the client's worker
thread into the event loop that entered the receiver.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from types import TracebackType
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from .._connector import HttpResponse
from ..exceptions import ConfigurationError, NorbitError, TransportError, UsageError
from ._connector import SlackConnector
from ._transport import map_slack_error

__all__ = ["SocketModeReceiver"]

log = logging.getLogger("norbit_connectors.slack.socket_mode")


class SocketModeReceiver:
    """Feeds a :class:`SlackConnector` from Slack's Socket Mode.

    ``app_token``: the app-level token (``xapp-``, scope ``connections:write``). ``base_url``: the Web API base
    (default: the connector's ``base_url``). ``connect_timeout``: how long :meth:`start` waits for Slack's
    ``hello`` before giving up with :class:`TransportError`. ``proxy``: an HTTP proxy for the WebSocket (default:
    from the environment, as slack_sdk does).

    Use ``async with receiver:`` (connected on entry, closed on exit) or ``await receiver.run()`` in a task group
    (serves until cancelled). The hub must be running while envelopes arrive: an envelope the hub cannot take is
    not acknowledged, so Slack delivers it again, as it retries a failed HTTP request.
    """

    def __init__(
        self,
        connector: SlackConnector,
        app_token: str,
        *,
        base_url: str | None = None,
        connect_timeout: float = 10.0,
        proxy: str | None = None,
    ) -> None:
        if not isinstance(connector, SlackConnector):
            raise UsageError("SocketModeReceiver takes a SlackConnector")
        if not isinstance(app_token, str) or not app_token.startswith("xapp-"):
            raise ConfigurationError("app_token must be an app-level token starting with 'xapp-'")
        if base_url is not None and (
            not isinstance(base_url, str)
            or not base_url.startswith(("http://", "https://"))
            or not base_url.endswith("/")
        ):
            raise ConfigurationError("base_url must be an http(s) URL ending with '/', like 'https://slack.com/api/'")
        if not connect_timeout > 0:
            raise ConfigurationError("connect_timeout must be positive")
        self.connector = connector
        self._app_token = app_token
        self._base_url = base_url or connector.config.base_url
        self._connect_timeout = float(connect_timeout)
        self._proxy = proxy
        self._client: SocketModeClient | None = None
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._hello = threading.Event()
        self._state = "new"  # new -> running -> closed

    def __repr__(self) -> str:
        return f"SocketModeReceiver(base_url={self._base_url!r}, state={self._state!r})"

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open now (slack_sdk reconnects by itself when it is not)."""
        client = self._client
        return client is not None and client.is_connected()

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> SocketModeReceiver:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def run(self) -> None:
        """Connect and serve until cancelled, then close."""
        async with self:
            await anyio.sleep_forever()

    async def start(self) -> None:
        """Open the connection and wait for Slack's ``hello``."""
        if self._state != "new":
            raise UsageError("a SocketModeReceiver starts once")
        self._state = "running"
        self._token = anyio.lowlevel.current_token()
        client = SocketModeClient(
            self._app_token,
            web_client=WebClient(
                base_url=self._base_url, timeout=int(self.connector.config.timeout), retry_handlers=[]
            ),
            proxy=self._proxy,
        )
        client.message_listeners.append(self._on_message)
        client.socket_mode_request_listeners.append(self._on_request)
        self._client = client
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._connect, client)
        except BaseException:
            await self.close()
            raise

    def _connect(self, client: SocketModeClient) -> None:
        try:
            client.connect()
        except SlackApiError as exc:
            response = exc.response
            data = response.data if isinstance(response.data, dict) else {}
            raise map_slack_error("apps.connections.open", response.status_code, response.headers, data) from None
        except OSError as exc:
            raise TransportError(f"Slack apps.connections.open failed: {type(exc).__name__}", service="slack") from None
        if not self._hello.wait(self._connect_timeout):
            raise TransportError("Slack Socket Mode: no hello from the WebSocket", code="no_hello", service="slack")
        log.info("Socket Mode connected")

    async def close(self) -> None:
        """Close the connection (idempotent). Envelopes being processed finish first."""
        self._state = "closed"
        client, self._client = self._client, None
        if client is None:
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_close_client, client)

    # -- envelopes (on slack_sdk's worker threads) -------------------------------------------------------

    def _on_message(self, client: BaseSocketModeClient, message: dict[str, Any], raw: str | None) -> None:
        if message.get("type") == "hello":
            self._hello.set()

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        token = self._token
        if token is None or self._state != "running":
            return  # not acked: Slack delivers it again
        try:
            response = anyio.from_thread.run(
                self.connector.handle_socket_envelope, request.type, request.payload, token=token
            )
        except NorbitError as exc:
            log.warning("Socket Mode envelope %s (%s) not taken: %s", request.envelope_id, request.type, exc)
            return
        except Exception:
            log.exception("Socket Mode envelope %s (%s) failed", request.envelope_id, request.type)
            return
        if not 200 <= response.status < 300:
            log.warning(
                "Socket Mode envelope %s (%s) not taken: status %d", request.envelope_id, request.type, response.status
            )
            return
        client.send_socket_mode_response(
            SocketModeResponse(envelope_id=request.envelope_id, payload=ack_payload(response))
        )


def ack_payload(response: HttpResponse) -> dict[str, Any] | None:
    """The payload to ack an envelope with: the JSON object the same request over HTTP is answered with."""
    content_type = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    if not response.body or not content_type.split(";")[0].strip().lower().endswith("json"):
        return None
    try:
        data = json.loads(response.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _close_client(client: SocketModeClient) -> None:
    # slack_sdk's close() waits for a blocked socket read (up to its 3 s receive timeout) and for its message
    # queue poll (1 s): stop both first, so that closing takes milliseconds.
    client.auto_reconnect_enabled = False
    client.closed = True
    client.current_session_state.terminated = True
    session = client.current_session
    sock = session.sock if session is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    client.message_queue.put(None)
    client.close()
