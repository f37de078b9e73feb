"""The public surface: every name of the contract imports, __all__ lists are sorted, no connector is imported."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import norbit_connectors

PUBLIC_MODULES = [
    "norbit_connectors",
    "norbit_connectors.exceptions",
    "norbit_connectors.routing",
    "norbit_connectors.slack",
    "norbit_connectors.store",
    "norbit_connectors.testing",
]

CONTRACT = {
    "norbit_connectors": [
        "User",
        "Agent",
        "Department",
        "Attachment",
        "Message",
        "Conversation",
        "AgentReply",
        "Delivery",
        "Hub",
        "Assignment",
        "NorbitError",
        "ConfigurationError",
        "RateLimited",
        "NotFound",
        "PermissionDenied",
        "TransportError",
        "ConnectorUnavailable",
        "AlreadyClaimed",
    ],
    "norbit_connectors.routing": ["Routing", "OfficeHours"],
    "norbit_connectors.slack": ["SlackConnector", "SlackConfig"],
    "norbit_connectors.store": ["MemoryStore", "SQLiteStore", "PostgresStore", "Store"],
    "norbit_connectors.testing": ["SlackEmulator"],
}


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_sorted_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    # isort style, as ruff keeps it: CONSTANTS, then Classes, then functions; each alphabetical.
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
    for name in names:
        assert hasattr(module, name), f"{module_name}.{name}"


@pytest.mark.parametrize(("module_name", "names"), sorted(CONTRACT.items()))
def test_contract_names(module_name: str, names: list[str]) -> None:
    module = importlib.import_module(module_name)
    missing = [n for n in names if not hasattr(module, n)]
    assert missing == []


def test_error_tree_has_one_root() -> None:
    from norbit_connectors import exceptions

    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), norbit_connectors.NorbitError)
    assert norbit_connectors.RateLimited("x", retry_after=2.5).retry_after == 2.5


def test_package_imports_no_connector() -> None:
    code = (
        "import sys, norbit_connectors; "
        "bad = [m for m in sys.modules if m.startswith(('norbit_connectors.slack', 'norbit_connectors.channels', "
        "'slack_sdk', 'httpx', 'psycopg'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
