from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors._doctor import DoctorReport, DoctorSettings, parse_department_channels, run_doctor
from norbit_connectors._manifest import BOT_SCOPES
from norbit_connectors.cli import main
from norbit_connectors.exceptions import ConfigurationError, InvalidRequest
from norbit_connectors.slack._signature import verify_signature
from norbit_connectors.testing._slack_emulator import SlackEmulator


class Workspace:
    def __init__(self, emulator: SlackEmulator) -> None:
        self.emu = emulator
        self.main = emulator.add_channel("support", members=[emulator.bot_user_id])
        self.sales = emulator.add_channel("sales", is_private=True, members=[emulator.bot_user_id])
        self.elsewhere = emulator.add_channel("random")

    def settings(self, **overrides: object) -> DoctorSettings:
        values: dict[str, object] = {
            "bot_token": self.emu.bot_token,
            "signing_secret": self.emu.signing_secret,
            "main_channel": self.main,
            "department_channels": {"sales": self.sales},
            "base_url": self.emu.base_url,
        }
        values.update(overrides)
        return DoctorSettings(**values)  # type: ignore[arg-type]

    def environ(self) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": self.emu.bot_token,
            "SLACK_SIGNING_SECRET": self.emu.signing_secret,
            "SLACK_MAIN_CHANNEL": self.main,
            "SLACK_DEPARTMENT_CHANNELS": f"sales={self.sales}",
            "SLACK_BASE_URL": self.emu.base_url,
        }


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with SlackEmulator() as emulator:
        yield Workspace(emulator)


def failed(report: DoctorReport) -> dict[str, str]:
    return {check.name: f"{check.detail} | {check.fix}" for check in report.failed()}


@pytest.mark.anyio
async def test_good_configuration_passes(workspace: Workspace) -> None:
    report = await run_doctor(workspace.settings(user_token=workspace.emu.user_token))
    assert report.ok, report.render()
    names = [check.name for check in report.checks]
    assert names == [
        "Signing secret",
        "Bot token",
        "Bot scopes",
        "Main channel",
        "Channel of department 'sales'",
        "User token",
        "User scopes",
    ]
    assert "✗" not in report.render()


@pytest.mark.anyio
async def test_missing_scopes_are_named(workspace: Workspace) -> None:
    with SlackEmulator(bot_scopes=set(BOT_SCOPES) - {"chat:write", "files:read"}) as emu:
        main_channel = emu.add_channel("support", members=[emu.bot_user_id])
        settings = DoctorSettings(
            bot_token=emu.bot_token, signing_secret=emu.signing_secret, main_channel=main_channel, base_url=emu.base_url
        )
        report = await run_doctor(settings)
    assert not report.ok
    problems = failed(report)
    assert list(problems) == ["Bot scopes"]
    assert problems["Bot scopes"].startswith("missing chat:write, files:read |")
    assert "reinstall" in problems["Bot scopes"]


@pytest.mark.anyio
async def test_bot_not_in_main_channel(workspace: Workspace) -> None:
    report = await run_doctor(workspace.settings(main_channel=workspace.elsewhere))
    problems = failed(report)
    assert list(problems) == ["Main channel"]
    assert "the bot is not a member of #random" in problems["Main channel"]
    assert "/invite" in problems["Main channel"]


@pytest.mark.anyio
async def test_private_channel_without_the_bot(workspace: Workspace) -> None:
    hidden = workspace.emu.add_channel("vip", is_private=True)
    report = await run_doctor(workspace.settings(department_channels={"vip": hidden}))
    problems = failed(report)
    assert list(problems) == ["Channel of department 'vip'"]
    assert "not found, or it is private and the bot is not in it" in problems["Channel of department 'vip'"]


@pytest.mark.anyio
async def test_bad_tokens_and_secret(workspace: Workspace) -> None:
    report = await run_doctor(workspace.settings(bot_token="xoxb-0-wrong", signing_secret="not-a-secret"))
    problems = failed(report)
    assert set(problems) == {"Bot token", "Signing secret"}
    assert "Slack rejected the token (invalid_auth)" in problems["Bot token"]
    assert "32 lowercase hexadecimal" in problems["Signing secret"]
    report = await run_doctor(workspace.settings(bot_token="xoxp-user", user_token="xoxb-bot"))
    problems = failed(report)
    assert "does not start with 'xoxb-'" in problems["Bot token"]
    assert "does not start with 'xoxp-'" in problems["User token"]


