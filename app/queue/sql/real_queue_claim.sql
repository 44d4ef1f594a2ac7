-- The whole claim: lease cap, gold mixing, SKIP LOCKED lease, release compare-and-set, budget, sibling
-- flags (docs/design.md, "Queue"). Runs in the caller's transaction; one round trip.
-- Source of truth; a change ships as a new migration that installs a frozen copy (app/db/sqlfunctions.py).
CREATE OR REPLACE FUNCTION real_queue_claim(
    p_project uuid, p_annotator text, p_now timestamptz, p_lease_cap integer, p_gold_draw double precision
) RETURNS TABLE (
    outcome text, assignment_id uuid, lease_expires_at timestamptz, prompt json,
    first_id uuid, first_text text, second_id uuid, second_text text,
    live_leases integer, soonest_expiry timestamptz, instructions text, pair_id uuid, slot_id uuid
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_ttl integer; v_gold_rate double precision; v_per_pair integer; v_budget integer; v_released integer;
    v_extra integer; v_budget_open boolean;
    v_live integer; v_soonest timestamptz;
    v_expires timestamptz;
    v_assignment uuid; v_slot uuid; v_pair uuid; v_was_released boolean; v_releasing boolean;
    v_instructions text; v_out record;
    v_gold uuid; v_priority double precision;
BEGIN
    SELECT p.lease_ttl_seconds, p.gold_rate, p.annotations_per_pair, p.budget,
           b.pairs_released, b.extra_labels, p.instructions
      INTO v_ttl, v_gold_rate, v_per_pair, v_budget, v_released, v_extra, v_instructions
      FROM project p LEFT JOIN project_budget b ON b.project_id = p.id WHERE p.id = p_project;
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

    -- The budget rule (app/queue/budget.py): a pair is released while its annotations_per_pair labels fit
    -- beside those of the pairs released and the extra labels asked for. A hint from the rows as read; the
    -- budget UPDATE below is the authority.
    v_budget_open := v_budget IS NULL OR (v_released + 1) * v_per_pair + v_extra <= v_budget;
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
               AND (j.budget IS NULL
                    OR (b.pairs_released + 1) * j.annotations_per_pair + b.extra_labels <= j.budget);
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
    SELECT b.pairs_released, b.extra_labels INTO v_released, v_extra
      FROM project_budget b WHERE b.project_id = p_project;
    RETURN QUERY SELECT
        CASE
            WHEN v_budget IS NOT NULL AND (v_released + 1) * v_per_pair + v_extra > v_budget
                THEN 'budget_spent'
            WHEN EXISTS (SELECT 1 FROM prompt q WHERE q.project_id = p_project AND q.status = 'pending')
                THEN 'waiting_for_embeddings'
            ELSE 'empty'
        END::text,
        NULL::uuid, NULL::timestamptz, NULL::json, NULL::uuid, NULL::text, NULL::uuid, NULL::text,
        NULL::integer, NULL::timestamptz, NULL::text, NULL::uuid, NULL::uuid;
END
$fn$;
