//! A language model provider on 127.0.0.1 for tests: it speaks the Anthropic Messages API
//! (`POST /v1/messages`) and the OpenAI chat completions API (`POST /v1/chat/completions`),
//! answers with replies scripted in advance, and records every request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;

use crate::config::AiProvider;

/// The Anthropic Messages API's path.
const ANTHROPIC_PATH: &str = "/v1/messages";
/// The OpenAI chat completions API's path, under the `/v1` of the OpenAI base URL.
const OPENAI_PATH: &str = "/v1/chat/completions";

/// One scripted answer, used by the next request (in order).
#[derive(Debug, Clone)]
pub enum MockReply {
    /// A 200 with this text as the model's reply, costing these tokens.
    Text {
        /// The reply's text.
        text: String,
        /// Input tokens the reply reports.
        input_tokens: u64,
        /// Output tokens the reply reports.
        output_tokens: u64,
    },
    /// An answer with this status, an optional `retry-after` header value and this body.
    Status {
        /// The HTTP status.
        status: u16,
        /// The `retry-after` header, verbatim.
        retry_after: Option<String>,
        /// The body.
        body: String,
    },
    /// No answer for this long (then a normal `Text` reply "late").
    Hang(std::time::Duration),
    /// A 200 whose body is this, verbatim (not the API's shape).
    Raw(String),
}

impl MockReply {
    /// A 200 with `text`, 100 input and 20 output tokens.
    pub fn text(text: impl Into<String>) -> MockReply {
        MockReply::Text {
            text: text.into(),
            input_tokens: 100,
            output_tokens: 20,
        }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `/v1/messages` or `/v1/chat/completions`.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// What the server's handlers share with the test holding the [`MockLlm`].
#[derive(Default)]
struct Script {
    /// Replies not used yet, the next one first; both paths take from the same queue.
    replies: Mutex<VecDeque<MockReply>>,
    /// Every request, oldest first.
    requests: Mutex<Vec<Recorded>>,
}

/// The running mock; it stops when dropped.
pub struct MockLlm {
    address: SocketAddr,
    script: Arc<Script>,
    server: tokio::task::JoinHandle<()>,
}

impl MockLlm {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start() -> MockLlm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock LLM to a free port of 127.0.0.1");
        let address = listener.local_addr().expect("the mock LLM's address");
        let script = Arc::new(Script::default());
        let router = Router::new()
            .route(ANTHROPIC_PATH, post(answer))
            .route(OPENAI_PATH, post(answer))
            .with_state(Arc::clone(&script));
        let server = tokio::spawn(async move {
            // Serving only ends with an accept error; a test then sees its requests fail.
            let _ = axum::serve(listener, router).await;
        });
        MockLlm {
            address,
            script,
            server,
        }
    }

    /// The base URL to configure: `http://127.0.0.1:PORT` for `anthropic`,
    /// `http://127.0.0.1:PORT/v1` for `openai`.
    pub fn base_url(&self, provider: crate::config::AiProvider) -> String {
        match provider {
            AiProvider::Anthropic => format!("http://{}", self.address),
            AiProvider::OpenAi => format!("http://{}/v1", self.address),
        }
    }

    /// Queues replies for the next requests, in order. With none queued, a request is answered
    /// 500 "no reply scripted".
    pub fn reply(&self, replies: impl IntoIterator<Item = MockReply>) {
        lock(&self.script.replies).extend(replies);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.script.requests).clone()
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The lock even after a panic elsewhere: a failing test should report its own assertion, not
/// a poisoned mutex.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records the request, then answers with the next scripted reply in the shape of the API its
/// path belongs to.
async fn answer(
    State(script): State<Arc<Script>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    // A body that is not JSON is kept as a string, so a test can still see what was sent.
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
    let headers = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    lock(&script.requests).push(Recorded {
        path: path.clone(),
        headers,
        body,
    });

    let Some(reply) = lock(&script.replies).pop_front() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no reply scripted").into_response();
    };
    let reply = match reply {
        MockReply::Hang(duration) => {
            tokio::time::sleep(duration).await;
            MockReply::text("late")
        }
        other => other,
    };
    match reply {
        MockReply::Text {
            text,
            input_tokens,
            output_tokens,
        } => {
            let body = if path == ANTHROPIC_PATH {
                anthropic_reply(&model, &text, input_tokens, output_tokens)
            } else {
                openai_reply(&model, &text, input_tokens, output_tokens)
            };
            axum::Json(body).into_response()
        }
        MockReply::Status {
            status,
            retry_after,
            body,
        } => {
            let status = StatusCode::from_u16(status)
                .unwrap_or_else(|_| panic!("MockReply::Status with an invalid status {status}"));
            let mut response =
                (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            if let Some(retry_after) = retry_after {
                let value = retry_after.parse().unwrap_or_else(|_| {
                    panic!("MockReply::Status with an invalid retry-after {retry_after:?}")
                });
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        MockReply::Raw(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        MockReply::Hang(_) => unreachable!("a hang was turned into its late text above"),
    }
}

/// A Messages API reply, as Anthropic writes one.
fn anthropic_reply(
    model: &str,
    text: &str,
    input_tokens: u64,
    output_tokens: u64,
) -> serde_json::Value {
    json!({
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{ "type": "text", "text": text }],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
    })
}

/// A chat completion, as OpenAI writes one.
fn openai_reply(
    model: &str,
    text: &str,
    input_tokens: u64,
    output_tokens: u64,
) -> serde_json::Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    })
}
