//! The server API, for the app's backend (`/api/v1`), on when `--api-key` is set:
//! - `POST /api/v1/rooms/{room}/messages` `{"name","msg","id"?}`: a chat message from a named
//!   bot or system user, stored with a `seq` and broadcast like any other; answered once stored
//!   with `{"room","seq","ts","id"?,"duplicate"}`. The same `id` again returns the same `seq`
//!   and stores nothing (`duplicate: true`).
//! - `POST /api/v1/broadcast` `{"rooms":[...],"name","msg","id"?}`: the same message to each
//!   room (at most [`MAX_BROADCAST_ROOMS`]), stored in each with its own `seq`; answered with
//!   `{"posted":[...]}`, one answer per room as above, in order. All rooms are checked before
//!   any is written.
//! - `GET /api/v1/rooms`: `{"rooms":[{"room","members"}]}`, the rooms with members (every
//!   node's, clustered).
//! - `GET /api/v1/rooms/{room}/members`: `{"room","members":[{"name","connections"}]}`.
//! - `POST /api/v1/users/{sub}/disconnect`: signs the user `sub` (signed tokens) out on every
//!   node: its connections close with 4401 and its tokens issued until now are refused;
//!   `{"sub","closed"}` counts this node's connections.
//!
//! Every request carries `Authorization: Bearer <key>` with one of the `--api-key` keys,
//! compared in constant time; a wrong or missing key is 401. Rate limited per client address
//! (`--api-rate-per-sec`). Errors are JSON: `{"error": <code>, "reason": <text>}`. With no key
//! configured the API answers 404 to everything.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shared::{Member, MessageText, RoomId, Username, valid_client_id};

use utoipa::{OpenApi, ToSchema};

use super::AppState;
use crate::hub::unix_millis;
use crate::store::NewMessage;

/// Whose message ids the API's messages are: one sender for the whole API, so an `id` is
/// deduplicated across every call and every node.
pub(super) const API_SENDER: &str = "api";

/// A typed refusal of the server API.
#[derive(Debug)]
pub enum ApiError {
    /// No `--api-key`: the API is off (404).
    Disabled,
    /// No key, or not one of the keys (401).
    Unauthorized,
    /// Over `--api-rate-per-sec` for this address (429).
    RateLimited,
    /// A field is missing or invalid (400), with the code naming it.
    Invalid(&'static str, String),
    /// The history store could not take the message now (503; send it again).
    StoreUnavailable(String),
    /// The history store refused the message for good (500).
    StoreRejected(String),
    /// The body is over the limit (413).
    TooLarge(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, reason) = match self {
            Self::Disabled => (
                StatusCode::NOT_FOUND,
                "api_disabled",
                "the server API is off: start the server with --api-key".to_owned(),
            ),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <one of the --api-key keys>".to_owned(),
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many API requests from your address (--api-rate-per-sec)".to_owned(),
            ),
            Self::Invalid(code, reason) => (StatusCode::BAD_REQUEST, code, reason),
            Self::StoreUnavailable(reason) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", reason)
            }
            Self::StoreRejected(reason) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "store_rejected", reason)
            }
            Self::TooLarge(reason) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", reason),
        };
        let extra = match status {
            StatusCode::UNAUTHORIZED => Some((header::WWW_AUTHENTICATE, "Bearer")),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                Some((header::RETRY_AFTER, "1"))
            }
            _ => None,
        };
        super::json_error(status, code, &reason, extra)
    }
}

