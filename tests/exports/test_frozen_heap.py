"""snapshot.frozen_heap: the heap is frozen while any export runs and unfrozen after the last one; a heap
frozen by someone else is left as it is."""

from __future__ import annotations

import gc

from app.exports.snapshot import frozen_heap


def test_frozen_while_exports_run_and_unfrozen_after_the_last() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with frozen_heap():  # a second export in another thread of the process
            assert gc.get_freeze_count() >= frozen
        assert gc.get_freeze_count() >= frozen  # the first still runs
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_by_someone_else_is_left_alone() -> None:
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        with frozen_heap():
            assert gc.get_freeze_count() == theirs
        assert gc.get_freeze_count() == theirs
    finally:
        gc.unfreeze()
