-- The token a worker presents, one per attempt: only its SHA-256 is stored, so that any instance can
-- check it and nobody can read it back. Older attempts keep theirs, so that a late report from an
-- old attempt is recognised (and refused as stale) rather than taken for a forgery.
CREATE TABLE attempt_tokens (
    job_id    bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt   integer NOT NULL,
    sha256    bytea NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (job_id, attempt)
);
