"""``norbit-connectors sandbox``: a customer chat beside Slack, driven by the real hub, on one local page."""

from __future__ import annotations

import sys
import webbrowser
from collections.abc import Mapping
from pathlib import Path

from ._app import SEED_AGENTS, SEED_DEPARTMENTS, SandboxApp, SandboxError
from ._server import SandboxServer, slack_config_from_env

__all__ = [
    "SEED_AGENTS",
    "SEED_DEPARTMENTS",
    "SandboxApp",
    "SandboxError",
    "SandboxServer",
    "run_sandbox",
    "slack_config_from_env",
]


def run_sandbox(
    *, port: int = 0, data: str = "norbit-sandbox.sqlite3", open_browser: bool = True, environ: Mapping[str, str]
) -> int:
    """Serve the sandbox until Ctrl-C; returns the exit status."""
    config = slack_config_from_env(environ)
    server = SandboxServer(data=str(Path(data)), port=port, slack_config=config)
    server.start(serve_in_thread=False)
    out = sys.stdout
    out.write(f"norbit sandbox on {server.url}  (data: {Path(data).resolve()})\n")
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
