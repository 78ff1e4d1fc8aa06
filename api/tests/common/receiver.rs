//! A webhook receiver on 127.0.0.1 for the tests: records every request and answers as
//! scripted (then 200), and checks `Strata-Signature` the way the README tells users to.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, with a short body.
    Status(u16),
    /// No answer for a minute (the sender times out first).
    Hang,
    /// This status with a body of this many bytes.
    Big(u16, usize),
    /// A 307 to the receiver itself: a sender that followed it would be counted twice.
    Redirect,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether `Strata-Signature` holds a `v1` that is HMAC-SHA256 of `"<t>.<body>"` under
    /// `secret`, with `t` within five minutes of now: [`verify`], the README's code.
    pub fn signed_with(&self, secret: &str) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        verify(secret, &self.header("strata-signature"), &self.body, now)
    }
}

/// The README's verification of a signature, word for word.
fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> bool {
    let (mut t, mut signatures) = (None, Vec::new());
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(t) = t.filter(|t| (now - t).abs() <= 300) else {
        return false;
    };
    signatures.iter().any(|signature| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(signature).is_ok() // constant time
    })
}

#[derive(Default)]
struct Inbox {
    script: Vec<Reply>,
    received: Vec<Received>,
}

/// The receiver; it serves until dropped (with the test's runtime).
pub struct Receiver {
    pub url: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    /// Answers the first requests as `script` says, the rest 200.
    pub async fn start(script: Vec<Reply>) -> Receiver {
        let inbox = Arc::new(Mutex::new(Inbox {
            script: script.into_iter().rev().collect(),
            received: Vec::new(),
        }));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(Arc::clone(&inbox));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, inbox }
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().received.clone()
    }

    /// Waits until `n` requests came, for at most `secs`.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the receiver got {} of {n} requests in {secs} s",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    State(inbox): State<Arc<Mutex<Inbox>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    let reply = {
        let mut inbox = inbox.lock().unwrap();
        inbox.received.push(Received { headers, body });
        inbox.script.pop().unwrap_or(Reply::Status(200))
    };
    match reply {
        Reply::Status(status) => (
            StatusCode::from_u16(status).unwrap(),
            HeaderMap::new(),
            "thanks".into(),
        ),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            (StatusCode::OK, HeaderMap::new(), "too late".into())
        }
        Reply::Big(status, bytes) => (
            StatusCode::from_u16(status).unwrap(),
            HeaderMap::new(),
            "x".repeat(bytes),
        ),
        Reply::Redirect => {
            let mut headers = HeaderMap::new();
            headers.insert("location", HeaderValue::from_static("/hook"));
            (StatusCode::TEMPORARY_REDIRECT, headers, String::new())
        }
    }
}
