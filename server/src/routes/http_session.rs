//! The HTTP transports' endpoints (protocol v3 only; see [`crate::session::http`]):
//! - `GET /v3/sse?name=&token=&feed=`: opens a session and streams its frames as Server-Sent
//!   Events. With `Last-Event-ID: <secret>:<n>` (what `EventSource` sends when it reconnects)
//!   or `?last_event_id=` it resumes that session after frame `n`, if this node still holds it
//!   and still has every frame after `n`; otherwise it opens a new session.
//! - `POST /v3/poll?name=&token=&feed=` with an empty body opens a session for long-polling;
//!   `POST /v3/poll` with `{"session":S,"last":N}` acknowledges frames up to `N` and answers
//!   with the next ones, waiting up to one heartbeat interval. The answer:
//!   `{"session":S,"frames":[...],"last":N,"close":{"code","reason"}?}`.
//! - `POST /v3/send` with `{"session":S,"frames":[...],"leave"?:true}`: client frames, in
//!   order (204 once the session has them).
//!
//! Clustered, a poll or a POST for a session another node holds is forwarded to it through
//! Redis ([`serve_forwarded`] is the holding node's side), and its answer comes back the same
//! way: no sticky sessions needed.
//!
//! Each is checked against the Origin allowlist as the WebSocket upgrade is; a new session
//! takes a connection slot (per-IP caps count every transport). Errors are typed JSON:
//! `{"error":<code>,"reason":<text>}`.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use std::time::Duration;

use tokio::sync::mpsc;

use super::AppState;
use crate::client_addr::ClientAddr;
use crate::cluster::{Cluster, Forwarded};
use crate::limits::AdmissionError;
use crate::session::http::{self, Channel, MAX_SEND_FRAMES, Transport};
use crate::session::{Incoming, Negotiated, SessionParams};

/// Who connects, as on `/ws` (no room: v3 joins name their rooms).
#[derive(Debug, Default, Deserialize)]
pub struct OpenQuery {
    name: Option<String>,
    token: Option<String>,
    /// A signed user token (JWT), required when the server has `--jwt-*` set.
    access_token: Option<String>,
    /// `feed=0` (or `false`) opts out of the live stats feed.
    feed: Option<String>,
    /// A resume position for clients that cannot set `Last-Event-ID`.
    last_event_id: Option<String>,
}

/// A typed refusal.
#[derive(Debug)]
pub enum HttpError {
    /// The Origin is not in `--allowed-origins` (403).
    Origin(String),
    /// A connection cap was reached (503 or 429).
    Admission(AdmissionError),
    /// No such session here: it ended, was never opened, or the secret is wrong (404).
    SessionUnknown,
    /// Frames the client has not acknowledged are gone; open a new session (409).
    PositionLost,
    /// The body is not what the endpoint takes (400).
    BadRequest(String),
    /// The body, or a frame in it, is over the limits (413).
    TooBig(String),
    /// Clustered: the session is on another node and the backplane is unreachable (503).
    Unavailable,
    /// Tokens are on and this one is missing, invalid or expired (401).
    Unauthorized(crate::auth::Refused),
}

impl HttpError {
    /// The status, the code and the reason.
    fn parts(self) -> (StatusCode, &'static str, String) {
        let (status, code, reason) = match self {
            Self::Origin(origin) => (
                StatusCode::FORBIDDEN,
                "origin_refused",
                format!("Origin {origin} is not allowed here (see --allowed-origins)"),
            ),
            Self::Admission(AdmissionError::ServerFull) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_full",
                "the server is at its connection limit (--max-connections); retry later".into(),
            ),
            Self::Admission(AdmissionError::TooManyFromIp) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                "too many connections from your address (--max-connections-per-ip)".into(),
            ),
            Self::SessionUnknown => (
                StatusCode::NOT_FOUND,
                "session_unknown",
                "no such session on this server: open a new one".into(),
            ),
            Self::PositionLost => (
                StatusCode::CONFLICT,
                "position_lost",
                "frames after that position are gone: open a new session".into(),
            ),
            Self::BadRequest(reason) => (StatusCode::BAD_REQUEST, "bad_request", reason),
            Self::TooBig(reason) => (StatusCode::PAYLOAD_TOO_LARGE, "too_big", reason),
            Self::Unauthorized(refused) => (
                StatusCode::UNAUTHORIZED,
                refused.code.name(),
                refused.reason,
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "backplane_unavailable",
                "the session is on another node and Redis is unreachable; retry".into(),
            ),
        };
        (status, code, reason)
    }

    /// The status and the JSON body (what a forwarded request's answer carries back).
    fn status_and_body(self) -> (StatusCode, String) {
        let (status, code, reason) = self.parts();
        (
            status,
            serde_json::json!({ "error": code, "reason": reason }).to_string(),
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let (status, code, reason) = self.parts();
        let retry = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        super::json_error(
            status,
            code,
            &reason,
            retry.then_some((header::RETRY_AFTER, "5")),
        )
    }
}

