-- The job list (`GET /api/v1/jobs?type=...&status=...`, newest first) reads one index range in id
-- order and stops at its page: (job_type, status, id) serves that filter and its order, and every
-- query `jobs_type_status` served, which it replaces.
CREATE INDEX jobs_type_status_id ON jobs (job_type, status, id);
DROP INDEX jobs_type_status;