/// Equal in constant time for inputs of the same length (the length itself is not secret).
fn same_key(given: &[u8], key: &[u8]) -> bool {
    given.len() == key.len() && given.iter().zip(key).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Checks the API is on, the address is under its rate, and the request carries a key.
pub(super) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(), ApiError> {
    let keys = &state.settings.api_keys;
    if keys.is_empty() {
        return Err(ApiError::Disabled);
    }
    if !state
        .api_limiter
        .try_take(state.proxies.client(peer, headers).ip)
    {
        state.metrics.rate_limited.inc();
        return Err(ApiError::RateLimited);
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    // Every key is compared, whichever matches.
    let matched = keys.iter().fold(false, |found, key| {
        found | same_key(given.as_bytes(), key.as_bytes())
    });
    if matched {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

pub(super) fn room_id(raw: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(raw).map_err(|e| ApiError::Invalid("room_invalid", format!("room {e}")))
}

/// The body of `POST /api/v1/rooms/{room}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    /// Who the message is from (a bot or system user): a valid name.
    pub name: String,
    pub msg: String,
    /// Makes the call idempotent: the same id is stored once.
    #[serde(default)]
    pub id: Option<String>,
}

/// The answer to `POST /api/v1/rooms/{room}/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Posted {
    pub room: String,
    pub seq: u64,
    pub ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The id had been stored before: this call stored nothing.
    pub duplicate: bool,
}

/// Rooms one broadcast may name.
pub const MAX_BROADCAST_ROOMS: usize = 100;

/// A message checked and ready to store.
struct Checked {
    name: Username,
    text: MessageText,
    id: Option<String>,
}

fn check(state: &AppState, name: &str, msg: &str, id: Option<String>) -> Result<Checked, ApiError> {
    let s = &state.settings;
    let name = Username::parse(name, s.max_name_chars)
        .map_err(|e| ApiError::Invalid("name_invalid", format!("name {e}")))?;
    let text = MessageText::parse(msg, s.max_text_chars)
        .map_err(|e| ApiError::Invalid("text_invalid", format!("message {e}")))?;
    if let Some(id) = &id
        && !valid_client_id(id)
    {
        return Err(ApiError::Invalid(
            "id_invalid",
            "id must be 1 to 64 printable ASCII characters".into(),
        ));
    }
    Ok(Checked { name, text, id })
}

/// Stores a checked message in `room` (the store's commit broadcasts it).
async fn store(state: &AppState, room: RoomId, m: &Checked) -> Result<Posted, ApiError> {
    let new = NewMessage {
        room: room.clone(),
        name: m.name.to_string(),
        text: m.text.as_str().to_owned(),
        sender: API_SENDER.into(),
        client_id: m.id.clone(),
        ts: unix_millis(),
        key: None,
        origin: None,
    };
    let appended = state
        .store
        .append(new)
        .await
        .map_err(|e| store_failed(state, &e))?;
    Ok(Posted {
        room: room.to_string(),
        seq: appended.seq,
        ts: appended.ts,
        id: m.id.clone(),
        duplicate: appended.duplicate,
    })
}

/// A store error as the API tells it (counted).
pub(super) fn store_failed(state: &AppState, e: &crate::store::StoreError) -> ApiError {
    state.metrics.store_error(e.kind());
    if e.is_transient() {
        ApiError::StoreUnavailable(format!("{e}; it was not stored, send it again"))
    } else {
        ApiError::StoreRejected(format!("{e}; it was not stored"))
    }
}

pub(super) fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::Invalid("bad_request", format!("body: {e}")))
}

/// Posts a chat message from a named bot or system user into a room.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{room}/messages",
    params(("room" = String, Path, description = "The room")),
    request_body = PostMessage,
    responses(
        (status = 201, description = "Stored and broadcast", body = Posted),
        (status = 200, description = "The same id was stored before: nothing new", body = Posted),
        (status = 400, description = "Invalid room, name, text or id", body = ErrorBody),
        (status = 401, description = "Missing or wrong key", body = ErrorBody),
        (status = 503, description = "The store cannot take it now; send it again", body = ErrorBody),
    )
)]
pub async fn post_message(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(room): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Posted>), ApiError> {
    authorize(&state, &headers, peer)?;
    let room = room_id(&room)?;
    let req: PostMessage = body(&bytes)?;
    let checked = check(&state, &req.name, &req.msg, req.id)?;
    let posted = store(&state, room, &checked).await?;
    let status = if posted.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(posted)))
}

