"""Slack channel names from customer names (pure).

Slack accepts lowercase ASCII letters, digits, ``-`` and ``_``, at most 80 characters, not only punctuation.
:func:`channel_name` folds any text into such a name; on ``name_taken`` (archived channels keep their names)
retry with the suffixes from :func:`channel_name_candidates` (``-2``, ``-3``, ...).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from ..exceptions import UsageError

__all__ = [
    "CHANNEL_NAME_PATTERN",
    "MAX_CHANNEL_NAME_LENGTH",
    "channel_name",
    "channel_name_candidates",
    "fold_name",
    "next_suffix",
]

#: Slack's limit for conversations.create ``name`` (``invalid_name_maxlength`` beyond it).
MAX_CHANNEL_NAME_LENGTH = 80

#: Every name :func:`channel_name` returns matches this.
CHANNEL_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}\Z")

# Letters NFKD leaves alone because they are not "letter + accent" in Unicode.
_TRANSLITERATE = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "ß": "ss",
        "ẞ": "SS",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "TH",
        "œ": "oe",
        "Œ": "OE",
        "\N{LATIN SMALL LETTER DOTLESS I}": "i",
        "ħ": "h",
        "Ħ": "H",
        "ŧ": "t",
        "Ŧ": "T",
        "ŋ": "n",
        "Ŋ": "N",
        "ĸ": "k",
        "\N{LATIN SMALL LETTER LONG S}": "s",
        "ƒ": "f",
    }
)

_OUTSIDE = re.compile(r"[^a-z0-9_-]+")
_DASHES = re.compile(r"-{2,}")
_EDGES = "-_"


def fold_name(text: str) -> str:
    """``text`` ASCII-folded, lowercased, with every other character run turned into one ``-``.

    The result has no leading or trailing ``-`` / ``_`` and may be empty.
    """
    folded = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE)).casefold()
    # casefold can produce new composed characters ("İ" -> "i̇"): decompose once more.
    folded = unicodedata.normalize("NFKD", folded)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    folded = _OUTSIDE.sub("-", folded)
    folded = _DASHES.sub("-", folded)
    return folded.strip(_EDGES)


def channel_name(name: str, *, fallback_id: str, suffix: int | None = None, prefix: str = "") -> str:
    """A valid Slack channel name for a customer called ``name``.

    ``"Zoë Smith"`` -> ``"zoe-smith"``; a name with nothing left after folding becomes ``user-<fallback_id>``
    (or ``user``). ``prefix`` (folded the same way) is joined with ``-``. ``suffix`` ``n`` (>= 2) appends
    ``-n``; the base is shortened so that the whole name stays within 80 characters.
    """
    if suffix is not None and (isinstance(suffix, bool) or not isinstance(suffix, int) or suffix < 2):
        raise UsageError(f"channel name suffix must be an integer >= 2, not {suffix!r}")
    base = fold_name(name)
    if not base:
        folded_id = fold_name(fallback_id)
        base = f"user-{folded_id}" if folded_id else "user"
    folded_prefix = fold_name(prefix)
    if folded_prefix:
        base = f"{folded_prefix}-{base}"
    tail = "" if suffix is None else f"-{suffix}"
    base = base[: MAX_CHANNEL_NAME_LENGTH - len(tail)].rstrip(_EDGES)
    if not base:  # only reachable with an absurdly large suffix
        raise UsageError(f"channel name suffix {suffix!r} leaves no room for a name")
    return base + tail


def next_suffix(suffix: int | None) -> int:
    """The suffix to try after ``name_taken`` for a name built with ``suffix`` (None -> 2, n -> n + 1)."""
    return 2 if suffix is None else suffix + 1


def channel_name_candidates(name: str, *, fallback_id: str, prefix: str = "", attempts: int = 50) -> Iterator[str]:
    """The names to try in order: the plain name, then ``-2``, ``-3``, ... (``attempts`` names in all)."""
    suffix: int | None = None
    for _ in range(attempts):
        yield channel_name(name, fallback_id=fallback_id, suffix=suffix, prefix=prefix)
        suffix = next_suffix(suffix)
