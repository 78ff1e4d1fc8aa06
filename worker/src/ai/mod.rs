//! AI jobs: a strategy written by a language model from plain words, or an analysis of a
//! finished job, run as network I/O on the `ai` queue (never on the engine's threads).
//!
//! A job is a short conversation. Each call first checks the owner's `ai_tokens_per_day`, then
//! waits for the provider (or for a cancel), and records the tokens the call cost. What the
//! model writes is only ever read as data: a strategy goes through the expression compiler, an
//! analysis may cite only figures Strata computed itself.

pub(crate) mod analysis;
pub(crate) mod provider;
pub(crate) mod strategy;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use strata_core::job::{AnalysisRequest, JobKind, JobStatus};
use strata_core::store::{AiCall, ChildJob, Claimed, Tokens};
use uuid::Uuid;

use self::provider::{Message, Provider, Role};
use self::strategy::{ReplyError, StrategyRequest};
use crate::jobs::{persist, JobError, Output, RunningJob};
use crate::Worker;

/// How often a job waiting on the provider looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// Runs an AI job to its result document.
pub(crate) async fn run(
    worker: &Worker,
    claimed: &Claimed,
    job: &RunningJob,
) -> Result<Output, JobError> {
    let Some(provider) = &worker.ai else {
        // The log names the worker; its owner need not know the machines.
        tracing::error!(worker_id = %worker.id, "an AI job reached a worker without a language model");
        return Err(JobError::Failed(
            "no language model is configured on the worker that took the job (ai.provider)"
                .to_owned(),
        ));
    };
    let mut talk = Conversation {
        worker,
        claimed,
        job,
        provider,
        spent: Tokens::default(),
    };
    match claimed.kind {
        JobKind::AiStrategy => write_strategy(&mut talk).await,
        JobKind::AiAnalysis => write_analysis(&mut talk).await,
        other => Err(JobError::Failed(format!(
            "a {other} job reached the AI queue"
        ))),
    }
}

/// One AI job's exchange with the model.
struct Conversation<'a> {
    worker: &'a Worker,
    claimed: &'a Claimed,
    job: &'a RunningJob,
    provider: &'a Provider,
    /// What this run's calls cost.
    spent: Tokens,
}

impl Conversation<'_> {
    /// One call: within the owner's daily tokens, stopped by a cancel, its cost recorded.
    async fn ask(&mut self, system: &str, messages: &[Message]) -> Result<String, JobError> {
        self.job.check()?;
        self.check_budget().await?;
        let cancelled = async {
            while !self.job.cancel_flag().load(Ordering::Acquire) {
                tokio::time::sleep(CANCEL_POLL).await;
            }
        };
        let reply = tokio::select! {
            reply = self.provider.complete(system, messages) => reply,
            () = cancelled => return Err(JobError::Cancelled),
        }
        .map_err(|e| JobError::Failed(e.to_string()))?;
        let call = AiCall {
            job_id: self.claimed.id,
            owner: &self.claimed.owner,
            provider: self.provider.name(),
            model: self.provider.model(),
            input_tokens: reply.usage.input_tokens,
            output_tokens: reply.usage.output_tokens,
        };
        // The call is paid for: record it even through a database hiccup.
        if persist(|| self.worker.store.record_ai_call(&call))
            .await
            .is_err()
        {
            tracing::error!(
                input_tokens = call.input_tokens,
                output_tokens = call.output_tokens,
                "cannot record the tokens of an AI call"
            );
        }
        self.spent.input_tokens += reply.usage.input_tokens;
        self.spent.output_tokens += reply.usage.output_tokens;
        self.spent.calls += 1;
        Ok(reply.text)
    }

    /// Fails the job once its owner's tokens for the UTC day are spent.
    async fn check_budget(&self) -> Result<(), JobError> {
        let tier = self.claimed.tier;
        let Some(limit) = self.worker.config.tiers.quota(tier).ai_tokens_per_day else {
            return Ok(());
        };
        let today = self
            .worker
            .store
            .ai_tokens_today(&self.claimed.owner)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot read today's AI tokens");
                JobError::Transient(
                    "cannot read today's AI tokens: the database did not answer".to_owned(),
                )
            })?;
        if today.total() >= limit {
            return Err(JobError::Failed(format!(
                "ai_tokens_per_day: the {tier} tier's {limit} tokens for today (UTC) are used up \
                 ({} spent)",
                today.total()
            )));
        }
        Ok(())
    }

    /// The conversation's rounds: asks, reads the reply with `read`, and sends back what is
    /// wrong with it until it reads, `ai.repair_rounds` times at most. Returns the reading, the
    /// rounds it took and the problems sent back.
    async fn converse<T>(
        &mut self,
        system: &str,
        first: String,
        read: impl Fn(&str) -> Result<T, ReplyError>,
    ) -> Result<(T, u32, Vec<Value>), JobError> {
        let rounds = 1 + self.worker.config.ai.repair_rounds;
        let mut messages = vec![Message {
            role: Role::User,
            content: first,
        }];
        let mut repairs = Vec::new();
        for round in 1..=rounds {
            self.job
                .set_progress(f64::from(round - 1) / f64::from(rounds));
            let text = self.ask(system, &messages).await?;
            let problem = match read(&text) {
                Ok(done) => return Ok((done, round, repairs)),
                Err(ReplyError::Declined(reason)) => {
                    return Err(JobError::Failed(format!(
                        "the model declined: {}",
                        clip(&reason)
                    )))
                }
                Err(ReplyError::Repairable(problem)) => problem,
            };
            tracing::info!(round, problem = %clip(&problem), "the model's reply is not usable yet");
            repairs.push(json!({ "round": round, "problem": problem }));
            if round == rounds {
                return Err(JobError::Failed(format!(
                    "the model's reply was still not usable after {rounds} round{}; the last \
                     problem: {}",
                    if rounds == 1 { "" } else { "s" },
                    clip(&problem)
                )));
            }
            messages.push(Message {
                role: Role::Assistant,
                content: text,
            });
            messages.push(Message {
                role: Role::User,
                content: problem,
            });
        }
        unreachable!("the last round returns")
    }

    /// The model and what the job has cost over all its attempts, for the result document.
    async fn provenance(&self) -> (Value, Value) {
        let usage = self
            .worker
            .store
            .ai_tokens_of_job(self.claimed.id)
            .await
            .unwrap_or(self.spent);
        (
            json!({ "provider": self.provider.name(), "name": self.provider.model() }),
            json!(usage),
        )
    }
}

