//! Jobs: what users submit, how a job row looks, and what travels through Redis.

use chrono::{DateTime, Utc};
use engine::spec::{BacktestSpec, SpecError, SpecErrors};
use engine::sweep::{SweepSpec, WalkForwardSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::tier::Tier;

/// What a job computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// One backtest: metrics, trades and the equity curve.
    Backtest,
    /// Many parameter sets over one data set, ranked by an objective.
    Sweep,
    /// A sweep in each in-sample window, its best set run on the out-of-sample window after.
    WalkForward,
    /// A strategy written by the language model from a plain-words prompt, compiled (and
    /// repaired) until it is a valid spec; optionally backtested as a child job.
    AiStrategy,
    /// A written analysis of a finished backtest or sweep, grounded in its figures.
    AiAnalysis,
}

impl JobKind {
    /// AI jobs wait on the language model, not the engine: they have a queue of their own.
    pub fn is_ai(self) -> bool {
        matches!(self, JobKind::AiStrategy | JobKind::AiAnalysis)
    }
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
            /// The name, in any case and with `-` for `_` (`walk-forward`, as the route and
            /// the CLI spell it).
            fn from_str(s: &str) -> Result<Self, String> {
                let names = [$($text),+];
                match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(format!(
                        "unknown value '{s}'{}; expected one of {}",
                        engine::suggest::did_you_mean(s, names.into_iter()),
                        names.join(", ")
                    )),
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

text_enum!(JobKind {
    Backtest => "backtest",
    Sweep => "sweep",
    WalkForward => "walk_forward",
    AiStrategy => "ai_strategy",
    AiAnalysis => "ai_analysis",
});
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
    /// The job that made this one: the AI strategy job whose strategy this backtest runs.
    pub parent_id: Option<Uuid>,
    /// Where its final status is announced (`POST` of a signed event), if anywhere.
    pub webhook_url: Option<String>,
}

/// The message a tier queue carries: only the id; PostgreSQL holds everything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    /// The job row to run.
    pub id: Uuid,
    /// The submitting request's id, so the worker's log lines for this job carry it.
    pub request_id: Option<String>,
    /// The job has stopped a worker process before: the worker that takes it runs it with
    /// nothing else beside it, so that if it stops that worker too, no other job dies with it.
    /// A claim refuses such a job from a message without the flag (a stale duplicate).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alone: bool,
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

/// The longest prompt of an AI strategy, in characters: a description, not a document.
pub const MAX_PROMPT_CHARS: usize = 4000;

/// The body of `POST /v1/ai/strategies`: what the user wants in plain words, and the backtest
/// it is for (everything of a backtest spec but the strategy, which the model writes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyRequest {
    /// What the strategy should do, in plain words.
    pub prompt: String,
    /// The data block of the backtest spec (`dataset`, `timeframe`, `start`, `end`).
    pub data: Value,
    /// The execution block, when the user gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution: Option<Value>,
    /// The precision, when the user gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Value>,
    /// Queue a backtest of the strategy once it compiles.
    #[serde(default)]
    pub run: bool,
}

/// An AI strategy request, checked field by field; with the backtest spec it implies (its
/// strategy a placeholder), so the data, execution and precision are validated as a backtest's.
pub fn parse_ai_strategy(body: &Value) -> Result<(StrategyRequest, BacktestSpec), SpecErrors> {
    let request: StrategyRequest = from_value(body.clone())?;
    let prompt = request.prompt.trim();
    if prompt.is_empty() {
        return Err(single(
            "prompt",
            "describe the strategy, e.g. \"buy when RSI(14) drops below 30, sell above 60\"",
        ));
    }
    let chars = prompt.chars().count();
    if chars > MAX_PROMPT_CHARS {
        return Err(single(
            "prompt",
            &format!("at most {MAX_PROMPT_CHARS} characters, got {chars}"),
        ));
    }
    let mut spec = serde_json::json!({
        "data": request.data,
        "strategy": {"template": "buy_and_hold"},
    });
    if let Some(execution) = &request.execution {
        spec["execution"] = execution.clone();
    }
    if let Some(precision) = &request.precision {
        spec["precision"] = precision.clone();
    }
    let backtest = parse_backtest(&spec)?;
    Ok((request, backtest))
}

/// The body of `POST /v1/ai/analyses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisRequest {
    /// The finished backtest or sweep to analyse.
    pub job_id: Uuid,
}

