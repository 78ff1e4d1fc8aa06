-- Claims fenced by a per-claim token, and jobs that kill their worker process contained.

-- Bumped by every claim and never reset: a run writes its progress, heartbeat, result, failure
-- and child jobs only `WHERE id = $1 AND claim = $2`, so a run that lost its job (the
-- reconciler took it back after its lease, or its own worker claimed it again after a
-- PostgreSQL outage longer than the lease) can never record anything. The worker id alone
-- could not tell the two runs of one worker apart.
ALTER TABLE jobs ADD COLUMN claim integer NOT NULL DEFAULT 0;

-- Runs of the job that ended with their worker process dying (abort, OOM kill, segfault), as
-- the reconciler found them: a job that has stopped its worker once runs alone on its next
-- worker, and fails once it has stopped `worker.max_worker_deaths` of them (2 by default), so
-- one request cannot take down worker after worker.
ALTER TABLE jobs ADD COLUMN worker_deaths integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN last_worker_death_at timestamptz;

-- What the operator's view of poison jobs reads (GET /v1/admin/poisoned).
CREATE INDEX jobs_with_worker_deaths ON jobs (last_worker_death_at DESC)
    WHERE worker_deaths > 0;

-- When the reconciler took a worker for dead: it held running jobs, and neither they nor the
-- worker itself had been heard of for a lease.
ALTER TABLE workers ADD COLUMN died_at timestamptz;
