"""The vendored Slack reference (tests/data/slack-reference) is complete, and cutting its lists loses nothing the
shape checks look at."""

from __future__ import annotations

import importlib.util
import json
import mimetypes
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from .conftest import REFERENCE, unknown_keys

ROOT = Path(__file__).resolve().parents[2]


def load_vendoring_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vendor_slack_reference", ROOT / "scripts" / "vendor_slack_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = load_vendoring_script()


def test_the_vendored_copy_is_what_the_script_makes_of_it() -> None:
    # Every sample a test names and every method document the tests look up is here, in the script's form: run
    # on the vendored copy itself, the script would write the same files and remove none.
    made = script.subset(REFERENCE)
    present = {str(p.relative_to(REFERENCE)): p.read_bytes() for p in REFERENCE.rglob("*.json")}
    assert set(made) == set(present)
    assert all(made[name] == present[name] for name in made)
    assert "samples/api/chat.postMessage.json" in made and "methods/_common_errors.json" in made
    assert (REFERENCE / "README.md").is_file()


# Run in a child interpreter under an audit hook that records every file opened and every directory listed.
AUDITED_RUN = """
import json, os, sys

seen = []


def record(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        seen.append(os.path.abspath(os.fsdecode(args[0])))


sys.addaudithook(record)
import pytest

status = pytest.main(sys.argv[2:])
try:  # a read outside the repository, which the check must see
    open(PROBE)
except OSError:
    pass
with open(sys.argv[1], "w") as out:
    json.dump(seen, out)
sys.exit(status)
"""
PROBE = "/nonexistent-norbit-probe/slack-reference/methods/chat.postMessage.json"


def readers_of_the_reference() -> list[str]:
    """The test modules that read the vendored reference: those importing the conftest's loaders and those that
    name it (this one: only its test of the vendored copy)."""
    here = Path(__file__).resolve()
    modules = {p for p in (ROOT / "tests" / "testing").glob("test_*.py") if "from .conftest import" in p.read_text()}
    modules |= {p for p in (ROOT / "tests").rglob("test_*.py") if "slack-reference" in p.read_text()}
    modules.discard(here)
    own = f"{here.relative_to(ROOT)}::test_the_vendored_copy_is_what_the_script_makes_of_it"
    return [*sorted(str(p.relative_to(ROOT)) for p in modules), own]


def outside(paths: list[str], allowed: list[Path]) -> set[str]:
    """The paths (resolved) under none of ``allowed``, other than the null device and the system MIME tables
    that the standard library's mimetypes reads when it starts."""
    system = {os.devnull, *mimetypes.knownfiles}
    return {p for p in paths if p not in system and not any(Path(p).resolve().is_relative_to(a) for a in allowed)}


def test_no_test_reads_outside_the_repository(tmp_path: Path) -> None:
    assert REFERENCE.is_relative_to(ROOT) and REFERENCE.is_dir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    opened = tmp_path / "opened.json"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {"TMPDIR": str(temp)}
    modules = readers_of_the_reference()
    assert "tests/cli/test_manifest.py" in modules and "tests/testing/test_slack_emulator_api.py" in modules
    script = f"PROBE = {PROBE!r}\n" + AUDITED_RUN
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(opened),
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'b'}",
            *modules,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    seen: list[str] = json.loads(opened.read_text())
    # The repository, the venv, the standard library (its directory and zip) and this test's own temporary
    # directory, which holds the child's TMPDIR and pytest's base directory.
    stdlib = Path(sysconfig.get_path("stdlib")).resolve().parent
    allowed = [ROOT, Path(sys.prefix).resolve(), stdlib, tmp_path.resolve()]
    assert outside(seen, allowed) == {PROBE}
    # The hook saw the tests read the reference: method documents and samples, through the conftest's loaders.
    read = {str(Path(p).relative_to(REFERENCE)) for p in seen if Path(p).is_relative_to(REFERENCE)}
    assert {
        "methods/_common_errors.json",
        "methods/chat.postMessage.json",
        "samples/events/MessagePayload.json",
    } <= read


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["a", "b", "c", "blocks", "attachments"])
    return st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4), _containers, max_leaves=30)


@given(ours=JSON, reference=JSON)
def test_cutting_lists_to_their_first_item_keeps_every_shape_verdict(ours: Any, reference: Any) -> None:
    cut = script.first_items(reference)
    assert unknown_keys(ours, cut) == unknown_keys(ours, reference)
    assert script.first_items(cut) == cut
    assert json.loads(json.dumps(cut)) == cut
