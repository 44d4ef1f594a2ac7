"""Queue hot path: the budget counter in a row of its own; on Postgres, claim and label as SQL functions.

`project.pairs_released` moves to `project_budget` (one row per project): every claim and label takes a
KEY SHARE lock on the project row for its foreign keys, and a counter updated on that row by every claim
turned those locks into multixacts (132 round trips/s at 50 annotators, 350 without; docs/benchmarks.md).

`real_queue_claim` and `real_queue_label` hold the whole claim and label of app/queue (lease cap, gold
mixing, SKIP LOCKED lease, release compare-and-set, randomised A/B order, budget, sibling flags; fencing,
idempotent retries, label counting). Every Postgres claim and label runs through them
(app/queue/repository.py); SQLite keeps the same steps as separate statements in Python.
`real_queue_claim_as` / `real_queue_label_as` first resolve an API key (by its HMAC, as
app/auth/service.authenticate does) and check the caller may act, so an annotator's claim or label is a
single statement from the API (app/queue/fastlane.py).

Each function runs in the caller's transaction; every statement in it takes a fresh snapshot (they are
VOLATILE), as separate statements did.

Revision ID: f7a0c1e2d800
Revises: 2eedd877cfb0
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f7a0c1e2d800"
down_revision: str | None = "2eedd877cfb0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLAIM_RESULT = """
    outcome text, assignment_id uuid, lease_expires_at timestamptz, prompt json,
    first_id uuid, first_text text, second_id uuid, second_text text,
    live_leases integer, soonest_expiry timestamptz, instructions text, pair_id uuid, slot_id uuid
"""

_LABEL_RESULT = """
    outcome text, label_id uuid, assignment_id uuid, project_id uuid, pair_id uuid, annotator text,
    choice text, winner_response_id uuid, shown_first_response_id uuid, labeled_at timestamptz,
    confidence integer, rationale text, detail text
"""

_CALLER_RESULT = "outcome text, key_id uuid, name text, role text"

CLAIM = f"""
CREATE OR REPLACE FUNCTION real_queue_claim(
    p_project uuid, p_annotator text, p_now timestamptz, p_lease_cap integer, p_gold_draw double precision
) RETURNS TABLE ({_CLAIM_RESULT})
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_ttl integer; v_gold_rate double precision; v_per_pair integer; v_budget integer; v_released integer;
    v_budget_open boolean;
    v_live integer; v_soonest timestamptz;
    v_expires timestamptz;
    v_assignment uuid; v_slot uuid; v_pair uuid; v_was_released boolean; v_releasing boolean;
    v_instructions text; v_out record;
    v_gold uuid; v_priority double precision;
