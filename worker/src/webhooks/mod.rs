//! Webhook deliveries: every worker claims due deliveries from PostgreSQL (a trigger made one
//! when a job with a `webhook_url` ended), POSTs the signed event and records the attempt.
//! A delivery that got no 2xx answer is due again after a backoff with jitter, until
//! `webhooks.retry_for_secs` after the job ended; a worker that dies mid-attempt leaves its
//! claim to expire, and another worker sends the same event again. So an event is delivered at
//! least once, with the same `Strata-Event-Id` and body every time.

pub mod resolver;

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus::{IntCounterVec, Opts};
use reqwest::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use serde_json::Value;
use strata_core::config::WebhooksConfig;
use strata_core::store::{AfterAttempt, Attempt, ClaimedDelivery};
use strata_core::webhooks::{self, guard};
use strata_core::Store;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::Worker;
use resolver::GuardedResolver;

/// Between two looks for due deliveries when none is under way.
const POLL: Duration = Duration::from_millis(250);
/// A claim outlives the attempt's own timeout by this much, so that only a worker that died
/// lets its claim expire.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// Bytes of the receiver's answer kept in the attempt log.
const EXCERPT_BYTES: usize = 1024;

/// One worker's sender of webhook events.
struct Deliverer {
    client: reqwest::Client,
    store: Store,
    config: WebhooksConfig,
    links_base: Option<String>,
    worker_id: String,
    attempts: IntCounterVec,
}

/// Sends due deliveries, at most `webhooks.concurrency` at once, until `stop` turns true; then
/// finishes those under way (each bounded by `webhooks.timeout_secs`).
pub(crate) async fn run(worker: Arc<Worker>, mut stop: watch::Receiver<bool>) {
    let deliverer = match Deliverer::new(&worker) {
        Ok(deliverer) => Arc::new(deliverer),
        Err(e) => {
            warn!(error = %e, "cannot start sending webhooks; other workers will");
            return;
        }
    };
    let config = &deliverer.config;
    let lease = Duration::from_secs(config.timeout_secs) + LEASE_MARGIN;
    let mut under_way = JoinSet::new();
    let mut failing = false;
    loop {
        while under_way.try_join_next().is_some() {}
        let room = config.concurrency.saturating_sub(under_way.len());
        if room > 0 {
            match deliverer
                .store
                .claim_webhook_deliveries(room as i64, lease)
                .await
            {
                Ok(claimed) => {
                    failing = false;
                    for delivery in claimed {
                        under_way.spawn(Arc::clone(&deliverer).deliver(delivery));
                    }
                }
                Err(e) if !failing => {
                    failing = true;
                    warn!(error = %e, "cannot claim webhook deliveries; trying again");
                }
                Err(_) => {}
            }
        }
        let full = under_way.len() >= config.concurrency;
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = under_way.join_next(), if full => {}
            _ = tokio::time::sleep(POLL), if !full => {}
        }
    }
    if !under_way.is_empty() {
        info!(
            deliveries = under_way.len(),
            "finishing the webhook deliveries under way"
        );
    }
    while under_way.join_next().await.is_some() {}
}

/// Why an attempt failed: the receiver's status and answer when it gave one.
struct Failed {
    status: Option<u16>,
    error: String,
    body: Option<String>,
}

impl Failed {
    /// An attempt that got no answer from the receiver, or was never sent.
    fn without_answer(error: impl Into<String>) -> Failed {
        Failed {
            status: None,
            error: error.into(),
            body: None,
        }
    }
}

impl Deliverer {
    fn new(worker: &Worker) -> Result<Deliverer, Box<dyn Error + Send + Sync>> {
        let config = worker.config.webhooks.clone();
        let client = reqwest::Client::builder()
            .user_agent(concat!("Strata-Webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(config.timeout_secs))
            // A redirect could lead anywhere, internal addresses included.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the host itself, past the guard.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(config.allow.clone())))
            .build()?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "strata_webhook_attempts_total",
                "Webhook delivery attempts, by outcome: delivered, retry (no 2xx answer, tried \
                 again later) or given_up (out of time)",
            ),
            &["outcome"],
        )?;
        worker.registry.register(Box::new(attempts.clone()))?;
        if !config.allow.is_empty() {
            info!(allow = ?config.allow, "webhooks may reach these internal hosts and networks");
        }
        Ok(Deliverer {
            client,
            store: worker.store.clone(),
            links_base: worker.config.api.public_url.clone(),
            worker_id: worker.id.clone(),
            attempts,
            config,
        })
    }

