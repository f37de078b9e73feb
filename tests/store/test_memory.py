from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from norbit_connectors.store import MemoryStore, Store
from norbit_connectors.testing.store_conformance import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        async with MemoryStore() as store:
            yield store
