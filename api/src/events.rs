//! Live job events for the server-sent event streams: one `LISTEN strata_job_events` per api
//! process, fanned out to every open stream. The events themselves live in PostgreSQL (table
//! `job_events`), so a stream on any replica sees jobs run by any worker and submitted through
//! any replica, and a client that reconnects with `Last-Event-ID` is replayed what it missed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use strata_core::store::{JobEvent, JOB_EVENTS_CHANNEL};
use tokio::sync::broadcast;
use tracing::warn;

/// What the listener passes on to the streams.
#[derive(Debug, Clone)]
pub enum Live {
    /// A new event.
    Event(Arc<JobEvent>),
    /// The listener reconnected: events may have passed unheard, so streams read what they
    /// missed from the table.
    Resync,
}

/// Streams buffered per process before a slow stream is told it lagged (and reads the table).
const BUFFER: usize = 4096;

/// The fan-out of one api process.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<Live>,
}

impl Events {
    /// Starts listening on `database_url` (and keeps reconnecting) for the life of the process.
    pub fn start(database_url: String) -> Events {
        let (sender, _) = broadcast::channel(BUFFER);
        tokio::spawn(listen(database_url, sender.clone()));
        Events { sender }
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.sender.subscribe()
    }
}

async fn listen(database_url: String, sender: broadcast::Sender<Live>) {
    loop {
        let mut listener = match PgListener::connect(&database_url).await {
            Ok(listener) => listener,
            Err(e) => {
                warn!(error = %e, "cannot listen for job events; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(JOB_EVENTS_CHANNEL).await {
            warn!(error = %e, "cannot listen for job events; retrying in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let _ = sender.send(Live::Resync);
        loop {
            match listener.recv().await {
                Ok(notification) => match serde_json::from_str(notification.payload()) {
                    Ok(event) => {
                        let _ = sender.send(Live::Event(Arc::new(event)));
                    }
                    Err(e) => warn!(error = %e, "a job event that does not read"),
                },
                Err(e) => {
                    warn!(error = %e, "lost the job events connection; reconnecting");
                    break;
                }
            }
        }
    }
}
