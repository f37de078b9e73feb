from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from norbit_connectors.store import SQLiteStore, Store
from norbit_connectors.testing.store_conformance import StoreConformance


class TestSQLiteStore(StoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Store]:
        async with SQLiteStore(tmp_path / "store.sqlite3") as store:
            yield store
