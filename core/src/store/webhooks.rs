//! Webhooks in PostgreSQL: each user's default URL and signing secret, and the deliveries of
//! events (migration 0008). A trigger creates a delivery when a job with a `webhook_url` ends;
//! workers claim due deliveries, send them and record each attempt here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError};

/// A user's webhook settings, without the secrets.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WebhookSettings {
    /// Where jobs submitted without `webhook_url` announce their end; null for nowhere.
    pub url: Option<String>,
    /// When the current signing secret was made.
    pub secret_created_at: DateTime<Utc>,
    /// Until when the secret before it still signs events too (after a rotation).
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
}

/// A due delivery, claimed by one worker for one attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    /// The event's id.
    pub id: Uuid,
    /// The job it announces.
    pub job_id: Uuid,
    /// The job's owner, whose secret signs it.
    pub owner: String,
    /// Where it goes.
    pub url: String,
    /// The event as built for the first attempt; `None` before it.
    pub body: Option<String>,
    /// This attempt's number, 1 for the first; it also fences the claim: only the worker
    /// holding this number records the outcome.
    pub attempt: i32,
    /// When the job ended: retries stop `retry_for` after.
    pub created_at: DateTime<Utc>,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration: Duration,
    /// The receiver's HTTP status, when it answered.
    pub response_status: Option<u16>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response_body: Option<String>,
    /// The worker that made it.
    pub worker_id: String,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AfterAttempt {
    /// A 2xx answer: done.
    Delivered,
    /// Try again after this long.
    RetryIn(Duration),
    /// Out of time: the event is given up.
    GiveUp,
}

/// One delivery as its owner sees it, with every attempt.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The event's id (`Strata-Event-Id`).
    pub id: Uuid,
    /// `job.succeeded`, `job.failed` or `job.cancelled`.
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub event_type: String,
    /// Where it goes.
    pub url: String,
    /// `pending` (more attempts to come), `delivered` or `failed` (given up).
    pub status: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the job ended and the event was made.
    pub created_at: DateTime<Utc>,
    /// When it was delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// Every attempt, first first.
    #[sqlx(json)]
    #[schema(value_type = Vec<AttemptView>)]
    pub log: Vec<AttemptView>,
}

/// One attempt as its owner sees it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1 for the first.
    pub attempt: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: i32,
    /// The receiver's HTTP status; null when it did not answer.
    pub response_status: Option<i32>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response_body: Option<String>,
}

const SETTINGS_COLUMNS: &str = "url, secret_created_at, \
     CASE WHEN previous_until > now() THEN previous_until END AS previous_secret_valid_until";

