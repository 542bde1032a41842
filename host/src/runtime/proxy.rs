//! A wasi:http/proxy call, in the plain p2 flow (wasmtime 48's
//! `ProxyHandler` needs the component-model concurrency the engine turns
//! off): a task owns the store and runs `incoming-handler.handle`; the
//! response head comes out as soon as the guest sets it, and the task then
//! forwards the body as the guest writes it, counting it against the
//! response body limit. The time limit covers the whole call, body
//! included; how the call ended is reported after the last frame.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use hyper::header;
use hyper::{Request, Response};
use tokio::sync::{mpsc, oneshot};
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::{CallError, CallStats, Guest, HostState};

/// A wasi:http component serving requests.
pub type WasiHttpGuest = Guest<ProxyPre<HostState>>;

/// The response head a wasi:http guest set, with its body's frames to
/// come.
pub type Head = Response<mpsc::Receiver<Frame<Bytes>>>;

/// The frames a streamed body may have in flight between the task and the
/// connection: the guest waits for the client beyond that.
const FRAMES_IN_FLIGHT: usize = 2;

impl WasiHttpGuest {
    /// Starts a task that hands `request` to the guest. The head arrives on
    /// the returned channel, which closes empty when the call ended without
    /// one; `ended` gets how the call ended and what it cost, after the
    /// last frame of the body.
    pub fn handle_http(
        self: &Arc<Self>,
        request: Request<Full<Bytes>>,
        ended: impl FnOnce(Result<(), CallError>, CallStats) + Send + 'static,
    ) -> oneshot::Receiver<Head> {
        let (head_tx, head_rx) = oneshot::channel();
        let guest = self.clone();
        let limit = self.compiled.limits.max_response_body;
        tokio::spawn(async move {
            let (result, stats) = guest
                .call(None, async move |proxy, store| {
                    exchange(proxy, store, request, head_tx, limit).await
                })
                .await;
            ended(result, stats);
        });
        head_rx
    }
}

/// Runs the guest's `handle` and, beside it, delivers its response. A trap
/// ends both at once; a guest that returns has its body delivered to the
/// end.
async fn exchange(
    proxy: &Proxy,
    store: &mut Store<HostState>,
    request: Request<Full<Bytes>>,
    head: oneshot::Sender<Head>,
    limit: usize,
) -> Result<(), CallError> {
    let (out_tx, out_rx) = oneshot::channel();
    let mut http = store.data_mut().http();
    let request = http
        .new_incoming_request(Scheme::Http, request)
        .map_err(CallError::Trap)?;
    let out = http
        .new_response_outparam(out_tx)
        .map_err(CallError::Trap)?;
    let call = async {
        (proxy.wasi_http_incoming_handler())
            .call_handle(&mut *store, request, out)
            .await
            .map_err(CallError::Trap)
    };
    tokio::try_join!(call, deliver(out_rx, head, limit))?;
    Ok(())
}

type Outparam = Result<Response<HyperOutgoingBody>, ErrorCode>;

/// Waits for the head the guest sets, checks it, sends it on, then
/// forwards the body frame by frame.
async fn deliver(
    out: oneshot::Receiver<Outparam>,
    head: oneshot::Sender<Head>,
    limit: usize,
) -> Result<(), CallError> {
    let response = match out.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => {
            return Err(CallError::Guest(format!(
                "it set an error instead of a response: {code:?}"
            )));
        }
        // The outparam was dropped unset: the guest returned without it.
        Err(_) => return Err(CallError::NoResponse),
    };
    let (parts, mut body) = response.into_parts();
    if !crate::response::valid_status(parts.status.as_u16()) {
        return Err(CallError::InvalidResponse(format!(
            "status {}",
            parts.status
        )));
    }
    let declared = (parts.headers.get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(len) = declared.filter(|&len| len > limit) {
        return Err(CallError::ResponseTooLarge(len, limit));
    }
    let (frames, receiver) = mpsc::channel(FRAMES_IN_FLIGHT);
    head.send(Response::from_parts(parts, receiver))
        .map_err(|_| CallError::ClientGone)?;
    let mut sent = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CallError::IncompleteBody(e.to_string()))?;
        if let Some(data) = frame.data_ref() {
            sent = sent.saturating_add(data.len());
            if sent > limit {
                return Err(CallError::ResponseTooLarge(sent, limit));
            }
        }
        frames
            .send(frame)
            .await
            .map_err(|_| CallError::ClientGone)?;
    }
    Ok(())
}