/// The body of `POST /api/v1/broadcast`: a chat message (`name`, `msg`) or a data point
/// (`key`, `data`, `delivery`, as `POST /api/v1/rooms/{room}/data` takes it) for each room.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    pub rooms: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub msg: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// Present (even `null`) for a data point.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    #[serde(default)]
    pub delivery: Option<super::api_data::DataDelivery>,
    /// Makes the call idempotent, room by room (messages and durable data).
    #[serde(default)]
    pub id: Option<String>,
}

/// A member that is present is `Some`, even when it is `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// What a broadcast posted in one room.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum PostedAny {
    Message(Posted),
    Data(super::api_data::PostedData),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastPosted {
    pub posted: Vec<PostedAny>,
}

/// Posts one message or data point into several rooms.
#[utoipa::path(
    post,
    path = "/api/v1/broadcast",
    request_body = Broadcast,
    responses(
        (status = 200, description = "Stored in every room, one answer per room", body = BroadcastPosted),
        (status = 400, description = "Invalid rooms, name, text, key, data or id, or neither a message nor a data point: nothing stored", body = ErrorBody),
        (status = 401, description = "Missing or wrong key", body = ErrorBody),
    )
)]
pub async fn broadcast(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<BroadcastPosted>, ApiError> {
    authorize(&state, &headers, peer)?;
    let req: Broadcast = body(&bytes)?;
    if req.rooms.is_empty() || req.rooms.len() > MAX_BROADCAST_ROOMS {
        return Err(ApiError::Invalid(
            "rooms_invalid",
            format!("name 1 to {MAX_BROADCAST_ROOMS} rooms"),
        ));
    }
    let mut rooms: Vec<RoomId> = Vec::with_capacity(req.rooms.len());
    for raw in &req.rooms {
        let room = room_id(raw)?;
        // A room named twice gets the message once.
        if !rooms.contains(&room) {
            rooms.push(room);
        }
    }
    // Everything is checked before anything is written.
    let mut posted = Vec::with_capacity(rooms.len());
    match req {
        Broadcast {
            name: Some(name),
            msg: Some(msg),
            key: None,
            data: None,
            delivery: None,
            id,
            ..
        } => {
            let checked = check(&state, &name, &msg, id)?;
            for room in rooms {
                posted.push(PostedAny::Message(store(&state, room, &checked).await?));
            }
        }
        Broadcast {
            name: None,
            msg: None,
            key: Some(key),
            data: Some(data),
            delivery: Some(delivery),
            id,
            ..
        } => {
            let point = super::api_data::check(&state, key, &data, delivery, id)?;
            for room in rooms {
                let (_, one) = super::api_data::publish(&state, room, &point).await?;
                posted.push(PostedAny::Data(one));
            }
        }
        _ => {
            return Err(ApiError::Invalid(
                "bad_request",
                "a broadcast carries either name and msg, or key, data and delivery".into(),
            ));
        }
    }
    Ok(Json(BroadcastPosted { posted }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomSummary {
    pub room: String,
    pub members: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rooms {
    pub rooms: Vec<RoomSummary>,
}

/// The rooms with members, on every node.
#[utoipa::path(
    get,
    path = "/api/v1/rooms",
    responses(
        (status = 200, description = "Rooms and member counts", body = Rooms),
        (status = 401, description = "Missing or wrong key", body = ErrorBody),
    )
)]
pub async fn rooms(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Rooms>, ApiError> {
    authorize(&state, &headers, peer)?;
    let rooms = state
        .hub
        .rooms_with_members()
        .into_iter()
        .map(|(room, members)| RoomSummary {
            room: room.to_string(),
            members,
        })
        .collect();
    Ok(Json(Rooms { rooms }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Members {
    pub room: String,
    pub members: Vec<MemberDoc>,
}

/// A member as the API lists it (the protocol's `Member`).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDoc {
    pub name: String,
    /// Connections the member has open, on every node.
    pub connections: u32,
}

impl From<Member> for MemberDoc {
    fn from(m: Member) -> Self {
        Self {
            name: m.name,
            connections: m.connections,
        }
    }
}

/// An error's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The code: `api_disabled`, `unauthorized`, `rate_limited`, `room_invalid`,
    /// `rooms_invalid`, `name_invalid`, `text_invalid`, `id_invalid`, `key_invalid`,
    /// `bad_request`, `too_large`, `store_unavailable`, `store_rejected`.
    pub error: String,
    pub reason: String,
}

/// The OpenAPI document of the server API, from the handlers and their types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard server API", description = "For the app's backend: post messages into rooms, list rooms and members."),
    paths(post_message, super::api_data::post_data, broadcast, rooms, members, disconnect_user),
    modifiers(&BearerAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/v1/openapi.json` (while the API is on).
pub async fn openapi(
    State(state): State<AppState>,
) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    if state.settings.api_keys.is_empty() {
        return Err(ApiError::Disabled);
    }
    Ok(Json(ApiDoc::openapi()))
}

/// A room's members, on every node.
#[utoipa::path(
    get,
    path = "/api/v1/rooms/{room}/members",
    params(("room" = String, Path, description = "The room")),
    responses(
        (status = 200, description = "The members", body = Members),
        (status = 400, description = "Invalid room", body = ErrorBody),
        (status = 401, description = "Missing or wrong key", body = ErrorBody),
    )
)]
pub async fn members(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<Json<Members>, ApiError> {
    authorize(&state, &headers, peer)?;
    let room = room_id(&room)?;
    let members = state
        .hub
        .members_of(&room)
        .into_iter()
        .map(MemberDoc::from)
        .collect();
    Ok(Json(Members {
        room: room.to_string(),
        members,
    }))
}

/// The answer to `POST /api/v1/users/{sub}/disconnect`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Disconnected {
    pub sub: String,
    /// Connections closed on the node that took the call (clustered, the other nodes close
    /// theirs as they receive the order).
    pub closed: usize,
}

/// Closes every connection of a user of signed tokens, on every node, with close 4401: the
/// stock client then asks the app's token URL for a new token before reconnecting, so an app
/// that stops issuing tokens to the user keeps them out.
#[utoipa::path(
    post,
    path = "/api/v1/users/{sub}/disconnect",
    params(("sub" = String, Path, description = "The user (the tokens' `sub`)")),
    responses(
        (status = 200, description = "Disconnected", body = Disconnected),
        (status = 401, description = "Missing or wrong key", body = ErrorBody),
        (status = 503, description = "Clustered and Redis is unreachable: other nodes were not told", body = ErrorBody),
    )
)]
pub async fn disconnect_user(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(sub): Path<String>,
) -> Result<Json<Disconnected>, ApiError> {
    authorize(&state, &headers, peer)?;
    let at = crate::auth::now_secs();
    let closed = state.hub.users.sign_out(&sub, at);
    if let Some(cluster) = &state.cluster {
        cluster
            .disconnect_user(&sub, at)
            .await
            .map_err(|e| ApiError::StoreUnavailable(e.to_string()))?;
    }
    tracing::info!(sub = %sub, closed, "user disconnected by the server API");
    Ok(Json(Disconnected { sub, closed }))
}

#[cfg(test)]
mod tests {
    use super::same_key;

    #[test]
    fn keys_match_only_when_equal() {
        assert!(same_key(b"k3y-0123456789", b"k3y-0123456789"));
        assert!(!same_key(b"k3y-0123456789", b"k3y-0123456788"));
        assert!(!same_key(b"k3y", b"k3y-0123456789"));
        assert!(!same_key(b"", b"k3y"));
    }
}
