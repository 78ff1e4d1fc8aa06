//! What AI jobs cost: every call to the language model with its tokens, per job, per user and
//! per UTC day.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::job::{JobKind, JobStatus};

/// A job an analysis is about: what it ran and what it found.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Subject {
    /// Backtest or sweep.
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// Where it is in its life.
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    /// Its spec as submitted.
    #[sqlx(json)]
    pub spec: Value,
    /// Its result document, once it succeeded.
    pub result: Option<String>,
}

/// One call to the language model, to record.
#[derive(Debug, Clone)]
pub struct AiCall<'a> {
    /// The job that made it.
    pub job_id: Uuid,
    /// The job's owner, whose budget it spends.
    pub owner: &'a str,
    /// `anthropic` or `openai`.
    pub provider: &'a str,
    /// The model's name.
    pub model: &'a str,
    /// Tokens sent.
    pub input_tokens: u64,
    /// Tokens written.
    pub output_tokens: u64,
}

/// Tokens spent, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Tokens {
    /// Tokens sent to the model.
    pub input_tokens: u64,
    /// Tokens the model wrote.
    pub output_tokens: u64,
    /// Calls made.
    pub calls: u64,
}

impl Tokens {
    /// Input and output together: what `ai_tokens_per_day` counts.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// The current UTC day and when it ends.
pub fn utc_day(now: DateTime<Utc>) -> (NaiveDate, DateTime<Utc>) {
    let day = now.date_naive();
    let end = day
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(now);
    (day, end)
}

impl Store {
    /// Records a call the provider answered.
    pub async fn record_ai_call(&self, call: &AiCall<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ai_calls (job_id, owner, provider, model, input_tokens, output_tokens)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(call.job_id)
        .bind(call.owner)
        .bind(call.provider)
        .bind(call.model)
        .bind(i64::try_from(call.input_tokens).unwrap_or(i64::MAX))
        .bind(i64::try_from(call.output_tokens).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What `owner` has spent on the current UTC day.
    pub async fn ai_tokens_today(&self, owner: &str) -> Result<Tokens, StoreError> {
        let (input, output, calls): (i64, i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(input_tokens), 0)::int8, coalesce(sum(output_tokens), 0)::int8,
                    count(*)
             FROM ai_calls
             WHERE owner = $1 AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                                 AT TIME ZONE 'UTC'",
        )
        .bind(owner)
        .fetch_one(&self.pool)
        .await?;
        Ok(tokens(input, output, calls))
    }

    /// A user's job with its spec and result, for an analysis of it.
    pub async fn analysis_subject(
        &self,
        owner: &str,
        id: Uuid,
    ) -> Result<Option<Subject>, StoreError> {
        sqlx::query_as(
            "SELECT j.kind, j.status, j.spec, r.result::text AS result
             FROM jobs j LEFT JOIN job_results r ON r.job_id = j.id
             WHERE j.id = $1 AND j.owner = $2",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await
    }

    /// What one job has spent.
    pub async fn ai_tokens_of_job(&self, job_id: Uuid) -> Result<Tokens, StoreError> {
        let (input, output, calls): (i64, i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(input_tokens), 0)::int8, coalesce(sum(output_tokens), 0)::int8,
                    count(*)
             FROM ai_calls WHERE job_id = $1",
        )
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(tokens(input, output, calls))
    }
}

fn tokens(input: i64, output: i64, calls: i64) -> Tokens {
    Tokens {
        input_tokens: input.max(0) as u64,
        output_tokens: output.max(0) as u64,
        calls: calls.max(0) as u64,
    }
}
