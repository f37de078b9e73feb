from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors._manifest import (
    BOT_EVENTS,
    BOT_SCOPES,
    METHOD_SCOPES,
    USER_METHOD_SCOPES,
    USER_SCOPES,
    AppManifest,
    manifest_yaml,
)
from norbit_connectors.cli import main

SRC = Path(__file__).resolve().parents[2] / "src" / "norbit_connectors"
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "slack-reference" / "methods"


def parse_yaml(text: str) -> Any:
    """Parse the block-style YAML subset the manifest uses (mappings, lists, JSON-quoted scalars)."""
    lines = [line for line in text.split("\n") if line.strip()]
    value, rest = _block(lines, 0, 0)
    assert rest == len(lines), f"unparsed line: {lines[rest]!r}"
    return value


def _scalar(raw: str) -> Any:
    return {"{}": {}, "[]": []}.get(raw) if raw in ("{}", "[]") else json.loads(raw)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], i: int, indent: int) -> tuple[Any, int]:
    if lines[i].lstrip().startswith("- "):
        items: list[Any] = []
        while i < len(lines) and _indent(lines[i]) == indent and lines[i].lstrip().startswith("- "):
            body = lines[i][indent + 2 :]
            if re.match(r"^[A-Za-z_]+:", body):
                lines[i] = " " * (indent + 2) + body
                value, i = _block(lines, i, indent + 2)
            else:
                value, i = _scalar(body), i + 1
            items.append(value)
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and _indent(lines[i]) == indent and not lines[i].lstrip().startswith("- "):
        key, _, raw = lines[i].strip().partition(":")
        raw = raw.strip()
        if raw:
            mapping[key], i = _scalar(raw), i + 1
        else:
            mapping[key], i = _block(lines, i + 1, _indent(lines[i + 1]))
    return mapping, i


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_yaml_and_json_say_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://support.example.com/slack/events"
    as_yaml = parse_yaml(run(capsys, "manifest", "--name", "Acme Help", "--request-url", url))
    as_json = json.loads(run(capsys, "manifest", "--name", "Acme Help", "--request-url", url, "--json"))
    assert as_yaml == as_json
    assert as_json["display_information"]["name"] == "Acme Help"
    assert as_json["settings"]["event_subscriptions"]["request_url"] == url
    assert as_json["settings"]["interactivity"] == {"is_enabled": True, "request_url": url}
    assert as_json["features"]["slash_commands"][0]["command"] == "/archive"
    assert as_json["features"]["slash_commands"][0]["url"] == url


def test_scopes_and_events() -> None:
    data = AppManifest().as_dict()
    bot = set(data["oauth_config"]["scopes"]["bot"])
    expected = {
        "chat:write", "chat:write.customize", "channels:manage", "groups:write", "channels:read", "groups:read",
        "channels:join", "channels:history", "groups:history", "users:read", "users:read.email", "files:write",
        "files:read", "commands",
    }  # fmt: skip
    assert bot == expected == set(BOT_SCOPES)
    assert set(data["oauth_config"]["scopes"]["user"]) == {"channels:write", "groups:write"} == set(USER_SCOPES)
    assert data["settings"]["event_subscriptions"]["bot_events"] == list(BOT_EVENTS)
    assert set(BOT_EVENTS) == {"message.channels", "message.groups", "channel_archive", "group_archive"}


def test_every_method_the_connector_calls_is_in_the_table() -> None:
    called: set[str] = set()
    for path in (SRC / "slack").glob("*.py"):
        called |= set(re.findall(r"""call\(\s*["']([a-z]+\.[A-Za-z.]+)["']""", path.read_text()))
    assert called, "no Slack method calls found in the connector's source"
    known = set(METHOD_SCOPES) | set(USER_METHOD_SCOPES)
    assert called <= known, called - known
    for method, scopes in METHOD_SCOPES.items():
        assert set(scopes.public) | set(scopes.private) <= set(BOT_SCOPES), method
    for method, scopes in USER_METHOD_SCOPES.items():
        assert set(scopes.public) | set(scopes.private) <= set(USER_SCOPES), method


def methods_without_a_document(reference: Path) -> set[str]:
    """The methods the manifest lists that have no document in ``reference``; every other one is compared."""
    missing: set[str] = set()
    for kind, table in (("bot", METHOD_SCOPES), ("user", USER_METHOD_SCOPES)):
        for method, scopes in table.items():
            path = reference / f"{method}.json"
            if not path.exists():
                missing.add(method)
                continue
            accepted = {s["name"] for s in json.loads(path.read_text()).get("scopes", {}).get(kind, [])}
            assert set(scopes.public) | set(scopes.private) <= accepted, (kind, method)
    return missing


def test_method_scopes_match_slacks_reference() -> None:
    # Only conversations.list has no document in the reference; every other method was compared.
    assert methods_without_a_document(REFERENCE) == {"conversations.list"}


def test_a_missing_method_document_is_noticed(tmp_path: Path) -> None:
    for path in REFERENCE.glob("*.json"):
        if path.name != "chat.postMessage.json":
            (tmp_path / path.name).write_bytes(path.read_bytes())
    # One document missing, as before, but another one: the count is the same, the set is not.
    listed = METHOD_SCOPES["conversations.list"]
    bot = [{"name": name} for name in (*listed.public, *listed.private)]
    (tmp_path / "conversations.list.json").write_text(json.dumps({"scopes": {"bot": bot}}))
    assert methods_without_a_document(tmp_path) == {"chat.postMessage"}


def test_socket_mode_has_no_request_url(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(run(capsys, "manifest", "--socket-mode", "--json"))
    assert data["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in data["settings"]["event_subscriptions"]
    assert "url" not in data["features"]["slash_commands"][0]


@given(name=st.text(max_size=60), url=st.text(max_size=80))
def test_any_name_and_url_give_parseable_yaml(name: str, url: str) -> None:
    manifest = AppManifest(name=name, request_url=url)
    assert parse_yaml(manifest_yaml(manifest)) == manifest.as_dict()
