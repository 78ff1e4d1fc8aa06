-- Retries with backoff, per-user turns at dispatch, and the workers an operator can see.

-- A job that failed for a passing reason (its worker died, PostgreSQL or Redis hiccuped) is
-- queued again but not dispatched before this time; NULL means at once.
ALTER TABLE jobs ADD COLUMN run_after timestamptz;

-- The dispatcher takes each tier's queued jobs in per-user turns (every user's oldest job
-- first), which reads the waiting jobs by owner.
CREATE INDEX jobs_to_dispatch_by_owner ON jobs (tier, owner, id)
    WHERE status = 'queued' AND dispatched_at IS NULL;

-- Each worker process records itself at start and on every reconciler pass; the admin view
-- lists them with when they were last seen.
CREATE TABLE workers (
    id          text PRIMARY KEY,
    host        text        NOT NULL,
    pid         integer     NOT NULL,
    concurrency integer     NOT NULL,
    threads     integer     NOT NULL,
    -- Jobs running on it when it was last seen.
    running     integer     NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    -- Set when it shut down cleanly.
    stopped_at  timestamptz
);
