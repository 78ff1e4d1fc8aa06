//! Job events: every change of a job's status or progress, numbered, for live streams that a
//! client can resume (`Last-Event-ID`). Written by a trigger (migrations 0006 and 0007); each
//! api process reads the new ones every few tens of milliseconds ([`Store::job_events_polled`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError};

/// One change of a job, as streamed to its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct JobEvent {
    /// Increasing over all events: the stream's event id.
    pub id: i64,
    /// The job.
    pub job_id: Uuid,
    /// Its owner (not sent to clients, who see only their own).
    #[serde(skip_serializing)]
    pub owner: String,
    /// `status` when the status changed (or the job was submitted), else `progress`.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub change: String,
    /// The job's kind.
    pub kind: String,
    /// Its status after the change.
    pub status: String,
    /// Its progress after the change, 0..1.
    pub progress: f64,
    /// When the change was recorded.
    pub at: DateTime<Utc>,
}

impl JobEvent {
    /// True for the last event a job has: it reached a final status.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

const COLUMNS: &str = "id, job_id, owner, type, kind, status, progress, created_at AS at";

impl Store {
    /// The owner's events after `after`, oldest first, at most `limit`; only `job`'s when given.
    pub async fn job_events_after(
        &self,
        owner: &str,
        job: Option<Uuid>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<JobEvent>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM job_events
             WHERE owner = $1 AND ($2::uuid IS NULL OR job_id = $2) AND id > $3
             ORDER BY id LIMIT $4"
        ))
        .bind(owner)
        .bind(job)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// Every owner's events after `after`, and those among `missing` (ids below it not seen
    /// yet, whose transactions may still commit), oldest first, at most `limit`: what the api's
    /// poller reads.
    pub async fn job_events_polled(
        &self,
        after: i64,
        missing: &[i64],
        limit: i64,
    ) -> Result<Vec<JobEvent>, StoreError> {
        // Two index scans rather than `WHERE id > $1 OR id = ANY($2)`: for that, the plan
        // PostgreSQL caches for a prepared statement walks the primary key from the first
        // event, filtering (160 ms over a million events, every poll).
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM job_events WHERE id = ANY($2)
             UNION ALL
             (SELECT {COLUMNS} FROM job_events WHERE id > $1 ORDER BY id LIMIT $3)
             ORDER BY id LIMIT $3"
        ))
        .bind(after)
        .bind(missing)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
    }

    /// The id of the latest event, 0 when there is none: where following from now on starts.
    pub async fn last_job_event_id(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM job_events")
            .fetch_one(&self.pool)
            .await
    }

    /// A job's latest event: where it stands now.
    pub async fn latest_job_event(&self, job: Uuid) -> Result<Option<JobEvent>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM job_events WHERE job_id = $1 ORDER BY id DESC LIMIT 1"
        ))
        .bind(job)
        .fetch_optional(&self.pool)
        .await
    }

    /// Forgets events older than `age`; returns how many.
    pub async fn prune_job_events(&self, age: std::time::Duration) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM job_events WHERE created_at < now() - make_interval(secs => $1)",
        )
        .bind(age.as_secs_f64())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