/// A model's text in an error message: one line, not too long.
fn clip(text: &str) -> String {
    const MOST: usize = 500;
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MOST) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line,
    }
}

/// An `ai_strategy` job: the model's strategy, compiled; with `run`, its backtest queued as a
/// child job in the same transaction as the result.
async fn write_strategy(talk: &mut Conversation<'_>) -> Result<Output, JobError> {
    let request: StrategyRequest =
        serde_json::from_value(talk.claimed.spec.clone()).map_err(JobError::invalid_spec)?;
    let system = strategy::system_prompt();
    let first = strategy::first_message(&request);
    let (proposal, rounds, repairs) = talk
        .converse(&system, first, |reply| {
            strategy::read_reply(&request, reply)
        })
        .await?;
    let child = request.run.then(|| {
        (
            Uuid::now_v7(),
            ChildJob {
                kind: JobKind::Backtest,
                spec: proposal.spec.clone(),
            },
        )
    });
    let backtest = child.as_ref().map(|(id, _)| {
        json!({
            "job_id": id,
            "links": { "self": format!("/v1/jobs/{id}"), "result": format!("/v1/jobs/{id}/result") },
        })
    });
    let (model, usage) = talk.provenance().await;
    let document = json!({
        "spec": proposal.spec,
        "explanation": proposal.explanation,
        "rounds": rounds,
        "repairs": repairs,
        "backtest": backtest,
        "model": model,
        "usage": usage,
    });
    Ok(Output {
        document: document.to_string(),
        bars: 0,
        child,
    })
}

/// An `ai_analysis` job: a written analysis of a finished job, citing its figures.
async fn write_analysis(talk: &mut Conversation<'_>) -> Result<Output, JobError> {
    let request: AnalysisRequest =
        serde_json::from_value(talk.claimed.spec.clone()).map_err(JobError::invalid_spec)?;
    let store = &talk.worker.store;
    let subject = store
        .analysis_subject(&talk.claimed.owner, request.job_id)
        .await
        .map_err(|e| JobError::Transient(format!("cannot read job {}: {e}", request.job_id)))?;
    let Some(subject) = subject else {
        return Err(JobError::Failed(format!(
            "job {} does not exist any more",
            request.job_id
        )));
    };
    let result = match (subject.status, subject.result) {
        (JobStatus::Succeeded, Some(result)) => result,
        (status, _) => {
            return Err(JobError::Failed(format!(
                "job {} has no result to analyse (it is {status})",
                request.job_id
            )))
        }
    };
    let result: Value = serde_json::from_str(&result)
        .map_err(|e| JobError::Failed(format!("the job's result does not read: {e}")))?;
    let figures = analysis::figures(subject.kind, &subject.spec, &result)
        .map_err(|e| JobError::Failed(format!("cannot analyse job {}: {e}", request.job_id)))?;
    let system = analysis::system_prompt();
    let first = analysis::first_message(subject.kind, &subject.spec, &figures);
    let (written, rounds, repairs) = talk
        .converse(&system, first, |reply| {
            analysis::read_reply(reply, &figures)
        })
        .await?;
    let (model, usage) = talk.provenance().await;
    let document = json!({
        "job_id": request.job_id,
        "kind": subject.kind,
        "analysis": written.text,
        "figures": written.cited,
        "rounds": rounds,
        "repairs": repairs,
        "model": model,
        "usage": usage,
    });
    Ok(Output {
        document: document.to_string(),
        bars: 0,
        child: None,
    })
}
