"""Silencing the transformers ``LOAD REPORT`` that is expected for BGE checkpoints.

BGE checkpoints are saved without the BERT/XLM-R pooler (BGE pools the CLS token or the mean
itself and never uses it), so transformers 5 logs a ``LOAD REPORT ... pooler.dense.weight |
MISSING`` table on every load, which reads like a failure. :func:`install_load_report_filter`
drops exactly that report (every row a ``pooler.*`` key with status ``MISSING``); any other
row (an unexpected or mismatched key, a missing encoder weight) keeps the whole report.
"""

from __future__ import annotations

import logging
import re

__all__ = ["ExpectedPoolerFilter", "install_load_report_filter", "is_expected_report"]

_ROW = re.compile(r"^\s*([^|\s][^|]*?)\s*\|\s*([A-Z_]+)\s*\|")
_LOGGERS = ("transformers.modeling_utils", "transformers.utils.loading_report")


def is_expected_report(message: str) -> bool:
    """Whether ``message`` is a LOAD REPORT whose only rows are missing ``pooler.*`` weights."""
    if "LOAD REPORT" not in message:
        return False
    rows = [m.groups() for m in map(_ROW.match, message.splitlines()) if m]
    rows = [(key, status) for key, status in rows if key != "Key"]
    return bool(rows) and all(key.startswith("pooler.") and status == "MISSING" for key, status in rows)


class ExpectedPoolerFilter(logging.Filter):
    """Drops the expected pooler-only LOAD REPORT records; passes everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return not is_expected_report(record.getMessage())
        except Exception:  # noqa: BLE001 - a filter must never break logging
            return True


_FILTER = ExpectedPoolerFilter()


def install_load_report_filter() -> None:
    """Attach the filter to the transformers loggers that print the report (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
