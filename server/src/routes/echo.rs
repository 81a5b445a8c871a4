//! `GET /echo`: echoes every text and binary frame unchanged. Used by the client's diagnostics
//! panel and the benchmarks.

use std::net::SocketAddr;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;

use super::AppState;
use crate::kick::Kick;
use crate::limits::ConnectionPermit;

pub async fn handler(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (upgrade, permit) = match super::admit(&state, upgrade, &headers, peer) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let kick = state.kicks.issue();
    let tracker = state.tracker.clone();
    upgrade.on_upgrade(move |socket| tracker.track_future(echo(socket, kick, permit)))
}

/// Echoes until the peer closes, or the server shuts down (`kick`: see `kick.rs`).
async fn echo(mut socket: WebSocket, kick: Kick, _permit: ConnectionPermit) {
    let close = loop {
        let frame = tokio::select! {
            frame = socket.recv() => frame,
            () = kick.closing() => break Some((1001, "server shutting down")),
        };
        let reply = match frame {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => m,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            // The peer closed: tungstenite has queued the reply; flush it.
            Some(Ok(Message::Close(_))) => {
                let _ = tokio::time::timeout(CLOSE_DEADLINE, socket.close()).await;
                return;
            }
            // A protocol violation: tell the peer why (1002, 1007, 1009).
            Some(Err(e)) => break crate::session::close_for(e),
            None => return,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    };
    let Some((code, reason)) = close else { return };
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = tokio::time::timeout(CLOSE_DEADLINE, socket.send(Message::Close(Some(frame)))).await;
    // Wait for the peer's close frame so the connection ends cleanly (when it can still be read).
    let _ = tokio::time::timeout(CLOSE_DEADLINE, async {
        while let Some(Ok(frame)) = socket.recv().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// How long closing may take.
const CLOSE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);