BEGIN
    SELECT p.lease_ttl_seconds, p.gold_rate, p.annotations_per_pair, p.budget,
           (SELECT b.pairs_released FROM project_budget b WHERE b.project_id = p.id), p.instructions
      INTO v_ttl, v_gold_rate, v_per_pair, v_budget, v_released, v_instructions
      FROM project p WHERE p.id = p_project;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_project'::text, NULL::uuid, NULL::timestamptz, NULL::json, NULL::uuid,
            NULL::text, NULL::uuid, NULL::text, NULL::integer, NULL::timestamptz, NULL::text, NULL::uuid,
            NULL::uuid;
        RETURN;
    END IF;
    -- The lease cap (ix_assignment_active_annotator).
    SELECT count(*), min(a.lease_expires_at) INTO v_live, v_soonest
      FROM assignment a
     WHERE a.annotator = p_annotator AND a.status = 'active' AND a.lease_expires_at > p_now;
    IF v_live >= p_lease_cap THEN
        RETURN QUERY SELECT 'lease_cap'::text, NULL::uuid, NULL::timestamptz, NULL::json, NULL::uuid,
            NULL::text, NULL::uuid, NULL::text, v_live, v_soonest, NULL::text, NULL::uuid, NULL::uuid;
        RETURN;
    END IF;
    v_expires := p_now + make_interval(secs => v_ttl);

    -- Gold: a share of claims hands out a gold pair this annotator was never given, on a slot of its own,
    -- outside the budget.
    IF v_gold_rate > 0 AND p_gold_draw < v_gold_rate THEN
        SELECT p.id, p.priority INTO v_gold, v_priority
          FROM pair p
         WHERE p.project_id = p_project AND p.gold_answer IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM assignment a WHERE a.pair_id = p.id AND a.annotator = p_annotator)
         ORDER BY p.id
         LIMIT 1;
        IF v_gold IS NOT NULL THEN
            v_assignment := gen_random_uuid();
            v_slot := gen_random_uuid();
            BEGIN
                INSERT INTO pair_slot (id, project_id, pair_id, slot, priority, done, lease_assignment_id,
                                       lease_owner, lease_expires_at, released)
                SELECT v_slot, p_project, v_gold, coalesce(max(s.slot), -1) + 1, v_priority, false,
                       v_assignment, p_annotator, v_expires, false
                  FROM pair_slot s WHERE s.pair_id = v_gold;
            EXCEPTION WHEN unique_violation THEN
                -- A concurrent claim of the same annotator took that slot number: serve a normal pair.
                v_gold := NULL;
            END;
            IF v_gold IS NOT NULL THEN
                RETURN QUERY SELECT * FROM real_queue_assign(
                    p_project, v_gold, v_slot, v_assignment, p_annotator, p_now, v_expires, v_instructions);
                RETURN;
            END IF;
        END IF;
    END IF;

    -- A hint from the row as read; the budget UPDATE below is the authority.
    v_budget_open := v_budget IS NULL OR v_released < v_budget / v_per_pair;
    FOR attempt IN 1..20 LOOP
        v_assignment := gen_random_uuid();
        -- Find, lock (SKIP LOCKED) and lease the first claimable slot in the order of
        -- ix_pair_slot_claimable: slots of released pairs first, then priority. Once the budget is closed,
        -- only released pairs: `released >= true`; else `released >= false`, every slot. As a range on the
        -- index's second column it stays an index condition in PL/pgSQL's generic plan (no sort).
        WITH candidate AS (
            SELECT s.id, s.released
              FROM pair_slot s
             WHERE s.project_id = p_project AND NOT s.done AND s.released >= NOT v_budget_open
               AND (s.lease_expires_at IS NULL OR s.lease_expires_at <= p_now)
               AND NOT EXISTS (
                   SELECT 1 FROM assignment a
                    WHERE a.pair_id = s.pair_id AND a.annotator = p_annotator
                      AND (a.status IN ('labeled', 'skipped')
                           OR (a.status = 'active' AND a.lease_expires_at > p_now)))
               AND s.pair_id NOT IN (
                   SELECT g.id FROM pair g WHERE g.project_id = p_project AND g.gold_answer IS NOT NULL)
             ORDER BY s.released DESC, s.priority DESC, s.id
             LIMIT 1
             FOR UPDATE OF s SKIP LOCKED
        )
        UPDATE pair_slot u
           SET lease_assignment_id = v_assignment, lease_owner = p_annotator,
               lease_expires_at = v_expires, released = true
          FROM candidate c
         WHERE u.id = c.id
        RETURNING u.id, u.pair_id, c.released INTO v_slot, v_pair, v_was_released;
        EXIT WHEN v_slot IS NULL;

        -- The first claim of a pair releases it (compare-and-set); a sibling slot's claim finds it released.
        v_releasing := false;
        IF NOT v_was_released THEN
            UPDATE pair SET released_at = p_now, status = 'released'
             WHERE id = v_pair AND released_at IS NULL;
            v_releasing := FOUND;
        END IF;

        SELECT * INTO v_out FROM real_queue_assign(
            p_project, v_pair, v_slot, v_assignment, p_annotator, p_now, v_expires, v_instructions);
        IF v_releasing THEN
            -- The budget: the project's counter row, locked until COMMIT, so the last write of the claim.
            -- The budget itself is read by this statement (a PATCH committed meanwhile counts), not locked.
            UPDATE project_budget b SET pairs_released = b.pairs_released + 1
              FROM project j
             WHERE b.project_id = p_project AND j.id = p_project
               AND (j.budget IS NULL OR b.pairs_released < j.budget / j.annotations_per_pair);
            IF NOT FOUND THEN
                -- Spent meanwhile: undo this claim in place; only released pairs may still be handed out.
                DELETE FROM assignment WHERE id = v_assignment;
                UPDATE pair_slot SET lease_assignment_id = NULL, lease_owner = NULL, lease_expires_at = NULL,
                                     released = false
                 WHERE id = v_slot;
                UPDATE pair SET released_at = NULL, status = 'queued' WHERE id = v_pair;
                v_budget_open := false;
                v_slot := NULL;
                CONTINUE;
            END IF;
            IF v_per_pair > 1 THEN
                -- Only once the budget is taken: a flagged sibling is handed out as released, without
                -- budget. SKIP LOCKED, so holding the budget row here never waits on another claim.
                UPDATE pair_slot SET released = true
                 WHERE id IN (SELECT s.id FROM pair_slot s WHERE s.pair_id = v_pair AND NOT s.released
                              FOR UPDATE SKIP LOCKED);
            END IF;
        END IF;
        RETURN QUERY SELECT v_out.outcome, v_out.assignment_id, v_out.lease_expires_at, v_out.prompt,
            v_out.first_id, v_out.first_text, v_out.second_id, v_out.second_text, v_out.live_leases,
            v_out.soonest_expiry, v_out.instructions, v_out.pair_id, v_out.slot_id;
        RETURN;
    END LOOP;

    -- Nothing claimable: say why.
    SELECT b.pairs_released INTO v_released FROM project_budget b WHERE b.project_id = p_project;
    RETURN QUERY SELECT
        CASE
            WHEN v_budget IS NOT NULL AND v_released >= v_budget / v_per_pair THEN 'budget_spent'
            WHEN EXISTS (SELECT 1 FROM prompt q WHERE q.project_id = p_project AND q.status = 'pending')
                THEN 'waiting_for_embeddings'
            ELSE 'empty'
        END::text,
        NULL::uuid, NULL::timestamptz, NULL::json, NULL::uuid, NULL::text, NULL::uuid, NULL::text,
        NULL::integer, NULL::timestamptz, NULL::text, NULL::uuid, NULL::uuid;