impl Store {
    /// The user's webhook settings; `None` until they set a URL or made a secret.
    pub async fn webhook_settings(
        &self,
        owner: &str,
    ) -> Result<Option<WebhookSettings>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {SETTINGS_COLUMNS} FROM webhook_settings WHERE owner = $1"
        ))
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
    }

    /// Sets the user's default URL (`None` for none). A user without a signing secret gets
    /// `new_secret`, and `true` says it was taken (so it is shown, once).
    pub async fn set_webhook_url(
        &self,
        owner: &str,
        url: Option<&str>,
        new_secret: &str,
    ) -> Result<(WebhookSettings, bool), StoreError> {
        // xmax is 0 on a row this statement inserted, not on one it updated.
        let row: WebhookSettingsRow = sqlx::query_as(&format!(
            "INSERT INTO webhook_settings (owner, url, secret) VALUES ($1, $2, $3)
             ON CONFLICT (owner) DO UPDATE SET url = EXCLUDED.url, updated_at = now()
             RETURNING {SETTINGS_COLUMNS}, xmax = 0 AS created"
        ))
        .bind(owner)
        .bind(url)
        .bind(new_secret)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.settings, row.created))
    }

    /// Makes `secret` the user's signing secret; the one before it goes on signing beside it
    /// for `overlap`, so receivers can switch without losing events.
    pub async fn rotate_webhook_secret(
        &self,
        owner: &str,
        secret: &str,
        overlap: Duration,
    ) -> Result<WebhookSettings, StoreError> {
        let row: WebhookSettingsRow = sqlx::query_as(&format!(
            "INSERT INTO webhook_settings (owner, secret) VALUES ($1, $2)
             ON CONFLICT (owner) DO UPDATE SET
                 previous_secret = webhook_settings.secret,
                 previous_until = now() + make_interval(secs => $3),
                 secret = EXCLUDED.secret,
                 secret_created_at = now(),
                 updated_at = now()
             RETURNING {SETTINGS_COLUMNS}, xmax = 0 AS created"
        ))
        .bind(owner)
        .bind(secret)
        .bind(overlap.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.settings)
    }

    /// The secrets that sign the user's events now: the current one, then the previous one
    /// while it is still valid. Empty when the user has none.
    pub async fn webhook_secrets(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT secret, CASE WHEN previous_until > now() THEN previous_secret END
             FROM webhook_settings WHERE owner = $1",
        )
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|(current, previous)| std::iter::once(current).chain(previous).collect())
            .unwrap_or_default())
    }

    /// Claims at most `limit` due deliveries for one attempt each. A claim lasts `lease`: a
    /// delivery whose worker died mid-attempt is due again after it.
    pub async fn claim_webhook_deliveries(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        sqlx::query_as(
            "UPDATE webhook_deliveries d
             SET attempts = d.attempts + 1,
                 next_attempt_at = now() + make_interval(secs => $2)
             FROM (SELECT id FROM webhook_deliveries
                   WHERE status = 'pending' AND next_attempt_at <= now()
                   ORDER BY next_attempt_at
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED) due
             WHERE d.id = due.id
             RETURNING d.id, d.job_id, d.owner, d.url, d.body, d.attempts AS attempt, d.created_at",
        )
        .bind(limit)
        .bind(lease.as_secs_f64())
        .fetch_all(&self.pool)
        .await
    }

    /// Keeps `body` as the delivery's event unless one was kept before (by an earlier attempt
    /// that died before sending); returns the one kept, which every attempt sends.
    pub async fn keep_webhook_body(&self, id: Uuid, body: &str) -> Result<String, StoreError> {
        let (kept,): (String,) = sqlx::query_as(
            "UPDATE webhook_deliveries SET body = COALESCE(body, $2) WHERE id = $1
             RETURNING body",
        )
        .bind(id)
        .bind(body)
        .fetch_one(&self.pool)
        .await?;
        Ok(kept)
    }

    /// Logs attempt `delivery.attempt` and schedules what follows, unless the claim was lost
    /// (it outlived its lease and another worker took the delivery): then nothing is written
    /// and `false` is returned.
    pub async fn record_webhook_attempt(
        &self,
        delivery: &ClaimedDelivery,
        attempt: &Attempt,
        after: AfterAttempt,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (status, retry_in) = match after {
            AfterAttempt::Delivered => ("delivered", None),
            AfterAttempt::RetryIn(wait) => ("pending", Some(wait.as_secs_f64())),
            AfterAttempt::GiveUp => ("failed", None),
        };
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET
                 status = $3,
                 next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at
                                        ELSE now() + make_interval(secs => $4) END,
                 finished_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END,
                 last_error = $5
             WHERE id = $1 AND attempts = $2 AND status = 'pending'",
        )
        .bind(delivery.id)
        .bind(delivery.attempt)
        .bind(status)
        .bind(retry_in)
        .bind(&attempt.error)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms,
                                           response_status, error, response_body, worker_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(delivery.id)
        .bind(delivery.attempt)
        .bind(attempt.started_at)
        .bind(i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX))
        .bind(attempt.response_status.map(i32::from))
        .bind(&attempt.error)
        .bind(&attempt.response_body)
        .bind(&attempt.worker_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The deliveries of the owner's job, oldest first, each with its attempts.
    pub async fn job_deliveries(
        &self,
        owner: &str,
        job_id: Uuid,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        sqlx::query_as(
            "SELECT d.id, d.type, d.url, d.status, d.attempts,
                    CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
                    d.created_at, d.finished_at, d.last_error,
                    COALESCE((SELECT json_agg(json_build_object(
                                  'attempt', a.attempt, 'started_at', a.started_at,
                                  'duration_ms', a.duration_ms,
                                  'response_status', a.response_status, 'error', a.error,
                                  'response_body', a.response_body) ORDER BY a.attempt)
                              FROM webhook_attempts a WHERE a.delivery_id = d.id),
                             '[]'::json) AS log
             FROM webhook_deliveries d
             WHERE d.job_id = $1 AND d.owner = $2
             ORDER BY d.created_at",
        )
        .bind(job_id)
        .bind(owner)
        .fetch_all(&self.pool)
        .await
    }
}

/// [`WebhookSettings`] and whether the statement created the row.
#[derive(sqlx::FromRow)]
struct WebhookSettingsRow {
    #[sqlx(flatten)]
    settings: WebhookSettings,
    created: bool,
}
