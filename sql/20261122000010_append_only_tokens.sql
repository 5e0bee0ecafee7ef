-- Attempt tokens are append-only: a token stays valid for its attempt as long as its job exists, and is
-- revoked by moving the job to a new attempt (the attempt fence), never by deleting it. The worker API
-- relies on it to remember the tokens it has checked. Rows go only with their job (the cascade runs
-- from a trigger, hence the depth).
CREATE FUNCTION swath_guard_attempt_tokens() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' OR pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'attempt_tokens is append-only: a token is revoked by starting a new attempt'
            USING ERRCODE = 'SW004';
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER attempt_tokens_guard
    BEFORE UPDATE OR DELETE ON attempt_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION swath_guard_attempt_tokens();
