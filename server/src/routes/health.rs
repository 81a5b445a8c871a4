//! `GET /healthz`: liveness, with a few numbers an operator wants at a glance.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::app::AppState;

#[derive(Debug, Serialize)]
pub struct Health {
    status: &'static str,
    version: &'static str,
    protocol: u32,
    uptime_secs: u64,
    sessions: usize,
    connections: usize,
}

pub async fn handler(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        protocol: shared::PROTOCOL_VERSION,
        uptime_secs: state.hub.uptime_secs(),
        sessions: state.hub.session_count(),
        connections: state.limiter.open(),
    })
}
