-- What dashboards follow live (GET /v1/jobs/{id}/events, GET /v1/events): every change of a
-- job's status or progress, numbered, so that a client reconnecting with Last-Event-ID misses
-- nothing. A trigger writes each event and announces it to every api replica through
-- NOTIFY strata_job_events; the workers' reconciler forgets events older than a day.
CREATE TABLE job_events (
    id         bigserial   PRIMARY KEY,
    job_id     uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    owner      text        NOT NULL,
    -- `status` when the status changed (or the job was submitted), else `progress`.
    type       text        NOT NULL CHECK (type IN ('status', 'progress')),
    kind       text        NOT NULL,
    status     text        NOT NULL,
    progress   double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_by_owner ON job_events (owner, id);
CREATE INDEX job_events_by_job ON job_events (job_id, id);
CREATE INDEX job_events_by_age ON job_events (created_at);

CREATE FUNCTION strata_job_event() RETURNS trigger AS $$
DECLARE
    change text := 'status';
    event job_events;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IS NOT DISTINCT FROM NEW.status THEN
            change := 'progress';
        END IF;
    END IF;
    INSERT INTO job_events (job_id, owner, type, kind, status, progress)
    VALUES (NEW.id, NEW.owner, change, NEW.kind, NEW.status, NEW.progress)
    RETURNING * INTO event;
    PERFORM pg_notify('strata_job_events', json_build_object(
        'id', event.id, 'job_id', event.job_id, 'owner', event.owner, 'type', event.type,
        'kind', event.kind, 'status', event.status, 'progress', event.progress,
        'at', event.created_at)::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_submitted_event
    AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION strata_job_event();

CREATE TRIGGER jobs_changed_event
    AFTER UPDATE OF status, progress ON jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.progress IS DISTINCT FROM NEW.progress)
    EXECUTE FUNCTION strata_job_event();
