//! `GET /api/rooms/{room}/messages?before=<seq>&limit=<n>`: older history, oldest first.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::{HistoryPage, RoomId};

use super::AppState;

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// Only messages with a smaller `seq`; default: the newest.
    before: Option<u64>,
    /// Page size; default 50, at most `--max-history-page`.
    limit: Option<usize>,
    /// With signed user tokens on: the reader's token (or `Authorization: Bearer`).
    access_token: Option<String>,
}

pub async fn handler(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(room): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let client = state.proxies.client(peer, &headers);
    if !state.api_limiter.try_take(client.ip) {
        state.metrics.rate_limited.inc();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            format!(
                "More than {} history requests per second from your address \
                 (--api-rate-per-sec, burst --api-rate-burst); retry later.\n",
                state.settings.api_rate_per_sec
            ),
        )
            .into_response();
    }
    let room = match RoomId::parse(&room) {
        Ok(room) => room,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("room {e}\n")).into_response(),
    };
    // With signed user tokens, history is for the users who may join the room.
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match state.authenticate(query.access_token.as_deref().or(bearer)) {
        Ok(Some(user)) if !user.rooms.allows(&room) => return super::room_forbidden(&room),
        Ok(_) => {}
        Err(refused) => return super::unauthorized(&refused),
    }
    let limit = query
        .limit
        .unwrap_or(50)
        .clamp(1, state.settings.max_history_page);
    // SQLite integers are i64.
    let before = query.before.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
    match state.store.history_page(&room, before, limit).await {
        Ok((messages, bounds)) => Json(HistoryPage {
            room: room.to_string(),
            epoch: state.store.epoch(),
            has_more: messages.first().is_some_and(|m| m.seq > bounds.first),
            messages,
        })
        .into_response(),
        Err(e) => {
            let status = if e.is_transient() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            (status, format!("{e}\n")).into_response()
        }
    }
}
