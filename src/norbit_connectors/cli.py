"""``norbit-connectors``: the Slack app manifest, a configuration check and a local sandbox.

norbit-connectors manifest [--name NAME] [--request-url URL] [--socket-mode] [--json]
norbit-connectors doctor [--request-url URL]
norbit-connectors sandbox [--port 0] [--data PATH] [--no-open] [--allow-host NAME[:PORT] ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import anyio

from ._doctor import DoctorSettings, run_doctor
from ._manifest import DEFAULT_REQUEST_URL, AppManifest, manifest_json, manifest_yaml
from .exceptions import ConfigurationError, NorbitError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="norbit-connectors", description="Customer conversations as Slack channels: setup and sandbox."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    manifest = commands.add_parser("manifest", help="print the Slack app manifest (paste it at api.slack.com/apps)")
    manifest.add_argument("--name", default="Norbit Support", help="the app's name in Slack")
    manifest.add_argument(
        "--request-url",
        default=DEFAULT_REQUEST_URL,
        help="where Slack sends events, slash commands and button clicks (your app's /slack/events)",
    )
    manifest.add_argument("--socket-mode", action="store_true", help="Socket Mode instead of a Request URL")
    manifest.add_argument("--json", action="store_true", help="JSON instead of YAML")

    doctor = commands.add_parser(
        "doctor",
        help="check the Slack configuration in SLACK_* environment variables",
        description="Reads SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, SLACK_MAIN_CHANNEL and optionally "
        "SLACK_USER_TOKEN, SLACK_DEPARTMENT_CHANNELS ('sales=C1,billing=C2') and SLACK_BASE_URL.",
    )
    doctor.add_argument("--request-url", default=None, help="also check that this Request URL answers Slack")

    sandbox = commands.add_parser("sandbox", help="a local page: a customer chat beside an emulated Slack")
    sandbox.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    sandbox.add_argument("--data", default="norbit-sandbox.sqlite3", help="the SQLite file (kept across runs)")
    sandbox.add_argument("--no-open", action="store_true", help="do not open a browser")
    sandbox.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="also answer requests addressed to this name (a reverse proxy, a forwarded or mapped port); "
        "repeatable, and added to NORBIT_SANDBOX_ALLOWED_HOSTS (names separated by commas)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "manifest":
            manifest = AppManifest(name=args.name, request_url=args.request_url, socket_mode=args.socket_mode)
            sys.stdout.write(manifest_json(manifest) if args.json else manifest_yaml(manifest))
            return 0
        if args.command == "doctor":
            settings = DoctorSettings.from_env(os.environ, request_url=args.request_url)
            report = anyio.run(run_doctor, settings)
            sys.stdout.write(report.render())
            return 0 if report.ok else 1
        if args.command == "sandbox":
            from .sandbox import run_sandbox

            return run_sandbox(
                port=args.port,
                data=args.data,
                open_browser=not args.no_open,
                environ=os.environ,
                allowed_hosts=args.allow_host,
            )
    except ConfigurationError as exc:
        sys.stderr.write(f"norbit-connectors: {exc}\n")
        return 2
    except NorbitError as exc:
        sys.stderr.write(f"norbit-connectors: {exc}\n")
        return 1
    raise AssertionError(f"unhandled command {args.command!r}")  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
