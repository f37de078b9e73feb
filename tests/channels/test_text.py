from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.channels._base import chunk_text
from norbit_connectors.channels._http import meta_handshake, same_secret, verify_meta_signature
from norbit_connectors.channels.whatsapp import TEMPLATE_PARAMETER_LIMIT, template_parameter
from norbit_connectors.exceptions import InvalidRequest


@given(st.text(max_size=3000), st.integers(min_value=10, max_value=500))
def test_chunks_fit_and_keep_every_word(text: str, limit: int) -> None:
    pieces = chunk_text(text, limit)
    assert all(0 < len(p) <= limit for p in pieces)
    # Only the spaces and new lines at a cut may go.
    assert [c for c in "".join(pieces) if c not in " \n"] == [c for c in text if c not in " \n"]
    if len(text) <= limit:
        assert pieces == ([text] if text else [])


def test_chunks_cut_at_spaces() -> None:
    assert chunk_text("aaa bbb ccc", 8) == ["aaa bbb", "ccc"]


@given(st.text(max_size=2000))
def test_template_parameters_are_acceptable(text: str) -> None:
    value = template_parameter(text)
    assert value and value.strip() == value
    assert not set(value) & {"\n", "\r", "\t"}
    assert "     " not in value
    assert len(value) <= TEMPLATE_PARAMETER_LIMIT


@given(st.binary(max_size=300), st.text(max_size=30))
def test_meta_signature(body: bytes, secret: str) -> None:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    verify_meta_signature({"x-hub-signature-256": f"sha256={digest}"}, body, secret)
    with pytest.raises(InvalidRequest) as refused:
        verify_meta_signature({"X-Hub-Signature-256": f"sha256={digest}"}, body + b".", secret)
    assert refused.value.status == 401


@given(st.text(max_size=60))
def test_handshake_answers_only_the_right_token(query: str) -> None:
    try:
        response = meta_handshake(query, "the-token")
    except InvalidRequest as exc:
        status = exc.status
    else:
        status = response.status
    assert status in (200, 400, 403)
    assert status != 200 or "the-token" in query


def test_same_secret() -> None:
    assert same_secret("a", "a") and not same_secret(None, "a") and not same_secret("a", "b")
    assert not same_secret("\ud800", "x")  # lone surrogates compare instead of raising
