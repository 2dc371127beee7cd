"""``bge index`` / ``bge search`` / ``bge models`` end to end (in-process), on Qdrant and Milvus Lite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bge_core.models import KNOWN_MODELS
from tests.cli.conftest import Result, Runner, row_digest


def store_uri(kind: str, tmp_path: Path) -> str:
    return f"qdrant:{tmp_path / 'qdrant'}" if kind == "qdrant" else f"milvus:{tmp_path / 'milvus.db'}"


def search_json(bge: Runner, *args: str) -> list[dict]:  # type: ignore[type-arg]
    res = bge("search", *args, "--json")
    assert res.code == 0, res.err
    return [json.loads(line) for line in res.out.splitlines()]


@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
def test_index_then_search_every_mode(
    kind: str, bge: Runner, docs_dir: Path, tiny_m3_path: Path, tmp_path: Path
) -> None:
    uri = store_uri(kind, tmp_path)
    res = bge("index", docs_dir, "--store", uri, "--model", tiny_m3_path, "--max-tokens", "64")
    # notes.rst is reported (named nowhere explicitly, so it is not even looked at): exit 0.
    assert res.code == 0, res.err
    assert "5 documents" in res.out and "from 3 files" in res.out
    rows = search_json(bge, "the cat is on the mat", "--store", uri, "-k", "100", "--mode", "dense")
    n_chunks = len(rows)
    assert f"({n_chunks} chunks" in res.out and f"{n_chunks} added, 0 updated, 0 unchanged, 0 removed" in res.out
    third = f"docs/rows.jsonl@{row_digest('', 'cancer cells grow in the liver')}"  # no _id: keyed by content
    assert {r["doc_id"] for r in rows} == {"docs/a.txt", "d1", "d2", third, "docs/sub/long.md"}
    top = rows[0]
    assert top["doc_id"] == "docs/a.txt" and top["text"] == "the cat is on the mat" and top["title"] == "a.txt"
    assert top["score"] == pytest.approx(1.0, abs=1e-3)  # the same text as the query

    for mode in ("dense", "sparse", "hybrid", "colbert"):
        hits = search_json(bge, "the cat is on the mat", "--store", uri, "--mode", mode, "-k", "3")
        assert 1 <= len(hits) <= 3
        assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
        assert hits[0]["doc_id"] == "docs/a.txt", mode
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
        table = bge("search", "the cat is on the mat", "--store", uri, "--mode", mode, "-k", "3")
        assert table.code == 0
        lines = table.out.splitlines()
        assert lines[0].split() == ["rank", "score", "id", "title", "snippet"]
        assert lines[1].split()[:3] == ["1", f"{hits[0]['score']:.4f}", "docs/a.txt#0"]
        assert "the cat is on the mat" in lines[1]
    # Default mode of an M3 index is hybrid (fusion scores).
    default = search_json(bge, "the cat is on the mat", "--store", uri, "-k", "2")
    assert set(default[0]["scores"]) >= {"fusion"}

    # Filters on metadata given in the JSONL and written by the indexer.
    hits = search_json(bge, "heart", "--store", uri, "--filter", "year=2020", "-k", "10")
    assert [h["doc_id"] for h in hits] == ["d1"]
    hits = search_json(bge, "heart", "--store", uri, "--filter", "doc_id=d1", "--filter", "doc_id=d2", "-k", "10")
    assert sorted(h["doc_id"] for h in hits) == ["d1", "d2"]

    # A second run stores nothing new and encodes nothing.
    again = bge("index", docs_dir, "--store", uri)
    assert again.code == 0, again.err
    assert f"0 added, 0 updated, {n_chunks} unchanged, 0 removed; the index holds {n_chunks} chunks" in again.out


def test_chunking_ids_and_token_caps(bge: Runner, docs_dir: Path, tiny_m3_path: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    uri = f"qdrant:{tmp_path / 'q'}"
    assert bge("index", docs_dir / "sub", "--store", uri, "--model", tiny_m3_path, "--max-tokens", "24").code == 0
    rows = search_json(bge, "heart", "--store", uri, "-k", "100", "--mode", "dense")
    assert {r["doc_id"] for r in rows} == {"sub/long.md"}
    chunks = sorted(rows, key=lambda r: r["chunk"])
    assert [r["chunk"] for r in chunks] == list(range(len(chunks))) and len(chunks) > 10
    tok = AutoTokenizer.from_pretrained(str(tiny_m3_path))
    assert max(len(tok(r["text"])["input_ids"]) for r in chunks) <= 24
    source = (docs_dir / "sub" / "long.md").read_text(encoding="utf-8")
    assert " ".join(r["text"] for r in chunks).split() == source.split()
    assert all(r["title"] == "Heart study" and r["source"] == "sub/long.md" for r in chunks)


@pytest.mark.slow  # loads the real all-MiniLM-L6-v2 weights
def test_settings_are_recorded_reused_and_checked(
    bge: Runner, docs_dir: Path, tiny_m3_path: Path, minilm_path: Path, tmp_path: Path
) -> None:
    uri = f"qdrant:{tmp_path / 'q'}"
    assert (
        bge(
            "index", docs_dir / "a.txt", "--store", uri, "--model", tiny_m3_path, "--max-tokens", "40", "--no-colbert"
        ).code
        == 0
    )

    def refused(res: Result, *needles: str) -> None:
        assert res.code == 1
        assert len(res.error_lines()) == 1 and "Traceback" not in res.err
        for needle in needles:
            assert needle in res.error_lines()[0]

    refused(bge("index", docs_dir, "--store", uri, "--model", minilm_path), "was built with model", str(minilm_path))
    refused(bge("index", docs_dir, "--store", uri, "--max-tokens", "50"), "--max-tokens 40", "you asked for 50")
    refused(bge("search", "cat", "--store", uri, "--model", minilm_path), "was built with model")
    refused(bge("search", "cat", "--store", uri, "--mode", "colbert"), "--no-colbert")
    # Without options, the recorded model, max tokens and outputs are reused.
    res = bge("index", docs_dir, "--store", uri)
    assert res.code == 0, res.err
    assert "at most 40 tokens" in res.out
    assert bge("search", "cat", "--store", uri, "--mode", "sparse").code == 0


@pytest.mark.slow  # loads the real all-MiniLM-L6-v2 weights
def test_dense_only_model(bge: Runner, docs_dir: Path, minilm_path: Path, tmp_path: Path) -> None:
    uri = f"qdrant:{tmp_path / 'q'}"
    res = bge("index", docs_dir, "--store", uri, "--model", minilm_path)
    assert res.code == 0, res.err
    assert "at most 256 tokens" in res.out  # MiniLM's max length
    hits = search_json(bge, "a cat sits on a mat", "--store", uri, "-k", "2")
    assert hits[0]["doc_id"] == "docs/a.txt" and set(hits[0]["scores"]) <= {"dense"}  # default mode: dense
    for mode in ("sparse", "hybrid", "colbert"):
        res = bge("search", "cat", "--store", uri, "--mode", mode)
        assert res.code == 1 and "dense-only" in res.error_lines()[0], res.err


def test_rerank(bge: Runner, docs_dir: Path, tiny_m3_path: Path, tiny_reranker_path: Path, tmp_path: Path) -> None:
    uri = f"qdrant:{tmp_path / 'q'}"
    assert bge("index", docs_dir, "--store", uri, "--model", tiny_m3_path, "--max-tokens", "64").code == 0
    hits = search_json(bge, "heart drug", "--store", uri, "--rerank", tiny_reranker_path, "-k", "4")
    assert len(hits) == 4
    assert all("rerank" in h["scores"] and h["score"] == h["scores"]["rerank"] for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_models_lists_known_models_and_offline_availability(bge: Runner) -> None:
    res = bge("models")
    assert res.code == 0
    lines = res.out.splitlines()
    assert lines[0].split() == ["model", "kind", "outputs", "dim", "max_len", "offline"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(KNOWN_MODELS)
    assert rows["BAAI/bge-m3"][1:5] == ["m3", "dense+sparse+colbert", "1024", "8192"]
    assert rows["sentence-transformers/all-MiniLM-L6-v2"][-1] == "yes"  # packaged weights
