"""The label budget's rule, in Python (the SQLite claim, requeues, stats).

``project.budget`` counts labels. A pair's first claim spends ``annotations_per_pair`` of them at once
(``project_budget.pairs_released``), and a requeue spends one (``project_budget.extra_labels``), so:

- a pair may be released while (pairs_released + 1) · annotations_per_pair + extra_labels ≤ budget;
- one more label may be asked for while pairs_released · annotations_per_pair + extra_labels + 1 ≤ budget.

Gold pairs are outside the budget. The counters move only by conditional UPDATEs that state these two
conditions in SQL, so they hold under concurrency: ``take_budget_for_pair`` and ``take_extra_label`` in
app/queue/repository.py, and on Postgres the claim's own (app/queue/sql/real_queue_claim.sql). The
functions here are the hints and read-side answers (is the budget open, why is the queue empty).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spent:
    """A project's budget counters."""

    pairs_released: int
    extra_labels: int


def committed(spent: Spent, per_pair: int) -> int:
    """Labels the budget has handed out or promised: every released pair's wanted labels, plus extras."""
    return spent.pairs_released * per_pair + spent.extra_labels


def can_release_pair(budget: int | None, per_pair: int, spent: Spent) -> bool:
    """Whether one more pair may be released (its annotations_per_pair labels fit the budget)."""
    return budget is None or committed(spent, per_pair) + per_pair <= budget


def pairs_left(budget: int | None, per_pair: int, spent: Spent) -> int | None:
    """How many more pairs the budget can release (None: unlimited)."""
    if budget is None:
        return None
    return max(budget - committed(spent, per_pair), 0) // per_pair