    /// Makes one attempt at `delivery` and records it.
    async fn deliver(self: Arc<Self>, delivery: ClaimedDelivery) {
        let started_at = Utc::now();
        let clock = Instant::now();
        let outcome = self.attempt(&delivery).await;
        let duration = clock.elapsed();
        let (after, attempt) = match outcome {
            Ok((status, body)) => (
                AfterAttempt::Delivered,
                Attempt {
                    started_at,
                    duration,
                    response_status: Some(status),
                    error: None,
                    response_body: body,
                    worker_id: self.worker_id.clone(),
                },
            ),
            Err(failed) => (
                self.after_failure(&delivery),
                Attempt {
                    started_at,
                    duration,
                    response_status: failed.status,
                    error: Some(failed.error),
                    response_body: failed.body,
                    worker_id: self.worker_id.clone(),
                },
            ),
        };
        let outcome = match after {
            AfterAttempt::Delivered => "delivered",
            AfterAttempt::RetryIn(_) => "retry",
            AfterAttempt::GiveUp => "given_up",
        };
        self.attempts.with_label_values(&[outcome]).inc();
        match &after {
            AfterAttempt::Delivered => debug!(event = %delivery.id, job_id = %delivery.job_id,
                attempt = delivery.attempt, "webhook delivered"),
            AfterAttempt::RetryIn(wait) => info!(event = %delivery.id, job_id = %delivery.job_id,
                attempt = delivery.attempt, error = attempt.error.as_deref().unwrap_or_default(),
                "webhook not delivered; trying again in {:.1} s", wait.as_secs_f64()),
            AfterAttempt::GiveUp => warn!(event = %delivery.id, job_id = %delivery.job_id,
                attempts = delivery.attempt, error = attempt.error.as_deref().unwrap_or_default(),
                "webhook given up after {} s", self.config.retry_for_secs),
        }
        match self
            .store
            .record_webhook_attempt(&delivery, &attempt, after)
            .await
        {
            Ok(true) => {}
            Ok(false) => warn!(event = %delivery.id,
                "a webhook attempt outlived its claim; another worker has taken the delivery"),
            // The claim expires and the event is sent again: at least once, never lost.
            Err(e) => warn!(event = %delivery.id, error = %e,
                "cannot record a webhook attempt; it will be made again"),
        }
    }

    /// When to try again after a failed attempt, or that it is too late to.
    fn after_failure(&self, delivery: &ClaimedDelivery) -> AfterAttempt {
        let wait = webhooks::retry_delay(
            delivery.attempt.max(1) as u32,
            Duration::from_millis(self.config.retry_backoff_ms),
            Duration::from_secs(self.config.max_backoff_secs),
        );
        let deadline = delivery.created_at
            + chrono::Duration::seconds(self.config.retry_for_secs.min(i64::MAX as u64) as i64);
        let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        if next > deadline {
            AfterAttempt::GiveUp
        } else {
            AfterAttempt::RetryIn(wait)
        }
    }

    /// Sends the event once: the receiver's status and the start of its answer on a 2xx.
    async fn attempt(&self, delivery: &ClaimedDelivery) -> Result<(u16, Option<String>), Failed> {
        let body = match &delivery.body {
            Some(body) => body.clone(),
            None => self.event(delivery).await.map_err(Failed::without_answer)?,
        };
        let secrets = self
            .store
            .webhook_secrets(&delivery.owner)
            .await
            .map_err(|e| Failed::without_answer(format!("cannot read the signing secret: {e}")))?;
        if secrets.is_empty() {
            return Err(Failed::without_answer(
                "the job's owner has no signing secret (POST /v1/webhooks/secret)",
            ));
        }
        // Checked again at each attempt: the name may point elsewhere since submission. The
        // resolver checks the addresses actually connected to; this names IP literals too.
        guard::check(&delivery.url, &self.config.allow)
            .await
            .map_err(|refusal| Failed::without_answer(format!("refused: {refusal}")))?;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signature = webhooks::signature(&secrets, Utc::now().timestamp(), body.as_bytes());
        let response = self
            .client
            .post(&delivery.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(webhooks::EVENT_ID_HEADER, delivery.id.to_string())
            .header(webhooks::SIGNATURE_HEADER, signature)
            .header(webhooks::ATTEMPT_HEADER, delivery.attempt.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| Failed::without_answer(self.describe(&e)))?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let answer = self.read_answer(response).await;
        if status.is_success() {
            return Ok((status.as_u16(), answer));
        }
        let error = match location {
            Some(location) if status.is_redirection() => {
                format!("HTTP {status}: redirects are not followed (to {location})")
            }
            _ => format!("HTTP {status}"),
        };
        Err(Failed {
            status: Some(status.as_u16()),
            error,
            body: answer,
        })
    }

    /// The event for `delivery`, built now and kept, so that every attempt sends these bytes.
    async fn event(&self, delivery: &ClaimedDelivery) -> Result<String, String> {
        let cannot = |e: sqlx::Error| format!("cannot read the job: {e}");
        let job = self
            .store
            .job(&delivery.owner, delivery.job_id)
            .await
            .map_err(cannot)?
            .ok_or("the job no longer exists")?;
        let subject = self
            .store
            .analysis_subject(&delivery.owner, delivery.job_id)
            .await
            .map_err(cannot)?
            .ok_or("the job no longer exists")?;
        let result: Option<Value> = match &subject.result {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| format!("the job's result does not read: {e}"))?,
            ),
            None => None,
        };
        let event = webhooks::event(
            delivery.id,
            &job,
            &subject.spec,
            result.as_ref(),
            self.links_base.as_deref(),
        );
        self.store
            .keep_webhook_body(delivery.id, &event.to_string())
            .await
            .map_err(|e| format!("cannot keep the event: {e}"))
    }

    /// The start of the receiver's answer; no more than `webhooks.max_response_bytes` is read.
    async fn read_answer(&self, mut response: reqwest::Response) -> Option<String> {
        let mut read = Vec::new();
        while read.len() < self.config.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        if read.is_empty() {
            return None;
        }
        read.truncate(EXCERPT_BYTES);
        Some(String::from_utf8_lossy(&read).into_owned())
    }

    /// Why a request failed, in a few words: a timeout, a refusal by the guard, or the
    /// connection's error with its causes.
    fn describe(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("no answer within {} s", self.config.timeout_secs);
        }
        if let Some(refusal) = resolver::refusal_in(error) {
            return format!("refused: {refusal}");
        }
        crate::error_chain(error)
    }
}
