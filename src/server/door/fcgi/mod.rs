//! FastCGI front door: `remod` as a responder behind nginx or Apache.
//!
//! Tokio-native and streaming both ways: the handler starts as soon as the
//! params are in, the body flows through a bounded channel as STDIN records
//! arrive, and every response chunk is flushed as its own STDOUT record(s).

pub mod codec;
mod conn;

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use conn::fuzz_steps;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::server::core::gate::Gate;
use crate::server::core::request::Handler;
use crate::server::door::listen::Listener;

/// Resource bounds of the FastCGI front door, so a web server (or anything
/// else that can reach the socket) cannot make the process grow unbounded.
#[derive(Debug, Clone, Copy)]
pub struct FcgiLimits {
    /// Cap on the reassembled PARAMS stream of one request.
    pub max_params_bytes: usize,
    /// Connections served at once; also reported as FCGI_MAX_CONNS/REQS.
    /// When full, a new connection evicts the oldest one that is not
    /// serving a request (idle or still sending its params); when every
    /// connection is busy, the new one is closed.
    pub max_conns: u32,
    /// How long a connection may take to send a request's params, counted
    /// from its start or from the end of its previous request (so also the
    /// idle time of a kept-alive connection).
    pub request_timeout: Duration,
    /// How long to keep draining unread input before closing a finished
    /// connection, so TCP does not reset the response away.
    pub linger: Duration,
}

impl Default for FcgiLimits {
    fn default() -> Self {
        FcgiLimits {
            max_params_bytes: codec::DEFAULT_MAX_PARAMS_BYTES,
            max_conns: 4096,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT),
            linger: Duration::from_secs(2),
        }
    }
}

/// Default of `--request-timeout`, seconds.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: u64 = 10;

/// Serves FastCGI on `listener` forever: one task per connection, one
/// request at a time per connection. Never returns an error: accept errors
/// are logged and retried after a short pause.
pub async fn serve(listener: Listener, handler: Arc<dyn Handler>, limits: FcgiLimits) {
    serve_until(listener, handler, limits, std::future::pending()).await
}

/// Like [`serve`], until `shutdown` resolves: then stops accepting, lets
/// running requests finish (idle keep-alive connections are closed) and
/// returns once every connection is gone.
pub(crate) async fn serve_until(
    listener: Listener,
    handler: Arc<dyn Handler>,
    limits: FcgiLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let gate = Gate::new(
        "fastcgi connections",
        usize::try_from(limits.max_conns.max(1)).unwrap_or(4096),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    log::info!(
        "fastcgi: listening on {} (at most {} connections)",
        listener.local_description(),
        gate.max()
    );
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Full of busy connections: close the newcomer at once.
                let Some(pass) = gate.enter() else { continue };
                let handler = handler.clone();
                let stop = stop_rx.clone();
                tasks.spawn(async move {
                    conn::run(stream, peer, handler, limits, stop, pass).await;
                });
            }
            Err(e) => accept_backoff("fastcgi", &e).await,
        }
        while tasks.try_join_next().is_some() {}
    }
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Logs an accept() error and pauses: long when out of descriptors (the
/// condition lasts), short for per-connection errors (ECONNABORTED, EINTR).
pub(crate) async fn accept_backoff(door: &str, e: &std::io::Error) {
    let pause = match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
            Duration::from_millis(100)
        }
        _ => Duration::from_millis(5),
    };
    log::warn!("{door}: accept failed: {e}");
    tokio::time::sleep(pause).await;
}
