-- Strata's source of truth: uploaded data sets, jobs and their results.

-- A user's uploaded data set, stored as Parquet under the data directory.
CREATE TABLE datasets (
    id          uuid PRIMARY KEY,
    owner       text        NOT NULL,
    name        text        NOT NULL,
    symbol      text        NOT NULL,
    -- Relative to the configured data directory, which api and workers share.
    path        text        NOT NULL,
    bars        bigint      NOT NULL,
    first_time  timestamptz NOT NULL,
    last_time   timestamptz NOT NULL,
    -- The most common gap between bars, in seconds.
    spacing_seconds bigint,
    bytes       bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner, name)
);

CREATE TABLE jobs (
    -- UUIDv7: time-ordered, so "newest first" is "id descending" and ids make stable cursors.
    id               uuid PRIMARY KEY,
    owner            text        NOT NULL,
    tier             text        NOT NULL CHECK (tier IN ('basic', 'pro', 'elite')),
    kind             text        NOT NULL CHECK (kind IN ('backtest', 'sweep')),
    status           text        NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- The request as the user sent it, and the data file it resolved to at submission.
    spec             jsonb       NOT NULL,
    data_path        text        NOT NULL,
    progress         double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    attempts         integer     NOT NULL DEFAULT 0,
    worker_id        text,
    error            text,
    request_id       text,
    idempotency_key  text,
    cancel_requested boolean     NOT NULL DEFAULT false,
    -- Set when the dispatcher hands the job to Redis; cleared to hand it over again.
    dispatched_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    -- Written with progress while running; a stale heartbeat means the worker died.
    heartbeat_at     timestamptz,
    finished_at      timestamptz,
    UNIQUE (owner, idempotency_key)
);

CREATE INDEX jobs_by_owner ON jobs (owner, id DESC);
-- What the dispatcher scans: queued jobs not yet in Redis, oldest first per tier.
CREATE INDEX jobs_to_dispatch ON jobs (tier, id) WHERE status = 'queued' AND dispatched_at IS NULL;
CREATE INDEX jobs_running ON jobs (heartbeat_at) WHERE status = 'running';
-- What the reconciler scans: jobs handed to Redis that no worker has started.
CREATE INDEX jobs_dispatched ON jobs (dispatched_at) WHERE status = 'queued' AND dispatched_at IS NOT NULL;

-- Written in the same statement as the job's final status.
CREATE TABLE job_results (
    job_id     uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    -- `json`, not `jsonb`: the document is kept byte for byte as the engine wrote it (what
    -- `strata backtest --format json` prints), and storing it costs a syntax check instead of a
    -- conversion (a 2,000-bar backtest writes about 140 kB).
    result     json        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- lz4 compresses results about ten times faster than the default pglz; a server built without
-- it keeps pglz.
DO $$
BEGIN
    ALTER TABLE job_results ALTER COLUMN result SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 is not available; job results are compressed with pglz';
END
$$;

-- Wakes the dispatcher when a job is queued (or queued again).
CREATE FUNCTION strata_notify_queued() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('strata_jobs_queued', NEW.tier);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_queued
    AFTER INSERT OR UPDATE OF dispatched_at ON jobs
    FOR EACH ROW WHEN (NEW.status = 'queued' AND NEW.dispatched_at IS NULL)
    EXECUTE FUNCTION strata_notify_queued();

-- Tells the worker running a job that its owner asked to cancel it, so it stops at once rather
-- than at its next heartbeat.
CREATE FUNCTION strata_notify_cancel() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('strata_jobs_cancel', NEW.id::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_cancel
    AFTER UPDATE OF cancel_requested ON jobs
    FOR EACH ROW WHEN (NEW.cancel_requested AND NOT OLD.cancel_requested AND NEW.status = 'running')
    EXECUTE FUNCTION strata_notify_cancel();
