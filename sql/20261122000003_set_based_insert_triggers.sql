-- Inserting jobs in batches: validate and record the first status of every inserted job once per
-- statement (with a transition table) instead of once per row. Updates keep their row triggers.

DROP TRIGGER jobs_check_transition ON jobs;
DROP TRIGGER jobs_record_status_change ON jobs;
DROP TRIGGER job_status_changes_guard ON job_status_changes;

CREATE TRIGGER jobs_check_transition
    BEFORE UPDATE OF status, status_changed_at, attempt ON jobs
    FOR EACH ROW EXECUTE FUNCTION swath_check_job_transition();

CREATE TRIGGER jobs_record_status_change
    AFTER UPDATE OF status, status_changed_at ON jobs
    FOR EACH ROW EXECUTE FUNCTION swath_record_job_status_change();

CREATE FUNCTION swath_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    refused record;
BEGIN
    SELECT i.id, i.status INTO refused
    FROM inserted i
    WHERE NOT EXISTS (
        SELECT 1 FROM job_status_transitions t WHERE t.from_status IS NULL AND t.to_status = i.status
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'invalid job status transition (new) -> % for job (new)',
            coalesce((SELECT name FROM job_status WHERE id = refused.status), refused.status::text)
            USING ERRCODE = 'SW001';
    END IF;
    INSERT INTO job_status_changes
        (job_id, previous_status, status, attempt, time, error_subtype, error_message, service_id)
    SELECT id, NULL, status, attempt, status_changed_at, status_error_subtype, status_message, status_service_id
    FROM inserted
    ORDER BY id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_inserted
    AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION swath_jobs_inserted();

-- History rows come only from the jobs triggers (trigger depth > 1) and are never rewritten.
CREATE FUNCTION swath_guard_job_status_changes_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'job_status_changes is append-only' USING ERRCODE = 'SW003';
    END IF;
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'job_status_changes is written by changing jobs.status, not directly'
            USING ERRCODE = 'SW003';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER job_status_changes_guard
    BEFORE INSERT OR UPDATE ON job_status_changes
    FOR EACH STATEMENT EXECUTE FUNCTION swath_guard_job_status_changes_statement();

DROP FUNCTION swath_guard_job_status_changes();
