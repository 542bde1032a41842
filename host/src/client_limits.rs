//! What a client may send and how long it may take: enforced before a
//! request reaches a handler, whatever the handler is.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioTimer;

use crate::registry::Families;
use crate::response::{Body, text};

/// Client-side limits enforced before a request reaches routing.
#[derive(Clone, Copy, Debug)]
pub struct ClientLimits {
    /// Largest request body, in bytes; larger ones get 413.
    pub max_body: usize,
    /// Time a client has to send the request head.
    pub header_read_timeout: Duration,
    /// Time a client has to send the request body, from the end of the head.
    pub body_read_timeout: Duration,
    /// hyper's read buffer, which bounds the request head: past it, 431.
    pub max_header_bytes: usize,
}

impl Default for ClientLimits {
    /// The command line's defaults.
    fn default() -> Self {
        ClientLimits {
            max_body: 1 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 << 10,
        }
    }
}

impl ClientLimits {
    /// The HTTP/1 connection settings that enforce these limits.
    ///
    /// `half_close`: without it hyper takes an end of the client's stream
    /// while a request is in flight for an abandoned connection and drops
    /// the request, so a client that pipelines requests and then shuts its
    /// write side (as `nc -q 1` does) loses the answers to the last ones,
    /// which were received whole. The time such a request may take is still
    /// bounded by the body and guest timeouts.
    pub fn http1_builder(&self) -> http1::Builder {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes)
            .half_close(true);
        builder
    }
}

/// The answer to a request refused before its body was read, counted in
/// `promwasm_http_rejected_total` under `reason`.
pub fn refuse(
    families: &Families,
    reason: &'static str,
    status: StatusCode,
    message: String,
) -> Response<Body> {
    families.rejections.inc(reason);
    let mut response = text(status, message);
    // The rest of a body not read may still be on its way: a connection
    // left open would read it as the next request.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads a request body within the client limits. `Err` is the answer to a
/// body refused (413, 408 or 400), already counted in
/// `promwasm_http_rejected_total`.
pub async fn read_body(
    families: &Families,
    limits: &ClientLimits,
    headers: &hyper::HeaderMap,
    body: Incoming,
) -> Result<Bytes, Response<Body>> {
    let refuse = |reason, status, message| refuse(families, reason, status, message);
    let too_large = || {
        refuse(
            "body_too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body larger than {} bytes", limits.max_body),
        )
    };
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > limits.max_body as u64) {
        return Err(too_large());
    }
    // No body (a GET, or a length of 0): nothing to wait for, no timer.
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let body = Limited::new(body, limits.max_body).collect();
    match tokio::time::timeout(limits.body_read_timeout, body).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "reading a request body failed");
            Err(refuse(
                "body_read_error",
                StatusCode::BAD_REQUEST,
                "Request body could not be read".to_string(),
            ))
        }
        Err(_) => Err(refuse(
            "body_timeout",
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "Request body not received within {}",
                humantime::format_duration(limits.body_read_timeout)
            ),
        )),
    }
}