END
$fn$;
"""

ASSIGN = f"""
CREATE OR REPLACE FUNCTION real_queue_assign(
    p_project uuid, p_pair uuid, p_slot uuid, p_assignment uuid, p_annotator text, p_now timestamptz,
    p_expires timestamptz, p_instructions text
) RETURNS TABLE ({_CLAIM_RESULT})
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_prompt json; v_a uuid; v_a_text text; v_b uuid; v_b_text text;
BEGIN
    SELECT pr.prompt, ra.id, ra.text, rb.id, rb.text INTO v_prompt, v_a, v_a_text, v_b, v_b_text
      FROM pair p
      JOIN prompt pr ON pr.id = p.prompt_id
      JOIN response ra ON ra.id = p.response_a_id
      JOIN response rb ON rb.id = p.response_b_id
     WHERE p.id = p_pair;
    -- Screen order is random per assignment (position bias), recorded, and undone when the label is stored.
    IF random() < 0.5 THEN
        SELECT v_b, v_b_text, v_a, v_a_text INTO v_a, v_a_text, v_b, v_b_text;
    END IF;
    INSERT INTO assignment (id, project_id, pair_id, slot_id, annotator, shown_first_response_id,
                            shown_second_response_id, status, lease_expires_at, renewals, created_at)
    VALUES (p_assignment, p_project, p_pair, p_slot, p_annotator, v_a, v_b, 'active', p_expires, 0, p_now);
    RETURN QUERY SELECT 'claimed'::text, p_assignment, p_expires, v_prompt, v_a, v_a_text, v_b, v_b_text,
        NULL::integer, NULL::timestamptz, p_instructions, p_pair, p_slot;
END
$fn$;
"""

LABEL = f"""
CREATE OR REPLACE FUNCTION real_queue_label(
    p_assignment uuid, p_choice text, p_confidence integer, p_rationale text, p_idempotency_key text,
    p_fingerprint text, p_now timestamptz, p_label_id uuid, p_created_at timestamptz
) RETURNS TABLE ({_LABEL_RESULT})
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_a assignment%ROWTYPE;
    v_prior label%ROWTYPE;
    v_winner uuid;
