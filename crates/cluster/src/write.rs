//! Writes to the API server with a concurrency window that adapts to its back-pressure.
//!
//! Velero creates one object at a time behind a fixed client-side QPS. We keep many requests in
//! flight and let the server set the pace: an HTTP 429 (API Priority and Fairness rejecting a
//! request, with `Retry-After`) halves the window and pauses for the time the server asks, and
//! every window's worth of successes widens it by one again (additive increase, multiplicative
//! decrease, as TCP does). Throttled and briefly failing requests are retried.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use serde_json::Value;

use crate::window::Window;

const MAX_ATTEMPTS: u32 = 10;

/// A failed write: the API server's answer, or no answer at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The server's Status: `code` is the HTTP status, `reason` its machine-readable reason.
    #[error("{message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("the API server could not be reached: {0}")]
    Transport(String),
}

impl WriteError {
    pub fn code(&self) -> Option<u16> {
        match self {
            WriteError::Api { code, .. } => Some(*code),
            WriteError::Transport(_) => None,
        }
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, WriteError::Api { code: 409, reason, .. } if reason == "AlreadyExists")
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, WriteError::Api { code: 409, reason, .. } if reason != "AlreadyExists")
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }
}

/// JSON requests to the API server through one adaptive window.
#[derive(Clone)]
pub struct ApiWriter {
    client: kube::Client,
    window: Arc<Window>,
    dry_run: bool,
}

pub const MERGE_PATCH: &str = "application/merge-patch+json";
const JSON: &str = "application/json";

impl ApiWriter {
    /// At most `max_in_flight` requests at once; fewer while the server pushes back.
    pub fn new(client: kube::Client, max_in_flight: usize) -> Self {
        ApiWriter {
            client,
            window: Window::new(max_in_flight),
            dry_run: false,
        }
    }

    /// Every write is sent with `dryRun=All`: the API server admits, validates and answers it as
    /// it would the real one (webhooks, quotas, schemas, RBAC) and stores nothing.
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The current width of the window (for logs and benchmarks).
    pub fn window(&self) -> usize {
        self.window.width()
    }

    pub async fn get(&self, path: &str) -> Result<Value, WriteError> {
        self.request(Method::GET, path, None, JSON).await
    }

    /// GET; `None` when the object does not exist.
    pub async fn get_opt(&self, path: &str) -> Result<Option<Value>, WriteError> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create(&self, collection_path: &str, object: &Value) -> Result<Value, WriteError> {
        let body =
            crate::gojson::to_vec(object).map_err(|e| WriteError::Transport(e.to_string()))?;
        self.request(Method::POST, collection_path, Some(body), JSON)
            .await
    }

    pub async fn replace(&self, path: &str, object: &Value) -> Result<Value, WriteError> {
        let body =
            crate::gojson::to_vec(object).map_err(|e| WriteError::Transport(e.to_string()))?;
        self.request(Method::PUT, path, Some(body), JSON).await
    }

    /// An RFC 7386 JSON merge patch.
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, WriteError> {
        let body =
            crate::gojson::to_vec(patch).map_err(|e| WriteError::Transport(e.to_string()))?;
        self.request(Method::PATCH, path, Some(body), MERGE_PATCH)
            .await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Value, WriteError> {
        let dry_run_path;
        let path = if self.dry_run && method != Method::GET {
            let separator = if path.contains('?') { '&' } else { '?' };
            dry_run_path = format!("{path}{separator}dryRun=All");
            &dry_run_path
        } else {
            path
        };
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let outcome = {
                let _permit = self
                    .window
                    .acquire()
                    .await
                    .map_err(|e| WriteError::Transport(e.to_string()))?;
                self.send_once(method.clone(), path, body.clone(), content_type)
                    .await
            };
            let wait = match outcome {
                Ok(value) => {
                    self.window.on_success();
                    return Ok(value);
                }
                Err((e, retry_after)) => {
                    let retryable = match &e {
                        WriteError::Api { code, .. } => matches!(code, 429 | 500 | 503 | 504),
                        WriteError::Transport(_) => true,
                    };
                    if !retryable || attempt >= MAX_ATTEMPTS {
                        return Err(e);
                    }
                    if e.code() == Some(429) {
                        self.window.on_throttled();
                    }
                    tracing::debug!(path, attempt, "retrying after: {e}");
                    retry_after.unwrap_or(delay)
                }
            };
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Value, (WriteError, Option<Duration>)> {
        let transport = |e: &dyn std::fmt::Display| (WriteError::Transport(e.to_string()), None);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::ACCEPT, JSON)
            .body(kube::client::Body::from(body.unwrap_or_default()))
            .map_err(|e| transport(&e))?;
        let response = self.client.send(request).await.map_err(|e| transport(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.clamp(1, 30)));
        let bytes = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| transport(&e))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| transport(&e));
        }
        let parsed: Option<kube::core::Status> = serde_json::from_slice(&bytes).ok();
        let (reason, message) = match parsed {
            Some(s) => (s.reason, s.message),
            None => (
                status.canonical_reason().unwrap_or_default().to_string(),
                String::from_utf8_lossy(&bytes).trim().to_string(),
            ),
        };
        let message = if message.is_empty() {
            format!("the server answered {status}")
        } else {
            message
        };
        Err((
            WriteError::Api {
                code: status.as_u16(),
                reason,
                message,
            },
            if status == StatusCode::TOO_MANY_REQUESTS {
                retry_after
            } else {
                None
            },
        ))
    }
}
