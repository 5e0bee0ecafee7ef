-- swath job model: statuses, the transition table, jobs and their status history.
-- The state machine lives here as data (job_status_transitions) and is enforced by triggers, so that
-- no code path, not even raw SQL, can move a job along a transition the table does not allow.

CREATE TABLE job_status (
    id   smallint PRIMARY KEY,
    name text NOT NULL UNIQUE
);

INSERT INTO job_status (id, name) VALUES
    (1, 'initialized'), (2, 'configured'), (3, 'ready'), (4, 'queued'), (5, 'started'),
    (6, 'pre_processing'), (7, 'processing'), (8, 'post_processing'), (9, 'processed'),
    (10, 'start_publication'), (11, 'published'), (12, 'done'), (13, 'internal_error'),
    (14, 'external_error'), (15, 'error_checked'), (16, 'cancelled');

-- from_status NULL = a new job's first status.
CREATE TABLE job_status_transitions (
    from_status smallint REFERENCES job_status (id),
    to_status   smallint NOT NULL REFERENCES job_status (id),
    CONSTRAINT job_status_transitions_unique UNIQUE NULLS NOT DISTINCT (from_status, to_status)
);

-- The original table (original-system.md §2.2) with the changes listed in docs/state_machine.md.
INSERT INTO job_status_transitions (from_status, to_status)
SELECT t.from_status, t.to_status
FROM (VALUES
    (NULL::smallint, ARRAY[1, 13, 16]::smallint[]),
    (1,  ARRAY[2, 13, 14, 16]),
    (2,  ARRAY[3, 13, 16]),
    (3,  ARRAY[4, 13, 14, 16]),
    (4,  ARRAY[5, 13, 14, 16]),
    (5,  ARRAY[6, 13, 14, 16]),
    (6,  ARRAY[7, 13, 14, 16]),
    (7,  ARRAY[8, 13, 14, 16]),
    (8,  ARRAY[9, 13, 14, 16]),
    (9,  ARRAY[10, 12, 13, 14, 16]),
    (10, ARRAY[11, 13, 14, 16]),
    (11, ARRAY[12]),
    (12, ARRAY[13, 14]),
    (13, ARRAY[13, 14, 15]),
    (14, ARRAY[3, 13, 14, 15]),
    (15, ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
    (16, ARRAY[13])
) AS rows (from_status, targets)
CROSS JOIN LATERAL (SELECT rows.from_status, unnest(rows.targets) AS to_status) AS t;

CREATE TYPE job_priority AS ENUM ('nrt', 'delayed', 'reprocessing');

CREATE TABLE jobs (
    id                   bigserial PRIMARY KEY,
    uid                  uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    job_type             text NOT NULL CHECK (job_type ~ '^[a-z0-9_]+$'),
    name                 text NOT NULL CHECK (name <> '' AND name !~ '\s'),
    product_id           text,
    tile_id              text,
    input_path           text,
    measured_at          timestamptz,
    input_published_at   timestamptz,
    output_path          text,
    output_published_at  timestamptz,
    priority             job_priority NOT NULL DEFAULT 'nrt',
    status               smallint NOT NULL REFERENCES job_status (id),
    status_changed_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    status_error_subtype text,
    status_message       text,
    status_service_id    uuid,
    params               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    results              jsonb CHECK (results IS NULL OR jsonb_typeof(results) = 'object'),
    attempt              integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    max_attempts         integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    next_attempt_at      timestamptz,
    parent_id            bigint REFERENCES jobs (id) ON DELETE RESTRICT,
    spawned_by           bigint REFERENCES jobs (id) ON DELETE SET NULL,
    retry_of             bigint REFERENCES jobs (id) ON DELETE RESTRICT,
    software_version     text,
    executor_ref         text,
    service_id           uuid,
    tag                  jsonb,
    lease_expires_at     timestamptz,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT jobs_name_unique UNIQUE (job_type, name),
    CONSTRAINT jobs_not_own_parent CHECK (parent_id IS DISTINCT FROM id),
    CONSTRAINT jobs_not_own_retry CHECK (retry_of IS DISTINCT FROM id),
    CONSTRAINT jobs_lease_has_owner CHECK (lease_expires_at IS NULL OR service_id IS NOT NULL)
);

COMMENT ON COLUMN jobs.status_service_id IS 'instance that made the last status change (copied into the history)';
COMMENT ON COLUMN jobs.retry_of IS 'the original job this one retries; never a retry itself';

-- Hot queries: work by status per type, the tile time series, chaining, retries, dispatch order.
CREATE INDEX jobs_type_status ON jobs (job_type, status);
CREATE INDEX jobs_tile_measured ON jobs (tile_id, measured_at) WHERE tile_id IS NOT NULL;
CREATE INDEX jobs_type_product ON jobs (job_type, product_id) WHERE product_id IS NOT NULL;
CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_spawned_by ON jobs (spawned_by) WHERE spawned_by IS NOT NULL;
CREATE INDEX jobs_retry_of ON jobs (retry_of) WHERE retry_of IS NOT NULL;
CREATE INDEX jobs_ready_queue ON jobs (priority, input_published_at, id) WHERE status = 3;
CREATE INDEX jobs_active_lease ON jobs (service_id, lease_expires_at) WHERE service_id IS NOT NULL;

-- Append-only history, one row per status change, written only by the jobs trigger below.
CREATE TABLE job_status_changes (
    id              bigserial PRIMARY KEY,
    job_id          bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    previous_status smallint REFERENCES job_status (id),
    status          smallint NOT NULL REFERENCES job_status (id),
    attempt         integer NOT NULL,
    time            timestamptz NOT NULL DEFAULT clock_timestamp(),
    error_subtype   text,
    error_message   text,
    service_id      uuid
);
CREATE INDEX job_status_changes_job ON job_status_changes (job_id, id);
CREATE INDEX job_status_changes_time ON job_status_changes (time);

-- Raised for a transition the table does not allow. SQLSTATE SW001 lets clients tell it apart.
CREATE FUNCTION swath_check_job_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_status smallint := CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.attempt < OLD.attempt THEN
            RAISE EXCEPTION 'job %: attempt cannot go back from % to %', OLD.id, OLD.attempt, NEW.attempt
                USING ERRCODE = 'SW002';
        END IF;
        IF NEW.status = OLD.status AND NEW.status_changed_at = OLD.status_changed_at THEN
            IF NEW.attempt <> OLD.attempt THEN
                RAISE EXCEPTION 'job %: the attempt changes only with a status change', OLD.id
                    USING ERRCODE = 'SW002';
            END IF;
            RETURN NEW;  -- not a status change
        END IF;
        IF NEW.status_changed_at = OLD.status_changed_at THEN
            NEW.status_changed_at := clock_timestamp();
        END IF;
        -- A new attempt starts only by going back to ready, one at a time; going back to ready from an
        -- error always starts one, so that its dispatch gets a fresh idempotency token.
        IF NEW.attempt <> OLD.attempt AND (NEW.status <> 3 OR NEW.attempt <> OLD.attempt + 1) THEN
            RAISE EXCEPTION 'job %: attempt % -> % is only allowed as +1 on a transition to ready',
                OLD.id, OLD.attempt, NEW.attempt USING ERRCODE = 'SW002';
        END IF;
        IF NEW.status = 3 AND OLD.status IN (14, 15) AND NEW.attempt <> OLD.attempt + 1 THEN
            RAISE EXCEPTION 'job %: going back to ready from % must start attempt %',
                OLD.id, (SELECT name FROM job_status WHERE id = OLD.status), OLD.attempt + 1
                USING ERRCODE = 'SW002';
        END IF;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM job_status_transitions
        WHERE from_status IS NOT DISTINCT FROM old_status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'invalid job status transition % -> % for job %',
            coalesce((SELECT name FROM job_status WHERE id = old_status), '(new)'),
            coalesce((SELECT name FROM job_status WHERE id = NEW.status), NEW.status::text),
            coalesce(NEW.id::text, '(new)')
            USING ERRCODE = 'SW001';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_check_transition
    BEFORE INSERT OR UPDATE OF status, status_changed_at, attempt ON jobs
    FOR EACH ROW EXECUTE FUNCTION swath_check_job_transition();

CREATE FUNCTION swath_record_job_status_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status = OLD.status AND NEW.status_changed_at = OLD.status_changed_at THEN
        RETURN NULL;
    END IF;
    INSERT INTO job_status_changes
        (job_id, previous_status, status, attempt, time, error_subtype, error_message, service_id)
    VALUES
        (NEW.id, CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END, NEW.status, NEW.attempt,
         NEW.status_changed_at, NEW.status_error_subtype, NEW.status_message, NEW.status_service_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_record_status_change
    AFTER INSERT OR UPDATE OF status, status_changed_at ON jobs
    FOR EACH ROW EXECUTE FUNCTION swath_record_job_status_change();

-- History rows come only from the trigger above (trigger depth > 1) and are never rewritten.
CREATE FUNCTION swath_guard_job_status_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'job_status_changes is append-only' USING ERRCODE = 'SW003';
    END IF;
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'job_status_changes is written by changing jobs.status, not directly'
            USING ERRCODE = 'SW003';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER job_status_changes_guard
    BEFORE INSERT OR UPDATE ON job_status_changes
    FOR EACH ROW EXECUTE FUNCTION swath_guard_job_status_changes();

-- Jobs of one type whose current status is one of `statuses` (the original's per-type
-- `<type>_jobs_with_last_status` procedures, as one function).
CREATE FUNCTION jobs_with_last_status(p_job_type text, p_statuses smallint[])
RETURNS SETOF jobs
LANGUAGE sql STABLE AS $$
    SELECT * FROM jobs WHERE job_type = p_job_type AND status = ANY (p_statuses) ORDER BY id
$$;
