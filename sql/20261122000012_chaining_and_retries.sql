-- Job chaining and manual retries (docs/state_machine.md, "Chaining and retries").
--
-- A child attached to a parent (`parent_id`) keeps it from being done until the child is done; a
-- child's terminal failure (internal_error or cancelled) fails the parent. A child replaced by a
-- retry (`retry_of`, always the original) no longer counts: the retry does. The rules live in
-- triggers so that every code path, raw SQL included, follows them:
--   - jobs_wait_for_children: a move to done while a child blocks it is held (the job keeps its status
--     and waits, `awaiting_children`), or becomes internal_error when the blocking child failed;
--   - jobs_child_settled: a child's move to done completes a waiting parent once nothing blocks it
--     any more, and a child's terminal failure fails a waiting parent;
--   - jobs_new_child: a child cannot be attached to a parent that is done (nor, except for a retry,
--     to one that failed or was cancelled).
-- Every trigger acts only for rows that take part in a chain, so the hot path is unchanged.

-- A parent waiting in published for its children fails when one of them does.
INSERT INTO job_status_transitions (from_status, to_status) VALUES (11, 13);

ALTER TABLE jobs ADD COLUMN awaiting_children boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN jobs.awaiting_children IS
    'the job''s own work is complete and its move to done waits for its attached children';

-- The attached child of `p_parent` that keeps it from being done: a failed one (internal_error or
-- cancelled) first, else the oldest one not done. A child replaced by a later retry does not count.
CREATE FUNCTION swath_blocking_child(p_parent bigint)
RETURNS TABLE (id bigint, status smallint, job_type text, name text, message text)
LANGUAGE sql STABLE AS $$
    SELECT c.id, c.status, c.job_type, c.name, c.status_message
    FROM jobs c
    WHERE c.parent_id = p_parent AND c.status <> 12
      AND NOT EXISTS (
          SELECT 1 FROM jobs r
          WHERE r.retry_of = coalesce(c.retry_of, c.id) AND r.id > c.id AND r.parent_id = p_parent
      )
    ORDER BY c.status IN (13, 16) DESC, c.id
    LIMIT 1
$$;

-- The message a parent fails with: it names the child and says how it ended.
CREATE FUNCTION swath_child_failure_message(p_id bigint, p_status smallint, p_type text, p_name text,
                                            p_message text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format('attached child %s (%s %s) ended %s: %s', p_id, p_type, p_name,
                  CASE p_status WHEN 16 THEN 'cancelled' ELSE 'in internal_error' END,
                  coalesce(p_message, 'no message'))
$$;

CREATE FUNCTION swath_wait_for_children() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    blocking record;
BEGIN
    IF NEW.status <> 12 OR OLD.status = 12 THEN
        -- Leaving the waiting statuses other than by failing (and being put back after a retry of
        -- the failed child) ends the wait: the job runs or is settled again by other means.
        IF NEW.status NOT IN (9, 11, 13, 15) THEN
            NEW.awaiting_children := false;
        END IF;
        RETURN NEW;
    END IF;
    SELECT * INTO blocking FROM swath_blocking_child(NEW.id);
    IF NOT FOUND THEN
        NEW.awaiting_children := false;
        RETURN NEW;
    END IF;
    NEW.awaiting_children := true;
    IF blocking.status IN (13, 16) THEN
        -- processed, published and error_checked (the statuses that may go to done) may all go to
        -- internal_error.
        NEW.status := 13;
        NEW.status_error_subtype := 'child failed';
        NEW.status_message := swath_child_failure_message(blocking.id, blocking.status,
                                                          blocking.job_type, blocking.name,
                                                          blocking.message);
        RETURN NEW;
    END IF;
    -- Held: no status change at all (no history row); the last child's move to done completes it.
    NEW.status := OLD.status;
    NEW.status_changed_at := OLD.status_changed_at;
    NEW.status_error_subtype := OLD.status_error_subtype;
    NEW.status_message := OLD.status_message;
    NEW.status_service_id := OLD.status_service_id;
    RETURN NEW;
END;
$$;

-- Named to fire after jobs_check_transition (triggers of one kind fire in name order): the move
-- asked for is validated first, then held or turned into a failure.
CREATE TRIGGER jobs_wait_for_children
    BEFORE UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN ((NEW.status = 12 AND OLD.status <> 12) OR OLD.awaiting_children)
    EXECUTE FUNCTION swath_wait_for_children();

CREATE FUNCTION swath_child_settled() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent record;
BEGIN
    -- A child replaced by a retry no longer speaks for its parent.
    IF EXISTS (
        SELECT 1 FROM jobs r
        WHERE r.retry_of = coalesce(NEW.retry_of, NEW.id) AND r.id > NEW.id
          AND r.parent_id = NEW.parent_id
    ) THEN
        RETURN NULL;
    END IF;
    -- Children lock their parent before looking at their siblings, so that two children settling
    -- at once, or a child and its parent's own move to done, are seen one after the other.
    SELECT p.id, p.status, p.awaiting_children INTO parent
    FROM jobs p WHERE p.id = NEW.parent_id FOR UPDATE;
    IF NOT FOUND OR NOT parent.awaiting_children OR parent.status NOT IN (9, 11) THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 12 THEN
        -- jobs_wait_for_children on the parent decides: done, or still held by another child.
        UPDATE jobs SET status = 12, status_changed_at = clock_timestamp(),
               status_error_subtype = NULL, status_service_id = NULL,
               status_message = format('every attached child is done (the last one: %s)', NEW.id)
        WHERE id = parent.id;
    ELSE
        UPDATE jobs SET status = 13, status_changed_at = clock_timestamp(),
               status_error_subtype = 'child failed', status_service_id = NULL,
               status_message = swath_child_failure_message(NEW.id, NEW.status, NEW.job_type,
                                                            NEW.name, NEW.status_message)
        WHERE id = parent.id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_child_settled
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.parent_id IS NOT NULL AND NEW.status IN (12, 13, 16)
          AND NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION swath_child_settled();

-- Raised when a child cannot be attached to its parent. SQLSTATE SW005 lets clients tell it apart.
CREATE FUNCTION swath_check_new_child() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent_status smallint;
BEGIN
    -- Locking the parent orders this insert with the parent's own move to done (which looks at its
    -- children): a child never slips in beside a parent that was just completed.
    SELECT status INTO parent_status FROM jobs WHERE id = NEW.parent_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NEW;  -- the foreign key reports it
    END IF;
    IF parent_status = 12 OR (parent_status IN (13, 16) AND NEW.retry_of IS NULL) THEN
        RAISE EXCEPTION 'job % is %: no child can be attached to it', NEW.parent_id,
            (SELECT name FROM job_status WHERE id = parent_status)
            USING ERRCODE = 'SW005';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_new_child
    BEFORE INSERT ON jobs
    FOR EACH ROW
    WHEN (NEW.parent_id IS NOT NULL)
    EXECUTE FUNCTION swath_check_new_child();

-- Processed jobs waiting for their children are not publication work.
CREATE INDEX jobs_processed ON jobs (status_changed_at, id) WHERE status = 9 AND NOT awaiting_children;
