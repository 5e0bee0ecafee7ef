-- The secret a dispatch hands to a worker is a one-time bootstrap secret, not the attempt token: the
-- dispatch payload is readable by anyone allowed to read the Nomad job, and stays until garbage
-- collection. The worker exchanges it on its first call for an attempt token of its own choosing
-- (only that token's SHA-256 reaches the orchestrator's storage, in attempt_tokens); from then on the
-- bootstrap secret is void and every request that presents it is refused.
--
-- Only digests are stored. A dispatch repeated after a crash issues another bootstrap secret for the
-- same attempt (the executor keeps the first one it was given), so an attempt may have several, but
-- at most one of them is ever exchanged: the attempt has one attempt token.
CREATE TABLE worker_bootstrap_tokens (
    job_id         bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt        integer NOT NULL,
    sha256         bytea NOT NULL,
    issued_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- When it was exchanged, and the digest of the attempt token it was exchanged for (so that the
    -- same exchange sent again after a lost answer is recognised).
    exchanged_at   timestamptz,
    attempt_sha256 bytea,
    PRIMARY KEY (job_id, attempt, sha256),
    CHECK ((exchanged_at IS NULL) = (attempt_sha256 IS NULL))
);

-- One exchange per attempt, whichever of its bootstrap secrets is presented.
CREATE UNIQUE INDEX worker_bootstrap_tokens_one_exchange
    ON worker_bootstrap_tokens (job_id, attempt) WHERE exchanged_at IS NOT NULL;