BEGIN
    SELECT * INTO v_a FROM assignment a WHERE a.id = p_assignment;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text,
            NULL::text, NULL::uuid, NULL::uuid, NULL::timestamptz, NULL::integer, NULL::text, NULL::text;
        RETURN;
    END IF;
    -- A retry with the same Idempotency-Key: the first result, or 409 for another body.
    IF p_idempotency_key IS NOT NULL THEN
        SELECT * INTO v_prior FROM label l
         WHERE l.annotator = v_a.annotator AND l.idempotency_key = p_idempotency_key;
        IF FOUND THEN
            RETURN QUERY SELECT * FROM real_queue_label_result(v_prior, p_fingerprint, 'key');
            RETURN;
        END IF;
    END IF;
    IF v_a.status <> 'active' THEN
        -- Labelled already (a retry, or another body: 409), or not live.
        SELECT * INTO v_prior FROM label l WHERE l.assignment_id = p_assignment;
        IF FOUND THEN
            RETURN QUERY SELECT * FROM real_queue_label_result(v_prior, p_fingerprint, 'assignment');
            RETURN;
        END IF;
    END IF;
    IF v_a.status <> 'active' OR v_a.lease_expires_at <= p_now THEN
        RETURN QUERY SELECT 'lease_expired'::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text,
            NULL::text, NULL::uuid, NULL::uuid, NULL::timestamptz, NULL::integer, NULL::text,
            CASE WHEN v_a.status IN ('active', 'expired') THEN 'the lease has expired; claim again'
                 ELSE 'this assignment is ' || v_a.status || ', not live' END;
        RETURN;
    END IF;
    -- Close the slot only while this assignment's lease on it is live (fencing).
    UPDATE pair_slot SET done = true, lease_expires_at = NULL
     WHERE id = v_a.slot_id AND NOT done AND lease_assignment_id = p_assignment AND lease_expires_at > p_now;
    IF NOT FOUND THEN
        -- A concurrent identical submit may have just won the slot; its label is then the answer.
        SELECT * INTO v_prior FROM label l WHERE l.assignment_id = p_assignment;
        IF FOUND THEN
            RETURN QUERY SELECT * FROM real_queue_label_result(v_prior, p_fingerprint, 'assignment');
            RETURN;
        END IF;
        RETURN QUERY SELECT 'lease_expired'::text, NULL::uuid, NULL::uuid, NULL::uuid, NULL::uuid, NULL::text,
            NULL::text, NULL::uuid, NULL::uuid, NULL::timestamptz, NULL::integer, NULL::text,
            'the lease ended before the label arrived; claim again'::text;
        RETURN;
    END IF;
    v_winner := CASE p_choice WHEN 'a' THEN v_a.shown_first_response_id
                              WHEN 'b' THEN v_a.shown_second_response_id END;
    IF p_idempotency_key IS NULL THEN
        -- The slot was won above for this assignment, so no other insert for it can race this one.
        INSERT INTO label (id, assignment_id, project_id, pair_id, annotator, choice, winner_response_id,
                           shown_first_response_id, labeled_at, created_at, confidence, rationale,
                           idempotency_key, request_sha256)
        VALUES (p_label_id, p_assignment, v_a.project_id, v_a.pair_id, v_a.annotator, p_choice, v_winner,
                v_a.shown_first_response_id, p_now, p_created_at, p_confidence, p_rationale, NULL,
                p_fingerprint);
    ELSE
        BEGIN
            INSERT INTO label (id, assignment_id, project_id, pair_id, annotator, choice, winner_response_id,
                               shown_first_response_id, labeled_at, created_at, confidence, rationale,
                               idempotency_key, request_sha256)
            VALUES (p_label_id, p_assignment, v_a.project_id, v_a.pair_id, v_a.annotator, p_choice, v_winner,
                    v_a.shown_first_response_id, p_now, p_created_at, p_confidence, p_rationale,
                    p_idempotency_key, p_fingerprint);
        EXCEPTION WHEN unique_violation THEN
            -- The key names another label of this annotator (committed meanwhile): that one, or 409.
            SELECT * INTO v_prior FROM label l
             WHERE l.annotator = v_a.annotator AND l.idempotency_key = p_idempotency_key;
            IF NOT FOUND THEN
                RAISE;
            END IF;
            -- No label of this call's: the slot it closed above is this assignment's again.
            UPDATE pair_slot SET done = false, lease_expires_at = v_a.lease_expires_at WHERE id = v_a.slot_id;
            RETURN QUERY SELECT * FROM real_queue_label_result(v_prior, p_fingerprint, 'key');
            RETURN;
        END;
    END IF;
    UPDATE assignment SET status = 'labeled', ended_at = p_now WHERE id = p_assignment;
    -- One more label on the pair; done once it has its project's annotations_per_pair.
    UPDATE pair p SET labels_count = p.labels_count + 1,
           status = CASE WHEN p.labels_count + 1 >= (SELECT j.annotations_per_pair FROM project j
                                                     WHERE j.id = p.project_id)
                         THEN 'done' ELSE p.status END
     WHERE p.id = v_a.pair_id;
    RETURN QUERY SELECT 'created'::text, p_label_id, p_assignment, v_a.project_id, v_a.pair_id,
        v_a.annotator::text, p_choice, v_winner, v_a.shown_first_response_id, p_now, p_confidence,
        p_rationale, NULL::text;
