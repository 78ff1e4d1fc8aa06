-- Job events are no longer announced with NOTIFY: each api process reads new rows of
-- `job_events` itself (api/src/events.rs). A transaction that has issued NOTIFY takes a
-- database-wide lock at commit and keeps it until the commit is on disk, so every claim,
-- progress update and result of every worker committed one at a time, with no group commit:
-- the drain of tiny jobs fell from 1,588 to 898 jobs/s (BENCHMARKS.md). With pgbench, 16
-- clients updating rows through this trigger made 341 commits/s with the NOTIFY and 10,000
-- without it. The function is otherwise that of 0006.
CREATE OR REPLACE FUNCTION strata_job_event() RETURNS trigger AS $$
DECLARE
    change text := 'status';
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IS NOT DISTINCT FROM NEW.status THEN
            change := 'progress';
        END IF;
    END IF;
    INSERT INTO job_events (job_id, owner, type, kind, status, progress)
    VALUES (NEW.id, NEW.owner, change, NEW.kind, NEW.status, NEW.progress);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
