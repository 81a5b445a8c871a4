//! `POST /api/v1/rooms/{room}/data` `{"key","data","delivery","id"?}`: the app's own live data
//! into a room (server API, same key and limits as the rest of `/api/v1`). `data` is any JSON;
//! members get a typed `data` frame (`{"type":"data","room","key","data","delivery","seq"?,
//! "ts"}`). By delivery:
//! - `durable`: stored with the room's next `seq` and replayed on resume, exactly like a chat
//!   message (idempotent by `id`: the same id again is stored once). 201, or 200 for a
//!   duplicate.
//! - `latest`: the last value per key is kept (it survives restarts) and sent to each member
//!   right after its join. 201.
//! - `volatile`: never stored; the first thing dropped for a reader that falls behind (a
//!   reader whose queue is half full skips it, and is never closed for it). 202.
//!
//! Tutorial pages (plain clients) never get data frames: they could not display them.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use shared::{DataMsg, Delivery, RawJson, RoomId, valid_client_id};
use utoipa::ToSchema;

use super::AppState;
use super::api_v1::{API_SENDER, ApiError, ErrorBody, authorize, body, room_id, store_failed};
use crate::hub::unix_millis;
use crate::store::{Latest, NewMessage};

/// The longest data key.
pub const MAX_KEY_CHARS: usize = 64;

/// How a data point is delivered (see the module documentation).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataDelivery {
    Durable,
    Latest,
    Volatile,
}

impl From<DataDelivery> for Delivery {
    fn from(d: DataDelivery) -> Self {
        match d {
            DataDelivery::Durable => Self::Durable,
            DataDelivery::Latest => Self::Latest,
            DataDelivery::Volatile => Self::Volatile,
        }
    }
}

/// The body of `POST /api/v1/rooms/{room}/data`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostData {
    /// What the value is of: 1 to 64 characters of `A-Z a-z 0-9 . _ - :`.
    pub key: String,
    /// Any JSON value.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub delivery: DataDelivery,
    /// `durable` only: makes the call idempotent (shared with the room's message ids).
    #[serde(default)]
    pub id: Option<String>,
}

/// The answer to `POST /api/v1/rooms/{room}/data`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PostedData {
    pub room: String,
    pub key: String,
    pub delivery: DataDelivery,
    /// `durable`: the data point's place in the room's history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub ts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `durable`: the id had been stored before; this call stored nothing.
    pub duplicate: bool,
}

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_CHARS).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// Publishes a data point in a room.
#[utoipa::path(
    post,
    path = "/api/v1/rooms/{room}/data",
    params(("room" = String, Path, description = "The room")),
    request_body = PostData,
    responses(
        (status = 201, description = "Durable: stored and broadcast. Latest: kept and broadcast", body = PostedData),
        (status = 200, description = "Durable: the same id was stored before; nothing new", body = PostedData),
        (status = 202, description = "Volatile: broadcast, not stored", body = PostedData),
        (status = 400, description = "Invalid room, key, id or body", body = ErrorBody),
        (status = 401, description = "Missing or wrong key", body = ErrorBody),
        (status = 413, description = "The data is over --max-message-bytes", body = ErrorBody),
        (status = 503, description = "The store cannot take it now; send it again", body = ErrorBody),
    )
)]
pub async fn post_data(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(room): Path<String>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<PostedData>), ApiError> {
    authorize(&state, &headers, peer)?;
    let room = room_id(&room)?;
    let req: PostData = body(&bytes)?;
    let point = check(&state, req.key, &req.data, req.delivery, req.id)?;
    let (status, posted) = publish(&state, room, &point).await?;
    Ok((status, Json(posted)))
}

/// A data point checked and ready to publish (in any number of rooms).
pub(super) struct Point {
    key: String,
    data: RawJson,
    delivery: DataDelivery,
    id: Option<String>,
}

