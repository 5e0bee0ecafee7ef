-- Configuration: a waiting job records what it waits for, so that it is examined again when that
-- job settles, and never by scanning every waiting job. Status changes wake the loops up.

ALTER TABLE jobs ADD COLUMN depends_on bigint REFERENCES jobs (id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN recheck_at timestamptz;
COMMENT ON COLUMN jobs.depends_on IS 'the job a configured job waits for';
COMMENT ON COLUMN jobs.recheck_at IS 'when a configured job that waits for nothing in particular is examined again';

CREATE INDEX jobs_waiting_on ON jobs (depends_on) WHERE status = 2 AND depends_on IS NOT NULL;
CREATE INDEX jobs_waiting_recheck ON jobs (job_type, recheck_at) WHERE status = 2;
CREATE INDEX jobs_new ON jobs (job_type, measured_at, id) WHERE status = 1;

-- When a job settles (processed, start_publication, published, done, internal_error, cancelled), the
-- configured jobs that wait for it are due for another look now.
CREATE FUNCTION swath_wake_dependents() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET recheck_at = clock_timestamp() WHERE depends_on = NEW.id AND status = 2;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_wake_dependents AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.status IN (9, 10, 11, 12, 13, 16) AND NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION swath_wake_dependents();

-- One notification per statement that inserts jobs or changes statuses (PostgreSQL also folds
-- identical notifications of one transaction into one).
CREATE FUNCTION swath_notify_jobs_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('swath_jobs', TG_OP);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION swath_notify_jobs_changed();
CREATE TRIGGER jobs_notify_status AFTER UPDATE OF status ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION swath_notify_jobs_changed();
