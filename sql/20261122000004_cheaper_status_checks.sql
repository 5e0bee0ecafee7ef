-- Status ids are checked by value rather than by a foreign key: a lookup in `job_status` for every
-- inserted job and history row cost more than the rest of a batched insert. Every status a job
-- enters is also checked against `job_status_transitions` by the transition triggers, whose rows
-- reference `job_status`.

ALTER TABLE jobs DROP CONSTRAINT jobs_status_fkey;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_known CHECK (status BETWEEN 1 AND 16);
ALTER TABLE job_status_changes DROP CONSTRAINT job_status_changes_previous_status_fkey;
ALTER TABLE job_status_changes DROP CONSTRAINT job_status_changes_status_fkey;
ALTER TABLE job_status_changes ADD CONSTRAINT job_status_changes_status_known
    CHECK (status BETWEEN 1 AND 16 AND (previous_status IS NULL OR previous_status BETWEEN 1 AND 16));

-- The history's job reference is guaranteed by construction (rows are written only by the jobs
-- triggers); a per-row foreign-key check cost a quarter of a batched insert. Deleting a job still
-- deletes its history, once per statement.
ALTER TABLE job_status_changes DROP CONSTRAINT job_status_changes_job_id_fkey;

CREATE FUNCTION swath_jobs_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_status_changes h USING deleted d WHERE h.job_id = d.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_deleted
    AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION swath_jobs_deleted();

-- History is append-only, so its time follows its physical order: a BRIN index is enough for
-- retention and time-range queries, and costs almost nothing to maintain.
DROP INDEX job_status_changes_time;
CREATE INDEX job_status_changes_time ON job_status_changes USING brin (time);
