"""Property tests: key ordering and prefix scans, JSON values, rate cells, against the durable stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import given
from hypothesis import strategies as st

from norbit_connectors.store import Batch, MemoryStore, Put, RateCells, SQLiteStore, Store
from norbit_connectors.store._postgres import _prefix_end
from norbit_connectors.store._rates import advance
from norbit_connectors.store._schema import lock_id

# Keys every store accepts: no NUL (PostgreSQL text refuses it) and no lone surrogates (not encodable).
KEY_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
keys = st.text(KEY_CHARS, max_size=6)
prefix_alphabet = st.sampled_from(["a", "b", "é", "\U0010ffff", "\ud7ff", "\ue000", "z"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(KEY_CHARS),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(KEY_CHARS, max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(prefix=st.text(prefix_alphabet, max_size=4), s=st.text(prefix_alphabet, max_size=6))
def test_prefix_end_bounds_exactly_the_prefixed_strings(prefix: str, s: str) -> None:
    end = _prefix_end(prefix)
    in_range = s >= prefix and (end is None or s < end)
    assert in_range == s.startswith(prefix)


@given(prefix=st.text(KEY_CHARS, max_size=4), s=keys)
def test_prefix_end_with_any_text(prefix: str, s: str) -> None:
    end = _prefix_end(prefix)
    assert (s >= prefix and (end is None or s < end)) == s.startswith(prefix)


@given(kind=st.text(max_size=5), parts=st.lists(st.text(max_size=5), max_size=3))
def test_lock_ids_are_signed_64_bit_and_stable(kind: str, parts: list[str]) -> None:
    lid = lock_id(kind, *parts)
    assert -(2**63) <= lid < 2**63
    assert lid == lock_id(kind, *parts)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def portal_store(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> Iterator[tuple[BlockingPortal, Store]]:
    if request.param == "memory":
        store: Store = MemoryStore()
    elif request.param == "sqlite":
        store = SQLiteStore(tmp_path / "props.sqlite3")
    else:
        from norbit_connectors.store import PostgresStore

        dsn = request.getfixturevalue("postgres_dsn")
        request.getfixturevalue("reset_postgres")(dsn)
        store = PostgresStore(dsn, max_size=2)
    with start_blocking_portal(anyio_backend) as portal:
        portal.call(store.open)
        try:
            yield portal, store
        finally:
            portal.call(store.close)


def test_scan_orders_by_code_point(portal_store: tuple[BlockingPortal, Store]) -> None:
    portal, store = portal_store
    counter = iter(range(10**9))

    @given(names=st.lists(keys, max_size=12, unique=True), prefix=st.text(KEY_CHARS, max_size=2))
    def check(names: list[str], prefix: str) -> None:
        namespace = f"ns{next(counter)}"
        puts = [Put(namespace=namespace, key=k, value=i) for i, k in enumerate(names)]

        async def run() -> tuple[list[Any], list[Any]]:
            assert (await store.commit(Batch(puts=puts), now=0)).ok
            every = await store.scan(namespace)
            some = await store.scan(namespace, prefix=prefix)
            return every, some

        every, some = portal.call(run)
        assert [k for k, _ in every] == sorted(names)
        assert [k for k, _ in some] == sorted(k for k in names if k.startswith(prefix))
        assert all(doc.value == names.index(k) for k, doc in every)

    check()


def test_json_values_round_trip(portal_store: tuple[BlockingPortal, Store]) -> None:
    portal, store = portal_store
    counter = iter(range(10**9))

    @given(value=json_values)
    def check(value: Any) -> None:
        key = f"k{next(counter)}"
        portal.call(lambda: store.commit(Batch(puts=[Put(namespace="json", key=key, value=value)]), now=0))
        doc = portal.call(store.get, "json", key)
        assert doc is not None
        expected = json.loads(json.dumps(value))
        assert doc.value == expected
        assert json.dumps(doc.value) == json.dumps(expected)

    check()


# Times as a limiter gives them: Unix seconds with sub-second parts, costs of zero up to a minute.
reservations = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.floats(min_value=1.7e9, max_value=1.7e9 + 600, allow_nan=False),
        st.floats(min_value=0.0, max_value=60.0, allow_nan=False),
        st.one_of(st.just(0.0), st.floats(min_value=1.7e9, max_value=1.7e9 + 700, allow_nan=False)),
    ),
    max_size=20,
)


@given(ops=reservations)
def test_advance_never_goes_back_and_spaces_by_cost(ops: list[tuple[str, float, float, float]]) -> None:
    cells: dict[str, float] = {}
    for key, now, cost, not_before in ops:
        before = cells.get(key)
        start, cells[key] = advance(before, now=now, cost=cost, not_before=not_before)
        assert start >= now and start >= not_before
        assert before is None or start >= before  # no two reservations of a key overlap
        assert cells[key] == start + cost


def test_rate_cells_follow_the_model(portal_store: tuple[BlockingPortal, Store]) -> None:
    portal, store = portal_store
    assert isinstance(store, RateCells)
    counter = iter(range(10**9))

    @given(ops=reservations)
    def check(ops: list[tuple[str, float, float, float]]) -> None:
        round_ = next(counter)
        model: dict[str, float] = {}
        for key, now, cost, not_before in ops:
            want, model[key] = advance(model.get(key), now=now, cost=cost, not_before=not_before)
            got = portal.call(partial(store.reserve_rate, f"{round_}:{key}", now=now, cost=cost, not_before=not_before))
            # The SQL stores give start as the cell's new time less the cost: a rounding of a few microseconds
            # at most on times like these. The cell itself holds exactly what the model holds.
            assert got == pytest.approx(want, abs=1e-5)

    check()
