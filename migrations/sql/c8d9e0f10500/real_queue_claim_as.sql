-- real_queue_caller, then real_queue_claim: an annotator's claim in one statement (app/queue/fastlane.py).
-- Source of truth; a change ships as a new migration that installs a frozen copy (app/db/sqlfunctions.py).
CREATE OR REPLACE FUNCTION real_queue_claim_as(
    p_key_hash text, p_project uuid, p_now timestamptz, p_lease_cap integer, p_gold_draw double precision
) RETURNS TABLE (caller_outcome text, key_id uuid, caller_name text, caller_role text,
    outcome text, assignment_id uuid, lease_expires_at timestamptz, prompt json,
    first_id uuid, first_text text, second_id uuid, second_text text,
    live_leases integer, soonest_expiry timestamptz, instructions text, pair_id uuid, slot_id uuid
)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_caller record;
BEGIN
    SELECT * INTO v_caller FROM real_queue_caller(p_key_hash, p_now, p_project, NULL);
    IF v_caller.outcome <> 'ok' THEN
        RETURN QUERY SELECT v_caller.outcome, v_caller.key_id, v_caller.name, v_caller.role,
            NULL::text, NULL::uuid,
            NULL::timestamptz, NULL::json, NULL::uuid, NULL::text, NULL::uuid, NULL::text, NULL::integer,
            NULL::timestamptz, NULL::text, NULL::uuid, NULL::uuid;
        RETURN;
    END IF;
    RETURN QUERY SELECT v_caller.outcome, v_caller.key_id, v_caller.name, v_caller.role, c.*
      FROM real_queue_claim(p_project, v_caller.name, p_now, p_lease_cap, p_gold_draw) c;
END
$fn$;
