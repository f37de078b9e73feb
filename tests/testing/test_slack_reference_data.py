"""The vendored Slack reference (tests/data/slack-reference) is complete, and cutting its lists loses nothing the
shape checks look at."""

from __future__ import annotations

import importlib.util
import json
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


def test_no_test_reads_the_reference_from_outside_the_repository() -> None:
    assert REFERENCE.is_relative_to(ROOT) and REFERENCE.is_dir()
    # The ways the tests once reached a copy beside the repository, spelled so that this file does not match.
    outside = ["/work" + "/shared", "../" + "shared", '/ "' + 'shared" /']
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not [spelling for spelling in outside if spelling in text], path


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "blocks", "attachments"]), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(ours=JSON, reference=JSON)
def test_cutting_lists_to_their_first_item_keeps_every_shape_verdict(ours: Any, reference: Any) -> None:
    cut = script.first_items(reference)
    assert unknown_keys(ours, cut) == unknown_keys(ours, reference)
    assert script.first_items(cut) == cut
    assert json.loads(json.dumps(cut)) == cut
