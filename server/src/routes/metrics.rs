//! `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

pub async fn handler(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(
        state.limiter.open(),
        state.hub.session_count(),
        state.hub.room_count(),
        &state.http_sessions.open_by_transport(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
