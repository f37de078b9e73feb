"""Sphinx configuration of the norbit_connectors documentation (MyST Markdown, furo theme).

Build: python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

# The package is normally installed (pip install -e .); the src path makes a plain checkout work too.
_SRC = Path(__file__).resolve().parent.parent / "src"
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

import norbit_connectors  # noqa: E402

project = "norbit_connectors"
author = "norbit_connectors developers"
copyright = "norbit_connectors developers"
release = norbit_connectors.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: ``{include}`` of ../CHANGELOG.md, ``{eval-rst}`` for autodoc, anchors for ## and ### headings.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc: signatures stay short; types go into the description. Members appear in source order.
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
# No autodoc_default_options: with Sphinx 9 a default "members" overrides the explicit member lists in api.md,
# and a default "show-inheritance" prints "Bases: object" on every class. api.md sets both where they help.
autodoc_class_signature = "mixed"

# References to names that are not documented here (typing aliases, third-party classes) stay plain text.
nitpicky = False

html_theme = "furo"
html_title = f"norbit_connectors {release}"
html_static_path: list[str] = []
