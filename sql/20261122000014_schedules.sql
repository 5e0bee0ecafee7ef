-- Periodic and on-request background jobs: the initial sync (a backfill, once), healing (cron:
-- re-scan a trailing window of the catalogue) and dump (cron: a snapshot of the job inventory).
--
-- A cron tick fires when an instance moves `next_run_time` from the value it read to the next tick
-- (compare-and-set): exactly one instance wins each tick. A request (API, start-up) fires the same
-- way on `requested_at`. Every fired tick or request is one row of `schedule_runs`, unique per
-- schedule, trigger and tick.

CREATE TABLE schedules (
    id                    text PRIMARY KEY CHECK (id IN ('initial_sync', 'healing', 'dump')),
    -- Cron pattern with seconds; NULL for the initial sync, which runs on request only.
    cron_pattern          text,
    next_run_time         timestamptz,
    -- A run asked for (API or start-up) and not fired yet.
    requested_at          timestamptz,
    -- idle, running (a run is in progress), disabled (its enable switch is off).
    state                 text NOT NULL DEFAULT 'idle' CHECK (state IN ('idle', 'running', 'disabled')),
    -- Healing only: refuse to run before an initial sync has succeeded.
    wait_for_initial_sync boolean NOT NULL DEFAULT true,
    last_run_at           timestamptz,
    last_success_at       timestamptz,
    last_error            text,
    -- The instance that fired the last run.
    service_id            uuid,
    tag                   jsonb,
    updated_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);

INSERT INTO schedules (id) VALUES ('initial_sync'), ('healing'), ('dump');

CREATE TABLE schedule_runs (
    id          bigserial PRIMARY KEY,
    schedule_id text NOT NULL REFERENCES schedules (id),
    trigger     text NOT NULL CHECK (trigger IN ('cron', 'request')),
    -- The cron tick (or the request time) this run fired for.
    tick_at     timestamptz NOT NULL,
    state       text NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'refused', 'abandoned')),
    service_id  uuid NOT NULL,
    tag         jsonb,
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    -- Why it failed, was refused or abandoned; what it did otherwise.
    message     text,
    result      jsonb,
    CONSTRAINT schedule_runs_once UNIQUE (schedule_id, trigger, tick_at),
    CONSTRAINT schedule_runs_finished CHECK ((state = 'running') = (finished_at IS NULL))
);

CREATE INDEX schedule_runs_running ON schedule_runs (schedule_id) WHERE state = 'running';

-- Requests and new patterns wake the instances' schedulers at once.
CREATE FUNCTION swath_notify_schedules() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('swath_schedules', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER schedules_notify
    AFTER UPDATE OF requested_at, next_run_time, state ON schedules
    FOR EACH STATEMENT EXECUTE FUNCTION swath_notify_schedules();
