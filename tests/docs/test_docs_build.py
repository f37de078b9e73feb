"""The documentation builds without a single warning, and its hand-written pages stay true to the API."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

pytest.importorskip("sphinx", reason="the docs build needs sphinx (pip install -e '.[docs]')")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# The guide pages written in this directory's style: references to the API and Python examples are checked.
GUIDES = ("index", "quickstart", "how-it-works", "slack-setup", "routing", "takeover", "stores")


def _sphinx(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            *args,
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(DOCS),
            str(out / "html"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    result = _sphinx("-W", "--keep-going", "-q", out=tmp_path)
    assert result.returncode == 0, f"sphinx failed:\n{result.stderr}\n{result.stdout}"
    html = tmp_path / "html"
    for page in (*GUIDES, "api", "changelog", "testing", "connectors", "writing-a-connector"):
        assert (html / f"{page}.html").is_file(), f"{page}.html was not built"
    api = (html / "api.html").read_text(encoding="utf-8")
    for target in (
        "norbit_connectors.Hub",
        "norbit_connectors.Hub.start_human_takeover",
        "norbit_connectors.Conversation",
        "norbit_connectors.NorbitError",
        "norbit_connectors.Connector",
        "norbit_connectors.HttpResponse",
        "norbit_connectors.slack.SlackConfig",
        "norbit_connectors.slack.SlackConnector",
        "norbit_connectors.slack.JOIN_ACTION_ID",
        "norbit_connectors.slack.SocketModeReceiver",
        "norbit_connectors.routing.Routing",
        "norbit_connectors.routing.OfficeHours",
        "norbit_connectors.store.SQLiteStore",
        "norbit_connectors.store.PostgresStore",
        "norbit_connectors.testing.SlackEmulator",
        "norbit_connectors.channels.load",
    ):
        assert f'id="{target}"' in api, f"the API reference lost {target}"
    changelog = (html / "changelog.html").read_text(encoding="utf-8")
    assert "Unreleased" in changelog


def test_api_references_in_the_guides_resolve(tmp_path: Path) -> None:
    # Nitpicky mode reports every reference that points nowhere; docstrings in src/ are not held to it here,
    # the guides are: a renamed class or method must not leave a dead link behind.
    result = _sphinx("-n", "-q", "-E", out=tmp_path)
    assert result.returncode == 0, result.stderr
    pages = "|".join(re.escape(page) for page in GUIDES)
    dead = [line for line in result.stderr.splitlines() if re.search(rf"docs/({pages})\.md:\d+: WARNING", line)]
    assert dead == []


def _python_blocks(page: str) -> list[tuple[int, str]]:
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        blocks.append((text.count("\n", 0, match.start()) + 2, match.group(1)))
    return blocks


@pytest.mark.parametrize("page", GUIDES)
def test_python_examples_in_the_guides_compile(page: str) -> None:
    blocks = _python_blocks(page)
    for line, code in blocks:
        try:
            compile(code, f"docs/{page}.md:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        except SyntaxError as exc:
            pytest.fail(f"docs/{page}.md, example at line {line}: {exc}")


def test_the_guides_have_python_examples() -> None:
    # The compile check above must have something to check.
    assert sum(len(_python_blocks(page)) for page in GUIDES) >= 10


def _first_column_names(page: str) -> set[str]:
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`(\w+)`", line.split("|")[1]))
    return names


@pytest.mark.parametrize(
    ("page", "cls"),
    [
        ("slack-setup", "norbit_connectors.slack:SlackConfig"),
        ("routing", "norbit_connectors.routing:Routing"),
        ("routing", "norbit_connectors:Assignment"),
    ],
)
def test_field_tables_list_every_field(page: str, cls: str) -> None:
    module, _, name = cls.partition(":")
    fields = {f.name for f in attrs.fields(getattr(importlib.import_module(module), name)) if f.init}
    missing = fields - _first_column_names(page)
    assert not missing, f"docs/{page}.md does not describe {name} fields {sorted(missing)}"
