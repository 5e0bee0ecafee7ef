-- Reprocessing campaigns: a named catalogue window of one job type (optionally some tiles) whose jobs
-- are created with priority `reprocessing`, dispatched at most `max_in_flight` at a time, and can be
-- paused, resumed and cancelled as one.
--
-- States: `listing` (the window is being listed; its jobs already run), `running` (listed; jobs
-- run), `paused` (no new dispatch; the listing goes on), `completed` (listed and every job ended),
-- `cancelled`, `failed` (the listing cannot go on: the catalogue refused it). Only `paused` holds
-- jobs back: the jobs of a failed listing, and later retries of a campaign's jobs, still run at the
-- campaign's pace (a cancelled campaign's jobs are cancelled with it).
CREATE TABLE campaigns (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                 text NOT NULL CONSTRAINT campaigns_name_unique UNIQUE
                         CHECK (length(name) BETWEEN 1 AND 128),
    job_type             text NOT NULL,
    -- The catalogue listed (as the `catalogue` setting names it).
    source               text NOT NULL,
    -- The publication window, [from, to).
    window_from          timestamptz NOT NULL,
    window_to            timestamptz NOT NULL,
    -- The tiles kept; NULL keeps every tile of the job type's area.
    tiles                text[],
    -- Whether products that already have a job are processed again.
    reprocess            boolean NOT NULL DEFAULT false,
    -- The processor image the campaign's jobs run (NULL: the job type's).
    image                text,
    max_in_flight        integer NOT NULL CHECK (max_in_flight > 0),
    state                text NOT NULL DEFAULT 'listing'
                         CHECK (state IN ('listing', 'running', 'paused', 'completed', 'cancelled', 'failed')),
    state_changed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Why it failed or was cancelled.
    state_message        text,
    -- Listing progress, committed with each page's jobs: where the next page starts (NULL before the
    -- first page), pages and products listed, jobs created, and products skipped by reason.
    listing_cursor       jsonb,
    pages                integer NOT NULL DEFAULT 0,
    products_listed      bigint NOT NULL DEFAULT 0,
    jobs_created         bigint NOT NULL DEFAULT 0,
    skipped              jsonb NOT NULL DEFAULT '{}',
    listing_finished_at  timestamptz,
    -- The instance listing the window, until its lease ends; a page is committed only by the holder.
    listing_owner        uuid,
    listing_lease_until  timestamptz,
    -- The last listing failure that will be retried (catalogue unavailable).
    listing_error        text,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at          timestamptz,
    CONSTRAINT campaigns_window CHECK (window_from < window_to),
    CONSTRAINT campaigns_lease_has_owner CHECK (listing_lease_until IS NULL OR listing_owner IS NOT NULL)
);

CREATE INDEX campaigns_active ON campaigns (id) WHERE state IN ('listing', 'running', 'paused');

ALTER TABLE jobs ADD COLUMN campaign_id bigint REFERENCES campaigns (id);
COMMENT ON COLUMN jobs.campaign_id IS 'the reprocessing campaign that created the job (its retries keep it)';

-- Progress and throttling count a campaign's jobs by status (and its throughput by the time they
-- ended) from the index alone; its retries, which progress counts in place of the jobs they retry,
-- and its claimed jobs not dispatched yet, which hold slots, have their own small indexes.
CREATE INDEX jobs_campaign ON jobs (campaign_id, status, status_changed_at) WHERE campaign_id IS NOT NULL;
CREATE INDEX jobs_campaign_retries ON jobs (campaign_id, retry_of) WHERE campaign_id IS NOT NULL AND retry_of IS NOT NULL;
CREATE INDEX jobs_campaign_claimed ON jobs (campaign_id, lease_expires_at)
    WHERE status = 3 AND campaign_id IS NOT NULL AND lease_expires_at IS NOT NULL;
-- One job per product per campaign (retries aside): a listing resumed or taken over never creates
-- a product's job twice.
CREATE UNIQUE INDEX jobs_campaign_product ON jobs (campaign_id, job_type, product_id)
    WHERE campaign_id IS NOT NULL AND retry_of IS NULL;

-- The ready queue splits in two: jobs outside campaigns in dispatch order, and each campaign's own
-- (read up to its free slots), so that a large campaign never lengthens the scan for other work.
CREATE INDEX jobs_ready_queue_own ON jobs (priority, input_published_at, id) WHERE status = 3 AND campaign_id IS NULL;
CREATE INDEX jobs_ready_campaign ON jobs (campaign_id, priority, input_published_at, id) WHERE status = 3 AND campaign_id IS NOT NULL;
DROP INDEX jobs_ready_queue;
