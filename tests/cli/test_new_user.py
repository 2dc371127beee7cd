"""What a new user runs into (issue 16 item 10): argument errors exit 2, ids in full, progress, SciFact path."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bge_core.load_report import is_expected_report
from tests.cli.conftest import Runner

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("args", [("--filter", "topic"), ("--filter", "=x"), ("-k", "0"), ("-k", "-3")])
def test_bad_search_arguments_exit_2(bge: Runner, args: tuple[str, ...], tmp_path: Path) -> None:
    res = bge("search", "cat", "--store", f"qdrant:{tmp_path / 'q'}", *args)
    assert res.code == 2, res.err
    assert not (tmp_path / "q").exists()


def test_search_never_creates_a_store(bge: Runner, tmp_path: Path) -> None:
    res = bge("search", "cat", "--store", f"qdrant:{tmp_path / 'typo'}")
    assert res.code == 1
    assert "holds no bge index" in res.err or "no index at" in res.err
    assert not (tmp_path / "typo").exists()


def test_json_has_uuid_and_table_id_and_table_keeps_long_ids(bge: Runner, tiny_m3_path: Path, tmp_path: Path) -> None:
    deep = tmp_path / "notes" / "a-rather-long-folder-name" / "and-another-one"
    deep.mkdir(parents=True)
    (deep / "the-file-with-a-long-name.txt").write_text("the cat is on the mat", encoding="utf-8")
    uri = f"qdrant:{tmp_path / 'q'}"
    assert bge("index", tmp_path / "notes", "--store", uri, "--model", tiny_m3_path).code == 0
    ref = "notes/a-rather-long-folder-name/and-another-one/the-file-with-a-long-name.txt#0"
    res = bge("search", "cat", "--store", uri, "--json")
    hit = json.loads(res.out.splitlines()[0])
    assert hit["ref"] == ref and len(hit["id"]) == 36  # both: what the table shows, and the stored UUID
    table = bge("search", "cat", "--store", uri)
    assert table.out.splitlines()[1].split()[2] == ref  # not cut


def test_progress_bar_counts_bytes_documents_and_chunks_and_keeps_warnings_off_its_line(tmp_path: Path) -> None:
    from bge_core.cli.commands import _IndexProgress
    from bge_core.sources import SourceReport, find_source_files, read_documents

    for i in range(3):
        (tmp_path / f"{i}.txt").write_text("the cat " * 50, encoding="utf-8")
    files = find_source_files([tmp_path])
    err = io.StringIO()
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    saved = sys.stderr
    sys.stderr = err
    handler.setStream(err)
    try:
        bar = _IndexProgress(True, sum(f.path.stat().st_size for f in files))
        for _ in bar.documents(read_documents(files, SourceReport()), files):
            bar.chunk()
            logging.getLogger("bge_core.test").warning("a warning line")
        assert bar._bar.n == bar._bar.total == 3 * 400
        bar.close()
    finally:
        sys.stderr = saved
        root.removeHandler(handler)
    text = err.getvalue()
    assert "3 documents, 3 chunks" in text
    # Every warning starts its own line (tqdm.write clears the bar first).
    assert all(line.endswith("a warning line") for line in text.replace("\r", "\n").splitlines() if "warning" in line)


def test_load_report_of_missing_pooler_is_silenced_other_reports_kept(tiny_m3_path: Path) -> None:
    expected = "XLMRobertaModel LOAD REPORT from: x\nKey                 | Status  | \n--------------------+---------+-\npooler.dense.weight | MISSING | \npooler.dense.bias   | MISSING | \n"
    assert is_expected_report(expected)
    assert not is_expected_report(expected.replace("pooler.dense.bias  ", "encoder.layer.0.w"))
    assert not is_expected_report(
        expected.replace("MISSING | \npooler.dense.bias   | MISSING", "MISSING | \nlm_head.bias        | UNEXPECTED")
    )
    code = (
        "import transformers, sys\n"
        "from bge_core.load_report import install_load_report_filter\n"
        "if sys.argv[2] == 'on': install_load_report_filter()\n"
        "transformers.AutoModel.from_pretrained(sys.argv[1])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TRANSFORMERS_VERBOSITY": "warning"}
    runs = {
        flag: subprocess.run(
            [sys.executable, "-c", code, str(tiny_m3_path), flag],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        for flag in ("off", "on")
    }
    assert "LOAD REPORT" in runs["off"].stderr  # the test would catch a filter that hid nothing...
    assert "LOAD REPORT" not in runs["on"].stderr  # ...and this one a filter that is not installed


def test_no_logging_errors_after_in_process_calls(bge: Runner, tmp_path: Path) -> None:
    """The CLI's handler is removed after each call: a later log record does not hit a closed stream."""
    bge("search", "cat", "--store", f"qdrant:{tmp_path / 'none'}")
    before = list(logging.getLogger().handlers)
    stream = io.StringIO()
    saved = sys.stderr
    sys.stderr = stream
    try:
        logging.getLogger("bge_core.test").warning("after the call")
    finally:
        sys.stderr = saved
    assert "Logging error" not in stream.getvalue()
    from bge_core.cli import main as cli_main

    assert cli_main._handler is None and cli_main._handler not in before


