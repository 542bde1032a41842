//! A request through a route-handler component: the guest's view of the
//! request as a record, and the checks on the record it answers with.

use bytes::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};

use crate::app::RouteState;
use crate::component::call_failure;
use crate::pipeline::{Failure, Handled, Reply};
use crate::response::{Body, TEXT_PLAIN, full, utf8_value, valid_status};
use crate::routes::template_params;
use crate::runtime::{RouteHandlerGuest, RouteRequest, types};

/// Hands the request to the guest and checks what it answers.
pub async fn handle(
    guest: &RouteHandlerGuest,
    route: &RouteState,
    parts: Parts,
    body: Bytes,
) -> Handled {
    let mut request = guest_request(&parts, route.route.index, body);
    request.params = template_params(&route.route.template, &request.path);
    let (result, stats) = guest.handle(request).await;
    let outcome = match result {
        Ok(response) => guest_response(response)
            .map(|response| response.map(Reply::Whole))
            .map_err(|what| Failure {
                reason: "invalid_response",
                status: StatusCode::INTERNAL_SERVER_ERROR,
                exception: true,
                detail: format!("guest returned an invalid response: {what}"),
            }),
        Err(e) => Err(call_failure(e)),
    };
    Handled {
        outcome,
        stats: stats.if_ran(),
    }
}

/// The guest's view of a request: header values that are not UTF-8 are
/// left out (valid UTF-8, `user: josé` say, is passed on).
pub fn guest_request(parts: &Parts, route: u32, body: Bytes) -> RouteRequest {
    RouteRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        route,
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), utf8_value(value)?.to_string()))
            })
            .collect(),
        body: body.into(),
        params: Vec::new(),
    }
}

/// Headers that frame the message or the connection: the host sets them,
/// and a guest's would desynchronise the stream (a `content-length` that
/// is not the body's would make the body read as the next response).
const FRAMING_HEADERS: [HeaderName; 8] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Turns the guest's response record into an HTTP response, refusing
/// statuses and headers HTTP cannot carry, and the framing headers.
fn guest_response(response: types::Response) -> Result<Response<Body>, String> {
    let status = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| valid_status(s.as_u16()))
        .ok_or_else(|| format!("status {}", response.status))?;
    let mut http = Response::new(full(response.body));
    *http.status_mut() = status;
    for (name, value) in response.headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name {name:?}"))?;
        if FRAMING_HEADERS.contains(&name) {
            return Err(format!("header {name}, which the host sets itself"));
        }
        let value = HeaderValue::from_str(&value).map_err(|_| format!("value of header {name}"))?;
        http.headers_mut().append(name, value);
    }
    http.headers_mut()
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static(TEXT_PLAIN));
    Ok(http)
}
