"""Length-sorted batches capped by count and by a padded-token budget (pure Python)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["padded_tokens", "plan_batches"]


def plan_batches(lengths: Sequence[int], *, max_batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Group item positions into batches, longest first.

    Each batch holds at most ``max_batch_size`` items and at most ``max_batch_tokens`` padded
    tokens (``len(batch) * longest``); an item longer than the budget gets a batch of its own.
    Sorting by length keeps padding small; callers restore input order afterwards.
    """
    if max_batch_size < 1 or max_batch_tokens < 1:
        raise ValueError("max_batch_size and max_batch_tokens must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = lengths[i]
        if current and (len(current) + 1 > max_batch_size or max(longest, n) * (len(current) + 1) > max_batch_tokens):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches


def padded_tokens(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> int:
    """Tokens a plan processes including padding (for benchmarks and tests)."""
    return sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
