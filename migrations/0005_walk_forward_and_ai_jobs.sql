-- Walk-forward jobs; and AI jobs: strategies written from plain words and analyses of results.
-- AI jobs wait on a language model rather than the engine, so they travel on a queue of their
-- own, `ai`.

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check
    CHECK (kind IN ('backtest', 'sweep', 'walk_forward', 'ai_strategy', 'ai_analysis'));

-- The Redis queue that carries the job: its tier's, or `ai`.
ALTER TABLE jobs ADD COLUMN queue text NOT NULL
    GENERATED ALWAYS AS (CASE WHEN kind IN ('ai_strategy', 'ai_analysis') THEN 'ai' ELSE tier END)
    STORED;

-- The job that made this one: an AI strategy job's backtest points at it.
ALTER TABLE jobs ADD COLUMN parent_id uuid REFERENCES jobs (id);
CREATE INDEX jobs_by_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;

-- The dispatcher takes each queue's waiting jobs in per-user turns.
DROP INDEX jobs_to_dispatch;
DROP INDEX jobs_to_dispatch_by_owner;
CREATE INDEX jobs_to_dispatch ON jobs (queue, owner, id)
    WHERE status = 'queued' AND dispatched_at IS NULL;

-- The dispatcher is woken per queue.
CREATE OR REPLACE FUNCTION strata_notify_queued() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('strata_jobs_queued', NEW.queue);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

-- Every call to the language model with the tokens it cost: per job, per user and per day
-- (the tiers' ai_tokens_per_day). Calls the provider refused cost nothing and are not here.
CREATE TABLE ai_calls (
    id            bigserial   PRIMARY KEY,
    job_id        uuid        NOT NULL REFERENCES jobs (id),
    owner         text        NOT NULL,
    provider      text        NOT NULL,
    model         text        NOT NULL,
    input_tokens  bigint      NOT NULL CHECK (input_tokens >= 0),
    output_tokens bigint      NOT NULL CHECK (output_tokens >= 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_calls_by_owner ON ai_calls (owner, created_at);
CREATE INDEX ai_calls_by_job ON ai_calls (job_id);
