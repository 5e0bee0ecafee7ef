-- The status history, partitioned by month of `time`, so that retention drops whole months instead
-- of deleting rows one by one.
--
-- Layout (all partitions of `job_status_changes`, PARTITION BY RANGE (time), months in UTC):
--
--   job_status_changes_archive   FROM (MINVALUE) TO (<first month kept>)
--   job_status_changes_YYYY_MM   one per month, contiguous, from the first month kept to a few
--                                months ahead of the current one
--   job_status_changes_default   DEFAULT: the safety net for rows past the last month created
--
-- Months ahead. `swath_ensure_history_partitions(n)` creates the partitions of the current month
-- and of the `n` next ones, filling any gap after the newest month (the leader calls it every ten
-- minutes, this migration once). A row whose month has no partition yet lands in the default
-- partition; when that month's partition is created, `swath_create_history_partition` builds it as a
-- plain table, moves the month's rows out of the default partition into it (DELETE ... RETURNING
-- into INSERT, ids and values unchanged), then attaches it: PostgreSQL refuses to create a partition
-- whose rows still sit in the default one, so nothing can be left behind there.
--
-- Retention. `swath_retire_history_partitions(cutoff, final statuses)` drops every monthly
-- partition that ends at or before `cutoff`, oldest first. Before that, it copies out of them the
-- rows that must outlive them, exactly those the row-by-row retention never deleted:
--   * each job's last change (the highest id of its job), which `db::history::job_history`, the
--     API's job view and the retry logic (`ORDER BY id DESC LIMIT 1`) read;
--   * every row of a job that is not in a final status (its history is not pruned yet).
-- Those rows go to the archive partition, whose upper bound then moves to the end of the last
-- retired month (detach, insert, attach again with the new bound, in one transaction). The rows keep
-- their ids and times, and they stay in `job_status_changes`: every reader sees one table, ordered by
-- id, as before, and finds each job's last change where it always did. The rows copied are few: jobs
-- that have not changed since that month, and unfinished ones. A job's last change has the job's
-- `status_changed_at` as its time (the jobs triggers write one with the other), so only jobs with
-- `status_changed_at` before the end of the month are checked for it. Rows of the archive that are
-- no longer needed (a job that was unfinished has finished since) are deleted row by row by the
-- leader (`db::retention::prune_archived_history`): the archive is small.
--
-- Conversion. The old table is renamed, the partitioned one created like it (same columns,
-- defaults, checks, the same `id` sequence), the rows copied before the append-only guard exists on
-- the new table, then the indexes and the guard are created and the old table dropped. Monthly
-- partitions cover the months of the existing rows, at most 24 months back: older rows (by now only
-- last changes, the old retention having pruned the rest) go to the archive partition.
--
-- The append-only guard is a statement trigger: on a partitioned table it fires for statements on
-- the parent only, so every partition gets its own, and a write aimed at a partition directly is
-- refused too.

-- 1. The old table steps aside; its sequence outlives it.
ALTER TABLE job_status_changes RENAME TO job_status_changes_unpartitioned;
DROP TRIGGER job_status_changes_guard ON job_status_changes_unpartitioned;
ALTER SEQUENCE job_status_changes_id_seq OWNED BY NONE;
ALTER TABLE job_status_changes_unpartitioned DROP CONSTRAINT job_status_changes_pkey;
DROP INDEX job_status_changes_job;
DROP INDEX job_status_changes_time;

-- 2. The partitioned table: the same columns, defaults (id from the same sequence) and checks.
CREATE TABLE job_status_changes
    (LIKE job_status_changes_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS)
    PARTITION BY RANGE (time);
ALTER SEQUENCE job_status_changes_id_seq OWNED BY job_status_changes.id;
COMMENT ON TABLE job_status_changes IS
    'append-only status history, one partition per month (UTC) plus archive and default; see migration 20261207000018';

CREATE TABLE job_status_changes_default PARTITION OF job_status_changes DEFAULT;

-- 3. The maintenance functions. One advisory lock serializes them (two instances that both believe
-- they lead, the migration).

