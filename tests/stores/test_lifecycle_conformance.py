"""Every store keeps the index's promises over its life: deletes, re-ingest without
duplicates, resume after a crash mid-ingest, the settings record, injected transient and
permanent faults, and concurrent searches and ingests."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from store_checks import CORPUS, FlakyProxy, assert_same_hits, texts_and_metadatas
from store_kits import StoreKit

from bge_core.errors import StoreError, TransientStoreError
from bge_core.index import VectorIndex, make_id
from bge_core.reference import InMemoryStore
from bge_core.testing import TINY_WORDS

TEXTS, METAS = texts_and_metadatas()
IDS = [make_id(None, t) for t in TEXTS]
SMALL: dict[str, Any] = {"write_batch_size": 2, "chunk_size": 4}  # several writes per ingest


@pytest.fixture(scope="module")
def reference(m3: Any) -> VectorIndex:
    ref = VectorIndex(InMemoryStore(), m3, show_progress=False)
    ref.add_texts(TEXTS, METAS)
    return ref


def assert_like_reference(index: VectorIndex, reference: VectorIndex) -> None:
    assert index.count() == len(TEXTS)
    for mode in ("dense", "hybrid", "colbert"):
        request = reference.plan("the cells in the water", 12, mode=mode)
        assert_same_hits(reference.store.query(request), index.store.query(request))


def test_delete_get_count(kit: StoreKit, m3: Any) -> None:
    index = kit.index(m3)
    assert index.count() == 0 and index.get(IDS) == []
    assert index.add_texts(TEXTS, METAS) == IDS
    gone = IDS[:3]
    index.delete(gone + ["00000000-0000-0000-0000-000000000000"])  # a missing id is ignored
    index.delete([])
    assert index.count() == len(IDS) - 3
    assert [h.id for h in index.get(IDS)] == IDS[3:]
    for mode in ("dense", "sparse", "hybrid", "colbert"):
        hits = index.search("the cat on the mat", len(IDS), mode=mode)
        assert not {h.id for h in hits} & set(gone), mode
    assert index.store.fetch_hashes(IDS).keys() == set(IDS[3:])


def test_reingest_writes_nothing_twice(kit: StoreKit, m3: Any, reference: VectorIndex) -> None:
    index = kit.index(m3, **SMALL)
    assert index.add_texts(TEXTS, METAS) == IDS
    counter = FlakyProxy(None, kit.write_method, fail_on=1, error=RuntimeError(), times=0, only=_targets(kit)[0])
    again = kit.index(m3, wrap=lambda inner: _counting(counter, inner), **SMALL)
    assert again.add_texts(TEXTS, METAS) == IDS
    assert counter.calls == 0  # unchanged rows are skipped by content hash
    assert_like_reference(again, reference)
    # Changed metadata is a new content hash: the row is replaced in place, not added.
    changed = [dict(m, i=-1) if n == 0 else m for n, m in enumerate(METAS)]
    assert again.add_texts(TEXTS, changed) == IDS
    assert counter.calls >= 1 and again.count() == len(IDS)
    assert again.get(IDS[:1])[0].metadata["i"] == -1


def _counting(proxy: FlakyProxy, inner: Any) -> FlakyProxy:
    proxy.inner = inner
    return proxy


def test_resume_after_crash_mid_ingest(kit: StoreKit, m3: Any, reference: VectorIndex) -> None:
    index = kit.index(m3, **SMALL)

    def crashing() -> Iterator[str]:
        yield from TEXTS[:7]
        raise KeyboardInterrupt  # the process is stopped while documents are still coming

    with pytest.raises(KeyboardInterrupt):
        index.add_texts(crashing(), METAS)
    partial = index.count()
    assert partial < len(TEXTS)
    # A new process (a new store on the same data) resumes: stored rows are skipped.
    main = _targets(kit)[0]
    counter = FlakyProxy(None, kit.write_method, fail_on=1, error=RuntimeError(), times=0, only=main)
    resumed = kit.index(m3, wrap=lambda inner: _counting(counter, inner), write_batch_size=1, chunk_size=4)
    assert resumed.add_texts(TEXTS, METAS) == IDS
    assert_like_reference(resumed, reference)
    assert counter.calls == len(TEXTS) - partial  # one write per row not stored before the crash


def test_settings_record(kit: StoreKit, m3: Any) -> None:
    index = kit.index(m3)
    assert index.read_settings() is None
    index.ensure_collection()
    settings = {"model": "tiny", "outputs": ["dense", "sparse", "colbert"], "max_tokens": 512, "nested": {"a": [1, 2]}}
    index.write_settings(settings)
    assert index.read_settings() == settings
    assert kit.index(m3).read_settings() == settings  # another handle reads the record
    index.write_settings({"model": "other"})
    assert index.read_settings() == {"model": "other"}  # replaced, not merged


def _targets(kit: StoreKit) -> list[str | None]:
    return [None if t is None else t.format(collection="docs") for t in kit.write_targets]


def test_transient_faults_are_retried(kit: StoreKit, m3: Any, reference: VectorIndex) -> None:
    for n, target in enumerate(_targets(kit)):
        flaky = FlakyProxy(None, kit.write_method, fail_on=2, error=kit.transient(), times=2, only=target)
        index = kit.index(m3, wrap=lambda inner, f=flaky: _counting(f, inner), **SMALL)  # type: ignore[misc]
        if n:  # a fresh collection per target
            index.delete(IDS)
        assert index.add_texts(TEXTS, METAS) == IDS
        assert flaky.failures == 2, target
        assert_like_reference(index, reference)


def test_permanent_fault_raises_then_rerun_completes(kit: StoreKit, m3: Any, reference: VectorIndex) -> None:
    for n, target in enumerate(_targets(kit)):
        if n:
            kit.index(m3).delete(IDS)
        flaky = FlakyProxy(None, kit.write_method, fail_on=2, error=kit.permanent(), times=1, only=target)
        index = kit.index(m3, wrap=lambda inner, f=flaky: _counting(f, inner), **SMALL)  # type: ignore[misc]
        with pytest.raises(StoreError, match="failed permanently"):  # a retry would have passed
            index.add_texts(TEXTS, METAS)
        assert flaky.failures == 1, target
        assert index.count() < len(TEXTS)
        rerun = kit.index(m3, **SMALL)
        assert rerun.add_texts(TEXTS, METAS) == IDS
        assert_like_reference(rerun, reference)


def test_retries_give_up(kit: StoreKit, m3: Any) -> None:
    flaky = FlakyProxy(None, kit.write_method, fail_on=1, error=kit.transient(), times=10)
    index = kit.index(m3, wrap=lambda inner: _counting(flaky, inner))
    with pytest.raises(StoreError, match="after 3 attempts"):
        index.add_texts(TEXTS, METAS)
    assert flaky.failures == 3


def test_error_classification(kit: StoreKit) -> None:
    store = kit.open("docs", None)
    assert store.is_transient(kit.transient())
    assert store.is_transient(TransientStoreError("flaky"))
    assert not store.is_transient(kit.permanent())
    assert not store.is_transient(StoreError("broken"))
    assert not store.is_transient(ValueError("bad vector"))


def test_concurrent_searches_and_ingests(kit: StoreKit, m3: Any) -> None:
    index = kit.index(m3, write_batch_size=8)
    index.add_texts(TEXTS, METAS)
    words = TINY_WORDS
    batches = [
        [f"{words[(i * 7 + j) % len(words)]} {words[(i * 3 + j) % len(words)]} doc {t} {i}" for i in range(24)]
        for t, j in ((0, 1), (1, 2))
    ]
    errors: list[BaseException] = []
    stop = threading.Event()
    modes = ["dense", "sparse", "hybrid", "colbert"]

    def ingest(texts: list[str]) -> None:
        try:
            index.add_texts(texts, [{"batch": texts[0]}] * len(texts))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def search(n: int) -> None:
        try:
            i = 0
            while not stop.is_set() or i < 3:
                hits = index.search("the cat in the water", 5, mode=modes[(n + i) % 4])  # type: ignore[arg-type]
                assert len(hits) <= 5 and all(isinstance(h.id, str) and isinstance(h.text, str) for h in hits)
                assert all(a.score >= b.score - 1e-6 for a, b in itertools.pairwise(hits))
                i += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writers = [threading.Thread(target=ingest, args=(b,)) for b in batches]
    readers = [threading.Thread(target=search, args=(n,)) for n in range(8)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=300)
    stop.set()
    for t in readers:
        t.join(timeout=300)
    assert not errors, errors
    assert index.count() == len(CORPUS) + 48
    assert len(index.get([make_id(None, t) for b in batches for t in b])) == 48


def test_drop_deletes_collection_settings_and_companions(kit: StoreKit, m3: Any, reference: VectorIndex) -> None:
    """``drop()`` (``bge drop``, ``bge index --recreate``): rows, settings and companion
    collections go; a second drop finds nothing; the next ingest creates the collection anew."""
    from bge_core.index import DroppableStore

    index = kit.index(m3)
    assert isinstance(index.store, DroppableStore)
    assert index.drop() is False  # nothing there: nothing created either
    assert index.read_settings() is None and index.count() == 0
    index.add_texts(TEXTS, METAS)
    index.write_settings({"model": "tiny"})
    other = kit.index(m3, collection="other")
    other.add_texts(TEXTS[:2])
    assert index.drop() is True
    assert index.count() == 0 and index.read_settings() is None and index.get(IDS) == []
    assert kit.index(m3).read_settings() is None  # another handle sees it gone
    assert index.drop() is False
    assert other.count() == 2  # another collection of the same store is untouched
    if kit.name == "milvus-lite":
        client = index.store.client  # type: ignore[attr-defined]
        assert not client.has_collection("docs") and not client.has_collection("docs_colbert")
    # Recreated by the next write, with the same results as the reference.
    assert index.add_texts(TEXTS, METAS) == IDS
    assert_like_reference(index, reference)
