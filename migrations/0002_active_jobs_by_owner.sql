-- Counting a user's active jobs (the active_jobs quota) reads only their queued and running rows.
CREATE INDEX jobs_active_by_owner ON jobs (owner) WHERE status IN ('queued', 'running');
