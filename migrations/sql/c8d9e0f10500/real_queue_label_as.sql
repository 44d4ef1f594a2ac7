-- real_queue_caller, then real_queue_label: an annotator's label in one statement (app/queue/fastlane.py).
-- Source of truth; a change ships as a new migration that installs a frozen copy (app/db/sqlfunctions.py).
CREATE OR REPLACE FUNCTION real_queue_label_as(
    p_key_hash text, p_assignment uuid, p_choice text, p_confidence integer, p_rationale text,
    p_idempotency_key text, p_fingerprint text, p_now timestamptz, p_label_id uuid, p_created_at timestamptz
) RETURNS TABLE (caller_outcome text, key_id uuid, caller_name text, caller_role text,
    outcome text, label_id uuid, assignment_id uuid, project_id uuid, pair_id uuid, annotator text,
    choice text, shown_first_response_id uuid, shown_second_response_id uuid, labeled_at timestamptz,
    confidence integer, rationale text, detail text
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_caller record;
BEGIN
    SELECT * INTO v_caller FROM real_queue_caller(p_key_hash, p_now, NULL, p_assignment);
    IF v_caller.outcome <> 'ok' THEN
        RETURN QUERY SELECT v_caller.outcome, v_caller.key_id, v_caller.name, v_caller.role,
            NULL::text, NULL::uuid,
            NULL::uuid, NULL::uuid, NULL::uuid, NULL::text, NULL::text, NULL::uuid, NULL::uuid,
            NULL::timestamptz, NULL::integer, NULL::text, NULL::text;
        RETURN;
    END IF;
    RETURN QUERY SELECT v_caller.outcome, v_caller.key_id, v_caller.name, v_caller.role, l.*
      FROM real_queue_label(p_assignment, p_choice, p_confidence, p_rationale, p_idempotency_key,
                            p_fingerprint, p_now, p_label_id, p_created_at) l;
END
$fn$;
