//! Webhooks: the event a finished job announces, how it is signed, and when a failed delivery
//! is tried again. The api checks URLs at submission ([`guard`]); workers send the events.
//!
//! A receiver verifies `Strata-Signature: t=<unix seconds>,v1=<hex>` by computing
//! HMAC-SHA256 over `"<t>.<body>"` with its secret and comparing it with any `v1` (there are
//! two for a day after the secret was rotated: the new secret's and the previous one's), and
//! drops repeats by `Strata-Event-Id`.

pub mod guard;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::{Rng, TryRngCore};
use serde_json::{json, Map, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::job::{Job, JobKind};

/// The header carrying the timestamp and signatures.
pub const SIGNATURE_HEADER: &str = "Strata-Signature";
/// The header carrying the event's id, the same on every attempt.
pub const EVENT_ID_HEADER: &str = "Strata-Event-Id";
/// The header carrying the attempt's number, 1 for the first.
pub const ATTEMPT_HEADER: &str = "Strata-Delivery-Attempt";

/// What every signing secret starts with, so one found in a log or a repository is recognised.
const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: 32 random bytes from the operating system's generator, in hex.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random generator");
    format!("{SECRET_PREFIX}{}", hex::encode(bytes))
}

/// The `Strata-Signature` value for `body` sent at `timestamp` (Unix seconds): one `v1` per
/// secret, the current one first.
pub fn signature(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

/// How long to wait after failed attempt number `attempt` (1 for the first): `base` doubled at
/// each further attempt, at most `cap`, of which a random half is taken away ("equal jitter"),
/// so receivers that were down are not hit by every retry at the same moment when they return.
pub fn retry_delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let full = base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(cap);
    let half = full / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

/// The body of the event announcing that `job` ended: its id, type, the job, a summary of its
/// result (`result` is the stored document, for a job that succeeded) and links to it.
/// `links_base` is the API's public address, when configured; the links are paths otherwise.
pub fn event(
    id: Uuid,
    job: &Job,
    spec: &Value,
    result: Option<&Value>,
    links_base: Option<&str>,
) -> Value {
    let base = links_base.unwrap_or("").trim_end_matches('/');
    let path = format!("{base}/v1/jobs/{}", job.id);
    let at: DateTime<Utc> = job.finished_at.unwrap_or_else(Utc::now);
    let mut links = Map::new();
    links.insert("job".into(), json!(path));
    if job.status == crate::job::JobStatus::Succeeded {
        links.insert("result".into(), json!(format!("{path}/result")));
    }
    links.insert("deliveries".into(), json!(format!("{path}/deliveries")));
    json!({
        "id": id,
        // As the trigger of migration 0008 names it.
        "type": format!("job.{}", job.status.as_str()),
        "created_at": at,
        "data": {
            "job_id": job.id,
            "kind": job.kind,
            "status": job.status,
            "error": job.error,
            "parent_id": job.parent_id,
            "created_at": job.created_at,
            "finished_at": job.finished_at,
            "summary": result.map(|result| summary(job.kind, spec, result)),
        },
        "links": links,
    })
}

/// The figures a pipeline most likely acts on, so it need not fetch the result: a backtest's
/// metrics; a sweep's best set; a walk-forward's out-of-sample metrics; the backtest an AI
/// strategy started; the job an analysis covered.
fn summary(kind: JobKind, spec: &Value, result: &Value) -> Value {
    match kind {
        JobKind::Backtest => json!({ "metrics": result.get("metrics") }),
        JobKind::Sweep => json!({
            "objective": spec.get("objective").cloned().unwrap_or_else(|| json!("sharpe")),
            "sets": result.get("results").and_then(Value::as_array).map(Vec::len),
            "best": result.get("best"),
        }),
        JobKind::WalkForward => json!({
            "windows": result.get("windows").and_then(Value::as_array).map(Vec::len),
            "out_of_sample": result.pointer("/out_of_sample/metrics"),
        }),
        JobKind::AiStrategy => json!({
            "strategy": result.pointer("/spec/strategy"),
            "backtest_job_id": result.pointer("/backtest/job_id"),
        }),
        JobKind::AiAnalysis => json!({ "analysed_job_id": spec.get("job_id") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Against an independent computation:
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let header = signature(&["whsec_test"], 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            header,
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn rotation_signs_with_both_secrets() {
        let both = signature(&["new", "old"], 5, b"x");
        let new = signature(&["new"], 5, b"x");
        let old = signature(&["old"], 5, b"x");
        let v1 = |h: &str| h.split(',').nth(1).unwrap().to_owned();
        assert_eq!(both, format!("t=5,{},{}", v1(&new), v1(&old)));
    }

    #[test]
    fn secrets_are_random_and_recognisable() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64, "{a}");
    }

    #[test]
    fn retry_delays_double_within_jitter_up_to_the_cap() {
        let base = Duration::from_secs(30);
        let cap = Duration::from_secs(3600);
        for _ in 0..100 {
            let first = retry_delay(1, base, cap);
            assert!(
                first >= Duration::from_secs(15) && first <= base,
                "{first:?}"
            );
            let third = retry_delay(3, base, cap);
            assert!(third >= Duration::from_secs(60) && third <= Duration::from_secs(120));
            let late = retry_delay(40, base, cap);
            assert!(late >= cap / 2 && late <= cap, "{late:?}");
        }
        let spread: std::collections::BTreeSet<_> =
            (0..20).map(|_| retry_delay(2, base, cap)).collect();
        assert!(spread.len() > 10, "delays are jittered");
    }
}
