-- Webhooks: when a job with a webhook_url reaches its final status, the service POSTs a
-- signed event to that URL, retrying for up to a day. Each event is a row of
-- webhook_deliveries, created by a trigger in the same transaction as the final status (so no
-- path that ends a job can forget one, and none is lost if a process dies), and sent by
-- whichever worker claims it; every attempt is logged in webhook_attempts.

-- Each user's default URL for their jobs and the secret that signs their events. The previous
-- secret keeps signing beside the new one for a day after a rotation, so receivers can switch
-- over without dropping events.
CREATE TABLE webhook_settings (
    owner               text        PRIMARY KEY,
    url                 text,
    secret              text        NOT NULL,
    secret_created_at   timestamptz NOT NULL DEFAULT now(),
    previous_secret     text,
    previous_until      timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Where this job's final status is announced: the submission's webhook_url, else the user's
-- default at submission time.
ALTER TABLE jobs ADD COLUMN webhook_url text;

CREATE TABLE webhook_deliveries (
    -- The event's id, sent as Strata-Event-Id and in the body: the same on every attempt, so
    -- receivers can drop repeats.
    id              uuid        PRIMARY KEY,
    job_id          uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    owner           text        NOT NULL,
    url             text        NOT NULL,
    type            text        NOT NULL
        CHECK (type IN ('job.succeeded', 'job.failed', 'job.cancelled')),
    -- pending until a 2xx answer (delivered) or until retry_for has passed (failed).
    status          text        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'failed')),
    -- The event as first built; every attempt sends these exact bytes.
    body            text,
    attempts        integer     NOT NULL DEFAULT 0,
    -- When the next attempt is due; while an attempt is under way, when its claim expires (a
    -- worker that died mid-attempt leaves the row due again).
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    last_error      text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id     uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt         integer     NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     integer     NOT NULL,
    -- The receiver's HTTP status; null when there was none (refused, timeout, no connection).
    response_status integer,
    -- Why the attempt failed, when it did.
    error           text,
    -- The start of the receiver's answer, for the user's debugging.
    response_body   text,
    worker_id       text        NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE FUNCTION strata_webhook_delivery() RETURNS trigger AS $$
BEGIN
    INSERT INTO webhook_deliveries (id, job_id, owner, url, type)
    VALUES (gen_random_uuid(), NEW.id, NEW.owner, NEW.webhook_url, 'job.' || NEW.status);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_finished_webhook
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW
    WHEN (NEW.webhook_url IS NOT NULL
          AND OLD.status IS DISTINCT FROM NEW.status
          AND NEW.status IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION strata_webhook_delivery();
