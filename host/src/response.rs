//! The response body type every handler answers with, and the small
//! answers the host gives itself.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Body as _;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// An error in the middle of a streamed body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body: whole (every answer today) or streamed, so a handler
/// may send a body as it produces it.
pub type Body = BoxBody<Bytes, BoxError>;

/// The content type of the host's answers, and of a guest's that names none.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// A body sent in one piece.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    response
}

/// The answer to a request that found no route.
pub fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "Not Found")
}

/// An answer with an `Allow` header: 405, or 200 to `OPTIONS`.
pub fn allow(status: StatusCode, allow: &HeaderValue) -> Response<Body> {
    let body = if status == StatusCode::METHOD_NOT_ALLOWED {
        "Method Not Allowed"
    } else {
        ""
    };
    let mut response = text(status, body);
    response.headers_mut().insert(header::ALLOW, allow.clone());
    response
}

/// The answer to a `HEAD`: the body goes, its length stays when known.
pub fn strip_body(response: &mut Response<Body>) {
    let body = std::mem::replace(
        response.body_mut(),
        Empty::new().map_err(|never| match never {}).boxed(),
    );
    if let Some(len) = body.size_hint().exact() {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

/// Whether a handler's status can go out as a final HTTP answer: 200 to
/// 599 (informational answers are the host's business, and HTTP has no
/// codes past 599).
pub fn valid_status(status: u16) -> bool {
    (200..=599).contains(&status)
}

/// A header value as handlers see it: any valid UTF-8, not only the
/// visible ASCII that `HeaderValue::to_str` accepts; `None` otherwise.
pub fn utf8_value(value: &HeaderValue) -> Option<&str> {
    std::str::from_utf8(value.as_bytes()).ok()
}
