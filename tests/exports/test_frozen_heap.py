"""snapshot.frozen_heap: the heap is frozen while any export runs and unfrozen after the last one; a heap
frozen by someone else is left as it is."""

from __future__ import annotations

import gc

from app.exports.snapshot import frozen_heap


def test_frozen_while_exports_run_and_unfrozen_after_the_last() -> None:
    assert gc.get_freeze_count() == 0
    # While frozen the count only says "frozen" (> 0): frozen objects still die by reference count, so it
    # can shrink (a run under load saw 3,756,905 become 3,756,903 between two reads).
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        with frozen_heap():  # a second export in another thread of the process
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the first still runs: not unfrozen by the second's end
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_someone_else_is_left_alone() -> None:
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        made_since = [[k] for k in range(20_000)]  # a freeze now would take these in too
        with frozen_heap():
            assert 0 < gc.get_freeze_count() < theirs + len(made_since)  # not frozen again
        assert gc.get_freeze_count() > 0  # and not unfrozen
    finally:
        gc.unfreeze()
