-- The publication outbox: one row per output product to announce, written in the same transaction
-- as the job's move to start_publication. A publisher sends the rows and marks them confirmed only
-- when the broker (or the file) confirmed them; the job is published and done when every row of
-- its publication is confirmed.
CREATE TABLE publications (
    id              bigserial PRIMARY KEY,
    job_id          bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    -- The product's title: the message id, stable across republications.
    product_id      text NOT NULL,
    message         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_count      integer NOT NULL DEFAULT 0,
    last_sent_at    timestamptz,
    confirmed_at    timestamptz,
    -- Republications asked for by the catalogue's failure acknowledgements.
    republish_count integer NOT NULL DEFAULT 0,
    last_error      text,
    UNIQUE (job_id, kind, product_id)
);

CREATE INDEX publications_unconfirmed ON publications (id) WHERE confirmed_at IS NULL;

CREATE FUNCTION notify_publications() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('swath_publications', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER publications_notify
    AFTER INSERT OR UPDATE OF confirmed_at ON publications
    FOR EACH STATEMENT EXECUTE FUNCTION notify_publications();