fn check_origin(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> Result<(), HttpError> {
    super::check_origin(state, headers, peer).map_err(HttpError::Origin)
}

/// Opens a new session over `transport`.
fn open(
    state: &AppState,
    client: ClientAddr,
    query: OpenQuery,
    transport: Transport,
) -> Result<std::sync::Arc<Channel>, HttpError> {
    let user = state
        .authenticate(query.access_token.as_deref())
        .map_err(HttpError::Unauthorized)?;
    let permit = state
        .limiter
        .try_acquire(client.ip)
        .map_err(HttpError::Admission)?;
    let feed = !matches!(query.feed.as_deref(), Some("0" | "false" | "off"));
    let params = SessionParams {
        name: query.name,
        token: query.token,
        user,
        feed,
        ..state.session_params(client, permit, Negotiated::V3, transport.name())
    };
    Ok(state.http_sessions.open(params, transport))
}

/// `GET /v3/sse`.
pub async fn sse(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<OpenQuery>,
) -> Result<Response, HttpError> {
    check_origin(&state, &headers, peer)?;
    let client = state.proxies.client(peer, &headers);
    let keep = state.settings.outbound_queue;
    let resume_from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.last_event_id.as_deref())
        .and_then(http::parse_event_id)
        .and_then(|(secret, after)| Some((state.http_sessions.get(secret)?, after)));
    let resumed = resume_from.and_then(|(chan, after)| {
        let stream = chan.attach_stream(after, keep).ok()?;
        Some((chan, stream, after))
    });
    let (chan, stream, after) = match resumed {
        Some(resumed) => resumed,
        None => {
            let chan = open(&state, client, query, Transport::Sse)?;
            let stream = chan
                .attach_stream(0, keep)
                .map_err(|http::PositionLost| HttpError::PositionLost)?;
            (chan, stream, 0)
        }
    };
    // `retry:` tells EventSource how soon to reconnect; a first heartbeat makes the response
    // start at once and tells the client the interval.
    let interval = state.settings.heartbeat_interval();
    let prelude = futures_util::stream::once(async move {
        Ok::<_, std::convert::Infallible>(format!("retry: 1000\n{}", http::ping_event(interval)))
    });
    let body = Body::from_stream(prelude.chain(chan.sse_body(stream, after, (keep, interval))));
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // nginx: do not buffer this response.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollBody {
    session: String,
    last: u64,
}

/// `POST /v3/poll`.
pub async fn poll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<OpenQuery>,
    body: Bytes,
) -> Result<Response, HttpError> {
    check_origin(&state, &headers, peer)?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let req: PollBody = serde_json::from_slice(&body)
            .map_err(|e| HttpError::BadRequest(format!("poll body: {e}")))?;
        if state.http_sessions.get(&req.session).is_none()
            && let Some((cluster, owner)) = elsewhere(&state, &req.session)
        {
            let wait = state.settings.heartbeat_interval() + FORWARD_MARGIN;
            return match cluster
                .forward_poll(owner, req.session.clone(), req.last, wait)
                .await
            {
                Ok(Some((status, body))) => Ok(json_response(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                    body,
                )),
                Ok(None) => Err(HttpError::SessionUnknown),
                Err(_) => Err(HttpError::Unavailable),
            };
        }
        return Ok(json_response(
            StatusCode::OK,
            local_poll(&state, &req.session, req.last).await?,
        ));
    }
    let client = state.proxies.client(peer, &headers);
    let chan = open(&state, client, query, Transport::Poll)?;
    Ok(json_response(
        StatusCode::OK,
        poll_chan(&state, &chan, 0).await?,
    ))
}

/// How much longer than a poll's own wait a forwarded poll waits for its answer.
const FORWARD_MARGIN: Duration = Duration::from_secs(5);

/// The node holding the HTTP session with this secret, when it is another node of the cluster.
fn elsewhere<'a>(state: &'a AppState, secret: &'a str) -> Option<(&'a Cluster, &'a str)> {
    let cluster = state.cluster.as_deref()?;
    let owner = http::owner_of(secret).filter(|owner| *owner != cluster.node())?;
    Some((cluster, owner))
}

/// A poll of a session this node holds: the answer's body.
async fn local_poll(state: &AppState, secret: &str, last: u64) -> Result<String, HttpError> {
    let chan = state
        .http_sessions
        .get(secret)
        .ok_or(HttpError::SessionUnknown)?;
    poll_chan(state, &chan, last).await
}

