"""Open a Qdrant store from a URI: :func:`open_store` (the ``bge.stores`` entry point
``qdrant``) returns the store; :func:`open_index` a :class:`QdrantIndex` on it.

URIs:

- ``qdrant:PATH``: Qdrant local mode in folder ``PATH`` (``QdrantClient(path=PATH)``);
  ``qdrant::memory:`` keeps everything in memory.
- ``qdrant+http://HOST:PORT[/PREFIX]`` and ``qdrant+https://HOST[:PORT][/PREFIX]``: a Qdrant
  server or cluster. An API key is read from the environment variable ``QDRANT_API_KEY``; it
  never appears in logs, errors or reprs (and is refused inside the URI).

Every failure is one :class:`bge_core.errors.StoreError` line: a malformed URI, a server that
cannot be reached (5 s timeout) or refuses the key, or a local folder that another process
holds open.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bge_core.errors import DamagedIndexError, StoreError
from bge_core.index import IndexEncoder, close_on_error
from bge_qdrant.batch import BatchQdrantStore
from bge_qdrant.dependency import QdrantClient
from bge_qdrant.index import QdrantIndex, QdrantIndexOptions
from bge_qdrant.layout import QdrantLayout

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "API_KEY_ENV",
    "CONNECT_TIMEOUT_S",
    "check_local_storage",
    "drop_local_collection",
    "open_index",
    "open_store",
]

logger = logging.getLogger("bge_qdrant")

#: Environment variable holding the API key of a Qdrant server.
API_KEY_ENV = "QDRANT_API_KEY"
#: Seconds to wait for a server before giving up.
CONNECT_TIMEOUT_S = 5

_USAGE = "use qdrant:PATH, qdrant::memory:, qdrant+http://HOST:PORT or qdrant+https://HOST[:PORT]"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


def _storage(folder: Path, name: str) -> Path:
    return folder / "collection" / name / "storage.sqlite"


def _local_collections(folder: Path) -> list[str]:
    """The collections listed in a local-mode folder's ``meta.json`` (none without one)."""
    meta = folder / "meta.json"
    if not meta.is_file():
        return []
    try:
        collections = json.loads(meta.read_text(encoding="utf-8"))["collections"]
        return [str(name) for name in collections]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DamagedIndexError(
            f"the Qdrant index at {folder} is damaged: {meta} is not a readable local-mode record "
            f"({type(exc).__name__}); restore the folder from a copy, or delete it and index again"
        ) from None


def _damaged(folder: Path, names: list[str], detail: str) -> DamagedIndexError:
    fix = " or ".join(f"bge drop --store qdrant:{folder} --collection {n}" for n in names)
    return DamagedIndexError(
        f"the Qdrant index at {folder} is damaged: {detail}; restore the folder from a copy, "
        f"or drop the collection ({fix}) and index again",
        collections=tuple(names),
        drop=lambda name: drop_local_collection(folder, name),
    )


def _unreadable(storage: Path) -> str | None:
    """Why ``storage`` is not a readable SQLite database of points, or None."""
    try:
        con = sqlite3.connect(f"file:{storage}?mode=ro", uri=True)
        try:
            con.execute("SELECT count(*) FROM points").fetchone()
            check = con.execute("PRAGMA quick_check").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None if check and check[0] == "ok" else f"integrity check: {check[0] if check else 'no answer'}"


def check_local_storage(folder: Path, collection: str | None = None) -> None:
    """Refuse a local-mode folder whose collection lost its points file (emptied or deleted
    ``storage.sqlite``: Qdrant would silently start it empty, and a search would find nothing)."""
    for name in _local_collections(folder):
        if collection is not None and name != collection:
            continue
        storage = _storage(folder, name)
        if not storage.is_file():
            raise _damaged(folder, [name], f"{storage} is missing (the collection's points are lost)")
        if storage.stat().st_size == 0:
            raise _damaged(folder, [name], f"{storage} is empty (the collection's points are lost)")


def drop_local_collection(folder: Path, name: str) -> None:
    """Delete collection ``name`` of a local-mode folder without opening it (``bge drop`` of a
    damaged index): its files, then its entry in ``meta.json`` (atomically)."""
    lock = folder / ".lock"
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(f"Qdrant storage folder {str(folder)!r} is in use by another process; stop it") from None
        shutil.rmtree(folder / "collection" / name, ignore_errors=True)
        meta = folder / "meta.json"
        data = json.loads(meta.read_text(encoding="utf-8"))
        data["collections"].pop(name, None)
        data["aliases"] = {a: c for a, c in (data.get("aliases") or {}).items() if c != name}
        if isinstance(data.get("text_indexes"), dict):
            data["text_indexes"].pop(name, None)
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, meta)
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _local_client(path: str, collection: str | None = None) -> QdrantClient:
    folder = Path(os.path.expanduser(path))
    if path != ":memory:":
        check_local_storage(folder, collection)
    try:
        if path == ":memory:":
            return QdrantClient(":memory:")
        return QdrantClient(path=str(folder))
    except sqlite3.DatabaseError as exc:
        # A truncated or overwritten storage.sqlite: name the collection(s) and the file.
        names = _local_collections(folder)
        bad = [(n, why) for n in names if (why := _unreadable(_storage(folder, n))) is not None]
        if not bad:
            raise StoreError(
                f"cannot open Qdrant storage folder {path!r}: DatabaseError: {_one_line(str(exc))}"
            ) from None
        detail = "; ".join(f"{_storage(folder, n)} is not a readable SQLite database ({why})" for n, why in bad)
        raise _damaged(folder, [n for n, _ in bad], detail) from None
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreError(
                f"Qdrant storage folder {path!r} is in use by another process; stop it or use another path"
            ) from None
        raise StoreError(f"cannot open Qdrant storage folder {path!r}: {_one_line(str(exc))}") from None
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"cannot open Qdrant storage folder {path!r}: {type(exc).__name__}: {_one_line(str(exc))}"
        ) from None


