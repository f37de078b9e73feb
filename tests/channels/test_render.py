"""The readable lines for non-text messages (channels._render) and each platform's render_message: any webhook
value in, something readable out, nothing raised but InvalidRequest."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.channels import _render as render
from norbit_connectors.channels import messenger, telegram, whatsapp
from norbit_connectors.exceptions import InvalidRequest

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(["nan", "1e999"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@given(values)
def test_duration_is_m_ss_or_none(seconds: Any) -> None:
    shown = render.duration(seconds)
    if shown is not None:
        parts = [int(p) for p in shown.split(":")]
        assert 2 <= len(parts) <= 3 and all(0 <= p < 60 for p in parts[1:])
        total = sum(p * 60**i for i, p in enumerate(reversed(parts)))
        assert total == round(float(seconds))


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0:00"), (7, "0:07"), (65, "1:05"), (3725, "1:02:05"), (7.6, "0:08")]
)
def test_duration_examples(seconds: float, shown: str) -> None:
    assert render.duration(seconds) == shown


@pytest.mark.parametrize("seconds", [-1, True, "x", None, math.inf, math.nan, [1]])
def test_duration_refuses(seconds: Any) -> None:
    assert render.duration(seconds) is None


@given(values, values, values, values)
def test_location_line_is_one_readable_line(latitude: Any, longitude: Any, name: Any, address: Any) -> None:
    line = render.location_line(latitude, longitude, name=name, address=address)
    assert line.startswith("[location]") and "\n" not in line
    lat, lon = render.coordinate(latitude, 90), render.coordinate(longitude, 180)
    if lat is not None and lon is not None:
        assert line.endswith(f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=16/{lat}/{lon}")
        assert -90 <= float(lat) <= 90 and -180 <= float(lon) <= 180
    else:
        assert "openstreetmap" not in line or "openstreetmap" in str(name) + str(address)


@given(st.floats(-90, 90), st.floats(-180, 180))
def test_coordinates_keep_six_decimals(latitude: float, longitude: float) -> None:
    lat, lon = render.coordinate(latitude, 90), render.coordinate(longitude, 180)
    assert lat is not None and lon is not None
    assert abs(float(lat) - latitude) <= 5e-7 and abs(float(lon) - longitude) <= 5e-7


@given(values, st.lists(values, max_size=4), st.lists(values, max_size=2))
def test_person_and_poll_lines(name: Any, phones: list[Any], emails: list[Any]) -> None:
    person = render.person_line(name, phones, emails)
    assert person.startswith("[contact]") and "\n" not in person
    for phone in phones:
        if isinstance(phone, str) and phone.strip():
            assert " ".join(phone.split()) in person
    poll = render.poll_line(name, phones)
    assert poll.startswith("[poll]") and "\n" not in poll


@given(values)
def test_unsupported_names_the_kind_safely(kind: Any) -> None:
    line = render.unsupported(kind)
    assert line.startswith("[unsupported message") and line.endswith("]")
    inner = line[1:-1]
    assert not any(c in inner for c in "[]<>|") and inner.isprintable()
    assert len(inner) <= len("unsupported message: ") + render.KIND_LIMIT


def readable(text: str, files: list[Any]) -> bool:
    return bool(text.strip()) or bool(files)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                *sorted(telegram._ENVELOPE),
                "voice",
                "audio",
                "video",
                "video_note",
                "sticker",
                "animation",
                "location",
                "venue",
                "contact",
                "poll",
                "dice",
                "photo",
                "document",
                "game",
                "story",
            ]
        ),
        values,
        max_size=4,
    )
)
def test_telegram_render_message_always_says_something(message: dict[str, Any]) -> None:
    text, files = telegram.render_message(message, 1)
    assert readable(text, files)
    assert all(f.ref for f in files)


whatsapp_types = st.sampled_from(
    [
        "text",
        "image",
        "document",
        "audio",
        "video",
        "sticker",
        "location",
        "contacts",
        "reaction",
        "order",
        "button",
        "interactive",
        "system",
        "unsupported",
        "request_welcome",
        "x",
    ]
)


@given(whatsapp_types, values, values)
def test_whatsapp_render_message_always_says_something(kind: str, inner: Any, extra: Any) -> None:
    message = {"type": kind, kind: inner, "errors": extra}
    try:
        text, files = whatsapp.render_message(message)
    except InvalidRequest:
        assert kind in ("image", "document", "audio", "video", "sticker")
        return
    assert readable(text, files) or kind == "text"


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "text": values,
            "sticker_id": values,
            "is_unsupported": values,
            "attachments": st.lists(
                st.fixed_dictionaries({}, optional={"type": values, "payload": values, "title": values, "url": values}),
                max_size=3,
            ),
        },
    )
)
def test_messenger_render_message_always_says_something(message: dict[str, Any]) -> None:
    text, files = messenger.render_message(message)
    assert readable(text, files)
    json.dumps(text)
