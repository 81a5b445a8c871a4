//! `GET /api/rooms/{room}/messages?before=<seq>&limit=<n>`: older history, oldest first.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shared::{HistoryPage, RoomId};

use crate::app::AppState;

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// Only messages with a smaller `seq`; default: the newest.
    before: Option<u64>,
    /// Page size; default 50, at most `--max-history-page`.
    limit: Option<usize>,
}

pub async fn handler(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let room = match RoomId::parse(&room) {
        Ok(room) => room,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("room {e}\n")).into_response(),
    };
    let limit = query
        .limit
        .unwrap_or(50)
        .clamp(1, state.settings.max_history_page);
    // SQLite integers are i64.
    let before = query.before.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
    let page = async {
        let messages = state.store.read_before(&room, before, limit).await?;
        let bounds = state.store.bounds(&room).await?;
        Ok::<_, crate::store::StoreError>((messages, bounds))
    };
    match page.await {
        Ok((messages, bounds)) => Json(HistoryPage {
            room: room.to_string(),
            epoch: state.store.epoch(),
            has_more: messages.first().is_some_and(|m| m.seq > bounds.first),
            messages,
        })
        .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
