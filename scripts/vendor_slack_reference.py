"""Refresh tests/data/slack-reference/ from a full copy of the Slack reference data.

    python scripts/vendor_slack_reference.py SOURCE        # write the subset the tests read
    python scripts/vendor_slack_reference.py SOURCE --check  # exit 1 if the vendored copy differs

SOURCE holds ``methods/*.json`` and ``samples/{api,events,app-backend}/*.json`` (see
tests/data/slack-reference/README.md for where they come from). The tests read only the vendored copy; this script
is the one place that reads SOURCE.

What is copied, and how:
- ``methods/``: ``_common_errors.json`` and the document of every method the Slack emulator serves or the app
  manifest grants a scope for, byte for byte.
- ``samples/``: each sample a test names (a string like ``"api/chat.postMessage.json"`` in tests/testing/), with
  every list cut to its first item. The tests compare shapes against a sample's first list item only
  (tests/testing/conftest.py, ``unknown_keys``), and the three largest samples are several MB of list items.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "tests" / "data" / "slack-reference"
SAMPLE_NAME = re.compile(r"""["']((?:api|events|app-backend)/[A-Za-z0-9_.]+\.json)["']""")


def first_items(value: Any) -> Any:
    """``value`` with every list (at any depth) cut to its first item."""
    if isinstance(value, dict):
        return {key: first_items(item) for key, item in value.items()}
    if isinstance(value, list):
        return [first_items(value[0])] if value else []
    return value


def used_samples(tests: Path) -> list[str]:
    """The sample files the tests under ``tests`` name, sorted."""
    found: set[str] = set()
    for path in sorted(tests.rglob("*.py")):
        found.update(SAMPLE_NAME.findall(path.read_text(encoding="utf-8")))
    return sorted(found)


def used_methods() -> list[str]:
    """The Slack methods the emulator serves or the manifest grants scopes for, sorted."""
    sys.path.insert(0, str(ROOT / "src"))
    from norbit_connectors._manifest import METHOD_SCOPES, USER_METHOD_SCOPES
    from norbit_connectors.testing._slack._api import METHODS

    return sorted(set(METHODS) | set(METHOD_SCOPES) | set(USER_METHOD_SCOPES))


def subset(source: Path) -> dict[str, bytes]:
    """The vendored files (path relative to the target: content) made from ``source``."""
    files: dict[str, bytes] = {}
    for name in ["_common_errors", *used_methods()]:
        path = source / "methods" / f"{name}.json"
        if path.exists():  # a few methods (conversations.list, conversations.replies) have no document
            files[f"methods/{name}.json"] = path.read_bytes()
    for relative in used_samples(ROOT / "tests" / "testing"):
        data = json.loads((source / "samples" / relative).read_text(encoding="utf-8"))
        text = json.dumps(first_items(data), indent=1, ensure_ascii=False, sort_keys=False) + "\n"
        files[f"samples/{relative}"] = text.encode("utf-8")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("source", type=Path, help="the full reference data (methods/, samples/)")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on any difference")
    args = parser.parse_args(argv)
    wanted = subset(args.source)
    present = {str(path.relative_to(TARGET)): path.read_bytes() for path in TARGET.rglob("*.json") if path.is_file()}
    stale = sorted(set(present) - set(wanted))
    changed = sorted(name for name, content in wanted.items() if present.get(name) != content)
    if args.check:
        for name in stale:
            print(f"not used any more: {name}")
        for name in changed:
            print(f"differs from the source: {name}")
        return 1 if stale or changed else 0
    for name in stale:
        (TARGET / name).unlink()
    for name in changed:
        path = TARGET / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wanted[name])
    total = sum(len(content) for content in wanted.values())
    where = TARGET.relative_to(ROOT)
    print(f"{len(wanted)} files, {total:,} bytes in {where} ({len(changed)} written, {len(stale)} removed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