END
$fn$;
"""

LABEL_RESULT = f"""
CREATE OR REPLACE FUNCTION real_queue_label_result(p_label label, p_fingerprint text, p_found_by text)
RETURNS TABLE ({_LABEL_RESULT})
LANGUAGE sql STABLE AS $fn$
    SELECT CASE WHEN p_label.request_sha256 = p_fingerprint THEN 'replayed'
                WHEN p_found_by = 'key' THEN 'idempotency_key_reused'
                ELSE 'already_labeled' END,
           p_label.id, p_label.assignment_id, p_label.project_id, p_label.pair_id, p_label.annotator::text,
           p_label.choice::text, p_label.winner_response_id, p_label.shown_first_response_id,
           p_label.labeled_at, p_label.confidence, p_label.rationale, NULL::text
$fn$;
"""

CALLER = f"""
CREATE OR REPLACE FUNCTION real_queue_caller(
    p_key_hash text, p_now timestamptz, p_project uuid, p_assignment uuid
) RETURNS TABLE ({_CALLER_RESULT})
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_key uuid; v_revoked timestamptz; v_expires timestamptz; v_used timestamptz;
    v_name text; v_role text; v_projects jsonb;
    v_project uuid; v_owner text; v_status text;
BEGIN
    SELECT k.id, k.revoked_at, k.expires_at, k.last_used_at, pr.name, pr.role, pr.projects::jsonb
      INTO v_key, v_revoked, v_expires, v_used, v_name, v_role, v_projects
      FROM api_key k JOIN principal pr ON pr.id = k.principal_id
     WHERE k.key_hash = p_key_hash;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown_key'::text, NULL::uuid, NULL::text, NULL::text; RETURN;
    ELSIF v_revoked IS NOT NULL THEN
        RETURN QUERY SELECT 'revoked_key'::text, v_key, v_name, v_role; RETURN;
    ELSIF v_expires IS NOT NULL AND v_expires <= p_now THEN
        RETURN QUERY SELECT 'expired_key'::text, v_key, v_name, v_role; RETURN;
    END IF;
    IF v_used IS NULL OR p_now - v_used > interval '60 seconds' THEN
        -- Coarse on purpose (LAST_USED_RESOLUTION): one write a minute per key, not one per request.
        UPDATE api_key SET last_used_at = p_now WHERE id = v_key;
    END IF;
    IF v_role NOT IN ('admin', 'annotator') THEN
        RETURN QUERY SELECT 'forbidden_role'::text, v_key, v_name, v_role; RETURN;
    END IF;
    IF p_assignment IS NOT NULL THEN
        SELECT a.project_id, a.annotator INTO v_project, v_owner FROM assignment a WHERE a.id = p_assignment;
        IF NOT FOUND OR (v_role <> 'admin' AND (v_owner <> v_name
                                                OR NOT coalesce(v_projects ? v_project::text, false))) THEN
            RETURN QUERY SELECT 'no_assignment'::text, v_key, v_name, v_role; RETURN;
        END IF;
    ELSE
        SELECT p.status INTO v_status FROM project p WHERE p.id = p_project;
        IF NOT FOUND OR v_status = 'archived'
           OR (v_role <> 'admin' AND NOT coalesce(v_projects ? p_project::text, false)) THEN
            RETURN QUERY SELECT 'no_project'::text, v_key, v_name, v_role; RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT 'ok'::text, v_key, v_name, v_role;
