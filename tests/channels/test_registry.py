from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from norbit_connectors import ConnectorUnavailable
from norbit_connectors.channels import ENTRY_POINT_GROUP, available, load
from norbit_connectors.channels.messenger import MessengerConnector
from norbit_connectors.channels.telegram import TelegramConnector
from norbit_connectors.channels.whatsapp import WhatsAppConnector
from norbit_connectors.exceptions import ConfigurationError

DECLARED = ("line", "viber", "wechat", "x", "google_business_messages", "zendesk", "email")


def test_implemented_apps_load() -> None:
    assert load("telegram") is TelegramConnector
    assert load("whatsapp") is WhatsAppConnector
    assert load("messenger") is MessengerConnector
    assert load("Instagram") is MessengerConnector
    statuses = {name: info.status for name, info in available().items()}
    assert {statuses[n] for n in ("telegram", "whatsapp", "messenger")} == {"implemented"}
    assert "templates" in available()["whatsapp"].capabilities


@pytest.mark.parametrize("name", DECLARED)
def test_declared_apps_raise_connector_unavailable(name: str) -> None:
    assert available()[name].status in ("not_implemented", "shut_down")
    with pytest.raises(ConnectorUnavailable) as raised:
        load(name)
    assert raised.value.name == name
    module = __import__(f"norbit_connectors.channels.{name}", fromlist=["x"])
    (cls_name,) = module.__all__
    with pytest.raises(ConnectorUnavailable, match=name):
        getattr(module, cls_name)()


def test_google_business_messages_says_it_was_shut_down() -> None:
    info = available()["google_business_messages"]
    assert info.status == "shut_down" and "2024" in info.note
    with pytest.raises(ConnectorUnavailable, match="shut"):
        load("gbm")


def test_unknown_name() -> None:
    with pytest.raises(ConfigurationError, match="no connector named 'icq'"):
        load("icq")


@pytest.fixture
def plugin_path(tmp_path: Path) -> Iterator[Path]:
    """An installed distribution with connectors in the entry-point group (a real dist-info on sys.path)."""
    dist = tmp_path / "norbit_line-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: norbit-line\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nline = norbit_line_plugin:LineConnector\nbroken = norbit_line_plugin:Missing\n"
    )
    (tmp_path / "norbit_line_plugin.py").write_text("class LineConnector:\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("norbit_line_plugin", None)


def test_third_party_connectors_come_from_entry_points(plugin_path: Path) -> None:
    info = available()["line"]
    assert info.status == "third_party" and "norbit-line" in info.note
    assert load("line").__name__ == "LineConnector"
    with pytest.raises(ConfigurationError, match="cannot be loaded"):
        load("broken")
    # A third-party package cannot shadow a built-in connector.
    assert load("telegram") is TelegramConnector


def test_without_httpx_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from norbit_connectors.channels.telegram import TelegramConfig

    monkeypatch.setitem(sys.modules, "httpx", None)  # what Python does when a package is not installed
    with pytest.raises(ConfigurationError, match=r'pip install "norbit-connectors\[http\]"'):
        TelegramConnector(TelegramConfig(bot_token="1:a", secret_token="s"))
