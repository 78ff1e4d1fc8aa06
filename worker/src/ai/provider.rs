//! The language model's HTTP API: the Anthropic Messages API or any OpenAI-compatible chat
//! completions endpoint, chosen by `ai.provider`.
//!
//! One [`Provider::complete`] is one logical call: a reply, or a reason. A 429, a 5xx (529
//! included) or a lost connection is tried again up to `ai.max_retries` times, waiting what the
//! provider's `retry-after` (or `retry-after-ms`) asks, else `ai.retry_backoff_ms` doubled per
//! try; a `retry-after` beyond `ai.max_retry_after_secs` is not waited for. A reply slower than
//! `ai.timeout_secs` fails at once. The API key is sent, never logged or put in an error.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use strata_core::config::{AiConfig, AiProvider, Secret};

/// Who wrote a message of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The user's side (Strata).
    User,
    /// The model's earlier reply.
    Assistant,
}

/// One message of the conversation sent to the model (the system prompt goes apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) role: Role,
    pub(crate) content: String,
}

/// Tokens one call cost, as the provider counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
}

/// The model's answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// The reply's text (every text block, joined).
    pub(crate) text: String,
    /// What it cost.
    pub(crate) usage: Usage,
}

/// Why a call gave no reply; each reads as the reason a job failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ProviderError {
    /// No complete answer within `ai.timeout_secs`.
    #[error("the model did not answer within {} s (ai.timeout_secs)", .0.as_secs())]
    Timeout(Duration),
    /// Still refused (429), failing (5xx) or unreachable after every retry, or asked to wait
    /// longer than `ai.max_retry_after_secs`.
    #[error("{0}")]
    Unavailable(String),
    /// Refused for good (400, 401, 403, 404, ...): the provider's own message, with the status.
    #[error("{0}")]
    Rejected(String),
    /// A 2xx whose body is not the API's reply (not JSON, no text).
    #[error("{0}")]
    Unusable(String),
}

/// The Messages API version this client speaks; Anthropic requires it on every call.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How long opening a connection may take. A provider that cannot be reached within this is
/// treated like one that refused the connection: tried again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most characters of a provider's message kept in an error, so a job's failure reason stays
/// one readable line even when a proxy answers with a whole HTML page.
const MESSAGE_CHARS: usize = 300;

/// A configured provider, ready to call.
#[derive(Debug)]
pub(crate) struct Provider {
    api: AiProvider,
    /// The endpoint every call is posted to (`.../v1/messages` or `.../chat/completions`).
    url: String,
    /// The client, or why it could not be built (then every call fails with that reason).
    client: Result<reqwest::Client, String>,
    /// Prints as `[redacted]`.
    api_key: Option<Secret>,
    model: String,
    max_tokens: u32,
    temperature: f64,
    /// Bounds each try, from sending the request to the reply's last byte.
    timeout: Duration,
    max_retries: u32,
    retry_backoff: Duration,
    max_retry_after: Duration,
}

impl Provider {
    /// The provider `ai` configures; `None` when AI is off (no `ai.provider`).
    pub(crate) fn from_config(ai: &AiConfig) -> Option<Provider> {
        let api = ai.provider?;
        let base_url = ai.base_url()?;
        let url = match api {
            AiProvider::Anthropic => format!("{base_url}/v1/messages"),
            AiProvider::OpenAi => format!("{base_url}/chat/completions"),
        };
        let client = build_client(&base_url).map_err(|error| {
            let reason = format!(
                "the HTTP client could not be built: {}",
                crate::error_chain(&error)
            );
            tracing::error!(provider = api.as_str(), "{reason}");
            reason
        });
        Some(Provider {
            api,
            url,
            client,
            // A key read from a file often ends with a newline, which no header may carry.
            api_key: ai
                .api_key
                .as_ref()
                .map(|key| Secret::new(key.expose().trim()))
                .filter(|key| !key.expose().is_empty()),
            // The configuration check requires a model whenever a provider is set.
            model: ai.model.clone().unwrap_or_default(),
            max_tokens: ai.max_tokens,
            temperature: ai.temperature,
            timeout: Duration::from_secs(ai.timeout_secs),
            max_retries: ai.max_retries,
            retry_backoff: Duration::from_millis(ai.retry_backoff_ms),
            max_retry_after: Duration::from_secs(ai.max_retry_after_secs),
        })
    }

