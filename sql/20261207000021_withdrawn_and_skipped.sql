-- Products withdrawn from the catalogue (CDSE `DeletedProducts`, or an item gone from a STAC
-- re-listing) and products ingestion skipped: what the completeness report explains gaps with.

-- A job whose input was withdrawn: cancelled with the reason if it had not started, flagged if done.
ALTER TABLE jobs ADD COLUMN input_withdrawn_at timestamptz;
ALTER TABLE jobs ADD COLUMN input_withdrawal_reason text;
COMMENT ON COLUMN jobs.input_withdrawn_at IS 'when the catalogue withdrew the input (its DeletionDate)';
CREATE INDEX jobs_input_withdrawn ON jobs (job_type, measured_at) WHERE input_withdrawn_at IS NOT NULL;

-- How far each catalogue's withdrawals were read.
CREATE TABLE withdrawal_cursors (
    source        text PRIMARY KEY,
    checked_until timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Products a listing did not turn into a job, with why (bounded by retention): a gap in the
-- completeness report is explained from here.
CREATE TABLE skipped_products (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_type      text NOT NULL,
    source        text NOT NULL,
    name          text NOT NULL,
    tile_id       text,
    measured_at   timestamptz,
    published_at  timestamptz,
    reason        text NOT NULL,
    campaign_id   bigint REFERENCES campaigns (id) ON DELETE CASCADE,
    first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    times_seen    integer NOT NULL DEFAULT 1,
    CONSTRAINT skipped_products_unique UNIQUE (job_type, source, name)
);
CREATE INDEX skipped_products_tile_day ON skipped_products (job_type, tile_id, measured_at);
CREATE INDEX skipped_products_last_seen ON skipped_products (last_seen_at);
