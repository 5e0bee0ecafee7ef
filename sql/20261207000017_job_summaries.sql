-- Summaries of `jobs` that operator reads (the dashboard, `/metrics`, the demo) take instead of
-- scanning the whole table: jobs by type and status, manual retries, the newest input publication
-- per type, and the timeliness per type and day of input publication. Triggers on `jobs` keep them
-- in the same transaction as the change they count, so they are exact at every snapshot and a
-- rollback undoes its counts with everything else. `swath db refresh`
-- (`swath_engine::db::summaries::refresh`) recomputes them from `jobs` (after a bulk load with
-- triggers off, or to check them).
--
-- Contention: every counter row is split into stripes and readers sum the stripes. A transaction
-- claims one stripe for all of its counting, with a non-blocking advisory lock, so two concurrent
-- transactions never update the same counter row and cannot block or deadlock each other on one.
-- Only when more transactions than stripes count at once does a transaction share a stripe (it may
-- then wait for the other's commit on that counter row, as without stripes).

CREATE TABLE job_counts (
    job_type text NOT NULL,
    status   smallint NOT NULL,
    stripe   smallint NOT NULL,
    jobs     bigint NOT NULL,
    PRIMARY KEY (job_type, status, stripe)
);
COMMENT ON TABLE job_counts IS 'jobs by type and status: sum `jobs` over the stripes';

CREATE TABLE job_retry_counts (
    job_type text NOT NULL,
    stripe   smallint NOT NULL,
    jobs     bigint NOT NULL,
    PRIMARY KEY (job_type, stripe)
);
COMMENT ON TABLE job_retry_counts IS 'jobs with retry_of set (manual retries) by type: sum `jobs` over the stripes';

-- A maximum only grows: a deleted job (retention deletes old jobs, never the newest) leaves it
-- where it was, and `refresh` keeps the greater of this and what the table holds, so it reads as
-- "the newest input publication ever ingested" for the type.
CREATE TABLE job_input_newest (
    job_type text NOT NULL,
    stripe   smallint NOT NULL,
    newest   timestamptz NOT NULL,
    PRIMARY KEY (job_type, stripe)
);
COMMENT ON TABLE job_input_newest IS 'newest input_published_at per type: max `newest` over the stripes; never lowered';

-- Timeliness: per type, UTC day of input publication and measure (1 = sensing to input
-- publication, 2 = input publication to output publication), a histogram of durations: bucket
-- (see swath_timeliness_bucket), jobs in it and the sum of their durations in microseconds. Exact
-- percentiles cannot be maintained incrementally; readers compute them over the jobs of each bucket
-- placed at the bucket's mean, which is exact when a bucket's durations are equal and otherwise
-- within the bucket's width (15 minutes up to 72 hours, 6 hours up to 30 days).
CREATE TABLE job_timeliness (
    job_type text NOT NULL,
    day      date NOT NULL,
    measure  smallint NOT NULL CHECK (measure IN (1, 2)),
    bucket   smallint NOT NULL,
    stripe   smallint NOT NULL,
    jobs     bigint NOT NULL,
    micros   bigint NOT NULL,
    PRIMARY KEY (job_type, day, measure, bucket, stripe)
);
COMMENT ON TABLE job_timeliness IS 'timeliness histograms per type, day of input publication and measure: sum over the stripes';
CREATE INDEX job_timeliness_day ON job_timeliness (day);

-- The bucket of a duration in microseconds, ordered like the durations: quarter hours from -72 h to
-- 72 h (-288 to 287), then 6-hour steps up to 30 days (288 to 395), then one bucket for longer
-- (396); everything below -72 h (a catalogue clock far ahead) is bucket -289.
CREATE FUNCTION swath_timeliness_bucket(micros bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN micros < -259200000000 THEN -289
        WHEN micros < 259200000000 THEN floor(micros::numeric / 900000000)
        ELSE 288 + least(floor((micros - 259200000000)::numeric / 21600000000), 108)
    END::smallint
$$;

-- What one job contributes to the timeliness histograms: nothing without a sensing and an input
-- publication time; sensing to input (measure 1); input to output once published (measure 2).
CREATE FUNCTION swath_timeliness_of(
    p_job_type text, p_measured timestamptz, p_input timestamptz, p_output timestamptz
) RETURNS TABLE (job_type text, day date, measure smallint, bucket smallint, micros bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT p_job_type, (p_input AT TIME ZONE 'UTC')::date, m.measure,
           swath_timeliness_bucket(m.micros), m.micros
    FROM (VALUES (1::smallint, (extract(epoch FROM p_input - p_measured) * 1000000)::bigint),
                 (2::smallint, (extract(epoch FROM p_output - p_input) * 1000000)::bigint))
         AS m (measure, micros)
    WHERE p_input IS NOT NULL AND p_measured IS NOT NULL AND m.micros IS NOT NULL
$$;

-- The stripe this transaction counts in (0 to 31), claimed on first use: a transaction-level
-- advisory lock (class 731731) says which transaction owns which stripe, and a transaction-local
-- setting remembers it for the rest of the transaction. Starts at the backend's pid so that a
-- connection usually reuses the same stripe.
CREATE FUNCTION swath_summary_stripe() RETURNS smallint
LANGUAGE plpgsql AS $$
DECLARE
    claimed text := current_setting('swath.summary_stripe', true);
    first integer := pg_backend_pid() % 32;
    candidate integer;
BEGIN
    IF claimed IS NOT NULL AND claimed <> '' THEN
        RETURN claimed::smallint;
    END IF;
    FOR i IN 0 .. 31 LOOP
        candidate := (first + i) % 32;
        IF pg_try_advisory_xact_lock(731731, candidate) THEN
            PERFORM set_config('swath.summary_stripe', candidate::text, true);
            RETURN candidate;
        END IF;
    END LOOP;
    -- Every stripe is owned: share one (row locks on its counters serialize the sharers).
    PERFORM set_config('swath.summary_stripe', first::text, true);
    RETURN first;
END;
$$;

-- Inserted jobs, once per statement (with the transition table).
CREATE FUNCTION swath_summarise_jobs_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s smallint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM inserted) THEN
        RETURN NULL;
    END IF;
    s := swath_summary_stripe();
    INSERT INTO job_counts AS c (job_type, status, stripe, jobs)
    SELECT i.job_type, i.status, s, count(*) FROM inserted i GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (job_type, status, stripe) DO UPDATE SET jobs = c.jobs + excluded.jobs;
    INSERT INTO job_retry_counts AS c (job_type, stripe, jobs)
    SELECT i.job_type, s, count(*) FROM inserted i WHERE i.retry_of IS NOT NULL GROUP BY 1 ORDER BY 1
    ON CONFLICT (job_type, stripe) DO UPDATE SET jobs = c.jobs + excluded.jobs;
    INSERT INTO job_input_newest AS n (job_type, stripe, newest)
    SELECT i.job_type, s, max(i.input_published_at) FROM inserted i
    WHERE i.input_published_at IS NOT NULL GROUP BY 1 ORDER BY 1
    ON CONFLICT (job_type, stripe) DO UPDATE SET newest = excluded.newest
        WHERE n.newest < excluded.newest;
    INSERT INTO job_timeliness AS t (job_type, day, measure, bucket, stripe, jobs, micros)
    SELECT x.job_type, x.day, x.measure, x.bucket, s, count(*), sum(x.micros)
    FROM inserted i,
         LATERAL swath_timeliness_of(i.job_type, i.measured_at, i.input_published_at, i.output_published_at) x
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (job_type, day, measure, bucket, stripe)
        DO UPDATE SET jobs = t.jobs + excluded.jobs, micros = t.micros + excluded.micros;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_summarise_inserted
    AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION swath_summarise_jobs_inserted();

-- Deleted jobs, once per statement. The newest input publication stays (see job_input_newest).
CREATE FUNCTION swath_summarise_jobs_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s smallint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM deleted) THEN
        RETURN NULL;
    END IF;
    s := swath_summary_stripe();
    INSERT INTO job_counts AS c (job_type, status, stripe, jobs)
    SELECT d.job_type, d.status, s, -count(*) FROM deleted d GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (job_type, status, stripe) DO UPDATE SET jobs = c.jobs + excluded.jobs;
    INSERT INTO job_retry_counts AS c (job_type, stripe, jobs)
    SELECT d.job_type, s, -count(*) FROM deleted d WHERE d.retry_of IS NOT NULL GROUP BY 1 ORDER BY 1
    ON CONFLICT (job_type, stripe) DO UPDATE SET jobs = c.jobs + excluded.jobs;
    INSERT INTO job_timeliness AS t (job_type, day, measure, bucket, stripe, jobs, micros)
    SELECT x.job_type, x.day, x.measure, x.bucket, s, -count(*), -sum(x.micros)
    FROM deleted d,
         LATERAL swath_timeliness_of(d.job_type, d.measured_at, d.input_published_at, d.output_published_at) x
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (job_type, day, measure, bucket, stripe)
        DO UPDATE SET jobs = t.jobs + excluded.jobs, micros = t.micros + excluded.micros;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_summarise_deleted
    AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION swath_summarise_jobs_deleted();

-- Updated jobs, once per statement. PostgreSQL allows no column list on a trigger with transition
-- tables, so this fires for every UPDATE of `jobs` and returns at once when no summarised column
-- changed. (A row trigger would update one counter row once per job: a statement that moves N jobs
-- of one type would stack N versions of that row in one transaction, each update walking them.)
-- Each summary gets the old rows' contributions taken away and the new rows' added, netted per key,
-- so that keys nothing changed for are not written.
CREATE FUNCTION swath_summarise_jobs_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s smallint;
    counts_changed boolean;
    retries_changed boolean;
    inputs_changed boolean;
    times_changed boolean;
BEGIN
    SELECT coalesce(bool_or(o.status <> n.status OR o.job_type <> n.job_type), false),
           coalesce(bool_or((o.retry_of IS NULL) <> (n.retry_of IS NULL)
                            OR (n.retry_of IS NOT NULL AND o.job_type <> n.job_type)), false),
           coalesce(bool_or(n.input_published_at IS NOT NULL
                            AND (n.input_published_at, n.job_type)
                                IS DISTINCT FROM (o.input_published_at, o.job_type)), false),
           coalesce(bool_or((o.job_type, o.measured_at, o.input_published_at, o.output_published_at)
                            IS DISTINCT FROM
                            (n.job_type, n.measured_at, n.input_published_at, n.output_published_at)), false)
    INTO counts_changed, retries_changed, inputs_changed, times_changed
    FROM old_rows o JOIN new_rows n ON n.id = o.id;
    IF NOT (counts_changed OR retries_changed OR inputs_changed OR times_changed) THEN
        RETURN NULL;
    END IF;
    s := swath_summary_stripe();
    IF counts_changed THEN
        INSERT INTO job_counts AS c (job_type, status, stripe, jobs)
        SELECT x.job_type, x.status, s, sum(x.sign)
        FROM (SELECT o.job_type, o.status, -1 AS sign FROM old_rows o
              UNION ALL
              SELECT n.job_type, n.status, 1 FROM new_rows n) AS x
        GROUP BY 1, 2 HAVING sum(x.sign) <> 0 ORDER BY 1, 2
        ON CONFLICT (job_type, status, stripe) DO UPDATE SET jobs = c.jobs + excluded.jobs;
    END IF;
    IF retries_changed THEN
        INSERT INTO job_retry_counts AS c (job_type, stripe, jobs)
        SELECT x.job_type, s, sum(x.sign)
        FROM (SELECT o.job_type, -1 AS sign FROM old_rows o WHERE o.retry_of IS NOT NULL
              UNION ALL
              SELECT n.job_type, 1 FROM new_rows n WHERE n.retry_of IS NOT NULL) AS x
        GROUP BY 1 HAVING sum(x.sign) <> 0 ORDER BY 1
        ON CONFLICT (job_type, stripe) DO UPDATE SET jobs = c.jobs + excluded.jobs;
    END IF;
    IF inputs_changed THEN
        INSERT INTO job_input_newest AS i (job_type, stripe, newest)
        SELECT n.job_type, s, max(n.input_published_at)
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE n.input_published_at IS NOT NULL
          AND (n.input_published_at, n.job_type) IS DISTINCT FROM (o.input_published_at, o.job_type)
        GROUP BY 1 ORDER BY 1
        ON CONFLICT (job_type, stripe) DO UPDATE SET newest = excluded.newest
            WHERE i.newest < excluded.newest;
    END IF;
    IF times_changed THEN
        -- A measure that did not change nets to nothing and is not written (a publication adds
        -- measure 2 and leaves measure 1 alone).
        INSERT INTO job_timeliness AS t (job_type, day, measure, bucket, stripe, jobs, micros)
        SELECT x.job_type, x.day, x.measure, x.bucket, s, sum(x.sign), sum(x.sign * x.micros)
        FROM (SELECT c.job_type, c.day, c.measure, c.bucket, c.micros, -1 AS sign
              FROM old_rows o,
                   LATERAL swath_timeliness_of(o.job_type, o.measured_at, o.input_published_at,
                                               o.output_published_at) c
              UNION ALL
              SELECT c.job_type, c.day, c.measure, c.bucket, c.micros, 1 AS sign
              FROM new_rows n,
                   LATERAL swath_timeliness_of(n.job_type, n.measured_at, n.input_published_at,
                                               n.output_published_at) c) AS x
        GROUP BY 1, 2, 3, 4
        HAVING sum(x.sign) <> 0 OR sum(x.sign * x.micros) <> 0
        ORDER BY 1, 2, 3, 4
        ON CONFLICT (job_type, day, measure, bucket, stripe)
            DO UPDATE SET jobs = t.jobs + excluded.jobs, micros = t.micros + excluded.micros;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_summarise_updated
    AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION swath_summarise_jobs_updated();

-- TRUNCATE empties the summaries with the table.
CREATE FUNCTION swath_summarise_jobs_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_counts;
    DELETE FROM job_retry_counts;
    DELETE FROM job_input_newest;
    DELETE FROM job_timeliness;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_summarise_truncated
    AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION swath_summarise_jobs_truncated();

-- The dashboard's latest failures: the newest few errors without reading every internal error of
-- the archive (internal errors stay until an operator acts).
CREATE INDEX jobs_failures ON jobs (status_changed_at DESC, id) WHERE status IN (13, 14);

-- Backfill from the rows already there (the triggers above count everything after this).
INSERT INTO job_counts (job_type, status, stripe, jobs)
SELECT job_type, status, 0, count(*) FROM jobs GROUP BY 1, 2;
INSERT INTO job_retry_counts (job_type, stripe, jobs)
SELECT job_type, 0, count(*) FROM jobs WHERE retry_of IS NOT NULL GROUP BY 1;
INSERT INTO job_input_newest (job_type, stripe, newest)
SELECT job_type, 0, max(input_published_at) FROM jobs WHERE input_published_at IS NOT NULL GROUP BY 1;
INSERT INTO job_timeliness (job_type, day, measure, bucket, stripe, jobs, micros)
SELECT x.job_type, x.day, x.measure, x.bucket, 0, count(*), sum(x.micros)
FROM jobs j,
     LATERAL swath_timeliness_of(j.job_type, j.measured_at, j.input_published_at, j.output_published_at) x
GROUP BY 1, 2, 3, 4;
