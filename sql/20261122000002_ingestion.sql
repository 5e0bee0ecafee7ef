-- Ingestion: a persisted cursor per (job type, catalogue source), and the quarantine of listed
-- products that could not be understood.

CREATE TABLE ingestion_cursors (
    job_type       text NOT NULL,
    source         text NOT NULL,
    -- Newest catalogue publication time of a fully processed page.
    published_until timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (job_type, source)
);

CREATE TABLE quarantined_products (
    id            bigserial PRIMARY KEY,
    job_type      text NOT NULL,
    source        text NOT NULL,
    name          text NOT NULL,
    reason        text NOT NULL,
    raw           jsonb,
    first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    times_seen    integer NOT NULL DEFAULT 1,
    CONSTRAINT quarantined_products_unique UNIQUE (job_type, source, name)
);

-- Dedup lookups by sensing time (S1 products carry no tile).
CREATE INDEX jobs_type_measured ON jobs (job_type, measured_at);
