//! `GET /healthz`: liveness, with a few numbers an operator wants at a glance.
//! `GET /readyz`: whether a load balancer should send this node new clients.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::AppState;

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

#[derive(Debug, Serialize)]
pub struct Readiness {
    ready: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// 200 when this node can take clients; 503 while it shuts down or, clustered, while Redis is
/// unreachable (its sessions carry on; new ones are better served by a node that is ready).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let verdict = if state.shutdown.is_cancelled() {
        Err("shutting down")
    } else {
        state.cluster.as_ref().map_or(Ok(()), |c| c.ready())
    };
    let status = if verdict.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready: verdict.is_ok(),
            reason: verdict.err(),
        }),
    )
}
