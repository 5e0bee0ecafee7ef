-- NOTIFY serialises committing transactions on the notification queue: announce only what a loop
-- waits for. New jobs are announced per statement (unchanged); a settled job announces itself only
-- when it woke waiting jobs; a job becoming ready is announced for the dispatcher.
DROP TRIGGER jobs_notify_status ON jobs;

CREATE OR REPLACE FUNCTION swath_wake_dependents() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE jobs SET recheck_at = clock_timestamp() WHERE depends_on = NEW.id AND status = 2;
    IF FOUND THEN
        PERFORM pg_notify('swath_jobs', 'wake');
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION swath_notify_ready() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('swath_ready', NEW.job_type);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_ready AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 3 AND OLD.status IS DISTINCT FROM 3)
    EXECUTE FUNCTION swath_notify_ready();