    /// `anthropic` or `openai`, for results and the `ai_calls` table.
    pub(crate) fn name(&self) -> &'static str {
        self.api.as_str()
    }

    /// The configured model's name.
    pub(crate) fn model(&self) -> &str {
        &self.model
    }

    /// Sends `system` and `messages`; retries as the module says.
    pub(crate) async fn complete(
        &self,
        system: &str,
        messages: &[Message],
    ) -> Result<Reply, ProviderError> {
        let client = self
            .client
            .as_ref()
            .map_err(|reason| ProviderError::Unavailable(reason.clone()))?;
        let headers = self.headers()?;
        let body = self.request_body(system, messages);
        let tries = self.max_retries.saturating_add(1);
        let mut failures = Failures::default();
        for attempt in 1..=tries {
            let request = client
                .post(&self.url)
                .headers(headers.clone())
                .body(body.clone());
            let failure = match tokio::time::timeout(self.timeout, self.try_once(request)).await {
                Err(_) => return Err(ProviderError::Timeout(self.timeout)),
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(Try::Fatal(error))) => return Err(error),
                Ok(Err(Try::Again(failure))) => failure,
            };
            failures.push(&failure);
            if attempt == tries {
                break;
            }
            let wait = match failure.requested_wait {
                Some(requested) if requested.wait > self.max_retry_after => {
                    return Err(ProviderError::Unavailable(format!(
                        "the provider asks to wait {} s ({}), longer than ai.max_retry_after_secs ({} s)",
                        requested.wait.as_secs_f64().ceil(),
                        requested.header,
                        self.max_retry_after.as_secs()
                    )));
                }
                Some(requested) => requested.wait,
                None => backoff(self.retry_backoff, attempt),
            };
            // The reason is the provider's (redacted) message; headers and the key stay out.
            let status = failure
                .status
                .map_or_else(|| "no answer".to_owned(), status_text);
            tracing::warn!(
                provider = self.name(),
                %status,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                attempt,
                tries,
                reason = %failure.message,
                "the model's provider failed; trying again"
            );
            tokio::time::sleep(wait).await;
        }
        Err(ProviderError::Unavailable(failures.summary()))
    }

    /// The headers of every call: the key (marked sensitive, so it never prints) and the JSON
    /// content type.
    fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.api == AiProvider::Anthropic {
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        if let Some(key) = &self.api_key {
            let (name, value) = match self.api {
                AiProvider::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    key.expose().to_owned(),
                ),
                AiProvider::OpenAi => (AUTHORIZATION, format!("Bearer {}", key.expose())),
            };
            // The error from_str gives does not hold the value; ours says only what is wrong.
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                ProviderError::Rejected(
                    "ai.api_key (STRATA_AI_API_KEY) holds characters an HTTP header cannot carry"
                        .to_owned(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// The request's JSON, written once and sent again on each retry.
    fn request_body(&self, system: &str, messages: &[Message]) -> Vec<u8> {
        let mut wire: Vec<WireMessage<'_>> = Vec::with_capacity(messages.len() + 1);
        // Anthropic takes the system prompt as a field of its own; OpenAI as the first message.
        if self.api == AiProvider::OpenAi && !system.is_empty() {
            wire.push(WireMessage {
                role: "system",
                content: system,
            });
        }
        wire.extend(messages.iter().map(|message| WireMessage {
            role: match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            },
            content: &message.content,
        }));
        let request = WireRequest {
            model: &self.model,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            system: (self.api == AiProvider::Anthropic && !system.is_empty()).then_some(system),
            messages: wire,
        };
        serde_json::to_vec(&request).expect("a request of strings and numbers always serializes")
    }

    /// One HTTP exchange: the reply, a failure worth another try, or a final error.
    async fn try_once(&self, request: reqwest::RequestBuilder) -> Result<Reply, Try> {
        let response = request
            .send()
            .await
            .map_err(|error| self.transport(error))?;
        let status = response.status();
        let requested_wait = requested_wait(response.headers(), chrono::Utc::now());
        let body = response
            .bytes()
            .await
            .map_err(|error| self.transport(error))?;

        if status.is_success() {
            return self.parse_reply(&body).map_err(Try::Fatal);
        }
        // Redacted before it is shortened, so a cut cannot leave part of an echoed key.
        let message = provider_message(&self.redact(&String::from_utf8_lossy(&body)));
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Try::Again(Failure {
                status: Some(status),
                message,
                requested_wait,
            }));
        }
        // Redirects are not followed: a redirected POST would lose its body, and reqwest would
        // carry x-api-key to whatever host the redirect names.
        let hint = if status.is_redirection() {
            " (redirects are not followed; check ai.base_url)"
        } else {
            ""
        };
        Err(Try::Fatal(ProviderError::Rejected(format!(
            "the provider refused the call: {}{hint}: {message}",
            status_text(status)
        ))))
    }

    /// A request that got no answer: a lost or refused connection is tried again.
    fn transport(&self, error: reqwest::Error) -> Try {
        // The connect timeout is a connection failure, not the reply's timeout.
        if error.is_timeout() && !error.is_connect() {
            return Try::Fatal(ProviderError::Timeout(self.timeout));
        }
        let is_builder = error.is_builder();
        let message = self.redact(&format!(
            "could not reach {}: {}",
            self.url,
            crate::error_chain(&error.without_url())
        ));
        if is_builder {
            return Try::Fatal(ProviderError::Unavailable(message));
        }
        Try::Again(Failure {
            status: None,
            message,
            requested_wait: None,
        })
    }

    /// The reply's text and usage, or why the body is not a reply.
    fn parse_reply(&self, body: &[u8]) -> Result<Reply, ProviderError> {
        let unusable = |reason: String| {
            ProviderError::Unusable(format!(
                "the provider's reply is not an {} reply: {}",
                self.name(),
                self.redact(&reason)
            ))
        };
        let shape_error = |error: serde_json::Error| {
            unusable(format!(
                "{error} (the body starts with '{}')",
                truncate(&self.redact(&String::from_utf8_lossy(body)), 100)
            ))
        };
        let (text, usage, stop_reason) = match self.api {
            AiProvider::Anthropic => {
                let reply: AnthropicReply = serde_json::from_slice(body).map_err(shape_error)?;
                let text: String = reply
                    .content
                    .into_iter()
                    .filter(|block| block.kind == "text")
                    .filter_map(|block| block.text)
                    .collect();
                let usage = Usage {
                    input_tokens: reply.usage.input_tokens,
                    output_tokens: reply.usage.output_tokens,
                };
                (text, usage, reply.stop_reason)
            }
            AiProvider::OpenAi => {
                let reply: OpenAiReply = serde_json::from_slice(body).map_err(shape_error)?;
                let usage = reply
                    .usage
                    .map(|usage| Usage {
                        input_tokens: usage.prompt_tokens,
                        output_tokens: usage.completion_tokens,
                    })
                    .unwrap_or_default();
                let Some(choice) = reply.choices.into_iter().next() else {
                    return Err(unusable("it has no choices".to_owned()));
                };
                if let Some(refusal) = choice.message.refusal {
                    return Err(unusable(format!(
                        "the model refused: {}",
                        truncate(&self.redact(&refusal), MESSAGE_CHARS)
                    )));
                }
                let text = choice.message.content.unwrap_or_default();
                (text, usage, choice.finish_reason)
            }
        };
        if text.trim().is_empty() {
            return Err(unusable(format!(
                "it holds no text (stop reason: {})",
                stop_reason.as_deref().unwrap_or("none given")
            )));
        }
        if matches!(stop_reason.as_deref(), Some("max_tokens" | "length")) {
            tracing::warn!(
                provider = self.name(),
                max_tokens = self.max_tokens,
                "the model's reply was cut at ai.max_tokens"
            );
        }
        Ok(Reply { text, usage })
    }

    /// `text` with the API key replaced, for anything the provider or the network wrote: a
    /// provider may echo the key it was sent.
    fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "[redacted]"),
            _ => text.to_owned(),
        }
    }
}

