"""Reading SOURCE files for indexing, and splitting long texts into token-capped chunks.

Supported files: ``.txt`` and ``.md`` (one document per file) and ``.jsonl`` (one document
per line: a JSON object with a ``text`` string, optional ``title`` and ``_id``; every other
field becomes metadata, and a ``metadata`` object is merged in, so BEIR ``corpus.jsonl``
files work as they are).

Document keys, which the chunk ids derive from, are stable whatever the working directory:
the path relative to the parent of the SOURCE folder (``bge index ~/notes`` gives
``notes/a.md``; a file argument ``notes/a.md`` gives the same key), or the ``_id`` of a JSONL
row (else ``<path>:<line>``). Problems with single files or lines are logged as warnings
(file and line number) and counted in :class:`SourceReport`; the rest is still read.

Nothing here imports torch; chunking takes any Hugging Face *fast* tokenizer.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bge_core.errors import BGEError

__all__ = [
    "RESERVED_METADATA",
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "SourceDocument",
    "SourceError",
    "SourceFile",
    "SourceReport",
    "TokenizerLike",
    "chunk_text",
    "find_source_files",
    "iter_chunks",
    "read_documents",
]

logger = logging.getLogger(__name__)

#: File types ``bge index`` reads.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".jsonl")
#: Metadata keys written by the indexer; JSONL fields of the same name are overridden.
RESERVED_METADATA: tuple[str, ...] = ("doc_id", "source", "title", "chunk")


class SourceError(BGEError):
    """A SOURCE argument cannot be indexed (missing, or holds no readable files)."""


@dataclass(frozen=True)
class SourceFile:
    """A file to read and its stable relative name (the ``source`` metadata)."""

    path: Path
    name: str


@dataclass(frozen=True)
class SourceDocument:
    """One document read from a source file, before chunking."""

    key: str
    text: str
    title: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """One chunk of a document, as it is indexed."""

    id: str
    text: str
    metadata: dict[str, Any]


@dataclass
class SourceReport:
    """What reading the sources found: counts and the problems that were skipped."""

    files: int = 0
    documents: int = 0
    chunks: int = 0
    empty: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, message: str) -> None:
        """Record and log a skipped file or line."""
        self.problems.append(message)
        logger.warning("%s", message)


class TokenizerLike(Protocol):
    """The part of a Hugging Face fast tokenizer that chunking uses."""

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...

    def num_special_tokens_to_add(self, pair: bool = False) -> int: ...


def _is_hidden(name: str) -> bool:
    return name.startswith(".") and name not in (".", "..")


def _display_root(arg: Path) -> Path:
    """The folder that relative names are taken from: the parent of the SOURCE folder."""
    resolved = arg.resolve()
    return resolved.parent if resolved.is_dir() else resolved.parent.parent


def _relative_name(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def find_source_files(paths: Sequence[str | os.PathLike[str]], report: SourceReport | None = None) -> list[SourceFile]:
    """The supported files under ``paths`` (files or folders, recursive; hidden entries skipped).

    Raises :class:`SourceError` when a path does not exist or nothing readable is found.
    A file of another type named explicitly is reported and skipped.
    """
    report = report if report is not None else SourceReport()
    if not paths:
        raise SourceError("no SOURCE given; pass files or folders of .txt, .md or .jsonl files")
    found: dict[Path, SourceFile] = {}
    for raw in paths:
        arg = Path(raw).expanduser()
        if not arg.exists():
            raise SourceError(f"{raw}: no such file or folder")
        root = _display_root(arg)
        if arg.is_file():
            if arg.suffix.lower() not in SUPPORTED_SUFFIXES:
                report.problem(f"{raw}: unsupported file type {arg.suffix or '(none)'}; skipped (use .txt, .md or .jsonl)")
                continue
            found.setdefault(arg.resolve(), SourceFile(arg, _relative_name(arg, root)))
            continue
        for folder, dirs, files in os.walk(arg):
            dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
            for name in sorted(files):
                if _is_hidden(name) or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                    continue
                path = Path(folder) / name
                if path.is_file():
                    found.setdefault(path.resolve(), SourceFile(path, _relative_name(path, root)))
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise SourceError(f"{shown}: no .txt, .md or .jsonl files found; nothing to index")
    return list(found.values())


def _markdown_title(text: str) -> str | None:
    for line in text.splitlines()[:50]:
        stripped = line.strip()
        if stripped.startswith("#"):
            title = stripped.lstrip("#").strip()
            if title:
                return title
    return None


def _read_text_file(src: SourceFile, report: SourceReport) -> Iterator[SourceDocument]:
    try:
        data = src.path.read_bytes()
    except OSError as exc:
        report.problem(f"{src.path}: cannot read ({exc.strerror or exc}); skipped")
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.problem(f"{src.path}: not UTF-8 text (bad byte at offset {exc.start}); skipped, convert it to UTF-8")
        return
    title = (_markdown_title(text) if src.path.suffix.lower() == ".md" else None) or src.path.name
    yield SourceDocument(key=src.name, text=text, title=title, source=src.name)


def _read_jsonl_file(src: SourceFile, report: SourceReport) -> Iterator[SourceDocument]:
    try:
        fh = open(src.path, "rb")  # noqa: SIM115 - closed below; lines are decoded one by one
    except OSError as exc:
        report.problem(f"{src.path}: cannot read ({exc.strerror or exc}); skipped")
        return
    with fh:
        for line_no, raw in enumerate(fh, 1):
            where = f"{src.path}:{line_no}"
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError:
                report.problem(f"{where}: not UTF-8; line skipped")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                report.problem(f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); line skipped")
                continue
            if not isinstance(row, dict):
                report.problem(f"{where}: expected a JSON object, got {type(row).__name__}; line skipped")
                continue
            text = row.pop("text", None)
            if not isinstance(text, str):
                report.problem(f"{where}: no 'text' string field; line skipped")
                continue
            raw_title = row.pop("title", None)
            title = "" if raw_title is None else str(raw_title)
            raw_id = row.pop("_id", None)
            key = str(raw_id) if raw_id is not None and str(raw_id) != "" else f"{src.name}:{line_no}"
            meta: dict[str, Any] = {}
            nested = row.pop("metadata", None)
            if isinstance(nested, dict):
                meta.update({str(k): v for k, v in nested.items()})
            elif nested is not None:
                meta["metadata"] = nested
            meta.update(row)
            full = f"{title} {text}".strip() if title else text
            yield SourceDocument(key=key, text=full, title=title, source=src.name, metadata=meta)


def read_documents(files: Sequence[SourceFile], report: SourceReport | None = None) -> Iterator[SourceDocument]:
    """Stream the documents of ``files`` (JSONL rows with a title are read as ``title + " " + text``)."""
    report = report if report is not None else SourceReport()
    for src in files:
        report.files += 1
        reader = _read_jsonl_file if src.path.suffix.lower() == ".jsonl" else _read_text_file
        for doc in reader(src, report):
            if not doc.text.strip():
                report.empty += 1
                logger.info("%s: empty document %r skipped", src.path, doc.key)
                continue
            report.documents += 1
            yield doc


def _count_tokens(tokenizer: TokenizerLike, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])


def _soft_break(text: str, offsets: Sequence[tuple[int, int]], start: int, end: int) -> int:
    """Where to cut ``[start, end)`` (``end < len(offsets)``): at a line or sentence end in the
    last quarter of the window, else at the last word boundary, else at ``end``."""

    def gap(j: int) -> str:
        return text[offsets[j - 1][1] : offsets[j][0]]

    floor = start + max(1, 3 * (end - start) // 4)
    for j in range(end, floor - 1, -1):
        prev_end = offsets[j - 1][1]
        g = gap(j)
        if "\n" in g or (prev_end > 0 and text[prev_end - 1] in ".!?;" and g[:1].isspace()):
            return j
    for j in range(end, start, -1):
        if gap(j).strip() == "" and gap(j) != "":
            return j
    return end


def chunk_text(text: str, tokenizer: TokenizerLike, max_tokens: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_tokens`` tokens each, special tokens included.

    Cuts fall on token boundaries (from the fast tokenizer's offsets), preferably at a line
    or sentence end near the cap. Each piece is re-tokenised and shortened if the tokens at
    a boundary merge differently. Whitespace between pieces is dropped; empty text gives [].
    """
    special = int(tokenizer.num_special_tokens_to_add(pair=False))
    budget = max_tokens - special
    if budget < 1:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for text ({special} special tokens); use a larger value")
    stripped = text.strip()
    if not stripped:
        return []
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    if len(offsets) <= budget:
        return [stripped]
    chunks: list[str] = []
    start = 0
    n = len(offsets)
    while start < n:
        end = min(start + budget, n)
        if end < n:
            end = _soft_break(text, offsets, start, end)
        while True:
            lo = min(o[0] for o in offsets[start:end])
            hi = max(o[1] for o in offsets[start:end])
            piece = text[lo:hi].strip()
            count = _count_tokens(tokenizer, piece) if piece else 0
            if count <= max_tokens or end - start == 1:
                break
            end = max(start + 1, end - (count - max_tokens))
        if piece:
            chunks.append(piece)
        start = end
    return chunks


def iter_chunks(
    documents: Iterator[SourceDocument] | Sequence[SourceDocument],
    tokenizer: TokenizerLike,
    max_tokens: int,
    report: SourceReport | None = None,
) -> Iterator[Chunk]:
    """Chunks of ``documents``, with id ``<key>#<n>`` and metadata ``doc_id``, ``source``,
    ``title`` and ``chunk`` (plus a JSONL row's other fields)."""
    report = report if report is not None else SourceReport()
    for doc in documents:
        for n, piece in enumerate(chunk_text(doc.text, tokenizer, max_tokens)):
            report.chunks += 1
            meta = {**doc.metadata, "doc_id": doc.key, "source": doc.source, "title": doc.title, "chunk": n}
            yield Chunk(id=f"{doc.key}#{n}", text=piece, metadata=meta)