@pytest.mark.anyio
async def test_socket_mode_needs_no_signing_secret(workspace: Workspace) -> None:
    environ = {**workspace.environ(), "SLACK_APP_TOKEN": workspace.emu.app_token}
    del environ["SLACK_SIGNING_SECRET"]
    report = await run_doctor(DoctorSettings.from_env(environ))
    assert failed(report) == {}
    checks = {check.name: check.detail for check in report.checks}
    assert "Socket Mode" in checks["Signing secret"]
    assert checks["App-level token"] == "well-formed (Socket Mode)"
    report = await run_doctor(workspace.settings(signing_secret=None, app_token="xoxb-not-an-app-token"))
    assert set(failed(report)) == {"App-level token"}
    assert "connections:write" in failed(report)["App-level token"]


@pytest.mark.anyio
async def test_nothing_configured() -> None:
    report = await run_doctor(DoctorSettings())
    problems = failed(report)
    assert set(problems) == {"Signing secret", "Bot token", "Main channel"}
    assert "SLACK_BOT_TOKEN is not set" in problems["Bot token"]


@pytest.mark.anyio
async def test_unreachable_slack() -> None:
    settings = DoctorSettings(
        bot_token="xoxb-1-x", signing_secret="0" * 32, main_channel="C0MAIN", base_url="http://127.0.0.1:9/api/"
    )
    report = await run_doctor(settings)
    assert "could not be reached" in failed(report)["Bot token"]


class _App(BaseHTTPRequestHandler):
    secret = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            verify_signature(self.secret, dict(self.headers.items()), body)
        except InvalidRequest:
            self.send_response(401)
            self.end_headers()
            return
        answer = json.dumps({"challenge": json.loads(body)["challenge"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def request_url(workspace: Workspace) -> Iterator[str]:
    handler = type("Handler", (_App,), {"secret": workspace.emu.signing_secret})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/slack/events"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.anyio
async def test_request_url_answers_the_challenge(workspace: Workspace, request_url: str) -> None:
    report = await run_doctor(workspace.settings(request_url=request_url))
    assert report.ok, report.render()
    wrong = await run_doctor(workspace.settings(request_url=request_url, signing_secret="f" * 32))
    assert "refused the signature (401)" in failed(wrong)["Request URL"]
    closed = await run_doctor(workspace.settings(request_url="http://127.0.0.1:9/slack/events"))
    assert "could not be reached" in failed(closed)["Request URL"]


def test_command_line(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in workspace.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLACK_USER_TOKEN", raising=False)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "✓ Bot token: valid" in out and out.endswith("All checks passed.\n")
    monkeypatch.setenv("SLACK_MAIN_CHANNEL", workspace.elsewhere)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✗ Main channel: the bot is not a member of #random" in out
    assert "1 problem(s) found." in out
    monkeypatch.setenv("SLACK_DEPARTMENT_CHANNELS", "sales")
    assert main(["doctor"]) == 2
    assert "'sales' is not 'department=CHANNELID'" in capsys.readouterr().err


def test_department_channels_parse() -> None:
    assert parse_department_channels(" sales=C01, billing = G02 ,") == {"sales": "C01", "billing": "G02"}
    assert parse_department_channels("") == {}
    with pytest.raises(ConfigurationError, match="listed twice"):
        parse_department_channels("a=C01,a=C02")


@given(st.text(max_size=80))
def test_department_channels_parse_any_text(text: str) -> None:
    message = ""
    parsed: dict[str, str] = {}
    try:
        parsed = parse_department_channels(text)
    except ConfigurationError as exc:
        message = str(exc)
    assert not message or "department" in message
    for department, channel in parsed.items():
        assert department and department == department.strip() and channel[0] in "CG"


def test_settings_hide_secrets() -> None:
    settings = DoctorSettings(
        bot_token="xoxb-secret", signing_secret="s3cr3t", user_token="xoxp-secret", app_token="xapp-secret"
    )
    assert "secret" not in repr(settings).replace("signing_secret", "")