/// One client for every call. Redirects are refused (see [`Provider::try_once`]); proxies from
/// the environment (`HTTPS_PROXY`, ...) apply, except to a server on this machine, which a proxy
/// could not reach anyway.
fn build_client(base_url: &str) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")));
    let local = reqwest::Url::parse(base_url)
        .ok()
        .and_then(|url| url.host_str().map(is_loopback))
        .unwrap_or(false);
    if local {
        builder.no_proxy().build()
    } else {
        builder.build()
    }
}

/// Whether `host` names this machine.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The outcome of one try that gave no reply.
enum Try {
    /// Worth another try (429, 5xx, a lost connection).
    Again(Failure),
    /// The call's final answer.
    Fatal(ProviderError),
}

/// A try that may succeed when repeated.
struct Failure {
    /// The provider's status; `None` when no answer came.
    status: Option<StatusCode>,
    /// The provider's message or the network's error, already redacted.
    message: String,
    /// How long the provider asked us to wait.
    requested_wait: Option<RequestedWait>,
}

/// A wait the provider asked for, and the header that asked.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RequestedWait {
    wait: Duration,
    header: &'static str,
}

/// The failed tries of one call, for the final error.
#[derive(Default)]
struct Failures {
    tries: u32,
    /// Whether the tries did not all end the same way (same status, or all without answer).
    mixed: bool,
    last_status: Option<StatusCode>,
    last_message: String,
}

impl Failures {
    fn push(&mut self, failure: &Failure) {
        if self.tries > 0 && self.last_status != failure.status {
            self.mixed = true;
        }
        self.tries += 1;
        self.last_status = failure.status;
        self.last_message.clone_from(&failure.message);
    }

