"""8 threads searching while 2 threads ingest different texts into the same index."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from bge_core.testing import TINY_WORDS
from bge_core.types import Hit


def _texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{seed} {i} " + " ".join(rng.choices(TINY_WORDS, k=8)) for i in range(n)]


@pytest.mark.parametrize("where", ["memory", "path"])
def test_search_while_ingesting(make_index: Any, qd_corpus: Any, tmp_path: Path, where: str) -> None:
    client = QdrantClient(":memory:") if where == "memory" else QdrantClient(path=str(tmp_path / "q"))
    index = make_index(client, write_batch_size=8, chunk_size=16)
    index.add_texts([t for t, _ in qd_corpus])
    batches = [_texts(1, 40), _texts(2, 40)]
    errors: list[BaseException] = []
    results: list[list[Hit]] = []
    done = threading.Event()
    lock = threading.Lock()

    def ingest(texts: list[str]) -> None:
        try:
            index.add_texts(texts, [{"batch": t.split()[0]} for t in texts])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def search(worker: int) -> None:
        modes = ["dense", "sparse", "hybrid", "colbert"]
        i = 0
        try:
            while not done.is_set() or i < 3:
                hits = index.search(f"cancer cells {TINY_WORDS[(worker * 7 + i) % len(TINY_WORDS)]}", 5, mode=modes[(worker + i) % 4])
                with lock:
                    results.append(hits)
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writers = [threading.Thread(target=ingest, args=(b,)) for b in batches]
    readers = [threading.Thread(target=search, args=(w,)) for w in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=300)
    done.set()
    for t in readers:
        t.join(timeout=300)
    try:
        assert not errors, errors[:3]
        assert index.count() == len(qd_corpus) + 80
        assert len(results) >= 24
        for hits in results:
            assert len(hits) <= 5
            assert all(isinstance(h, Hit) and isinstance(h.text, str) and isinstance(h.score, float) for h in hits)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            assert len({h.id for h in hits}) == len(hits)
        assert {h.metadata.get("batch") for h in index.get([h.id for r in results for h in r])} <= {None, "1", "2"}
    finally:
        client.close()
