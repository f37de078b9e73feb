"""``norbit-connectors sandbox``: a customer chat beside Slack, driven by the real hub, on one local page."""

from __future__ import annotations

import sys
import webbrowser
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..exceptions import ConfigurationError
from ._app import SEED_AGENTS, SEED_DEPARTMENTS, SandboxApp, SandboxError
from ._hosts import parse_allowed_host, parse_allowed_hosts
from ._server import SandboxServer, slack_config_from_env

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "SEED_AGENTS",
    "SEED_DEPARTMENTS",
    "SandboxApp",
    "SandboxError",
    "SandboxServer",
    "run_sandbox",
    "slack_config_from_env",
]

ALLOWED_HOSTS_ENV = "NORBIT_SANDBOX_ALLOWED_HOSTS"


def run_sandbox(
    *,
    port: int = 0,
    data: str = "norbit-sandbox.sqlite3",
    open_browser: bool = True,
    environ: Mapping[str, str],
    allowed_hosts: Sequence[str] = (),
) -> int:
    """Serve the sandbox until Ctrl-C; returns the exit status. ``allowed_hosts`` (``NAME`` or ``NAME:PORT``) and
    the names in ``NORBIT_SANDBOX_ALLOWED_HOSTS`` (separated by commas) are answered besides the loopback ones."""
    if isinstance(allowed_hosts, str):
        raise ConfigurationError("allowed_hosts is a list of names, not one name")
    given = (parse_allowed_host(name) for name in allowed_hosts)
    names = tuple(dict.fromkeys((*given, *parse_allowed_hosts(environ.get(ALLOWED_HOSTS_ENV, "")))))
    config = slack_config_from_env(environ)
    server = SandboxServer(data=str(Path(data)), port=port, slack_config=config, allowed_hosts=names)
    server.start(serve_in_thread=False)
    out = sys.stdout
    out.write(f"norbit sandbox on {server.url}  (data: {Path(data).resolve()})\n")
    if names:
        out.write(f"Also answering as: {', '.join(names)}\n")
    if config is not None:
        out.write(
            "Bridging to your Slack workspace. Set the app's Request URL (events, slash commands, interactivity)\n"
            f"to a public URL for {server.url}slack/events (a tunnel in development).\n"
        )
    else:
        out.write(
            "Slack is emulated here; set SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET and SLACK_MAIN_CHANNEL to bridge.\n"
        )
    out.write("Press Ctrl-C to stop.\n")
    out.flush()
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        out.write("\nStopping...\n")
    finally:
        server.close()
    return 0
