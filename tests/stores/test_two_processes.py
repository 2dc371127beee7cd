"""An index built by one process is searched by another (issue 16: Milvus Lite reopened its
collections "released" and refused every search until ``ensure_collection()``).

Each side runs in its own Python process, as ``bge index`` and ``bge search`` do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from store_checks import QUERIES, texts_and_metadatas

from bge_core.index import VectorIndex
from bge_core.reference import InMemoryStore

#: Stores that persist to a path: code that opens an index on ``PATH`` with encoder ``m3``.
OPEN = {
    "qdrant-path": "from qdrant_client import QdrantClient\n"
    "from bge_qdrant import QdrantIndex\n"
    "index = QdrantIndex(QdrantClient(path=PATH), 'docs', m3, owns_client=True)\n",
    "milvus-lite": "from pymilvus import MilvusClient\n"
    "from bge_milvus import MilvusIndex\n"
    "index = MilvusIndex(MilvusClient(PATH + '/m.db'), 'docs', m3, show_progress=False, owns_client=True)\n",
}

INDEX = """
texts, metas = json.load(open(DATA))
index.add_texts(texts, metas)
print(json.dumps(index.count()))
"""

SEARCH = """
out = {mode: [[h.id for h in index.search(q, 5, mode=mode)] for q in json.load(open(DATA))]
       for mode in ("dense", "sparse", "hybrid", "colbert")}
out["count"] = index.count()
out["get"] = [h.text for h in index.get(out["dense"][0])]
print(json.dumps(out))
"""


def run(store: str, body: str, path: Path, data: Path, model: Path) -> Any:
    code = (
        textwrap.dedent(
            f"""
        import json, logging
        from bge_core import BGEM3Encoder
        PATH, DATA = {str(path)!r}, {str(data)!r}
        m3 = BGEM3Encoder({str(model)!r}, device="cpu", dtype="float32", batch_size=4)
        """
        )
        + OPEN[store]
        + body
        + "index.close()\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # four fresh Python processes (torch import each): ~1.5 min per store
@pytest.mark.parametrize("store", list(OPEN))
def test_index_then_search_in_another_process(store: str, tmp_path: Path, tiny_m3_path: Path, m3: Any) -> None:
    pytest.importorskip("qdrant_client" if store.startswith("qdrant") else "milvus_lite")
    texts, metas = texts_and_metadatas()
    corpus, queries = tmp_path / "corpus.json", tmp_path / "queries.json"
    corpus.write_text(json.dumps([texts, metas]))
    queries.write_text(json.dumps(QUERIES))
    (tmp_path / "db").mkdir()
    assert run(store, INDEX, tmp_path / "db", corpus, tiny_m3_path) == len(texts)
    got = run(store, SEARCH, tmp_path / "db", queries, tiny_m3_path)
    ref = VectorIndex(InMemoryStore(), m3, show_progress=False)
    ref.add_texts(texts, metas)
    assert got["count"] == len(texts)
    for mode in ("dense", "sparse", "hybrid", "colbert"):
        want = [[h.id for h in ref.search(q, 5, mode=mode)] for q in QUERIES]
        assert got[mode] == want, mode
    assert got["get"] == [h.text for h in ref.get(got["dense"][0])]
