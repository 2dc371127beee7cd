"""Open a Milvus store from a URI: :func:`open_store` (the ``bge.stores`` entry point
``milvus``, used by the ``bge`` CLI) returns the store; :func:`open_index` a :class:`MilvusIndex`.

- ``milvus:PATH.db`` — Milvus Lite, a local database (its parent folder is created).
- ``milvus+http://HOST:PORT`` / ``milvus+https://HOST:PORT`` — a Milvus server; the token is
  read from the environment variable ``MILVUS_TOKEN`` and never appears in logs, errors or repr.

Every failure to open is one :class:`bge_core.errors.StoreError` line.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bge_core.errors import DamagedIndexError, StoreError
from bge_core.index import IndexEncoder, IndexKwargs, IndexOptions, close_on_error
from bge_milvus.dependency import require_pymilvus
from bge_milvus.index import MilvusIndex
from bge_milvus.store import MilvusStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["CONNECT_TIMEOUT", "TOKEN_ENV", "check_lite_collection", "drop_lite_collection", "open_index", "open_store"]

logger = logging.getLogger(__name__)

#: Seconds to wait for a Milvus server before giving up.
CONNECT_TIMEOUT = 5.0
#: Environment variable that holds the server token ("user:password" or an API key).
TOKEN_ENV = "MILVUS_TOKEN"
_LOCK_FILE = "LOCK"


def open_store(uri: str, *, collection: str, **options: Any) -> MilvusStore:
    """The Milvus store of ``collection`` at ``uri``; ``store.close()`` closes the client.

    Extra keyword ``options`` go to :class:`MilvusStore` (``dense_index``, ``metric``, ``ef``,
    ``timeout``). Raises :class:`StoreError` (one line) as :func:`open_index` does.
    """
    client, label = _connect(uri, collection)
    return close_on_error(client, lambda c: MilvusStore(c, collection, owns_client=True, label=label, **options))


def open_index(
    uri: str,
    *,
    encoder: IndexEncoder,
    collection: str,
    options: IndexOptions | None = None,
    **kwargs: Unpack[IndexKwargs],
) -> MilvusIndex:
    """Create the client named by ``uri`` and a :class:`MilvusIndex` on ``collection``
    (``options`` / keywords: :class:`~bge_core.index.IndexOptions`).

    The index's ``close()`` closes the client. Raises :class:`StoreError` (one line) for an
    unknown or malformed URI, an unreachable server, or a Milvus Lite file in use by another
    process.
    """
    client, label = _connect(uri, collection)
    return close_on_error(
        client,
        lambda c: MilvusIndex(c, collection, encoder, owns_client=True, label=label, options=options, **kwargs),
    )


def _connect(uri: str, collection: str | None = None) -> tuple[Any, str]:
    if not isinstance(uri, str):
        raise StoreError(f"store URI must be a str, got {type(uri).__name__}")
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme not in ("milvus", "milvus+http", "milvus+https"):
        raise StoreError(
            f"unknown Milvus store URI {uri!r}; use milvus:PATH.db (Milvus Lite) or milvus+http://HOST:PORT"
        )
    if scheme == "milvus":
        return _connect_lite(rest, collection)
    return _connect_server(scheme.removeprefix("milvus+"), rest)


def _manifest_problem(folder: Path) -> str | None:
    """What is wrong with a Milvus Lite collection's ``manifest.json`` (its list of data files),
    or None. Milvus Lite writes it atomically (keeping ``manifest.json.prev``); an empty, invalid
    or missing one is outside damage, after which Milvus Lite would fall back to the previous
    manifest and silently lose the rows written since."""
    manifest = folder / "manifest.json"
    if not manifest.exists():
        return f"{manifest} is missing" if (folder / "manifest.json.prev").exists() else None
    try:
        raw = manifest.read_bytes()
        data = json.loads(raw)
    except OSError as exc:
        return f"{manifest} is unreadable ({exc.strerror or type(exc).__name__})"
    except ValueError:
        return f"{manifest} is empty" if not raw.strip() else f"{manifest} is not valid JSON"
    if not isinstance(data, dict) or not isinstance(data.get("partitions"), dict):
        return f"{manifest} is not a Milvus Lite manifest"
    return None


def check_lite_collection(path: Path, collection: str) -> None:
    """Refuse a Milvus Lite collection (or its ColBERT companion) whose manifest is damaged."""
    for name in (collection, f"{collection}_colbert"):
        folder = path / "collections" / name
        problem = _manifest_problem(folder) if folder.is_dir() else None
        if problem is not None:
            raise DamagedIndexError(
                f"the Milvus Lite database {str(path)!r} is damaged: {problem} (Milvus Lite would fall back to an "
                "older manifest and silently lose rows); restore the database from a copy, or drop the collection "
                f"(bge drop --store milvus:{path} --collection {collection}) and index again",
                collections=(collection,),
                drop=lambda name: drop_lite_collection(path, name),
            )


def drop_lite_collection(path: Path, collection: str) -> None:
    """Delete a collection and its ColBERT companion from a Milvus Lite database without
    opening it (``bge drop`` of a damaged index); the database must not be in use."""
    with open(path / _LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(
                f"Milvus Lite database {str(path)!r} is in use by another process; stop it or use another path"
            ) from None
        for name in (f"{collection}_colbert", collection):
            shutil.rmtree(path / "collections" / name, ignore_errors=True)
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _connect_lite(raw: str, collection: str | None = None) -> tuple[Any, str]:
    if raw.startswith("//"):
        raise StoreError(
            f"malformed Milvus Lite URI 'milvus:{raw}'; write milvus:PATH.db (for a server: milvus+http://HOST:PORT)"
        )
    if not raw.endswith(".db") or raw == ".db":
        raise StoreError(f"malformed Milvus Lite URI 'milvus:{raw}'; the path must end in .db, e.g. milvus:./index.db")
    path = Path(raw).expanduser().resolve()
    if collection is not None:
        check_lite_collection(path, collection)
    pm = require_pymilvus()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        client = pm.MilvusClient(str(path))
    except Exception as exc:  # noqa: BLE001 - translated to one line below
        if _locked(path):
            raise StoreError(
                f"Milvus Lite database {str(path)!r} is in use by another process; stop it or use another path"
            ) from None
        raise StoreError(
            f"cannot open Milvus Lite database {str(path)!r}: {type(exc).__name__}: {_one_line(exc)}"
        ) from None
    return client, f"lite={str(path)!r}"


def _locked(path: Path) -> bool:
    """Whether another process holds Milvus Lite's lock on ``path`` (probed after a failure)."""
    lock = path / _LOCK_FILE
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _connect_server(scheme: str, rest: str) -> tuple[Any, str]:
    parsed = urllib.parse.urlsplit(f"{scheme}:{rest}")
    try:
        port = parsed.port
    except ValueError:
        port = None
        host_ok = False
    else:
        host_ok = bool(parsed.hostname)
    if not rest.startswith("//") or not host_ok or parsed.username or parsed.password or parsed.query:
        raise StoreError(
            f"malformed Milvus server URI 'milvus+{scheme}:{_redact(rest)}'; write milvus+{scheme}://HOST:PORT "
            f"and put the token in ${TOKEN_ENV}"
        )
    address = f"{scheme}://{parsed.hostname}:{port or 19530}"
    pm = require_pymilvus()
    token = os.environ.get(TOKEN_ENV, "")
    try:
        client = pm.MilvusClient(uri=address, token=token, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - translated to one line below
        message = _one_line(exc).replace(token, "***") if token else _one_line(exc)
        raise StoreError(
            f"cannot reach Milvus at {address} within {CONNECT_TIMEOUT:.0f}s ({type(exc).__name__}: {message}); "
            "is the server running?"
        ) from None
    return client, f"server={address!r}"


def _redact(rest: str) -> str:
    parsed = urllib.parse.urlsplit("x:" + rest)
    if parsed.password or parsed.username:
        host = parsed.hostname or ""
        return "//***@" + host + (f":{parsed.port}" if _safe_port(parsed) else "") + parsed.path
    return rest


def _safe_port(parsed: urllib.parse.SplitResult) -> int | None:
    try:
        return parsed.port
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
    return " ".join(text.split())[:300]
