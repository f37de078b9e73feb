"""The Slack emulator in a process of its own, for benchmarks that compare clients of it.

Slack is a remote service: a client's figures should not include the cost of serving its requests. With the
emulator's ``ThreadingHTTPServer`` in the benchmark's own process, every request it serves holds the same GIL as
the client under test, and a client that keeps several requests in flight (the hub's workers) is charged for the
server's work more than one that waits for each answer (a sequential loop). In a child process the server runs
on its own interpreter, as a remote Slack would, and both sides of a comparison use it the same way.

The parent talks to the child over its stdin/stdout, one JSON object a line: the child first writes what a
client needs (``base_url``, tokens, the signing secret, the bot's user id, the id of the ``support`` channel the
bot is a member of), then answers control requests until it is told to stop or its stdin closes:

``{"op": "calls", "method": "chat.postMessage"}``
    -> ``{"count": <calls made to the method so far>}``
``{"op": "messages", "channels": [...], "prefix": "..."}``
    -> ``{"count": <messages in those channels whose text starts with prefix>, "distinct": <distinct such texts>}``
``{"op": "latency", "seconds": 0.05, "method": "chat.postMessage"}``
    -> ``{"ok": true}``; from then on the emulator answers every call of the method ``seconds`` late (0: at once),
    as a remote Slack does
``{"op": "stop"}``
    -> the child exits.

Control requests are made only outside the timed parts of a benchmark.

Usage::

    with EmulatorProcess() as emu:
        client = WebClient(token=emu.bot_token, base_url=emu.base_url)
        ...
        emu.calls_to("chat.postMessage")
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any

__all__ = ["EmulatorProcess"]


class EmulatorProcess:
    """A :class:`~norbit_connectors.testing._slack_emulator.SlackEmulator` (rate limits off) in a child process."""

    def __init__(self, *, rate_limits: str = "off") -> None:
        self._rate_limits = rate_limits
        self._process: subprocess.Popen[str] | None = None
        self._info: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<EmulatorProcess {self._info.get('base_url', 'not started')}>"

    def start(self) -> EmulatorProcess:
        if self._process is not None:
            return self
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench._emulator_process", self._rate_limits],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._info = self._read()
        return self

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps({"op": "stop"}) + "\n")
            process.stdin.close()
        except OSError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what a client needs ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return str(self._info["base_url"])

    @property
    def bot_token(self) -> str:
        return str(self._info["bot_token"])

    @property
    def signing_secret(self) -> str:
        return str(self._info["signing_secret"])

    @property
    def bot_user_id(self) -> str:
        return str(self._info["bot_user_id"])

    @property
    def main_channel(self) -> str:
        """The ``support`` channel, with the bot as a member."""
        return str(self._info["main_channel"])

    # -- control ---------------------------------------------------------------------------------------------

    def calls_to(self, method: str) -> int:
        """How many calls to ``method`` the emulator has served."""
        return int(self._ask({"op": "calls", "method": method})["count"])

    def set_latency(self, seconds: float, *, method: str = "chat.postMessage") -> None:
        """Answer every call of ``method`` ``seconds`` late from now on (0 turns it off)."""
        self._ask({"op": "latency", "seconds": seconds, "method": method})

    def messages_with_prefix(self, channels: Sequence[str], prefix: str) -> tuple[int, int]:
        """(messages, distinct texts) in ``channels`` whose text starts with ``prefix``."""
        answer = self._ask({"op": "messages", "channels": list(channels), "prefix": prefix})
        return int(answer["count"]), int(answer["distinct"])

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        if process is None or process.stdin is None:
            raise RuntimeError("the emulator process is not running")
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process ended (exit code {self._process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"emulator process: {answer['error']}")
        return answer


def _serve(rate_limits: str, commands: IO[str], out: IO[str]) -> None:
    from norbit_connectors.testing._slack_emulator import SlackEmulator

    def say(answer: dict[str, Any]) -> None:
        out.write(json.dumps(answer) + "\n")
        out.flush()

    with SlackEmulator(rate_limits=rate_limits) as emu:  # type: ignore[arg-type]
        main = emu.add_channel("support", members=[emu.bot_user_id])
        say(
            {
                "base_url": emu.base_url,
                "bot_token": emu.bot_token,
                "signing_secret": emu.signing_secret,
                "bot_user_id": emu.bot_user_id,
                "main_channel": main,
            }
        )
        for line in commands:
            try:
                request = json.loads(line)
                op = request.get("op")
                if op == "stop":
                    return
                if op == "calls":
                    say({"count": len(emu.calls_to(str(request["method"])))})
                elif op == "latency":
                    seconds = float(request["seconds"])
                    if seconds > 0:
                        emu.faults(1.0, ("latency",), methods=[str(request["method"])], delay=seconds)
                    else:
                        emu.clear_faults()
                    say({"ok": True})
                elif op == "messages":
                    prefix = str(request["prefix"])
                    texts = [
                        str(m["text"])
                        for c in request["channels"]
                        for m in emu.messages(str(c))
                        if str(m["text"] or "").startswith(prefix)
                    ]
                    say({"count": len(texts), "distinct": len(set(texts))})
                else:
                    say({"error": f"unknown op {op!r}"})
            except Exception as exc:  # a bad request must not take the emulator down mid-benchmark
                say({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    _serve(sys.argv[1] if len(sys.argv) > 1 else "off", sys.stdin, sys.stdout)
