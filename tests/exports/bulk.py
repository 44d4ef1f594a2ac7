"""Seed many labelled pairs fast with set-based SQL, on Postgres or SQLite (streaming test, bench/export.py).

Per pair: a prompt, two responses, the pair, and `labels` slots, assignments and labels. Ids are md5-derived
from a tag, so a seed is reproducible; every `overlap_every`-th pair gets a second label (from another
annotator), so Dawid–Skene has overlap to learn from. Choices are a fixed pattern: two thirds "a", a third
"b", one pair in 25 a tie; a second label agrees except on one pair in 20 (a split vote). So about 95% of the
pairs become rows. Texts are padded to `text_chars` so rows weigh what
real ones do. No ORM: 100k pairs take seconds on SQLite (a minute or more on a busy Postgres).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

T0 = datetime(2026, 1, 1, tzinfo=UTC)

_STATEMENTS = [
    """
    INSERT INTO prompt (id, project_id, external_id, prompt, content_sha256, status, created_at)
    SELECT md5(:tag || 'p' || g)::uuid, :project, 'bulk-' || g,
           to_json('Prompt ' || g || ' ' || repeat('q', :chars)),
           md5('p' || g) || md5(:tag || g), 'paired', :t0
    FROM generate_series(1, :n) g
    """,
    """
    INSERT INTO response (id, prompt_id, position, external_id, model, text, text_sha256, created_at)
    SELECT md5(:tag || 'r' || pos || '-' || g)::uuid, md5(:tag || 'p' || g)::uuid, pos,
           'resp-' || pos || '-' || g, 'model-' || pos,
           'Response ' || pos || ' to ' || g || ' ' || repeat('x', :chars),
           md5('r' || pos || g) || md5(:tag || pos || g), :t0
    FROM generate_series(1, :n) g, generate_series(0, 1) pos
    """,
    """
    INSERT INTO pair (id, project_id, prompt_id, response_a_id, response_b_id, strategy, rank, similarity,
                      priority, status, labels_count, created_at)
    SELECT md5(:tag || 'pair' || g)::uuid, :project, md5(:tag || 'p' || g)::uuid,
           least(md5(:tag || 'r0-' || g)::uuid, md5(:tag || 'r1-' || g)::uuid),
           greatest(md5(:tag || 'r0-' || g)::uuid, md5(:tag || 'r1-' || g)::uuid),
           'dissimilar', 0, 0.5, 0.5, 'done', CASE WHEN g % :overlap = 0 THEN 2 ELSE 1 END, :t0
    FROM generate_series(1, :n) g
    """,
    # (g, k): one row per label: k = 0 for every pair, k = 1 for every overlap-th pair.
    """
    CREATE TEMP TABLE bulk_labels ON COMMIT DROP AS
    SELECT g, k, md5(:tag || 'pair' || g)::uuid AS pair_id,
           'ann-' || ((g + k * 3) % 7) AS annotator,
           CASE WHEN g % 25 = 0 THEN 'tie'
                WHEN (g % 3 = 0) <> (k = 1 AND g % 20 = 0) THEN 'b' ELSE 'a' END AS choice
    FROM generate_series(1, :n) g, generate_series(0, 1) k
    WHERE k = 0 OR g % :overlap = 0
    """,
    """
    INSERT INTO pair_slot (id, project_id, pair_id, slot, priority, done)
    SELECT md5(:tag || 'slot' || k || '-' || g)::uuid, :project, pair_id, k, 0.5, true FROM bulk_labels
    """,
    """
    INSERT INTO assignment (id, project_id, pair_id, slot_id, annotator, shown_first_response_id,
                            shown_second_response_id, status, lease_expires_at, renewals, created_at)
    SELECT md5(:tag || 'as' || k || '-' || g)::uuid, :project, l.pair_id,
           md5(:tag || 'slot' || k || '-' || g)::uuid, l.annotator, p.response_a_id, p.response_b_id,
           'labeled', :t0, 0, :t0
    FROM bulk_labels l JOIN pair p ON p.id = l.pair_id
    """,
    """
    INSERT INTO label (id, assignment_id, project_id, pair_id, annotator, choice,
                       shown_first_response_id, labeled_at, request_sha256, created_at)
    SELECT md5(:tag || 'lab' || k || '-' || g)::uuid, md5(:tag || 'as' || k || '-' || g)::uuid, :project,
           l.pair_id, l.annotator, l.choice, p.response_a_id, :t0 + make_interval(secs => g * 2 + k), '', :t0
    FROM bulk_labels l JOIN pair p ON p.id = l.pair_id
    """,
]


# SQLite: ids are the 32 hex digits SQLAlchemy's Uuid stores, built from (tag, kind, n); times are the
# text UTCDateTime writes. Kinds: 1 prompt, 2/3 responses 0/1, 4 pair, 5+k slot, 7+k assignment, 9+k label.
_SQLITE_SERIES = "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n)"
_SQLITE_STATEMENTS = [
    f"""
    INSERT INTO prompt (id, project_id, external_id, prompt, content_sha256, status, created_at)
    {_SQLITE_SERIES}
    SELECT printf('%04x0001%024x', :tag, g), :project, 'bulk-' || g,
           json_quote('Prompt ' || g || ' ' || :pad), printf('%064x', g), 'paired', :t0
    FROM s
    """,
    f"""
    INSERT INTO response (id, prompt_id, position, external_id, model, text, text_sha256, created_at)
    {_SQLITE_SERIES}, pos(p) AS (SELECT 0 UNION ALL SELECT 1)
    SELECT printf('%04x%04x%024x', :tag, 2 + p, g), printf('%04x0001%024x', :tag, g), p,
           'resp-' || p || '-' || g, 'model-' || p, 'Response ' || p || ' to ' || g || ' ' || :pad,
           printf('%064x', g * 2 + p), :t0
    FROM s, pos
    """,
    f"""
    INSERT INTO pair (id, project_id, prompt_id, response_a_id, response_b_id, strategy, rank, similarity,
                      priority, status, labels_count, created_at)
    {_SQLITE_SERIES}
    SELECT printf('%04x0004%024x', :tag, g), :project, printf('%04x0001%024x', :tag, g),
           printf('%04x0002%024x', :tag, g), printf('%04x0003%024x', :tag, g), 'dissimilar', 0, 0.5, 0.5,
           'done', CASE WHEN g % :overlap = 0 THEN 2 ELSE 1 END, :t0
    FROM s
    """,
    f"""
    CREATE TEMP TABLE bulk_labels AS
    {_SQLITE_SERIES}, ks(k) AS (SELECT 0 UNION ALL SELECT 1)
    SELECT g, k, printf('%04x0004%024x', :tag, g) AS pair_id, 'ann-' || ((g + k * 3) % 7) AS annotator,
           CASE WHEN g % 25 = 0 THEN 'tie'
                WHEN (g % 3 = 0) <> (k = 1 AND g % 20 = 0) THEN 'b' ELSE 'a' END AS choice
    FROM s, ks
    WHERE k = 0 OR g % :overlap = 0
    """,
    """
    INSERT INTO pair_slot (id, project_id, pair_id, slot, priority, done)
    SELECT printf('%04x%04x%024x', :tag, 5 + k, g), :project, pair_id, k, 0.5, 1 FROM bulk_labels
    """,
    """
    INSERT INTO assignment (id, project_id, pair_id, slot_id, annotator, shown_first_response_id,
                            shown_second_response_id, status, lease_expires_at, renewals, created_at)
    SELECT printf('%04x%04x%024x', :tag, 7 + k, g), :project, pair_id,
           printf('%04x%04x%024x', :tag, 5 + k, g), annotator,
           printf('%04x0002%024x', :tag, g), printf('%04x0003%024x', :tag, g), 'labeled', :t0, 0, :t0
    FROM bulk_labels
    """,
    """
    INSERT INTO label (id, assignment_id, project_id, pair_id, annotator, choice,
                       shown_first_response_id, labeled_at, request_sha256, created_at)
    SELECT printf('%04x%04x%024x', :tag, 9 + k, g), printf('%04x%04x%024x', :tag, 7 + k, g), :project,
           pair_id, annotator, choice, printf('%04x0002%024x', :tag, g),
           strftime('%Y-%m-%d %H:%M:%S', :t0, '+' || (g * 2 + k) || ' seconds') || '.000000', '', :t0
    FROM bulk_labels
    """,
    "DROP TABLE bulk_labels",
]


def seed_pairs(
    connection: Any,
    project_id: uuid.UUID,
    n: int,
    *,
    text_chars: int = 300,
    overlap_every: int = 4,
    tag: int = 1,
) -> None:
    """Insert `n` labelled pairs into an existing project (within the transaction of `connection`).

    `tag` (0..65535) keeps the ids of several seeded projects in one database apart.
    """
    if connection.dialect.name == "sqlite":
        params: dict[str, Any] = {
            "tag": tag,
            "project": project_id.hex,
            "n": n,
            "pad": "x" * text_chars,
            "overlap": overlap_every,
            "t0": T0.strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
        for statement in _SQLITE_STATEMENTS:
            connection.execute(text(statement), params)
        connection.execute(text("ANALYZE"))
        return
    params = {
        "tag": f"{tag}-{project_id.hex}",
        "project": project_id,
        "n": n,
        "chars": text_chars,
        "overlap": overlap_every,
        "t0": T0,
    }
    for statement in _STATEMENTS:
        connection.execute(text(statement), params)
    connection.execute(text("ANALYZE prompt, response, pair, pair_slot, assignment, label"))
