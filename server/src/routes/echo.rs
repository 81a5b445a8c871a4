//! `GET /echo`: echoes every text and binary frame unchanged. Used by the client's diagnostics
//! panel and the benchmarks.

use std::net::SocketAddr;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::limits::ConnectionPermit;

pub async fn handler(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return super::upgrade_required(rejection),
    };
    let permit = match super::admit(&state, &headers, peer.ip()) {
        Ok(permit) => permit,
        Err(refusal) => return refusal.into_response(),
    };
    let shutdown = state.shutdown.clone();
    let tracker = state.tracker.clone();
    state
        .configure(upgrade)
        .on_upgrade(move |socket| tracker.track_future(echo(socket, shutdown, permit)))
}

async fn echo(mut socket: WebSocket, shutdown: CancellationToken, _permit: ConnectionPermit) {
    loop {
        let frame = tokio::select! {
            frame = socket.recv() => frame,
            () = shutdown.cancelled() => {
                let close = CloseFrame { code: 1001, reason: Utf8Bytes::from_static("server shutting down") };
                let _ = socket.send(Message::Close(Some(close))).await;
                // Wait for the peer's close frame so the connection ends cleanly.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                    while let Some(Ok(frame)) = socket.recv().await {
                        if matches!(frame, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
                return;
            }
        };
        let reply = match frame {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => m,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
        };
        // `send` feeds and flushes; a failure means the peer is gone.
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}
