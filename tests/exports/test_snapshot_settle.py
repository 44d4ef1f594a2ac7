"""An export reads its snapshot once no label stamped by it can still commit (app/exports/snapshot.settle).

The chaos suite's load run (tests/chaos/test_4_load_and_exports.py) found two exports of one snapshot, made
during the load, with different files: the first, taken right at its snapshot, missed labels stamped before
it that were still being written, and the second held them."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.exports.models import ExportRun
from app.pairs.models import Pair
from tests.exports.helpers import label, run_export
from tests.factories import make_pairs, make_project

pytestmark = pytest.mark.usefixtures("recorded_tasks")


def one_pair(db: Any) -> tuple[Any, Any]:
    with db.session() as s:
        project = make_project(s)
        pair = make_pairs(s, project, 1)[0]
        return project.id, pair.id


def in_thread(db: Any, project_id: Any) -> tuple[threading.Thread, dict[str, ExportRun]]:
    done: dict[str, ExportRun] = {}
    thread = threading.Thread(target=lambda: done.setdefault("run", run_export(db, project_id)), daemon=True)
    thread.start()
    return thread, done


def test_an_export_waits_for_a_label_stamped_before_its_snapshot_that_commits_after_it(
    db: Any, override_settings: Any
) -> None:
    override_settings(export_settle_seconds=0.05)  # the open writer, not the settle time, must hold it
    project_id, pair_id = one_pair(db)
    writer = Session(db.engine)
    try:
        # A label stamped a moment ago whose transaction has not committed yet (a label under load).
        label(writer, writer.get_one(Pair, pair_id), "ann1", "a", utcnow() - timedelta(seconds=1))
        thread, done = in_thread(db, project_id)  # an export of "now": after the label's stamp
        time.sleep(1.5)
        assert thread.is_alive(), "the export read its snapshot while a label stamped before it was unwritten"
        writer.commit()
    finally:
        writer.close()
    thread.join(30)
    assert done["run"].rows == 1  # the label is in, as in any later export of this snapshot


def test_read_only_transactions_do_not_hold_an_export_back(db: Any, override_settings: Any) -> None:
    override_settings(export_settle_seconds=0.05)
    project_id, pair_id = one_pair(db)
    with db.session() as s:
        label(s, s.get_one(Pair, pair_id), "ann1", "a", utcnow() - timedelta(seconds=1))
    reader = db.engine.connect()  # another export's read session, say: open, older than the snapshot
    try:
        reader.execute(text("SELECT count(*) FROM label"))
        started = time.monotonic()
        thread, done = in_thread(db, project_id)
        thread.join(30)
        assert time.monotonic() - started < 10
    finally:
        reader.close()
    assert done["run"].rows == 1