-- Monthly partitions and their bounds, read from their names (`job_status_changes_YYYY_MM`).
CREATE FUNCTION swath_history_months()
RETURNS TABLE (name text, starts timestamptz, ends timestamptz)
LANGUAGE sql STABLE SET TimeZone = 'UTC' AS $$
    SELECT c.relname::text, m.starts, m.starts + interval '1 month'
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT to_timestamp(substr(c.relname, 20), 'YYYY_MM') AS starts) m
    WHERE i.inhparent = 'job_status_changes'::regclass
      AND c.relname ~ '^job_status_changes_[0-9]{4}_[0-9]{2}$'
$$;

-- Creates the partition of the month holding `p_month` when it does not exist, moving the month's
-- rows out of the default partition into it. Returns whether it created it.
CREATE FUNCTION swath_create_history_partition(p_month timestamptz) RETURNS boolean
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    starts timestamptz := date_trunc('month', p_month);
    ends timestamptz := date_trunc('month', p_month) + interval '1 month';
    part text := 'job_status_changes_' || to_char(date_trunc('month', p_month), 'YYYY_MM');
BEGIN
    IF p_month IS NULL THEN
        RAISE EXCEPTION 'swath_create_history_partition: the month is NULL';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('swath_history_partitions'));
    IF EXISTS (SELECT 1 FROM swath_history_months() m WHERE m.name = part) THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE job_status_changes INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
    EXECUTE format(
        'WITH moved AS (DELETE FROM job_status_changes_default WHERE time >= %L AND time < %L RETURNING *)
         INSERT INTO %I SELECT * FROM moved',
        starts, ends, part);
    EXECUTE format('ALTER TABLE job_status_changes ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        part, starts, ends);
    EXECUTE format(
        'CREATE TRIGGER job_status_changes_guard BEFORE INSERT OR UPDATE ON %I
         FOR EACH STATEMENT EXECUTE FUNCTION swath_guard_job_status_changes_statement()',
        part);
    RETURN true;
END;
$$;

-- Creates the partitions of the current month and of the `p_months_ahead` next ones, and of any
-- month missing between the newest partition and them. Returns how many it created.
CREATE FUNCTION swath_ensure_history_partitions(p_months_ahead integer) RETURNS integer
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    this_month timestamptz := date_trunc('month', clock_timestamp());
    m timestamptz;
    created integer := 0;
BEGIN
    IF p_months_ahead IS NULL OR p_months_ahead < 0 OR p_months_ahead > 120 THEN
        RAISE EXCEPTION 'swath_ensure_history_partitions: months ahead must be between 0 and 120, not %',
            coalesce(p_months_ahead::text, 'NULL');
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('swath_history_partitions'));
    m := least(this_month,
               coalesce((SELECT max(h.ends) FROM swath_history_months() h), this_month));
    WHILE m <= this_month + make_interval(months => p_months_ahead) LOOP
        IF swath_create_history_partition(m) THEN
            created := created + 1;
        END IF;
        m := m + interval '1 month';
    END LOOP;
    RETURN created;
END;
$$;

-- Drops the monthly partitions that end at or before `p_cutoff`, after copying into the archive
-- partition each job's last change and every row of the jobs whose status is not in `p_final`.
-- Returns how many partitions went and how many rows were kept.
CREATE FUNCTION swath_retire_history_partitions(p_cutoff timestamptz, p_final smallint[])
RETURNS TABLE (partitions integer, kept bigint)
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    doomed text[];
    archive_ends timestamptz;
    part text;
