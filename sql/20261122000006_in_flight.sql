-- Per-status timeouts look at jobs in flight (queued to post_processing) by how long they have been
-- in their status.
CREATE INDEX jobs_in_flight ON jobs (status, status_changed_at) WHERE status BETWEEN 4 AND 8;