/// Checks a data point: its key, its id (durable only), its size.
pub(super) fn check(
    state: &AppState,
    key: String,
    data: &serde_json::Value,
    delivery: DataDelivery,
    id: Option<String>,
) -> Result<Point, ApiError> {
    if !valid_key(&key) {
        return Err(ApiError::Invalid(
            "key_invalid",
            format!("key must be 1 to {MAX_KEY_CHARS} characters of A-Z a-z 0-9 . _ - :"),
        ));
    }
    if let Some(id) = &id
        && !(valid_client_id(id) && matches!(delivery, DataDelivery::Durable))
    {
        return Err(ApiError::Invalid(
            "id_invalid",
            "id is for durable data only, 1 to 64 printable ASCII characters".into(),
        ));
    }
    let data = RawJson::of(data);
    let max = state.settings.max_message_bytes;
    if data.as_str().len() > max {
        return Err(ApiError::TooLarge(format!(
            "data is {} bytes of JSON, over --max-message-bytes ({max})",
            data.as_str().len()
        )));
    }
    Ok(Point {
        key,
        data,
        delivery,
        id,
    })
}

/// Publishes a checked data point in a room: the status to answer and what to say.
pub(super) async fn publish(
    state: &AppState,
    room: RoomId,
    point: &Point,
) -> Result<(StatusCode, PostedData), ApiError> {
    let delivery = Delivery::from(point.delivery);
    state
        .metrics
        .data_published
        .get_or_create(&crate::metrics::kind(delivery.name()))
        .inc();
    let ts = unix_millis();
    let mut posted = PostedData {
        room: room.to_string(),
        key: point.key.clone(),
        delivery: point.delivery,
        seq: None,
        ts,
        id: None,
        duplicate: false,
    };
    let status = match point.delivery {
        DataDelivery::Durable => {
            // A history entry: the store's commit broadcasts it (on every node), in seq order
            // with the room's chat.
            let new = NewMessage {
                room,
                name: API_SENDER.into(),
                text: point.data.as_str().to_owned(),
                sender: API_SENDER.into(),
                client_id: point.id.clone(),
                ts,
                key: Some(point.key.clone()),
                origin: None,
            };
            let appended = state
                .store
                .append(new)
                .await
                .map_err(|e| store_failed(state, &e))?;
            posted.seq = Some(appended.seq);
            posted.ts = appended.ts;
            posted.id.clone_from(&point.id);
            posted.duplicate = appended.duplicate;
            if appended.duplicate {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            }
        }
        DataDelivery::Latest => {
            let latest = Latest {
                room: room.clone(),
                key: point.key.clone(),
                data: point.data.as_str().to_owned(),
                ts,
            };
            state
                .store
                .put_latest(latest)
                .await
                .map_err(|e| store_failed(state, &e))?;
            broadcast(state, room, point, ts).await?;
            StatusCode::CREATED
        }
        DataDelivery::Volatile => {
            broadcast(state, room, point, ts).await?;
            StatusCode::ACCEPTED
        }
    };
    Ok((status, posted))
}

/// Sends a data point that is not a history entry to the room's members on this node, and
/// clustered, to the other nodes'.
async fn broadcast(state: &AppState, room: RoomId, point: &Point, ts: u64) -> Result<(), ApiError> {
    let msg = DataMsg {
        room: room.to_string(),
        key: point.key.clone(),
        data: point.data.clone(),
        delivery: point.delivery.into(),
        seq: None,
        ts,
    };
    state.hub.publish_data(msg.clone());
    if let Some(cluster) = &state.cluster {
        cluster
            .publish_data(msg)
            .await
            .map_err(|e| ApiError::StoreUnavailable(format!("{e}; other nodes were not told")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn keys_are_short_and_plain() {
        for good in ["cpu", "load.1m", "host-1:mem_used", &"k".repeat(64)] {
            assert!(valid_key(good), "{good}");
        }
        for bad in ["", "a b", "a/b", "é", &"k".repeat(65), "a\"b"] {
            assert!(!valid_key(bad), "{bad}");
        }
    }
}
