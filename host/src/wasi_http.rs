//! A request through a wasi:http component: the request goes in as
//! hyper parsed it (with the body the pipeline read), and the answer
//! streams out as the guest writes it.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header;
use hyper::http::request::Parts;
use hyper::http::uri::Authority;
use hyper::{Request, Response, StatusCode};
use tokio::sync::oneshot;

use crate::component::call_failure;
use crate::pipeline::{Ended, Handled, Refusal, Reply, Streamed};
use crate::runtime::{CallError, WasiHttpGuest};

/// A wasi:http request carries an authority (its URI's, or the `Host`
/// header): a request without a usable one is refused before any guest
/// runs.
pub fn admit(parts: &Parts) -> Result<(), Refusal> {
    let usable = parts.uri.authority().is_some()
        || (parts.headers.get(header::HOST))
            .is_some_and(|host| Authority::try_from(host.as_bytes()).is_ok());
    if usable {
        return Ok(());
    }
    Err(Refusal {
        reason: "no_authority",
        status: StatusCode::BAD_REQUEST,
        message: "Request names no valid host: send a Host header".to_string(),
    })
}

/// Hands the request to the guest; the answer is streamed once the guest
/// sets its head.
pub async fn handle(guest: &Arc<WasiHttpGuest>, parts: Parts, body: Bytes) -> Handled {
    let (ended_tx, ended_rx) = oneshot::channel();
    let request = Request::from_parts(parts, Full::new(body));
    let head = guest.handle_http(request, move |result, stats| {
        let failure = match result {
            // A client that went away is not the guest's failure.
            Ok(()) | Err(CallError::ClientGone) => None,
            Err(e) => Some(call_failure(e)),
        };
        let _ = ended_tx.send(Ended {
            stats: stats.if_ran(),
            failure,
        });
    });
    if let Ok(head) = head.await {
        let (parts, frames) = head.into_parts();
        let streamed = Streamed {
            frames,
            ended: ended_rx,
        };
        return Handled {
            outcome: Ok(Response::from_parts(parts, Reply::Streamed(streamed))),
            stats: None,
        };
    }
    // No head: the call ended first, and says why.
    let ended = ended_rx.await.unwrap_or_else(|_| Ended::lost());
    Handled {
        outcome: Err(ended
            .failure
            .unwrap_or_else(|| call_failure(CallError::NoResponse))),
        stats: ended.stats,
    }
}