    /// "the provider answered 429 Too Many Requests 4 times: ...", or what the tries had.
    fn summary(&self) -> String {
        let times = match self.tries {
            1 => "once".to_owned(),
            n => format!("{n} times"),
        };
        match (self.mixed, self.last_status) {
            (false, Some(status)) => format!(
                "the provider answered {} {times}: {}",
                status_text(status),
                self.last_message
            ),
            (false, None) => format!(
                "the provider could not be reached {times}: {}",
                self.last_message
            ),
            (true, Some(status)) => format!(
                "the provider failed {times}, the last with {}: {}",
                status_text(status),
                self.last_message
            ),
            (true, None) => format!(
                "the provider failed {times}, the last without an answer: {}",
                self.last_message
            ),
        }
    }
}

/// Serialized as either API's request body; `system` is Anthropic's only.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    messages: Vec<WireMessage<'a>>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

/// The parts of a Messages API reply Strata reads.
#[derive(Deserialize)]
struct AnthropicReply {
    content: Vec<AnthropicBlock>,
    #[serde(default)]
    usage: AnthropicUsage,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// A content block; only `text` blocks hold the reply.
#[derive(Deserialize)]
struct AnthropicBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize, Default)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// The parts of a chat completion Strata reads.
#[derive(Deserialize)]
struct OpenAiReply {
    choices: Vec<OpenAiChoice>,
    /// Some local servers leave it out; the call then counts 0 tokens.
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    message: OpenAiMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiMessage {
    #[serde(default)]
    content: Option<String>,
    /// Set instead of `content` when the model declines.
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The wait a 429 or 5xx asks for: `retry-after-ms` (milliseconds; OpenAI and Anthropic send
/// it), else `retry-after` in seconds or as an HTTP-date (RFC 9110's IMF-fixdate, read as RFC
/// 2822; the obsolete RFC 850 and asctime forms are not read). A date already past asks for no
/// wait; a value neither reads as is ignored.
fn requested_wait(
    headers: &HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<RequestedWait> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    let from_millis = header("retry-after-ms")
        .and_then(|value| value.parse::<f64>().ok())
        .and_then(|millis| Duration::try_from_secs_f64(millis / 1000.0).ok())
        .map(|wait| RequestedWait {
            wait,
            header: "retry-after-ms",
        });
    from_millis.or_else(|| {
        let value = header("retry-after")?;
        let wait = match value.parse::<f64>() {
            Ok(seconds) => Duration::try_from_secs_f64(seconds).ok()?,
            Err(_) => {
                let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
                (at.with_timezone(&chrono::Utc) - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
            }
        };
        Some(RequestedWait {
            wait,
            header: "retry-after",
        })
    })
}

/// `retry_backoff_ms` doubled for each try after the first.
fn backoff(first: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    first.saturating_mul(factor)
}

/// "429 Too Many Requests"; Anthropic's 529 has no standard reason, so it is named here.
fn status_text(status: StatusCode) -> String {
    let reason = match status.as_u16() {
        529 => Some("Overloaded"),
        _ => status.canonical_reason(),
    };
    match reason {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// The message in an error body: `error.message` (both APIs), a bare `error` or `message`
/// string (some compatible servers), else the body itself; shortened.
fn provider_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            let message = value
                .pointer("/error/message")
                .or_else(|| value.get("error").filter(|error| error.is_string()))
                .or_else(|| value.get("message"))?
                .as_str()?
                .to_owned();
            // Anthropic names the kind of error apart (`rate_limit_error`, `overloaded_error`).
            match value.pointer("/error/type").and_then(|kind| kind.as_str()) {
                Some(kind) => Some(format!("{message} ({kind})")),
                None => Some(message),
            }
        });
    let message = from_json.unwrap_or_else(|| body.trim().to_owned());
    if message.is_empty() {
        return "(empty body)".to_owned();
    }
    truncate(&message, MESSAGE_CHARS)
}

/// At most `chars` characters of `text`, on one line, marked when cut.
fn truncate(text: &str, chars: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(chars) {
        Some((end, _)) => format!("{}...", &one_line[..end]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use strata_core::testing::mock_llm::{MockLlm, MockReply};

    use super::*;

    /// A key no test should ever find in an error.
    const KEY: &str = "sk-test-0123456789-secret-key";

    /// A configuration for `api` against `mock`, with quick retries.
    fn config(api: AiProvider, mock: &MockLlm) -> AiConfig {
        config_at(api, mock.base_url(api))
    }

    /// A configuration for `api` at `base_url`, with quick retries.
    fn config_at(api: AiProvider, base_url: String) -> AiConfig {
        AiConfig {
            provider: Some(api),
            base_url: Some(base_url),
            api_key: Some(Secret::new(KEY)),
            model: Some("test-model".to_owned()),
            timeout_secs: 5,
            max_tokens: 1024,
            temperature: 0.2,
            repair_rounds: 2,
            max_retries: 3,
            retry_backoff_ms: 10,
            max_retry_after_secs: 60,
            concurrency: 1,
        }
    }

    fn provider(config: &AiConfig) -> Provider {
        Provider::from_config(config).expect("a provider is configured")
    }

    fn question() -> Vec<Message> {
        vec![
            Message {
                role: Role::User,
                content: "Write a moving average crossover.".to_owned(),
            },
            Message {
                role: Role::Assistant,
                content: "fn strategy() {}".to_owned(),
            },
            Message {
                role: Role::User,
                content: "It does not compile.".to_owned(),
            },
        ]
    }

    fn header<'a>(recorded: &'a strata_core::testing::mock_llm::Recorded, name: &str) -> &'a str {
        recorded
            .headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", recorded.path))
    }

    /// An error body in `api`'s shape.
    fn error_body(api: AiProvider, kind: &str, message: &str) -> String {
        match api {
            AiProvider::Anthropic => serde_json::json!({
                "type": "error",
                "error": { "type": kind, "message": message },
            }),
            AiProvider::OpenAi => serde_json::json!({
                "error": { "message": message, "type": kind, "code": null },
            }),
        }
        .to_string()
    }

    fn status(status: u16, retry_after: Option<&str>, body: String) -> MockReply {
        MockReply::Status {
            status,
            retry_after: retry_after.map(str::to_owned),
            body,
        }
    }

    const BOTH: [AiProvider; 2] = [AiProvider::Anthropic, AiProvider::OpenAi];

    #[test]
    fn no_provider_means_ai_is_off() {
        let config = AiConfig {
            provider: None,
            base_url: None,
            api_key: None,
            model: None,
            timeout_secs: 5,
            max_tokens: 1024,
            temperature: 0.2,
            repair_rounds: 2,
            max_retries: 3,
            retry_backoff_ms: 10,
            max_retry_after_secs: 60,
            concurrency: 1,
        };
        assert!(Provider::from_config(&config).is_none());
    }

    #[tokio::test]
    async fn a_text_reply_gives_its_text_and_usage() {
        for api in BOTH {
            let mock = MockLlm::start().await;
            mock.reply([MockReply::Text {
                text: "fn strategy() -> Signal { Signal::Flat }".to_owned(),
                input_tokens: 321,
                output_tokens: 45,
            }]);
            let provider = provider(&config(api, &mock));
            assert_eq!(provider.name(), api.as_str());
            assert_eq!(provider.model(), "test-model");

            let reply = provider
                .complete("You write strategies.", &question())
                .await
                .unwrap_or_else(|error| panic!("{api:?}: {error}"));
            assert_eq!(reply.text, "fn strategy() -> Signal { Signal::Flat }");
            assert_eq!(
                reply.usage,
                Usage {
                    input_tokens: 321,
                    output_tokens: 45
                }
            );
        }
    }

    #[tokio::test]
    async fn anthropic_text_blocks_are_joined_and_others_skipped() {
        let mock = MockLlm::start().await;
        mock.reply([MockReply::Raw(
            serde_json::json!({
                "content": [
                    { "type": "thinking", "thinking": "hmm" },
                    { "type": "text", "text": "first, " },
                    { "type": "text", "text": "second" },
                ],
                "usage": { "input_tokens": 7, "output_tokens": 3 },
                "stop_reason": "end_turn",
            })
            .to_string(),
        )]);
        let reply = provider(&config(AiProvider::Anthropic, &mock))
            .complete("system", &question())
            .await
            .expect("a reply");
        assert_eq!(reply.text, "first, second");
        assert_eq!(reply.usage.input_tokens, 7);
    }

    #[tokio::test]
    async fn openai_reply_without_usage_costs_nothing() {
        let mock = MockLlm::start().await;
        mock.reply([MockReply::Raw(
            serde_json::json!({
                "choices": [{ "message": { "role": "assistant", "content": "hello" }, "finish_reason": "stop" }],
            })
            .to_string(),
        )]);
        let reply = provider(&config(AiProvider::OpenAi, &mock))
            .complete("system", &question())
            .await
            .expect("a reply");
        assert_eq!(reply.text, "hello");
        assert_eq!(reply.usage, Usage::default());
    }

    #[tokio::test]
    async fn anthropic_request_has_its_headers_and_a_separate_system_prompt() {
        let mock = MockLlm::start().await;
        mock.reply([MockReply::text("ok")]);
        provider(&config(AiProvider::Anthropic, &mock))
            .complete("You write strategies.", &question())
            .await
            .expect("a reply");

        let requests = mock.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.path, "/v1/messages");
        assert_eq!(header(request, "x-api-key"), KEY);
        assert_eq!(header(request, "anthropic-version"), "2023-06-01");
        assert_eq!(header(request, "content-type"), "application/json");
        assert!(
            !request
                .headers
                .iter()
                .any(|(name, _)| name == "authorization"),
            "Anthropic takes the key as x-api-key only"
        );
        assert_eq!(
            request.body,
            serde_json::json!({
                "model": "test-model",
                "max_tokens": 1024,
                "temperature": 0.2,
                "system": "You write strategies.",
                "messages": [
                    { "role": "user", "content": "Write a moving average crossover." },
                    { "role": "assistant", "content": "fn strategy() {}" },
                    { "role": "user", "content": "It does not compile." },
                ],
            })
        );
    }

    #[tokio::test]
    async fn openai_request_has_a_bearer_key_and_the_system_prompt_first() {
        let mock = MockLlm::start().await;
        mock.reply([MockReply::text("ok")]);
        provider(&config(AiProvider::OpenAi, &mock))
            .complete("You write strategies.", &question())
            .await
            .expect("a reply");

        let requests = mock.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(header(request, "authorization"), format!("Bearer {KEY}"));
        assert_eq!(header(request, "content-type"), "application/json");
        assert!(!request.headers.iter().any(|(name, _)| name == "x-api-key"));
        assert_eq!(
            request.body,
            serde_json::json!({
                "model": "test-model",
                "max_tokens": 1024,
                "temperature": 0.2,
                "messages": [
                    { "role": "system", "content": "You write strategies." },
                    { "role": "user", "content": "Write a moving average crossover." },
                    { "role": "assistant", "content": "fn strategy() {}" },
                    { "role": "user", "content": "It does not compile." },
                ],
            })
        );
    }

    #[tokio::test]
    async fn openai_without_a_key_sends_no_authorization() {
        let mock = MockLlm::start().await;
        mock.reply([MockReply::text("ok")]);
        let mut config = config(AiProvider::OpenAi, &mock);
        config.api_key = None;
        provider(&config)
            .complete("system", &question())
            .await
            .expect("a reply");
        let requests = mock.requests();
        assert!(!requests[0]
            .headers
            .iter()
            .any(|(name, _)| name == "authorization"));
    }

    #[tokio::test]
    async fn a_429_waits_its_retry_after_then_succeeds() {
        async fn check(api: AiProvider) {
            let mock = MockLlm::start().await;
            let mut config = config(api, &mock);
            // A backoff this short cannot account for the wait; only the header can.
            config.retry_backoff_ms = 1;
            mock.reply([
                status(
                    429,
                    Some("1"),
                    error_body(api, "rate_limit_error", "slow down"),
                ),
                MockReply::text("after the wait"),
            ]);
            let started = Instant::now();
            let reply = provider(&config)
                .complete("system", &question())
                .await
                .unwrap_or_else(|error| panic!("{api:?}: {error}"));
            let elapsed = started.elapsed();
            assert_eq!(reply.text, "after the wait");
            assert!(
                elapsed >= Duration::from_millis(950),
                "{api:?} waited only {elapsed:?}"
            );
            assert!(elapsed < Duration::from_secs(4), "{api:?} took {elapsed:?}");
            assert_eq!(mock.requests().len(), 2);
        }
        tokio::join!(check(AiProvider::Anthropic), check(AiProvider::OpenAi));
    }

    #[tokio::test]
    async fn server_errors_are_tried_again_with_backoff() {
        for api in BOTH {
            let mock = MockLlm::start().await;
            mock.reply([
                status(503, None, error_body(api, "api_error", "busy")),
                status(529, None, error_body(api, "overloaded_error", "overloaded")),
                MockReply::text("third time"),
            ]);
            let reply = provider(&config(api, &mock))
                .complete("system", &question())
                .await
                .unwrap_or_else(|error| panic!("{api:?}: {error}"));
            assert_eq!(reply.text, "third time");
            assert_eq!(mock.requests().len(), 3);
        }
    }

    #[tokio::test]
    async fn exhausted_retries_name_the_status_and_the_message() {
        for api in BOTH {
            let mock = MockLlm::start().await;
            let mut config = config(api, &mock);
            config.max_retries = 2;
            mock.reply(
                (0..3).map(|_| status(429, None, error_body(api, "rate_limit_error", "slow down"))),
            );
            let error = provider(&config)
                .complete("system", &question())
                .await
                .expect_err("every try is refused");
            let ProviderError::Unavailable(message) = &error else {
                panic!("{api:?}: expected Unavailable, got {error:?}");
            };
            assert!(
                message
                    .starts_with("the provider answered 429 Too Many Requests 3 times: slow down"),
                "{api:?}: {message}"
            );
            assert_eq!(mock.requests().len(), 3);
        }
    }

    #[tokio::test]
    async fn mixed_failures_name_the_last_one() {
        let mock = MockLlm::start().await;
        let mut config = config(AiProvider::Anthropic, &mock);
        config.max_retries = 1;
        mock.reply([
            status(500, None, "oops".to_owned()),
            status(
                529,
                None,
                error_body(AiProvider::Anthropic, "overloaded_error", "Overloaded"),
            ),
        ]);
        let error = provider(&config)
            .complete("system", &question())
            .await
            .expect_err("every try fails");
        assert_eq!(
            error,
            ProviderError::Unavailable(
                "the provider failed 2 times, the last with 529 Overloaded: Overloaded (overloaded_error)"
                    .to_owned()
            )
        );
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_limit_fails_at_once() {
        for api in BOTH {
            let mock = MockLlm::start().await;
            mock.reply([
                status(
                    429,
                    Some("120"),
                    error_body(api, "rate_limit_error", "quota"),
                ),
                MockReply::text("never asked for"),
            ]);
            let started = Instant::now();
            let error = provider(&config(api, &mock))
                .complete("system", &question())
                .await
                .expect_err("the wait is too long");
            assert!(started.elapsed() < Duration::from_secs(1));
            assert_eq!(
                error,
                ProviderError::Unavailable(
                    "the provider asks to wait 120 s (retry-after), longer than ai.max_retry_after_secs (60 s)"
                        .to_owned()
                ),
                "{api:?}"
            );
            assert_eq!(mock.requests().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_reply_slower_than_the_timeout_is_not_retried() {
        async fn check(api: AiProvider) {
            let mock = MockLlm::start().await;
            let mut config = config(api, &mock);
            config.timeout_secs = 1;
            mock.reply([
                MockReply::Hang(Duration::from_secs(3)),
                MockReply::text("never asked for"),
            ]);
            let started = Instant::now();
            let error = provider(&config)
                .complete("system", &question())
                .await
                .expect_err("the model hangs");
            let elapsed = started.elapsed();
            assert_eq!(error, ProviderError::Timeout(Duration::from_secs(1)));
            assert_eq!(
                error.to_string(),
                "the model did not answer within 1 s (ai.timeout_secs)"
            );
            assert!(elapsed < Duration::from_secs(2), "{api:?} took {elapsed:?}");
            assert_eq!(mock.requests().len(), 1);
        }
        tokio::join!(check(AiProvider::Anthropic), check(AiProvider::OpenAi));
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_reply_is_unusable() {
        for api in BOTH {
            for body in [
                "<html>Bad gateway</html>".to_owned(),
                r#"{"unexpected": true}"#.to_owned(),
                reply_without_text(api),
            ] {
                let mock = MockLlm::start().await;
                mock.reply([MockReply::Raw(body.clone())]);
                let error = provider(&config(api, &mock))
                    .complete("system", &question())
                    .await
                    .expect_err("not a reply");
                let ProviderError::Unusable(message) = &error else {
                    panic!("{api:?} {body}: expected Unusable, got {error:?}");
                };
                let prefix = format!("the provider's reply is not an {} reply: ", api.as_str());
                assert!(message.starts_with(&prefix), "{message}");
                assert_eq!(mock.requests().len(), 1, "an unusable reply is not retried");
            }
        }
    }

    /// A reply in `api`'s shape that holds no text.
    fn reply_without_text(api: AiProvider) -> String {
        match api {
            AiProvider::Anthropic => serde_json::json!({
                "content": [],
                "usage": { "input_tokens": 1, "output_tokens": 0 },
                "stop_reason": "max_tokens",
            }),
            AiProvider::OpenAi => serde_json::json!({
                "choices": [{ "message": { "content": null }, "finish_reason": "length" }],
            }),
        }
        .to_string()
    }

    #[tokio::test]
    async fn a_401_is_rejected_with_the_providers_message() {
        for api in BOTH {
            let mock = MockLlm::start().await;
            mock.reply([status(
                401,
                None,
                error_body(api, "authentication_error", "invalid x-api-key"),
            )]);
            let error = provider(&config(api, &mock))
                .complete("system", &question())
                .await
                .expect_err("refused");
            let ProviderError::Rejected(message) = &error else {
                panic!("{api:?}: expected Rejected, got {error:?}");
            };
            assert!(
                message.starts_with(
                    "the provider refused the call: 401 Unauthorized: invalid x-api-key"
                ),
                "{message}"
            );
            assert_eq!(mock.requests().len(), 1, "a 401 is not retried");
        }
    }

    #[tokio::test]
    async fn a_long_error_body_is_shortened() {
        let mock = MockLlm::start().await;
        mock.reply([status(400, None, "x".repeat(5000))]);
        let error = provider(&config(AiProvider::OpenAi, &mock))
            .complete("system", &question())
            .await
            .expect_err("refused");
        let message = error.to_string();
        assert!(message.starts_with("the provider refused the call: 400 Bad Request: xxx"));
        assert!(message.len() < 400, "{} characters", message.len());
        assert!(message.ends_with("..."));
    }

    #[tokio::test]
    async fn the_key_never_appears_in_an_error() {
        let echo = format!("Incorrect API key provided: {KEY}");
        for api in BOTH {
            let mock = MockLlm::start().await;
            let mut config = config(api, &mock);
            config.max_retries = 1;
            mock.reply([
                status(401, None, error_body(api, "authentication_error", &echo)),
                status(503, None, error_body(api, "api_error", &echo)),
                status(503, None, error_body(api, "api_error", &echo)),
                MockReply::Raw(format!("not json {KEY}")),
            ]);
            let provider = provider(&config);
            assert!(
                !format!("{provider:?}").contains(KEY),
                "Debug shows the key"
            );

            let mut errors = Vec::new();
            for _ in 0..3 {
                errors.push(
                    provider
                        .complete("system", &question())
                        .await
                        .expect_err("every call fails"),
                );
            }
            assert!(matches!(errors[0], ProviderError::Rejected(_)));
            assert!(matches!(errors[1], ProviderError::Unavailable(_)));
            assert!(matches!(errors[2], ProviderError::Unusable(_)));
            for error in errors {
                let text = error.to_string();
                assert!(!text.contains(KEY), "{api:?}: the key leaked: {text}");
                assert!(text.contains("[redacted]"), "{api:?}: {text}");
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_tried_again_then_unavailable() {
        // A port that was free a moment ago: nothing listens on it.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("its address").port()
        };
        for api in BOTH {
            let mut config = config_at(api, format!("http://127.0.0.1:{port}"));
            config.max_retries = 1;
            let error = provider(&config)
                .complete("system", &question())
                .await
                .expect_err("nothing listens");
            let ProviderError::Unavailable(message) = &error else {
                panic!("{api:?}: expected Unavailable, got {error:?}");
            };
            assert!(
                message.starts_with(
                    "the provider could not be reached 2 times: could not reach http://127.0.0.1:"
                ),
                "{message}"
            );
            assert!(!message.contains(KEY));
        }
    }

    #[test]
    fn the_requested_wait_is_read_from_either_header() {
        let now = chrono::DateTime::parse_from_rfc2822("Tue, 24 Nov 2026 04:00:00 GMT")
            .expect("a date")
            .with_timezone(&chrono::Utc);
        let wait = |pairs: &[(&'static str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_str(value).expect("a header value"));
            }
            requested_wait(&headers, now)
        };
        let millis = |ms| Duration::from_millis(ms);

        assert_eq!(wait(&[]), None);
        assert_eq!(
            wait(&[("retry-after", "2")]),
            Some(RequestedWait {
                wait: millis(2000),
                header: "retry-after"
            })
        );
        assert_eq!(
            wait(&[("retry-after-ms", "1500"), ("retry-after", "9")]),
            Some(RequestedWait {
                wait: millis(1500),
                header: "retry-after-ms"
            })
        );
        assert_eq!(
            wait(&[("retry-after", "Tue, 24 Nov 2026 04:00:30 GMT")]),
            Some(RequestedWait {
                wait: millis(30_000),
                header: "retry-after"
            })
        );
        assert_eq!(
            wait(&[("retry-after", "Tue, 24 Nov 2026 03:59:00 GMT")]),
            Some(RequestedWait {
                wait: Duration::ZERO,
                header: "retry-after"
            })
        );
        assert_eq!(wait(&[("retry-after", "soon")]), None);
        assert_eq!(wait(&[("retry-after", "-3")]), None);
    }

    #[test]
    fn backoff_doubles_per_try() {
        let first = Duration::from_millis(250);
        assert_eq!(backoff(first, 1), Duration::from_millis(250));
        assert_eq!(backoff(first, 2), Duration::from_millis(500));
        assert_eq!(backoff(first, 4), Duration::from_millis(2000));
        // No overflow, however many tries.
        assert_eq!(backoff(Duration::MAX, 40), Duration::MAX);
    }
}
