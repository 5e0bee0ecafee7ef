-- Several orchestrator instances on one database: each registers in `services` and heartbeats; one
-- of them, the holder of the `cluster_leader` lease row, runs the singleton duties (declaring
-- instances dead, handing their jobs back, pruning old history). Times are the database's clock,
-- so that the instances' clocks never have to agree.

CREATE TABLE services (
    id           uuid PRIMARY KEY,
    host         text NOT NULL,
    name         text NOT NULL,
    pid          integer,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- alive: heartbeats; stopped: left after a graceful shutdown; dead: declared by the leader after
    -- missed heartbeats (an instance that comes back is alive again).
    state        text NOT NULL DEFAULT 'alive' CHECK (state IN ('alive', 'stopped', 'dead')),
    ended_at     timestamptz,
    CONSTRAINT services_ended CHECK ((state = 'alive') = (ended_at IS NULL))
);

CREATE INDEX services_alive ON services (heartbeat_at) WHERE state = 'alive';

COMMENT ON TABLE services IS 'orchestrator instances (swath serve), one row per start';

-- One row: who leads, until when. A leader renews its lease; anyone may take an expired one.
CREATE TABLE cluster_leader (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    service_id  uuid,
    acquired_at timestamptz,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity'
);

INSERT INTO cluster_leader (id) VALUES (1);
