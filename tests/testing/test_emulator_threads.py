"""The emulators' request threads carry their server's name, so a test looking for threads its own code left
behind can tell the emulator's (which may still be closing a connection) from those."""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest

from norbit_connectors.testing import SlackEmulator
from norbit_connectors.testing._meta import MetaEmulator
from norbit_connectors.testing._telegram import TelegramEmulator


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (SlackEmulator, "slack-emulator request"),
        (TelegramEmulator, "telegram-emulator request"),
        (MetaEmulator, "meta-emulator request"),
    ],
)
def test_a_request_is_served_by_a_named_thread(make: Callable[[], Any], name: str) -> None:
    with make() as emu:
        url = urllib.parse.urlsplit(emu.base_url)
        assert url.hostname is not None and url.port is not None
        before = set(threading.enumerate())
        # A request line that never ends keeps its handler thread waiting for the rest.
        with socket.create_connection((url.hostname, url.port)) as held:
            held.sendall(b"POST /api/auth.te")
            deadline = time.monotonic() + 5.0
            while True:
                started = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
                if name in started or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        assert name in started
        assert not [n for n in started if "process_request_thread" in n]