async fn poll_chan(state: &AppState, chan: &Channel, after: u64) -> Result<String, HttpError> {
    let wait = state.settings.heartbeat_interval();
    let (frames, close) = chan
        .poll(after, state.settings.outbound_queue, wait)
        .await
        .map_err(|http::PositionLost| HttpError::PositionLost)?;
    Ok(http::poll_answer(chan.secret(), after, &frames, close))
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Serves what other nodes forward to this node's HTTP sessions, until the server stops.
pub async fn serve_forwarded(mut forwarded: mpsc::UnboundedReceiver<Forwarded>, state: AppState) {
    let Some(cluster) = state.cluster.clone() else {
        return;
    };
    loop {
        let item = tokio::select! {
            item = forwarded.recv() => match item {
                Some(item) => item,
                None => return,
            },
            () = state.shutdown.cancelled() => return,
        };
        match item {
            // Off this loop, so that one session slow to take its input delays no other. A
            // client sends its next POST only once this one is answered, so its frames stay in
            // order.
            Forwarded::Input {
                session,
                frames,
                leave,
                reply_to,
            } => {
                let (state, cluster) = (state.clone(), cluster.clone());
                state.tracker.clone().spawn(async move {
                    let (status, body) = match deliver(&state, &session, frames, leave).await {
                        Ok(()) => (StatusCode::NO_CONTENT, String::new()),
                        Err(e) => e.status_and_body(),
                    };
                    cluster.answer(&reply_to, status.as_u16(), body).await;
                });
            }
            Forwarded::Poll {
                session,
                last,
                reply_to,
            } => {
                let (state, cluster) = (state.clone(), cluster.clone());
                state.tracker.clone().spawn(async move {
                    let (status, body) = match local_poll(&state, &session, last).await {
                        Ok(body) => (StatusCode::OK, body),
                        Err(e) => e.status_and_body(),
                    };
                    cluster.answer(&reply_to, status.as_u16(), body).await;
                });
            }
        }
    }
}

/// Feeds frames to a session this node holds, in order; then, with `leave`, its end.
async fn deliver(
    state: &AppState,
    secret: &str,
    frames: Vec<String>,
    leave: bool,
) -> Result<(), HttpError> {
    let chan = state
        .http_sessions
        .get(secret)
        .ok_or(HttpError::SessionUnknown)?;
    if leave {
        chan.leaving();
    }
    for frame in frames {
        chan.send(Incoming::Text(frame.into()))
            .await
            .map_err(|http::Ended| HttpError::SessionUnknown)?;
    }
    if leave {
        let _ = chan.send(Incoming::Left).await;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody<'a> {
    session: String,
    #[serde(default, borrow)]
    frames: Vec<&'a RawValue>,
    #[serde(default)]
    leave: bool,
}

/// `POST /v3/send`.
pub async fn send(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    check_origin(&state, &headers, peer)?;
    let max = state.settings.max_message_bytes;
    let req: SendBody = serde_json::from_slice(&body)
        .map_err(|e| HttpError::BadRequest(format!("send body: {e}")))?;
    if req.frames.len() > MAX_SEND_FRAMES {
        return Err(HttpError::TooBig(format!(
            "{} frames in one POST; at most {MAX_SEND_FRAMES}",
            req.frames.len()
        )));
    }
    if let Some(big) = req.frames.iter().find(|f| f.get().len() > max) {
        return Err(HttpError::TooBig(format!(
            "a frame of {} bytes; at most {max} (--max-message-bytes)",
            big.get().len()
        )));
    }
    let frames: Vec<String> = req.frames.iter().map(|f| f.get().to_owned()).collect();
    if state.http_sessions.get(&req.session).is_none()
        && let Some((cluster, owner)) = elsewhere(&state, &req.session)
    {
        let forwarded = cluster
            .forward_input(
                owner,
                req.session.clone(),
                frames,
                req.leave,
                FORWARD_MARGIN,
            )
            .await;
        return match forwarded {
            Ok(Some((204, _))) => Ok(StatusCode::NO_CONTENT.into_response()),
            Ok(Some((status, body))) => Ok(json_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                body,
            )),
            Ok(None) => Err(HttpError::SessionUnknown),
            Err(_) => Err(HttpError::Unavailable),
        };
    }
    deliver(&state, &req.session, frames, req.leave).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The largest `/v3/send` body: every frame at the size limit, with room for the envelope.
pub fn send_body_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(MAX_SEND_FRAMES)
        .saturating_add(64 * 1024)
}
