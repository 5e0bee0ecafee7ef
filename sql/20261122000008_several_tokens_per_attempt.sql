-- A job re-dispatched after a crash (same attempt, same idempotency token) gets a new worker token,
-- while the worker the executor already runs keeps the first one: every token issued for an attempt
-- stays valid for that attempt, and only for it.
ALTER TABLE attempt_tokens DROP CONSTRAINT attempt_tokens_pkey;
ALTER TABLE attempt_tokens ADD PRIMARY KEY (job_id, attempt, sha256);
