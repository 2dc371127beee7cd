"""Dense + ColBERT against a live Milvus server (``@pytest.mark.service``).

Point ``BGE_MILVUS_TEST_URI`` at a server (e.g. ``milvus+http://127.0.0.1:19530``; the PyPI
package ``milvus`` 2.3.5 starts one, without sparse vectors, hence ``sparse=False``). Skips
cleanly when the variable is unset or the server is unreachable.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np
import pytest

from bge_core.errors import StoreError
from bge_core.index import VectorIndex
from bge_core.reference import InMemoryStore
from bge_milvus.store_uri import open_index


@pytest.mark.service
def test_dense_and_colbert_on_a_server(m3: Any, corpus: list[str]) -> None:
    uri = os.environ.get("BGE_MILVUS_TEST_URI")
    if not uri:
        pytest.skip("set BGE_MILVUS_TEST_URI=milvus+http://HOST:PORT to run against a Milvus server")
    name = f"bge_test_{uuid.uuid4().hex[:8]}"
    try:
        index = open_index(uri, encoder=m3, collection=name, sparse=False, show_progress=False)
    except StoreError as exc:
        pytest.skip(f"Milvus server unavailable: {exc}")
    ref = VectorIndex(InMemoryStore(), m3, sparse=False)
    try:
        assert index.add_texts(corpus) == ref.add_texts(corpus)
        assert index.count() == len(corpus)
        for mode in ("dense", "colbert"):
            got = index.search("cancer cells in the liver", 5, mode=mode)  # type: ignore[arg-type]
            want = ref.search("cancer cells in the liver", 5, mode=mode)  # type: ignore[arg-type]
            assert [h.id for h in got] == [h.id for h in want]
            np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-4)
        index.delete([ref.add_texts([corpus[0]])[0]])
        assert index.count() == len(corpus) - 1
    finally:
        client = index.store.client
        for c in (name, f"{name}_colbert"):
            if client.has_collection(c):
                client.drop_collection(c)
        index.close()
