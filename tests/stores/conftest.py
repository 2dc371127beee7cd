"""Fixtures of the store conformance suite: ``kit`` (a fresh backing per test) and ``filled``
(per module: an index holding ``store_checks.CORPUS`` next to the reference), each
parametrized over every store in ``store_kits.KITS`` (how a new store joins: see there)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_kits import KITS, StoreKit

from bge_core.index import VectorIndex


@pytest.fixture(params=list(KITS))
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreKit]:
    """One store kind, on a fresh backing (temp folder / database) per test."""
    made = KITS[request.param](tmp_path)
    yield made
    for close in made.closers:
        close()


@pytest.fixture(scope="module", params=list(KITS))
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, m3: Any
) -> Iterator[tuple[VectorIndex, VectorIndex]]:
    """Read-only, per module: ``(index over this kit's store, reference index)``, both
    holding ``store_checks.CORPUS``."""
    from store_checks import texts_and_metadatas

    from bge_core.reference import InMemoryStore

    made = KITS[request.param](tmp_path_factory.mktemp(request.param))
    index = made.index(m3)
    ref = VectorIndex(InMemoryStore(), m3, show_progress=False)
    texts, metas = texts_and_metadatas()
    assert index.add_texts(texts, metas) == ref.add_texts(texts, metas)
    yield index, ref
    for close in made.closers:
        close()
