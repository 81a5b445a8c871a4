//! HTTP endpoints: `/ws` (chat), `/v3/sse`, `/v3/poll` and `/v3/send` (chat where WebSockets
//! do not get through), `/echo`, `/healthz`, `/readyz`, `/metrics`, `/api` history,
//! and the state they share ([`AppState`]).

pub mod api_data;
pub mod api_v1;
pub mod echo;
pub mod health;
pub mod history;
pub mod http_session;
pub mod metrics;
pub mod relay;
mod state;
pub mod ws;

pub use state::AppState;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::limits::{AdmissionError, ConnectionPermit};

/// The answer to a plain HTTP request on a WebSocket endpoint: 400 with a body saying what to do.
pub fn upgrade_required(rejection: WebSocketUpgradeRejection) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!(
            "This is a WebSocket endpoint: it needs a WebSocket upgrade request \
             (GET with `Connection: Upgrade` and `Upgrade: websocket`), for example \
             `new WebSocket(\"ws://host/ws?name=ada\")` in a browser.\n({rejection})\n"
        ),
    )
        .into_response()
}

/// A typed refusal of the JSON endpoints (`/v3/*`, `/api/v1/*`): `status` with the body
/// `{"error": <code>, "reason": <text>}`, and one more header when given (`Retry-After`,
/// `WWW-Authenticate`).
pub fn json_error(
    status: StatusCode,
    code: &str,
    reason: &str,
    extra: Option<(header::HeaderName, &'static str)>,
) -> Response {
    let body = serde_json::json!({ "error": code, "reason": reason }).to_string();
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some((name, value)) = extra {
        response
            .headers_mut()
            .insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// 401 for a connection whose user token was refused, with the typed code and reason (and
/// `WWW-Authenticate`, as RFC 6750 asks).
pub fn unauthorized(refused: &crate::auth::Refused) -> Response {
    json_error(
        StatusCode::UNAUTHORIZED,
        refused.code.name(),
        &refused.reason,
        Some((header::WWW_AUTHENTICATE, "Bearer")),
    )
}

/// 403 for a room the user token does not allow.
pub fn room_forbidden(room: &shared::RoomId) -> Response {
    json_error(
        StatusCode::FORBIDDEN,
        shared::ErrorCode::RoomForbidden.name(),
        &format!("your token does not allow room \"{room}\" (its `rooms` claim)"),
        None,
    )
}

/// Why a WebSocket request was refused before the upgrade.
#[derive(Debug)]
pub enum Refusal {
    /// A plain HTTP request, or a malformed upgrade (400).
    NotUpgrade(WebSocketUpgradeRejection),
    /// The Origin is not in `--allowed-origins` (403).
    Origin(String),
    /// A connection cap was reached (503 or 429).
    Admission(AdmissionError),
    /// Tokens are on and this one is missing, invalid or expired (401).
    Unauthorized(crate::auth::Refused),
    /// The token does not allow the query's room (403).
    RoomForbidden(shared::RoomId),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized(refused) => unauthorized(&refused),
            Self::RoomForbidden(room) => room_forbidden(&room),
            Self::NotUpgrade(rejection) => upgrade_required(rejection),
            Self::Origin(origin) => (
                StatusCode::FORBIDDEN,
                format!("Origin {origin} is not allowed to open a WebSocket here (see --allowed-origins).\n"),
            )
                .into_response(),
            Self::Admission(AdmissionError::ServerFull) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "The server is at its connection limit (--max-connections); retry later.\n",
            )
                .into_response(),
            Self::Admission(AdmissionError::TooManyFromIp) => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "5")],
                "Too many connections from your address (--max-connections-per-ip).\n",
            )
                .into_response(),
        }
    }
}

/// Checks a browser's Origin against the allowlist (see
/// [`OriginPolicy::allows_request`](crate::limits::OriginPolicy::allows_request)): `Err` with the
/// Origin refused.
pub fn check_origin(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> Result<(), String> {
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("(not UTF-8)"));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if state
        .origins
        .allows_request(origin, host, state.proxies.is_proxy(peer))
    {
        Ok(())
    } else {
        tracing::info!(origin = origin.unwrap_or(""), "origin refused");
        Err(origin.unwrap_or("").to_owned())
    }
}

/// Checks run before any upgrade: a real upgrade request, the Origin allowlist, then the
/// connection caps. Returns the upgrade with the server's WebSocket limits applied and the
/// connection's slot.
pub fn admit(
    state: &AppState,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(WebSocketUpgrade, ConnectionPermit), Refusal> {
    let upgrade = upgrade.map_err(Refusal::NotUpgrade)?;
    check_origin(state, headers, peer).map_err(Refusal::Origin)?;
    let ip = state.proxies.client(peer, headers).ip;
    let permit = state.limiter.try_acquire(ip).map_err(Refusal::Admission)?;
    Ok((state.configure(upgrade), permit))
}
