"""A local Ray cluster for the session (2 CPUs, no dashboard), shut down at the end.

Every test here is marked ``ray`` (deselect with ``-m "not ray"``). The workers import
``ray_helpers`` from this folder, which is put on their PYTHONPATH before Ray starts.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_checks import release_milvus_under

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.ray)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(400))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(HERE), os.environ.get("PYTHONPATH", "")] if p)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(autouse=True)
def _release_milvus_lite(tmp_path: Path) -> Iterator[None]:
    """Stop the Milvus Lite servers a test started below its ``tmp_path`` (in-process ``bge`` runs
    and ``store_dump.milvus_rows`` leave them running, holding their LOCK files, otherwise)."""
    yield
    release_milvus_under(tmp_path)
