//! Server-sent events: `GET /v1/jobs/{id}/events` follows one job until it ends, `GET
//! /v1/events` every job of the caller. Each event's `id` is its number in `job_events`; a
//! client that reconnects with `Last-Event-ID` is first sent every event after it, so it misses
//! nothing. A stream reads the table for where it starts, then takes the events that its api
//! process's poller ([`crate::events`]) reads from the table and publishes in id order; it sends
//! each once, in increasing id order. A comment every 15 s keeps proxies from closing an idle
//! stream. A user holds at most their tier's `event_streams` streams open on one api process.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::stream::{self, Stream, StreamExt};
use strata_core::store::JobEvent;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::error::{ApiError, ApiResult};
use crate::events::{Live, StreamSlot};

/// Events replayed per read of the table.
const REPLAY_BATCH: i64 = 1000;
/// Between two keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/events", get(all_events))
}

/// Follows one job: `status` events (queued, running, succeeded, ...) and `progress` events
/// (0..1), each `data` a JSON object with `job_id`, `kind`, `status`, `progress` and `at`. The
/// first event is where the job stands (or, with `Last-Event-ID`, every event after that one);
/// the stream ends after the job's final status.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, description = "Job id"),
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "text/event-stream of status and progress events"),
              (status = 404, body = crate::error::Problem),
              (status = 429, description = "too_many_event_streams: the tier's event_streams are open already", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn job_events(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let slot = open_stream(&ctx, &user)?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("job"))?;
    ctx.store
        .job(&user.sub, id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    let last = last_event_id(&headers)?;
    // Subscribed before reading the table: nothing falls between the two.
    let live = ctx.events.subscribe();
    let first = match last {
        Some(after) => {
            ctx.store
                .job_events_after(&user.sub, Some(id), after, REPLAY_BATCH)
                .await?
        }
        None => ctx.store.latest_job_event(id).await?.into_iter().collect(),
    };
    let follow = Follow {
        ctx: ctx.clone(),
        owner: user.sub,
        job: Some(id),
        after: last.unwrap_or(0),
    };
    Ok(sse(&ctx, slot, follow.stream(first, live)))
}

/// Follows every job of the caller, as `GET /v1/jobs/{id}/events` does one; from now on, or
/// with `Last-Event-ID` from that event on. It does not end.
#[utoipa::path(get, path = "/v1/events", tag = "jobs",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "text/event-stream of every job's status and progress events"),
              (status = 429, description = "too_many_event_streams: the tier's event_streams are open already", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn all_events(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let slot = open_stream(&ctx, &user)?;
    let last = last_event_id(&headers)?;
    let live = ctx.events.subscribe();
    let (first, after) = match last {
        Some(after) => {
            let missed = ctx
                .store
                .job_events_after(&user.sub, None, after, REPLAY_BATCH)
                .await?;
            (missed, after)
        }
        // From now on: after the latest event, read once subscribed. Not 0, or reading what it
        // missed (after a resync or a lag) would replay the caller's whole history.
        None => (Vec::new(), ctx.store.last_job_event_id().await?),
    };
    let follow = Follow {
        ctx: ctx.clone(),
        owner: user.sub,
        job: None,
        after,
    };
    Ok(sse(&ctx, slot, follow.stream(first, live)))
}

/// A place for one more of the caller's streams, or a 429 (`too_many_event_streams`) when they
/// hold their tier's `event_streams` already. Taken before anything else is read, so a refusal
/// costs nothing.
fn open_stream(ctx: &ApiContext, user: &AuthUser) -> ApiResult<StreamSlot> {
    let limit = ctx.config.tiers.quota(user.tier).event_streams;
    ctx.events
        .open_stream(&user.sub, limit)
        .ok_or_else(|| crate::quota::too_many_event_streams(ctx, user, limit.unwrap_or_default()))
}

/// `Last-Event-ID`, when the client sends one.
fn last_event_id(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid_last_event_id",
            detail: "Last-Event-ID must be the id of an event this API sent".into(),
        })
}

/// The stream as server-sent events, ended when the api shuts down; it holds `slot` until it
/// is dropped.
fn sse(
    ctx: &ApiContext,
    slot: StreamSlot,
    events: impl Stream<Item = Arc<JobEvent>> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut closing = ctx.closing.subscribe();
    let closed = async move {
        let _ = closing.wait_for(|closing| *closing).await;
    };
    let events = events.take_until(closed).map(move |event| {
        let _held = &slot;
        let data = serde_json::to_string(&*event).unwrap_or_default();
        Ok(Event::default()
            .id(event.id.to_string())
            .event(event.change.as_str())
            .data(data))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// One stream's place: whose events, which job's, the last one sent, and those read from the
/// table but not sent yet.
struct Follow {
    ctx: ApiContext,
    owner: String,
    job: Option<Uuid>,
    after: i64,
}

/// A stream between two events.
struct Place {
    follow: Follow,
    live: tokio::sync::broadcast::Receiver<Live>,
    pending: std::collections::VecDeque<JobEvent>,
    /// The last read of the table was a full batch: there may be more after it.
    more: bool,
    /// The job's final status was sent.
    done: bool,
}

impl Follow {
    /// The caller's events (of the job followed) after the last one sent. An event at or below
    /// it was sent already (read from the table, then published too), or the poller published it
    /// late, after higher ids (see `crate::events::HOLD`): sending it now would break the order
    /// that makes the last id a client received the place a reconnect resumes from. It stays
    /// in the table, for clients that resume from below it.
    fn wants(&self, event: &JobEvent) -> bool {
        event.id > self.after
            && event.owner == self.owner
            && self.job.is_none_or(|job| job == event.job_id)
    }

    /// The events after the last one sent, from the table.
    async fn missed(&self) -> (Vec<JobEvent>, bool) {
        match self
            .ctx
            .store
            .job_events_after(&self.owner, self.job, self.after, REPLAY_BATCH)
            .await
        {
            Ok(missed) => {
                let full = missed.len() as i64 == REPLAY_BATCH;
                (missed, full)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read missed job events");
                (Vec::new(), false)
            }
        }
    }

    /// `first`, then the live events, in id order and each once; a job's stream ends after its
    /// final status.
    fn stream(
        self,
        first: Vec<JobEvent>,
        live: tokio::sync::broadcast::Receiver<Live>,
    ) -> impl Stream<Item = Arc<JobEvent>> + Send + 'static {
        let place = Place {
            more: first.len() as i64 == REPLAY_BATCH,
            pending: first.into(),
            follow: self,
            live,
            done: false,
        };
        stream::unfold(place, |mut place| async move {
            loop {
                if place.done {
                    return None;
                }
                let event = match place.pending.pop_front() {
                    Some(event) => Arc::new(event),
                    None if place.more => {
                        let (missed, more) = place.follow.missed().await;
                        (place.pending, place.more) = (missed.into(), more);
                        continue;
                    }
                    None => match place.live.recv().await {
                        Ok(Live::Event(event)) => event,
                        // Events may have passed unheard: read them from the table.
                        Ok(Live::Resync) | Err(RecvError::Lagged(_)) => {
                            place.more = true;
                            continue;
                        }
                        Err(RecvError::Closed) => return None,
                    },
                };
                if !place.follow.wants(&event) {
                    continue;
                }
                place.follow.after = event.id;
                place.done = place.follow.job.is_some() && event.is_final();
                return Some((event, place));
            }
        })
    }
}
