-- A label found again (a retry, or another body under the same key or assignment), as real_queue_label's row.
-- Source of truth; a change ships as a new migration that installs a frozen copy (app/db/sqlfunctions.py).
CREATE OR REPLACE FUNCTION real_queue_label_result(p_label label, p_fingerprint text, p_found_by text)
RETURNS TABLE (
    outcome text, label_id uuid, assignment_id uuid, project_id uuid, pair_id uuid, annotator text,
    choice text, shown_first_response_id uuid, shown_second_response_id uuid, labeled_at timestamptz,
    confidence integer, rationale text, detail text
)
LANGUAGE sql STABLE AS $fn$
    SELECT CASE WHEN p_label.request_sha256 = p_fingerprint THEN 'replayed'
                WHEN p_found_by = 'key' THEN 'idempotency_key_reused'
                ELSE 'already_labeled' END,
           p_label.id, p_label.assignment_id, p_label.project_id, p_label.pair_id, p_label.annotator::text,
           p_label.choice::text, p_label.shown_first_response_id,
           (SELECT a.shown_second_response_id FROM assignment a WHERE a.id = p_label.assignment_id),
           p_label.labeled_at, p_label.confidence, p_label.rationale, NULL::text
$fn$;
