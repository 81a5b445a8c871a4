//! `GET /relay` (only with `--bench-relay`): every text or binary frame a client sends is
//! relayed unchanged to every other connected relay client. No JSON, no rooms, no storage: the
//! raw fan-out path the benchmarks compare with other servers' relays. Off by default, since
//! it is an unauthenticated broadcast.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;

use super::AppState;
use crate::limits::ConnectionPermit;

/// The relay's shared channel: (sender id, frame).
#[derive(Debug)]
pub struct Relay {
    tx: broadcast::Sender<(u64, Message)>,
    next_id: AtomicU64,
}

impl Relay {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(16)).0,
            next_id: AtomicU64::new(1),
        }
    }
}

pub async fn handler(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !state.settings.bench_relay {
        return (
            StatusCode::NOT_FOUND,
            "the relay is off (start the server with --bench-relay)\n",
        )
            .into_response();
    }
    let (upgrade, permit) = match super::admit(&state, upgrade, &headers, peer) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let tracker = state.tracker.clone();
    let kick = state.kicks.issue();
    let relay = state.relay.clone();
    upgrade
        .on_upgrade(move |socket| tracker.track_future(relay_session(socket, relay, kick, permit)))
}

async fn relay_session(
    mut socket: WebSocket,
    relay: std::sync::Arc<Relay>,
    kick: crate::kick::Kick,
    _permit: ConnectionPermit,
) {
    let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
    let mut rx = relay.tx.subscribe();
    // One task owns the socket and both directions: no split, so no lock on every read, write
    // and flush (the profile showed `BiLock::poll_lock` among the top costs of a fan-out).
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Ok((from, frame)) => {
                    if from != id && socket.feed(frame).await.is_err() {
                        return;
                    }
                    // Feed what else is ready, then flush once.
                    while let Ok((from, frame)) = rx.try_recv() {
                        if from != id && socket.feed(frame).await.is_err() {
                            return;
                        }
                    }
                    if socket.flush().await.is_err() {
                        return;
                    }
                }
                // Too slow to keep up: a relay client is dropped, like a chat slow consumer.
                Err(_) => return,
            },
            frame = socket.next() => match frame {
                Some(Ok(frame @ (Message::Text(_) | Message::Binary(_)))) => {
                    let _ = relay.tx.send((id, frame));
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            () = kick.closing() => return,
        }
    }
}
