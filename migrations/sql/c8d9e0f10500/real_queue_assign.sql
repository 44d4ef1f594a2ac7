-- One claim's assignment: the prompt and both texts, in a random screen order, and the assignment row.
-- Source of truth; a change ships as a new migration that installs a frozen copy (app/db/sqlfunctions.py).
CREATE OR REPLACE FUNCTION real_queue_assign(
    p_project uuid, p_pair uuid, p_slot uuid, p_assignment uuid, p_annotator text, p_now timestamptz,
    p_expires timestamptz, p_instructions text
) RETURNS TABLE (
    outcome text, assignment_id uuid, lease_expires_at timestamptz, prompt json,
    first_id uuid, first_text text, second_id uuid, second_text text,
    live_leases integer, soonest_expiry timestamptz, instructions text, pair_id uuid, slot_id uuid
)
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