/// An analysis request, checked.
pub fn parse_ai_analysis(body: &Value) -> Result<AnalysisRequest, SpecErrors> {
    from_value(body.clone())
}

/// A walk-forward as submitted over HTTP: a sweep plus its windows under `walk_forward`.
pub fn parse_walk_forward(
    body: &Value,
) -> Result<(BacktestSpec, SweepSpec, WalkForwardSpec), SpecErrors> {
    let Value::Object(fields) = body else {
        return Err(single("", "the body must be a JSON object"));
    };
    let mut fields = fields.clone();
    let Some(windows) = fields.remove("walk_forward") else {
        return Err(single(
            "walk_forward",
            "a walk-forward needs its windows, e.g. {\"in_sample\": \"365d\", \"out_of_sample\": \"90d\"}",
        ));
    };
    let body: WalkForwardBody = from_value(serde_json::json!({ "walk_forward": windows }))?;
    let walk = body.walk_forward;
    walk.check().map_err(SpecErrors)?;
    let (backtest, sweep) = parse_sweep(&Value::Object(fields))?;
    Ok((backtest, sweep, walk))
}

/// `walk_forward` under its own name, so a wrong field's error names `walk_forward.<field>`.
#[derive(Deserialize)]
struct WalkForwardBody {
    walk_forward: WalkForwardSpec,
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

/// Deserializes with the path of the offending field in the error (`execution.fees`) and what
/// it should be, in the spec's words.
fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, SpecErrors> {
    engine::spec::from_json(value).map_err(|e| SpecErrors(vec![e]))
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
        assert!(err.0[0].message.contains("unknown field 'colour'"), "{err}");
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
    fn an_ai_strategy_request_is_checked_as_the_backtest_it_is_for() {
        let body = json!({"prompt": "buy dips", "data": {"dataset": "GOOG"}, "run": true});
        let (request, spec) = parse_ai_strategy(&body).unwrap();
        assert!(request.run);
        assert_eq!(spec.data.dataset.as_deref(), Some("GOOG"));
        let err = parse_ai_strategy(&json!({"prompt": " ", "data": {"dataset": "GOOG"}}));
        assert_eq!(err.unwrap_err().0[0].field, "prompt");
        let long = "x".repeat(MAX_PROMPT_CHARS + 1);
        let err = parse_ai_strategy(&json!({"prompt": long, "data": {"dataset": "GOOG"}}));
        assert!(err.unwrap_err().0[0].message.contains("4000"));
        let err = parse_ai_strategy(&json!({
            "prompt": "x", "data": {"dataset": "GOOG"}, "execution": {"fees": "high"}
        }));
        assert_eq!(err.unwrap_err().0[0].field, "execution.fees");
        let err = parse_ai_strategy(&json!({"prompt": "x", "data": {"path": "/etc/passwd"}}));
        assert_eq!(err.unwrap_err().0[0].field, "data.path");
        let err =
            parse_ai_strategy(&json!({"prompt": "x", "data": {"dataset": "GOOG"}, "code": 1}));
        assert!(err.unwrap_err().0[0].message.contains("unknown field"));
    }

    #[test]
    fn a_walk_forward_is_a_sweep_plus_checked_windows() {
        let body = json!({
            "data": {"dataset": "GOOG"},
            "strategy": {"template": "sma_cross"},
            "grid": {"fast": [5, 10], "slow": [20, 50]},
            "walk_forward": {"in_sample": "500", "out_of_sample": "90d"}
        });
        let (_, sweep, walk) = parse_walk_forward(&body).unwrap();
        assert_eq!(sweep.grid.len(), 2);
        assert_eq!(walk.out_of_sample, "90d");
        let mut bad = body.clone();
        bad["walk_forward"]["in_sample"] = json!("a year");
        let err = parse_walk_forward(&bad).unwrap_err();
        assert_eq!(err.0[0].field, "walk_forward.in_sample");
        bad["walk_forward"] = json!({"in_sample": "500"});
        let err = parse_walk_forward(&bad).unwrap_err();
        assert_eq!(err.0[0].field, "walk_forward.out_of_sample", "{err}");
        let mut none = body;
        none.as_object_mut().unwrap().remove("walk_forward");
        assert_eq!(
            parse_walk_forward(&none).unwrap_err().0[0].field,
            "walk_forward"
        );
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_backtest(&json!({"data": {"dataset": "GOOG"}})).unwrap_err();
        assert_eq!(err.0[0].field, "strategy");
    }
}