def _server_client(uri: str) -> tuple[QdrantClient, str]:
    url = uri.split("+", 1)[1]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise StoreError(f"malformed Qdrant URI {uri!r}: bad port; {_USAGE}") from None
    if not parts.hostname:
        raise StoreError(f"malformed Qdrant URI {uri!r}: no host; {_USAGE}")
    if parts.username or parts.password:
        raise StoreError(f"do not put credentials in the Qdrant URI; set the environment variable {API_KEY_ENV}")
    if parts.query or parts.fragment:
        raise StoreError(f"malformed Qdrant URI {uri!r}: unexpected query or fragment; {_USAGE}")
    https = parts.scheme == "https"
    port = port or (443 if https else 6333)
    safe = f"{parts.scheme}://{parts.hostname}:{port}{parts.path.rstrip('/')}"
    api_key = os.environ.get(API_KEY_ENV) or None
    client = QdrantClient(
        host=parts.hostname,
        port=port,
        https=https,
        prefix=parts.path.strip("/") or None,
        api_key=api_key,
        timeout=CONNECT_TIMEOUT_S,
        check_compatibility=False,
    )
    try:
        client.get_collections()
    except Exception as exc:  # noqa: BLE001 - any failure here means we cannot use the server
        client.close()
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            raise StoreError(
                f"Qdrant at {safe} refused the request ({status}); set a valid API key in {API_KEY_ENV}"
            ) from None
        reason = getattr(exc, "source", exc)
        raise StoreError(
            f"cannot reach Qdrant at {safe} ({type(reason).__name__}); check the URL and that the server is running"
        ) from None
    return client, safe


def _connect(uri: str, collection: str | None = None) -> tuple[QdrantClient, str]:
    """The client named by ``uri`` and a printable place (no secrets)."""
    if not isinstance(uri, str):
        raise StoreError(f"a store URI must be a str, got {type(uri).__name__}; {_USAGE}")
    scheme, sep, rest = uri.partition(":")
    if not sep:
        raise StoreError(f"malformed Qdrant URI {uri!r}; {_USAGE}")
    if scheme == "qdrant":
        if not rest:
            raise StoreError(f"malformed Qdrant URI {uri!r}: no path; {_USAGE}")
        if rest.startswith("//"):
            raise StoreError(f"malformed Qdrant URI {uri!r}: for a server use qdrant+http:// or qdrant+https://")
        return _local_client(rest, collection), "memory" if rest == ":memory:" else rest
    if scheme in ("qdrant+http", "qdrant+https"):
        return _server_client(uri)
    raise StoreError(f"unknown store URI scheme {scheme!r} in {uri!r}; {_USAGE}")


def open_store(uri: str, *, collection: str, layout: QdrantLayout | None = None) -> BatchQdrantStore:
    """The Qdrant store of ``collection`` at ``uri`` (see the module docstring); nothing is
    created yet. The store owns the client it creates: ``store.close()`` closes it. A local
    folder whose collection is damaged raises :class:`~bge_core.errors.DamagedIndexError`."""
    client, where = _connect(uri, collection)
    logger.info("opened Qdrant store at %s, collection %r", where, collection)
    return close_on_error(client, lambda c: BatchQdrantStore(c, collection, layout=layout, owns_client=True))


def open_index(
    uri: str,
    *,
    encoder: IndexEncoder,
    collection: str,
    **options: Unpack[QdrantIndexOptions],
) -> QdrantIndex:
    """A :class:`QdrantIndex` on the store named by ``uri`` (see the module docstring).

    The index owns the client it creates: ``index.close()`` closes it. Keyword ``options`` go
    to :class:`QdrantIndex` (:class:`~bge_qdrant.index.QdrantIndexOptions`, for example
    ``sparse_idf=True`` or ``colbert=False``).
    """
    if "owns_client" in options:
        raise TypeError("open_index always owns the client it creates (index.close() closes it); drop owns_client")
    options["owns_client"] = True
    client, where = _connect(uri, collection)
    logger.info("opened Qdrant store at %s, collection %r", where, collection)
    return close_on_error(client, lambda c: QdrantIndex(c, collection, encoder, **options))
