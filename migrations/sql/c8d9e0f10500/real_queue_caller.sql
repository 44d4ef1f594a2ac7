-- An API key's principal and whether it may act (the checks of app/auth/service.authenticate, the
-- annotator role, project membership or assignment ownership).
-- Source of truth; a change ships as a new migration that installs a frozen copy (app/db/sqlfunctions.py).
CREATE OR REPLACE FUNCTION real_queue_caller(
    p_key_hash text, p_now timestamptz, p_project uuid, p_assignment uuid
) RETURNS TABLE (outcome text, key_id uuid, name text, role text)
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
