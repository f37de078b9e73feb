"""Hub processes for the reliability tests: start, command, kill (see _hub_child.py for the protocol)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from norbit_connectors.testing._slack_emulator import SlackEmulator

CHILD = Path(__file__).with_name("_hub_child.py")
# A guard against a hung child, never an assertion on speed: a healthy step takes well under a second or two.
STEP_TIMEOUT = 120.0


class ChildFailed(AssertionError):
    pass


class Child:
    """One hub process."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()
        ready = self.read("ready")
        self.port: int | None = ready["port"]
        self.pid: int = ready["pid"]

    @staticmethod
    def _pump(stream: IO[str], put: Any) -> None:
        for line in stream:
            put(line)
        put(None)

    def send(self, op: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()

    def read(self, op: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=STEP_TIMEOUT)
        except queue.Empty:
            raise ChildFailed(f"no {op!r} from the hub process in {STEP_TIMEOUT}s:\n{self.errors()}") from None
        if line is None:
            self.proc.wait()
            raise ChildFailed(f"the hub process exited ({self.proc.returncode}) before {op!r}:\n{self.errors()}")
        answer: dict[str, Any] = json.loads(line)
        if answer.get("op") != op:
            raise ChildFailed(f"expected {op!r}, got {answer!r}")
        return answer

    def errors(self) -> str:
        return "".join(self.stderr)[-6000:]

    def call(self, op: str, answer: str, **fields: Any) -> dict[str, Any]:
        self.send(op, **fields)
        return self.read(answer)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs in the hub process."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send("stop")
            self.read("stopped")
            self.proc.wait(timeout=STEP_TIMEOUT)
        assert self.proc.returncode == 0, self.errors()


@contextmanager
def children(*specs: tuple[Sequence[str], Mapping[str, str]]) -> Iterator[list[Child]]:
    """Start hub processes (in parallel); kill whatever is still running on the way out."""
    started: list[Child] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def start(args: Sequence[str], env: Mapping[str, str]) -> None:
        try:
            child = Child(args, env)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            started.append(child)

    threads = [threading.Thread(target=start, args=spec) for spec in specs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        if errors:
            raise errors[0]
        yield sorted(started, key=lambda c: c.pid)
    finally:
        for child in started:
            child.kill()


def slack_env(emu: SlackEmulator, main_channel: str, agent_links: Mapping[str, str] | None = None) -> dict[str, str]:
    settings = {
        "base_url": emu.base_url,
        "bot_token": emu.bot_token,
        "signing_secret": emu.signing_secret,
        "main_channel": main_channel,
        "agent_links": dict(agent_links or {}),
    }
    return {"NORBIT_CHILD_SLACK": json.dumps(settings)}


def message(conversation: str, user: str, index: int) -> dict[str, str]:
    return {
        "conversation": conversation,
        "user": user,
        "name": f"Customer {user}",
        "message": f"{conversation}-m{index}",
        "text": f"message {index} of {conversation}",
    }


def relayed(emu: SlackEmulator) -> dict[str, list[str]]:
    """Conversation id -> the message ids posted for it in Slack, in channel order (from the message metadata)."""
    posted: dict[str, list[str]] = {}
    for channel in emu.channels:
        for item in emu.messages(channel):
            payload = (item.get("metadata") or {}).get("event_payload") or {}
            if "message_id" in payload:
                posted.setdefault(str(payload["conversation_id"]), []).append(str(payload["message_id"]))
    return posted


def expected(conversations: Iterable[str], per_conversation: int) -> dict[str, list[str]]:
    return {c: [f"{c}-m{i}" for i in range(per_conversation)] for c in conversations}
