//! Jobs: what users submit, how a job row looks, and what travels through Redis.

use chrono::{DateTime, Utc};
use engine::spec::{BacktestSpec, SpecError, SpecErrors};
use engine::sweep::SweepSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::tier::Tier;

/// What a job computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// One backtest: metrics, trades and the equity curve.
    Backtest,
    /// Many parameter sets over one data set, ranked by an objective.
    Sweep,
}

/// Where a job is in its life: `queued -> running -> succeeded | failed | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is running it.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped at the user's request.
    Cancelled,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The name used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(format!(concat!("unknown ", stringify!($ty), " '{}'; expected one of: ", $($text, " "),+), s)),
                }
            }
        }
        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> { s.parse() }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

text_enum!(JobKind { Backtest => "backtest", Sweep => "sweep" });
text_enum!(JobStatus {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl TryFrom<String> for Tier {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl JobStatus {
    /// True once the job will not change any more.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A job as its owner sees it (`GET /v1/jobs/{id}`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Job {
    /// The job's id (a UUIDv7: ids sort by submission time).
    pub id: Uuid,
    /// What it computes.
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// Where it is in its life.
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    /// The submitter's tier when it was submitted.
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    /// Fraction done, 0..1.
    pub progress: f64,
    /// How many times a worker started it.
    pub attempts: i32,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The `X-Request-ID` of the request that submitted it.
    pub request_id: Option<String>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When a worker last started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached its final status.
    pub finished_at: Option<DateTime<Utc>>,
    /// True once the owner asked to cancel it while it ran.
    pub cancel_requested: bool,
}

/// The message a tier queue carries: only the id; PostgreSQL holds everything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    /// The job row to run.
    pub id: Uuid,
    /// The submitting request's id, so the worker's log lines for this job carry it.
    pub request_id: Option<String>,
}

/// The keys a sweep adds to a backtest spec (`grid`, `constraint`, `objective`, ...).
const SWEEP_KEYS: [&str; 7] = [
    "grid",
    "samples",
    "seed",
    "constraint",
    "objective",
    "minimize",
    "top",
];

/// A backtest spec as submitted over HTTP, checked field by field.
pub fn parse_backtest(body: &Value) -> Result<BacktestSpec, SpecErrors> {
    let spec: BacktestSpec = from_value(body.clone())?;
    check_data(&spec)?;
    Ok(spec)
}

/// A sweep as submitted over HTTP: a backtest spec plus the sweep's keys at the top level.
pub fn parse_sweep(body: &Value) -> Result<(BacktestSpec, SweepSpec), SpecErrors> {
    let Value::Object(fields) = body else {
        return Err(single("", "the body must be a JSON object"));
    };
    let (sweep, backtest): (serde_json::Map<_, _>, serde_json::Map<_, _>) = fields
        .clone()
        .into_iter()
        .partition(|(k, _)| SWEEP_KEYS.contains(&k.as_str()));
    if !sweep.contains_key("grid") {
        return Err(single(
            "grid",
            "a sweep needs a grid, e.g. {\"fast\": \"5:50:5\", \"slow\": [20, 50, 100]}",
        ));
    }
    let backtest: BacktestSpec = from_value(Value::Object(backtest))?;
    let sweep: SweepSpec = from_value(Value::Object(sweep))?;
    check_data(&backtest)?;
    Ok((backtest, sweep))
}

/// The service names data sets; a file path would let a user read the server's disk.
fn check_data(spec: &BacktestSpec) -> Result<(), SpecErrors> {
    if spec.data.path.is_some() {
        return Err(single(
            "data.path",
            "the service reads uploaded or bundled data sets: give data.dataset instead",
        ));
    }
    if spec.data.dataset.as_deref().is_none_or(str::is_empty) {
        return Err(single(
            "data.dataset",
            "required: the name or id of an uploaded data set, or a bundled one (GOOG, EURUSD, BTCUSD)",
        ));
    }
    Ok(())
}

fn single(field: &str, message: &str) -> SpecErrors {
    SpecErrors(vec![SpecError::new(field, message)])
}

/// Deserializes with the path of the offending field in the error (`execution.fees`).
fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, SpecErrors> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let parent = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        // serde reports a missing field at its parent; point at the field itself.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match missing {
            Some(name) if parent.is_empty() => name.to_owned(),
            Some(name) => format!("{parent}.{name}"),
            None => parent,
        };
        single(&field, &message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_wrong_type_names_its_field() {
        let err = parse_backtest(&json!({"data": {"dataset": "GOOG"}, "execution": {"fees": "x"}}))
            .unwrap_err();
        assert_eq!(err.0[0].field, "execution.fees");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let err = parse_backtest(&json!({"data": {"dataset": "GOOG"}, "colour": 1})).unwrap_err();
        assert!(err.0[0].message.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn a_sweep_splits_its_keys_from_the_backtest() {
        let (bt, sweep) = parse_sweep(&json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"template": "sma_cross"},
            "grid": {"fast": "5:50:5", "slow": [20, 50, 100]},
            "constraint": "fast < slow",
            "objective": "sortino"
        }))
        .unwrap();
        assert_eq!(bt.data.dataset.as_deref(), Some("GOOG"));
        assert_eq!(sweep.grid.len(), 2);
        assert_eq!(sweep.objective, "sortino");
    }

    #[test]
    fn a_path_is_refused_over_http() {
        let strategy = json!({"template": "sma_cross"});
        let err = parse_backtest(&json!({"data": {"path": "/etc/passwd"}, "strategy": strategy}))
            .unwrap_err();
        assert_eq!(err.0[0].field, "data.path");
        let err = parse_backtest(&json!({"data": {}, "strategy": strategy})).unwrap_err();
        assert_eq!(err.0[0].field, "data.dataset");
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_backtest(&json!({"data": {"dataset": "GOOG"}})).unwrap_err();
        assert_eq!(err.0[0].field, "strategy");
    }
}
