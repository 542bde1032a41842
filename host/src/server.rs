//! The listeners: accepting connections, serving each with the request
//! pipeline, counting the connections hyper refused, and draining at stop.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::pipeline::{Handler, Pipeline, Role};
use crate::tls::Tls;

/// Time requests in flight get to finish at a stop, unless told otherwise.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

/// Binds a listener, naming the address when that fails.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Accepts connections on `listener` until `shutdown` changes, then waits up
/// to `drain` for the connections' requests in flight to finish. With
/// `tls`, every connection is a TLS one, its handshake bounded by the
/// request-head timeout.
pub async fn serve<H: Handler>(
    pipeline: Arc<Pipeline<H>>,
    listener: TcpListener,
    role: Role,
    tls: Option<Arc<Tls>>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = pipeline.limits.http1_builder();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok((stream, peer)) => (stream, peer.ip()),
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving the
                        // connections we have and try again shortly.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let pipeline = pipeline.clone();
                // Taken now: a stop waits for a handshake under way too.
                let watcher = graceful.watcher();
                match &tls {
                    None => {
                        let serving = connection(pipeline, &builder, stream, role, client, watcher);
                        tokio::spawn(serving);
                    }
                    Some(tls) => {
                        let (tls, builder) = (tls.clone(), builder.clone());
                        tokio::spawn(async move {
                            let timeout = pipeline.limits.header_read_timeout;
                            match tls.accept(stream, timeout).await {
                                Ok(stream) => {
                                    connection(pipeline, &builder, stream, role, client, watcher)
                                        .await
                                }
                                Err(e) => {
                                    pipeline.families.rejections.inc(e.reason());
                                    tracing::debug!(error = ?e, "TLS handshake failed");
                                }
                            }
                        });
                    }
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?drain, "requests still in flight after the drain deadline");
    }
}

/// Serves the requests of one connection (plain or TLS) from `client` with
/// the pipeline and the listener's HTTP/1 settings, counting the
/// connections hyper refused; for the caller to spawn.
fn connection<H, I>(
    pipeline: Arc<Pipeline<H>>,
    builder: &http1::Builder,
    io: I,
    role: Role,
    client: IpAddr,
    watcher: Watcher,
) -> impl Future<Output = ()> + Send + 'static
where
    H: Handler,
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let rejections = pipeline.families.rejections.clone();
    let service = service_fn(move |request| {
        let pipeline = pipeline.clone();
        async move { Ok::<_, Infallible>(pipeline.serve(request, role, client).await) }
    });
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), service));
    async move {
        if let Err(e) = connection.await {
            if e.is_user() {
                // A streamed answer the pipeline aborted: counted with the
                // handler's failure, not the client's.
                tracing::debug!(error = %e, "aborted a streamed answer");
                return;
            }
            // hyper has already answered what it could (400, 431); these
            // requests never reached routing.
            let reason = if e.is_parse_too_large() {
                "header_too_large"
            } else if e.is_parse() || e.is_parse_status() {
                "malformed"
            } else if e.is_timeout() {
                "header_timeout"
            } else {
                "connection_error"
            };
            rejections.inc(reason);
            tracing::debug!(error = %e, reason, "connection ended with an error");
        }
    }
}
