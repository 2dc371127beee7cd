"""``bge mine`` and ``bge finetune`` end to end on a tiny BEIR folder in a local Qdrant store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("qdrant_client")

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def indexed(bge: Run, beir_dir: Path, tiny_dense_path: Path, tmp_path: Path) -> str:
    store = f"qdrant:{tmp_path / 'qd'}"
    code, _, err = bge(
        "eval",
        beir_dir,
        "--split",
        "train",
        "--model",
        tiny_dense_path,
        "--store",
        store,
        "--modes",
        "dense",
        "--no-progress",
    )
    assert code == 0, err
    return store


def test_mine_then_finetune(bge: Run, indexed: str, beir_dir: Path, tiny_dense_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    train = tmp_path / "train.jsonl"
    code, out, err = bge(
        "mine", beir_dir, "--store", indexed, "--out", train, "--range", "1-30", "--negatives", "3", "--no-progress"
    )
    assert code == 0, err
    assert "wrote 12 rows, 36 negatives" in out
    rows = [json.loads(x) for x in train.read_text().splitlines()]
    assert len(rows) == 12 and all(len(r["neg"]) == 3 and set(r) == {"query", "pos", "neg"} for r in rows)
    again = tmp_path / "again.jsonl"
    assert (
        bge(
            "mine", beir_dir, "--store", indexed, "--out", again, "--range", "1-30", "--negatives", "3", "--no-progress"
        )[0]
        == 0
    )
    assert again.read_text() == train.read_text()  # seeded

    code, out, err = bge(
        "finetune",
        train,
        "--model",
        tiny_dense_path,
        "--out",
        tmp_path / "ft",
        "--batch-size",
        "4",
        "--group-size",
        "3",
        "--dtype",
        "float32",
        "--device",
        "cpu",
        "--no-progress",
        "--gradient-checkpointing",
    )
    assert code == 0, err
    assert json.loads(out)["steps"] == 4  # 12 queries with 16 positives, batch 4
    assert (tmp_path / "ft" / "modules.json").is_file()
    code, _, err = bge(
        "finetune",
        train,
        "--model",
        tiny_dense_path,
        "--out",
        tmp_path / "ft",
        "--batch-size",
        "4",
        "--group-size",
        "5",
    )
    assert code == 1 and "line 1: 3 negatives, but group size 5 needs 4" in err


def test_mine_refuses_another_model(bge: Run, indexed: str, beir_dir: Path, tiny_m3_path: Path, tmp_path: Path) -> None:
    code, _, err = bge("mine", beir_dir, "--store", indexed, "--out", tmp_path / "t.jsonl", "--model", tiny_m3_path)
    assert code == 1 and "was built with model" in err and "not" in err
    assert not (tmp_path / "t.jsonl").exists()


def test_mine_names_a_missing_doc_id(bge: Run, indexed: str, beir_dir: Path, tmp_path: Path) -> None:
    import shutil

    broken = shutil.copytree(beir_dir, tmp_path / "tinybeir")  # same folder name: same collection
    with open(broken / "qrels" / "train.tsv", "a", encoding="utf-8") as fh:
        fh.write("q2\tghost\t1\n")
    code, _, err = bge("mine", broken, "--store", indexed, "--out", tmp_path / "t.jsonl")
    assert code == 1 and "doc id 'ghost'" in err
    assert not (tmp_path / "t.jsonl").exists()


def test_mine_without_an_index_says_how_to_build_it(bge: Run, beir_dir: Path, tmp_path: Path) -> None:
    code, _, err = bge("mine", beir_dir, "--store", f"qdrant:{tmp_path / 'empty'}", "--out", tmp_path / "t.jsonl")
    assert code == 1 and "holds no bge index" in err


def test_finetune_help_lists_the_options(bge: Run) -> None:
    code, out, _ = bge("finetune", "--help")
    assert code == 0 and "--group-size" in out and "--resume" in out and "--gradient-checkpointing" in out


def test_mine_positive_aware_and_rerank_write_scores(
    bge: Run, indexed: str, beir_dir: Path, tiny_reranker_path: Path, tmp_path: Path
) -> None:
    for extra in (["--positive-aware"], ["--rerank", str(tiny_reranker_path)]):
        out = tmp_path / "t.jsonl"
        code, text, err = bge(
            "mine",
            beir_dir,
            "--store",
            indexed,
            "--out",
            out,
            "--range",
            "0-40",
            "--negatives",
            "3",
            "--max-neg-ratio",
            "0.9",
            "--no-progress",
            *extra,
        )
        assert code == 0, err
        assert "likely false negatives dropped" in text
        for row in map(json.loads, out.read_text().splitlines()):
            assert len(row["pos_scores"]) == len(row["pos"]) and len(row["neg_scores"]) == len(row["neg"])
            assert all(s < 0.9 * min(row["pos_scores"]) for s in row["neg_scores"])
    code, _, err = bge(
        "mine",
        beir_dir,
        "--store",
        indexed,
        "--out",
        tmp_path / "x.jsonl",
        "--positive-aware",
        "--rerank",
        str(tiny_reranker_path),
    )
    assert code == 1 and "give one" in err
