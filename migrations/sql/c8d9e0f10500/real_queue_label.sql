-- The whole label: idempotent retries, fencing on the live lease, the label row, the assignment, the
-- pair's count. The choice is stored in screen terms with the order shown; app/labels/outcome.py turns it
-- into pair terms.
-- Source of truth; a change ships as a new migration that installs a frozen copy (app/db/sqlfunctions.py).
CREATE OR REPLACE FUNCTION real_queue_label(
    p_assignment uuid, p_choice text, p_confidence integer, p_rationale text, p_idempotency_key text,
    p_fingerprint text, p_now timestamptz, p_label_id uuid, p_created_at timestamptz
) RETURNS TABLE (
    outcome text, label_id uuid, assignment_id uuid, project_id uuid, pair_id uuid, annotator text,
    choice text, shown_first_response_id uuid, shown_second_response_id uuid, labeled_at timestamptz,
    confidence integer, rationale text, detail text
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_a assignment%ROWTYPE;
    v_prior label%ROWTYPE;
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
    IF p_idempotency_key IS NULL THEN
        -- The slot was won above for this assignment, so no other insert for it can race this one.
        INSERT INTO label (id, assignment_id, project_id, pair_id, annotator, choice, shown_first_response_id,
                           labeled_at, created_at, confidence, rationale, idempotency_key, request_sha256)
        VALUES (p_label_id, p_assignment, v_a.project_id, v_a.pair_id, v_a.annotator, p_choice,
                v_a.shown_first_response_id, p_now, p_created_at, p_confidence, p_rationale, NULL, p_fingerprint);
    ELSE
        BEGIN
            INSERT INTO label (id, assignment_id, project_id, pair_id, annotator, choice, shown_first_response_id,
                               labeled_at, created_at, confidence, rationale, idempotency_key, request_sha256)
            VALUES (p_label_id, p_assignment, v_a.project_id, v_a.pair_id, v_a.annotator, p_choice,
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
        v_a.annotator::text, p_choice, v_a.shown_first_response_id, v_a.shown_second_response_id, p_now,
        p_confidence, p_rationale, NULL::text;
END
$fn$;
