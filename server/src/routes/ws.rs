//! `GET /ws?name=&room=&feed=`: the chat WebSocket.

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AppState, Refusal};
use crate::session::{self, Negotiated, SessionParams};

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// Display name; absent for a legacy client that names itself in its first frame.
    name: Option<String>,
    /// The same, as the WebAPI tutorial page sends it.
    username: Option<String>,
    /// Room to join; default `lobby`.
    room: Option<String>,
    /// `feed=0` (or `false`) opts out of the live stats feed.
    feed: Option<String>,
    /// The client's secret: its name is held by this token across reconnects and tabs.
    token: Option<String>,
    /// A signed user token (JWT), required when the server has `--jwt-*` set.
    access_token: Option<String>,
    /// The client's last known position in the room: history `epoch` and last `seq` seen.
    epoch: Option<String>,
    seq: Option<u64>,
}

pub async fn handler(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
) -> Response {
    let client = state.proxies.client(peer, &headers);
    let (upgrade, permit) = match super::admit(&state, upgrade, &headers, peer) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let user = match state.authenticate(query.access_token.as_deref()) {
        Ok(user) => user,
        Err(refused) => return Refusal::Unauthorized(refused).into_response(),
    };
    // A v3 client asks for `switchboard.v3`; the answer echoes what was picked.
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    let (mut protocol, echo) = Negotiated::from_offered(offered);
    // Stock clients from before subprotocols send a token and no subprotocol; tutorial pages
    // never send a token. Such a client (a tab open across an upgrade, a cached bundle) keeps
    // protocol v2 instead of being served as a plain page.
    if protocol == Negotiated::Plain && query.token.is_some() {
        protocol = Negotiated::V2;
    }
    let upgrade = match echo {
        Some(picked) => upgrade.protocols([picked]),
        None => upgrade,
    };
    // A plain client could not display the feed.
    // One room from the query (v2, plain): a room the token does not allow is refused here.
    if protocol != Negotiated::V3
        && let Some(user) = &user
        && let Ok(room) =
            shared::RoomId::parse(query.room.as_deref().unwrap_or(shared::RoomId::DEFAULT))
        && !user.rooms.allows(&room)
    {
        return Refusal::RoomForbidden(room).into_response();
    }
    let feed = protocol != Negotiated::Plain
        && !matches!(query.feed.as_deref(), Some("0" | "false" | "off"));
    let params = SessionParams {
        room: query.room,
        name: query.name.or(query.username),
        token: query.token,
        user,
        position: query.epoch.map(|epoch| (epoch, query.seq.unwrap_or(0))),
        feed,
        ..state.session_params(client, permit, protocol, "ws")
    };
    let tracker = state.tracker.clone();
    upgrade.on_upgrade(move |socket| tracker.track_future(session::ws::run(socket, params)))
}