BEGIN
    IF p_cutoff IS NULL OR p_final IS NULL THEN
        RAISE EXCEPTION 'swath_retire_history_partitions: the cutoff and the final statuses are required';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('swath_history_partitions'));
    SELECT array_agg(m.name ORDER BY m.starts), max(m.ends) INTO doomed, archive_ends
    FROM swath_history_months() m WHERE m.ends <= p_cutoff;
    IF doomed IS NULL THEN
        RETURN QUERY SELECT 0, 0::bigint;
        RETURN;
    END IF;
    -- What must outlive them, read before anything is dropped (the last change of a job is looked
    -- for in the whole history, other retired months included).
    IF to_regclass('pg_temp.swath_history_kept') IS NOT NULL THEN
        DROP TABLE pg_temp.swath_history_kept;
    END IF;
    CREATE TEMP TABLE swath_history_kept (LIKE job_status_changes) ON COMMIT DROP;
    FOREACH part IN ARRAY doomed LOOP
        EXECUTE format(
            'INSERT INTO swath_history_kept
             SELECT h.* FROM %I h JOIN jobs j ON j.id = h.job_id
             WHERE j.status <> ALL ($1)
                OR (j.status_changed_at < $2
                    AND NOT EXISTS (SELECT 1 FROM job_status_changes later
                                    WHERE later.job_id = h.job_id AND later.id > h.id))',
            part) USING p_final, archive_ends;
    END LOOP;
    -- From here on the history is locked (the caller bounds the wait with lock_timeout).
    FOREACH part IN ARRAY doomed LOOP
        EXECUTE format('DROP TABLE %I', part);
    END LOOP;
    ALTER TABLE job_status_changes DETACH PARTITION job_status_changes_archive;
    ALTER TABLE job_status_changes_archive DISABLE TRIGGER job_status_changes_guard;
    INSERT INTO job_status_changes_archive SELECT * FROM swath_history_kept;
    ALTER TABLE job_status_changes_archive ENABLE TRIGGER job_status_changes_guard;
    EXECUTE format(
        'ALTER TABLE job_status_changes ATTACH PARTITION job_status_changes_archive FOR VALUES FROM (MINVALUE) TO (%L)',
        archive_ends);
    RETURN QUERY SELECT cardinality(doomed), (SELECT count(*) FROM swath_history_kept);
    DROP TABLE swath_history_kept;
END;
$$;

-- 4. The partitions of the existing rows' months (24 at most; older rows go to the archive), of the
-- current month and of the next three.
DO $$
DECLARE
    this_month timestamptz := date_trunc('month', clock_timestamp() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    oldest timestamptz;
    first_month timestamptz;
BEGIN
    oldest := (SELECT min(time) FROM job_status_changes_unpartitioned);
    first_month := least(this_month, greatest(
        coalesce(date_trunc('month', oldest AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', this_month),
        ((this_month AT TIME ZONE 'UTC') - interval '24 months') AT TIME ZONE 'UTC'));
    EXECUTE format(
        'CREATE TABLE job_status_changes_archive PARTITION OF job_status_changes FOR VALUES FROM (MINVALUE) TO (%L)',
        first_month);
    PERFORM swath_create_history_partition(first_month);
    PERFORM swath_ensure_history_partitions(3);
END;
$$;

-- 5. The rows, unchanged (the guard does not exist on the new table yet).
INSERT INTO job_status_changes SELECT * FROM job_status_changes_unpartitioned;

-- 6. Keys, indexes and the guard. The partition key must be part of the primary key.
ALTER TABLE job_status_changes ADD CONSTRAINT job_status_changes_pkey PRIMARY KEY (id, time);
CREATE INDEX job_status_changes_job ON job_status_changes (job_id, id);
CREATE INDEX job_status_changes_time ON job_status_changes USING brin (time);

CREATE TRIGGER job_status_changes_guard
    BEFORE INSERT OR UPDATE ON job_status_changes
    FOR EACH STATEMENT EXECUTE FUNCTION swath_guard_job_status_changes_statement();
CREATE TRIGGER job_status_changes_guard
    BEFORE INSERT OR UPDATE ON job_status_changes_archive
    FOR EACH STATEMENT EXECUTE FUNCTION swath_guard_job_status_changes_statement();
CREATE TRIGGER job_status_changes_guard
    BEFORE INSERT OR UPDATE ON job_status_changes_default
    FOR EACH STATEMENT EXECUTE FUNCTION swath_guard_job_status_changes_statement();

DROP TABLE job_status_changes_unpartitioned;
