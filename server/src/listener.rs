//! The accept loop.
//!
//! Why not `axum::serve`: it builds hyper connections without a timer, and hyper's HTTP/1
//! `header_read_timeout` "requires a Timer set by Builder::timer to take effect" (hyper 1.x,
//! `server::conn::http1::Builder`), so a client that trickles header bytes, or sends none,
//! holds its connection forever (slowloris). Here every connection gets hyper's HTTP/1 builder
//! with a Tokio timer and `--handshake-timeout-secs` as its header-read timeout, which hyper
//! starts as soon as it waits for a request head: silent sockets and trickling ones are both
//! closed when it passes. Only HTTP/1.1 is served (browsers open WebSockets over it); there is
//! no protocol sniffing, whose first read would have no deadline.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Serves `router` until `shutdown` is cancelled; then stops accepting and asks open HTTP
/// connections to finish their current request (WebSocket sessions close themselves).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
