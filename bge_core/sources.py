"""Reading SOURCE files for indexing, and splitting long texts into token-capped chunks.

Supported files: ``.txt`` and ``.md`` (one document per file) and ``.jsonl`` (one document
per line: a JSON object with a ``text`` string, optional ``title`` and ``_id``; every other
field becomes metadata, and a ``metadata`` object is merged in, so BEIR ``corpus.jsonl``
files work as they are).

Names and ids. A file's name (the ``source`` metadata) is its path relative to the parent of
the SOURCE argument (``bge index ~/notes`` gives ``notes/a.md`` from any working directory; a
file argument ``notes/a.md`` gives the same name), and ``source_root`` records that parent
(absolute). Chunk ids derive from an *id key* that cannot be ambiguous:

- a ``.txt`` / ``.md`` file: ``file:<name>``;
- a JSONL row with ``_id``: ``row:<file name>\\0id:<_id>`` (scoped by its file, so it can
  equal neither a path nor the same ``_id`` in another file);
- a JSONL row without ``_id``: ``row:<file name>\\0text:<hash of title and text>`` (keyed by
  content, so deleting a line does not shift the other rows' ids).

Two documents of one run with the same id key (the same ``_id`` twice in a file, a row
repeated, two SOURCE folders with the same name) are reported with both places and the later
one is skipped. Problems with single files or lines are logged as warnings (file and line)
and counted in :class:`SourceReport`; the rest is still read.

Nothing here imports torch; chunking takes any Hugging Face *fast* tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bge_core.checks import unpaired_surrogate, value_problem
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
    "iter_text_chunks",
    "read_documents",
]

logger = logging.getLogger(__name__)

#: File types ``bge index`` reads.
SUPPORTED_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".jsonl")
#: Metadata keys written by the indexer; JSONL fields of the same name are overridden.
RESERVED_METADATA: tuple[str, ...] = ("doc_id", "source", "source_root", "title", "chunk")
#: Bytes of a text file decoded and chunked at a time (bounds memory for huge files).
TEXT_BLOCK_CHARS = 1 << 18


class SourceError(BGEError):
    """A SOURCE argument cannot be indexed (missing, unreadable, or holds no readable files)."""


@dataclass(frozen=True)
class SourceFile:
    """A file to read, its stable relative name (the ``source`` metadata) and the folder that
    name is relative to (absolute; the ``source_root`` metadata)."""

    path: Path
    name: str
    root: Path = field(default_factory=Path)


@dataclass(frozen=True)
class SourceDocument:
    """One document read from a source file, before chunking.

    ``key`` is the shown document id (``doc_id`` metadata: the file name or a row's ``_id``),
    ``id_key`` the unambiguous key the chunk ids derive from, ``where`` the file (and line).
    ``text`` may be empty when ``blocks`` streams a large file's text instead; ``blocks`` is
    readable until the next document is read (the file is open only that long).
    """

    key: str
    text: str
    title: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id_key: str = ""
    where: str = ""
    root: str = ""
    blocks: Any = None


@dataclass(frozen=True)
class Chunk:
    """One chunk of a document, as it is indexed."""

    id: str
    text: str
    metadata: dict[str, Any]


@dataclass
class SourceReport:
    """What reading the sources found: counts and the problems that were skipped.

    ``incomplete`` holds the absolute paths (files or folders) that were not read in full
    (a bad line, an unreadable sub-folder): a sync must not delete their stored chunks.
    """

    files: int = 0
    skipped_files: int = 0
    documents: int = 0
    chunks: int = 0
    empty: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    incomplete: set[str] = field(default_factory=set)

    def problem(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        """Record and log a skipped file or line (``path``: the file or folder not read in full)."""
        self.problems.append(message)
        if path is not None:
            self.incomplete.add(os.path.abspath(path))
        logger.warning("%s", message)

    def note(self, message: str) -> None:
        """Record and log something skipped that is not an error (an empty file)."""
        self.notes.append(message)
        logger.warning("%s", message)


class TokenizerLike(Protocol):
    """The part of a Hugging Face fast tokenizer that chunking uses."""

    def __call__(self, text: Any, **kwargs: Any) -> Any: ...

    def num_special_tokens_to_add(self, pair: bool = False) -> int: ...


def _is_hidden(name: str) -> bool:
    return name.startswith(".") and name not in (".", "..")


def _display_root(arg: Path) -> Path:
    """The folder that relative names are taken from: the parent of the SOURCE folder
    (absolute, symlinks kept, so a linked folder keeps its own name)."""
    absolute = Path(os.path.abspath(arg))
    return absolute.parent if absolute.is_dir() else absolute.parent.parent


def _relative_name(path: Path, root: Path) -> str:
    absolute = os.path.abspath(path)
    try:
        return Path(absolute).relative_to(root).as_posix()
    except ValueError:
        return Path(absolute).as_posix()


def _shown(path: str | os.PathLike[str]) -> str:
    """A path for messages, with undecodable bytes escaped."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def _check_folder_readable(raw: str | os.PathLike[str], arg: Path) -> None:
    try:
        with os.scandir(arg):
            pass
    except OSError as exc:
        raise SourceError(f"{raw}: cannot read the folder ({exc.strerror or exc}); check its permissions") from exc


def find_source_files(paths: Sequence[str | os.PathLike[str]], report: SourceReport | None = None) -> list[SourceFile]:
    """The supported files under ``paths`` (files or folders, recursive; hidden entries skipped).

    Raises :class:`SourceError` when a path does not exist, a SOURCE folder cannot be read, or
    nothing readable is found. Reported and skipped: a file of another type named explicitly,
    file names that are not UTF-8, dangling symlinks, symlink loops and unreadable sub-folders
    (linked folders are followed once).
    """
    report = report if report is not None else SourceReport()
    if not paths:
        raise SourceError("no SOURCE given; pass files or folders of .txt, .md or .jsonl files")
    found: dict[str, SourceFile] = {}
    for raw in paths:
        arg = Path(raw).expanduser()
        if not arg.exists():
            if arg.is_symlink():
                raise SourceError(f"{raw}: a symlink to {os.readlink(arg)}, which does not exist")
            raise SourceError(f"{raw}: no such file or folder")
        root = _display_root(arg)
        if arg.is_file():
            if arg.suffix.lower() not in SUPPORTED_SUFFIXES:
                report.problem(
                    f"{raw}: unsupported file type {arg.suffix or '(none)'}; skipped (use .txt, .md or .jsonl)"
                )
                continue
            found.setdefault(os.path.realpath(arg), SourceFile(arg, _relative_name(arg, root), root))
            continue
        _check_folder_readable(raw, arg)
        _walk(arg, root, report, found)
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise SourceError(f"{shown}: no .txt, .md or .jsonl files found; nothing to index")
    return list(found.values())


def _walk(arg: Path, root: Path, report: SourceReport, found: dict[str, SourceFile]) -> None:
    seen: dict[str, str] = {}

    def unreadable(exc: OSError) -> None:
        where = exc.filename if exc.filename is not None else arg
        report.problem(f"{_shown(where)}: cannot read the folder ({exc.strerror or exc}); skipped", where)

    def loops(folder: str, target: str) -> bool:
        here = os.path.realpath(folder)
        return here == target or here.startswith(target.rstrip(os.sep) + os.sep)

    for folder, dirs, files in os.walk(arg, onerror=unreadable, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            report.note(f"{_shown(folder)}: the same folder as {_shown(seen[real])}; read once")
            dirs[:] = []
            continue
        seen[real] = folder
        kept = []
        for name in sorted(dirs):
            if _is_hidden(name):
                continue
            full = os.path.join(folder, name)
            if os.path.islink(full) and loops(folder, os.path.realpath(full)):
                report.problem(
                    f"{_shown(full)}: symlink loop (leads back to {_shown(os.path.realpath(full))}); not followed"
                )
                continue
            kept.append(name)
        # Real folders before linked ones, so a folder reached both ways keeps its real name.
        dirs[:] = sorted(kept, key=lambda d: os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            if _is_hidden(name):
                continue
            path = Path(folder) / name
            if path.is_symlink() and not path.exists():
                report.problem(f"{_shown(path)}: dangling symlink (to {_shown(os.readlink(path))}); skipped")
                continue
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            if unpaired_surrogate(name) is not None or unpaired_surrogate(folder) is not None:
                report.problem(
                    f"{_shown(path)}: the file name is not valid UTF-8; skipped (rename it, e.g. with convmv)"
                )
                report.skipped_files += 1
                continue
            if path.is_file():
                found.setdefault(os.path.realpath(path), SourceFile(path, _relative_name(path, root), root))


def _markdown_title(text: str) -> str | None:
    for line in text.splitlines()[:50]:
        stripped = line.strip()
        if stripped.startswith("#"):
            title = stripped.lstrip("#").strip()
            if title:
                return title
    return None


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NonFinite(name)


def _text_blocks(src: SourceFile, first: str, fh: Any, decoder: Any, report: SourceReport) -> Iterator[str]:
    """The decoded blocks of a large file; a bad byte or read error later on stops it (reported)."""
    yield first
    offset = len(first)
    try:
        while data := fh.read(TEXT_BLOCK_CHARS):
            text = decoder.decode(data)
            offset += len(data)
            yield text
        tail = decoder.decode(b"", final=True)
    except (UnicodeDecodeError, OSError) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"cannot read ({exc.strerror or exc})"
        report.problem(f"{src.path}: {why} near byte {offset}; the rest of the file is skipped", src.path)
        return
    if tail:
        yield tail


def _read_text_file(src: SourceFile, report: SourceReport) -> Iterator[SourceDocument]:
    """One document per file; files over one block are streamed (``SourceDocument.blocks``)."""
    import codecs

    try:
        fh = open(src.path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        report.problem(f"{src.path}: cannot read ({exc.strerror or exc}); skipped", src.path)
        report.skipped_files += 1
        return
    with fh:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        offset = 0
        try:
            data = fh.read(TEXT_BLOCK_CHARS)
            first = decoder.decode(data, final=len(data) < TEXT_BLOCK_CHARS)
            offset += len(data)
        except UnicodeDecodeError as exc:
            report.problem(
                f"{src.path}: not UTF-8 text (bad byte at offset {offset + exc.start}); skipped, convert it to UTF-8",
                src.path,
            )
            report.skipped_files += 1
            return
        except OSError as exc:
            report.problem(f"{src.path}: cannot read ({exc.strerror or exc}); skipped", src.path)
            report.skipped_files += 1
            return
        title = (_markdown_title(first) if src.path.suffix.lower() == ".md" else None) or src.path.name
        common = {
            "key": src.name,
            "title": title,
            "source": src.name,
            "id_key": f"file:{src.name}",
            "where": str(src.path),
            "root": src.root.as_posix(),
        }
        if len(data) < TEXT_BLOCK_CHARS:
            yield SourceDocument(text=first, **common)  # type: ignore[arg-type]
            return
        yield SourceDocument(text="", blocks=_text_blocks(src, first, fh, decoder, report), **common)  # type: ignore[arg-type]


def _row_problem(row: dict[str, Any]) -> str | None:
    text = row.get("text")
    if isinstance(text, str):
        pos = unpaired_surrogate(text)
        if pos is not None:
            return f"'text' holds an unpaired surrogate at position {pos} (not valid Unicode)"
    return value_problem({k: v for k, v in row.items() if k != "text"})


def _read_jsonl_file(src: SourceFile, report: SourceReport) -> Iterator[SourceDocument]:
    try:
        fh = open(src.path, "rb")  # noqa: SIM115 - closed below; lines are decoded one by one
    except OSError as exc:
        report.problem(f"{src.path}: cannot read ({exc.strerror or exc}); skipped", src.path)
        report.skipped_files += 1
        return
    seen: dict[str, int] = {}
    with fh:
        for line_no, raw in enumerate(fh, 1):
            where = f"{src.path}:{line_no}"
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError:
                report.problem(f"{where}: not UTF-8; line skipped", src.path)
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line, parse_constant=_refuse_constant)
            except _NonFinite as exc:
                report.problem(
                    f"{where}: {exc} is not a JSON number and no store keeps it; line skipped (use null or a string)",
                    src.path,
                )
                continue
            except json.JSONDecodeError as exc:
                report.problem(f"{where}: malformed JSON ({exc.msg} at column {exc.colno}); line skipped", src.path)
                continue
            except RecursionError:
                report.problem(f"{where}: JSON nested too deeply; line skipped", src.path)
                continue
            if not isinstance(row, dict):
                report.problem(f"{where}: expected a JSON object, got {type(row).__name__}; line skipped", src.path)
                continue
            if not isinstance(row.get("text"), str):
                report.problem(f"{where}: no 'text' string field; line skipped", src.path)
                continue
            problem = _row_problem(row)
            if problem:
                report.problem(f"{where}: {problem}; line skipped", src.path)
                continue
            text = row.pop("text")
            raw_title = row.pop("title", None)
            title = "" if raw_title is None else str(raw_title)
            raw_id = row.pop("_id", None)
            if raw_id is not None and str(raw_id) != "":
                key = str(raw_id)
                id_key = f"row:{src.name}\x00id:{key}"
                label = f"_id {key!r}"
            else:
                digest = hashlib.blake2b(f"{title}\x00{text}".encode(), digest_size=12).hexdigest()
                key = f"{src.name}@{digest}"
                id_key = f"row:{src.name}\x00text:{digest}"
                label = "the same title and text (and no _id)"
            if id_key in seen:
                report.problem(
                    f"{where}: {label} as line {seen[id_key]} of the same file; line skipped "
                    "(give each row its own _id)",
                    src.path,
                )
                continue
            seen[id_key] = line_no
            meta: dict[str, Any] = {}
            nested = row.pop("metadata", None)
            if isinstance(nested, dict):
                meta.update({str(k): v for k, v in nested.items()})
            elif nested is not None:
                meta["metadata"] = nested
            meta.update(row)
            full = f"{title} {text}".strip() if title else text
            yield SourceDocument(
                key=key,
                text=full,
                title=title,
                source=src.name,
                metadata=meta,
                id_key=id_key,
                where=where,
                root=src.root.as_posix(),
            )


def read_documents(files: Sequence[SourceFile], report: SourceReport | None = None) -> Iterator[SourceDocument]:
    """Stream the documents of ``files`` (JSONL rows with a title are read as ``title + " " + text``).

    Two files with the same name (from SOURCE folders of the same name) are reported and the
    later one is skipped: their ids would be the same.
    """
    report = report if report is not None else SourceReport()
    names: dict[str, Path] = {}
    for src in files:
        if src.name in names:
            report.problem(
                f"{src.path}: same name {src.name!r} (so the same ids) as {names[src.name]}; skipped: "
                "index one of them into another --collection, or rename a folder"
            )
            report.skipped_files += 1
            continue
        names[src.name] = src.path
        report.files += 1
        reader = _read_jsonl_file if src.path.suffix.lower() == ".jsonl" else _read_text_file
        for doc in reader(src, report):
            if doc.blocks is None and not doc.text.strip():
                report.empty += 1
                report.note(f"{doc.where}: empty document; skipped")
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


def _budget(tokenizer: TokenizerLike, max_tokens: int) -> int:
    special = int(tokenizer.num_special_tokens_to_add(pair=False))
    budget = max_tokens - special
    if budget < 1:
        raise ValueError(
            f"max_tokens={max_tokens} leaves no room for text ({special} special tokens); use a larger value"
        )
    return budget


def chunk_text(text: str, tokenizer: TokenizerLike, max_tokens: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_tokens`` tokens each, special tokens included.

    Cuts fall on token boundaries (from the fast tokenizer's offsets), preferably at a line
    or sentence end near the cap. Each piece is re-tokenised and shortened if the tokens at
    a boundary merge differently. Whitespace between pieces is dropped; empty text gives [].
    """
    return [piece for piece, _ in _chunk_spans(text, tokenizer, max_tokens)]


def iter_text_chunks(blocks: Iterator[str] | Sequence[str], tokenizer: TokenizerLike, max_tokens: int) -> Iterator[str]:
    """:func:`chunk_text` over a text given as consecutive blocks, in memory bounded by a block.

    Each block is chunked together with the unfinished last chunk of the previous one, so
    cuts still fall at token boundaries; only the chunk at a block's end is carried over.
    """
    _budget(tokenizer, max_tokens)
    carry = ""
    it = iter(blocks)
    block = next(it, None)
    while block is not None:
        following = next(it, None)
        buf = carry + block
        spans = _chunk_spans(buf, tokenizer, max_tokens)
        if following is None:
            yield from (piece for piece, _ in spans)
            return
        if len(spans) > 1:
            yield from (piece for piece, _ in spans[:-1])
            carry = buf[spans[-1][1] :]
        else:
            carry = buf  # one chunk so far: wait for more text
        block = following
    if carry.strip():
        yield from chunk_text(carry, tokenizer, max_tokens)


def _chunk_spans(text: str, tokenizer: TokenizerLike, max_tokens: int) -> list[tuple[str, int]]:
    """``(piece, start offset in text)`` of each chunk of ``text``."""
    budget = _budget(tokenizer, max_tokens)
    stripped = text.strip()
    if not stripped:
        return []
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    del enc
    if len(offsets) <= budget:
        return [(stripped, len(text) - len(text.lstrip()))]
    chunks: list[tuple[str, int]] = []
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
            chunks.append((piece, lo))
        start = end
    return chunks


def iter_chunks(
    documents: Iterator[SourceDocument] | Sequence[SourceDocument],
    tokenizer: TokenizerLike,
    max_tokens: int,
    report: SourceReport | None = None,
) -> Iterator[Chunk]:
    """Chunks of ``documents``, with id ``<id key>#<n>`` and metadata ``doc_id``, ``source``,
    ``source_root``, ``title`` and ``chunk`` (plus a JSONL row's other fields). Large files
    are chunked as they stream in."""
    report = report if report is not None else SourceReport()
    for doc in documents:
        pieces = (
            iter_text_chunks(doc.blocks, tokenizer, max_tokens)
            if doc.blocks is not None
            else iter(chunk_text(doc.text, tokenizer, max_tokens))
        )
        id_key = doc.id_key or doc.key
        for n, piece in enumerate(pieces):
            report.chunks += 1
            meta = {**doc.metadata, "doc_id": doc.key, "source": doc.source, "title": doc.title, "chunk": n}
            if doc.root:
                meta["source_root"] = doc.root
            yield Chunk(id=f"{id_key}#{n}", text=piece, metadata=meta)
