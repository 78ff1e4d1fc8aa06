//! Job events: every change of a job's status or progress, numbered, for live streams that a
//! client can resume (`Last-Event-ID`). Written by a trigger (migration 0006), which also
//! announces each on `NOTIFY strata_job_events`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError};

/// The channel the trigger announces events on, with the event as JSON.
pub const JOB_EVENTS_CHANNEL: &str = "strata_job_events";

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