END
$fn$;
"""


CLAIM_AS = f"""
CREATE OR REPLACE FUNCTION real_queue_claim_as(
    p_key_hash text, p_project uuid, p_now timestamptz, p_lease_cap integer, p_gold_draw double precision
) RETURNS TABLE (key_id uuid, caller_name text, caller_role text, {_CLAIM_RESULT})
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_caller record;
BEGIN
    SELECT * INTO v_caller FROM real_queue_caller(p_key_hash, p_now, p_project, NULL);
    IF v_caller.outcome <> 'ok' THEN
        RETURN QUERY SELECT v_caller.key_id, v_caller.name, v_caller.role, v_caller.outcome, NULL::uuid,
            NULL::timestamptz, NULL::json, NULL::uuid, NULL::text, NULL::uuid, NULL::text, NULL::integer,
            NULL::timestamptz, NULL::text, NULL::uuid, NULL::uuid;
        RETURN;
    END IF;
    RETURN QUERY SELECT v_caller.key_id, v_caller.name, v_caller.role, c.*
      FROM real_queue_claim(p_project, v_caller.name, p_now, p_lease_cap, p_gold_draw) c;
END
$fn$;
"""

LABEL_AS = f"""
CREATE OR REPLACE FUNCTION real_queue_label_as(
    p_key_hash text, p_assignment uuid, p_choice text, p_confidence integer, p_rationale text,
    p_idempotency_key text, p_fingerprint text, p_now timestamptz, p_label_id uuid, p_created_at timestamptz
) RETURNS TABLE (key_id uuid, caller_name text, caller_role text, {_LABEL_RESULT})
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_caller record;
BEGIN
    SELECT * INTO v_caller FROM real_queue_caller(p_key_hash, p_now, NULL, p_assignment);
    IF v_caller.outcome <> 'ok' THEN
        RETURN QUERY SELECT v_caller.key_id, v_caller.name, v_caller.role, v_caller.outcome, NULL::uuid,
            NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::uuid, NULL::uuid,
            NULL::timestamptz, NULL::integer, NULL::text, NULL::text;
        RETURN;
    END IF;
    RETURN QUERY SELECT v_caller.key_id, v_caller.name, v_caller.role, l.*
      FROM real_queue_label(p_assignment, p_choice, p_confidence, p_rationale, p_idempotency_key,
                            p_fingerprint, p_now, p_label_id, p_created_at) l;
END
$fn$;
"""


def upgrade() -> None:
    op.create_table(
        "project_budget",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("pairs_released", sa.Integer(), nullable=False),
        sa.CheckConstraint("pairs_released >= 0", name=op.f("ck_project_budget_pairs_released_non_negative")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_project_budget_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_budget")),
    )
    op.execute(
        "INSERT INTO project_budget (project_id, pairs_released) SELECT id, pairs_released FROM project"
    )
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_project_pairs_released_non_negative"), type_="check")
        batch_op.drop_column("pairs_released")
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite runs the same steps as statements from Python
    for statement in (ASSIGN, CLAIM, LABEL_RESULT, LABEL, CALLER, CLAIM_AS, LABEL_AS):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _drop_functions()
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pairs_released", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE project SET pairs_released = "
        "(SELECT b.pairs_released FROM project_budget b WHERE b.project_id = project.id)"
    )
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.alter_column("pairs_released", server_default=None)
        batch_op.create_check_constraint("pairs_released_non_negative", "pairs_released >= 0")
    op.drop_table("project_budget")


def _drop_functions() -> None:
    op.execute(
        "DROP FUNCTION IF EXISTS real_queue_label_as(text, uuid, text, integer, text, text, text, "
        "timestamptz, uuid, timestamptz)"
    )
    op.execute(
        "DROP FUNCTION IF EXISTS real_queue_claim_as(text, uuid, timestamptz, integer, double precision)"
    )
    op.execute("DROP FUNCTION IF EXISTS real_queue_caller(text, timestamptz, uuid, uuid)")
    op.execute(
        "DROP FUNCTION IF EXISTS real_queue_label(uuid, text, integer, text, text, text, timestamptz, uuid, "
        "timestamptz)"
    )
    op.execute("DROP FUNCTION IF EXISTS real_queue_label_result(label, text, text)")
    op.execute("DROP FUNCTION IF EXISTS real_queue_claim(uuid, text, timestamptz, integer, double precision)")
    op.execute(
        "DROP FUNCTION IF EXISTS real_queue_assign(uuid, uuid, uuid, uuid, text, timestamptz, timestamptz, "
        "text)"
    )