def test_scifact_location_from_environment(tmp_path: Path) -> None:
    """BGE_SCIFACT points at the data; with CI=true a missing folder fails instead of skipping."""
    test = tmp_path / "test_probe.py"
    test.write_text("def test_probe(scifact_dir):\n    print('USING', scifact_dir)\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    conftest = REPO / "tests" / "conftest.py"
    (tmp_path / "conftest.py").write_text(f"exec(open({str(conftest)!r}).read())\n", encoding="utf-8")

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(test)],
            capture_output=True,
            text=True,
            env={**env, **extra},
            timeout=300,
            cwd=tmp_path,
            check=False,
        )

    missing = str(tmp_path / "nowhere")
    skipped = run(BGE_SCIFACT=missing)
    assert "1 skipped" in skipped.stdout and skipped.returncode == 0, skipped.stdout
    failed = run(BGE_SCIFACT=missing, CI="true")
    assert failed.returncode == 1 and "CI must not skip" in failed.stdout, failed.stdout
    fake = tmp_path / "scifact"
    fake.mkdir()
    (fake / "corpus.jsonl").write_text("{}\n", encoding="utf-8")
    found = run(BGE_SCIFACT=str(fake), CI="true")
    assert found.returncode == 0 and f"USING {fake}" in found.stdout, found.stdout


def test_failed_model_load_or_refused_option_leaves_no_store(bge: Runner, tiny_m3_path: Path, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("the cat", encoding="utf-8")
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for f in tiny_m3_path.iterdir():
        if f.is_file():
            (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    for kind, uri_path in (("qdrant", tmp_path / "q"), ("milvus", tmp_path / "m.db")):
        uri = f"{kind}:{uri_path}"
        res = bge("index", tmp_path / "a.txt", "--store", uri, "--model", broken)
        assert res.code == 1, res.err
        assert not uri_path.exists(), kind
        res = bge("index", tmp_path / "a.txt", "--store", uri, "--model", tiny_m3_path, "--max-tokens", "100000")
        assert res.code == 1 and "--max-tokens" in res.err, res.err
        assert not uri_path.exists(), kind
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "broken-model"]


def test_library_warnings_are_one_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    """E.g. qdrant-client's '>20,000 points' UserWarning: one 'bge: WARNING:' line, not a raw print."""
    import warnings

    from bge_core.cli import main as cli_main

    cli_main._setup_logging(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(
                "Local mode is not recommended for collections with more than 20,000 points", UserWarning, stacklevel=1
            )
    finally:
        cli_main._teardown_logging()
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "bge: WARNING: Local mode is not recommended for collections with more than 20,000 points"
    ]
