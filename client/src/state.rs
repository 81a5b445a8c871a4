//! The session: one connection (protocol v3) carrying every room the user has joined.
//!
//! Connection events are applied here, in order; components only read the signals and call
//! the session's methods. On every `hello` (the first frame of each connection) each room is
//! joined again with its history position, so a reconnect resumes every room without gap or
//! duplicate; on each room's `subscribed` that room's outbox is sent again (the server
//! deduplicates by id).

use std::collections::VecDeque;

use leptos::prelude::*;
use shared::{Command, ErrorCode, Limits, PROTOCOL_V3, RoomId, ServerMsg, Stats};

use crate::connection::{ConnEvent, ConnState, Connection};
use crate::room::{RoomState, RoomStatus, next_id};
use crate::transport::Transport;
use crate::{endpoint, identity};

/// Live-feed points kept for the chart (one a second).
pub const CHART_POINTS: usize = 60;
/// Socket events kept in the diagnostics log.
const MAX_EVENTS: usize = 12;
/// Rooms a page joins at most when the server has not said its limit yet.
const DEFAULT_MAX_ROOMS: usize = 32;
const ROOMS_KEY: &str = "switchboard.rooms";

/// Who joins which rooms (the first is shown).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinInfo {
    pub name: String,
    pub rooms: Vec<RoomId>,
}

/// Parses a comma-separated room list (`?room=a,b`, the join form), without duplicates.
pub fn parse_rooms(list: &str) -> Result<Vec<RoomId>, String> {
    let mut rooms: Vec<RoomId> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let room = RoomId::parse(part).map_err(|e| format!("Room \u{201c}{part}\u{201d} {e}."))?;
        if !rooms.contains(&room) {
            rooms.push(room);
        }
    }
    if rooms.is_empty() {
        return Err("Name at least one room.".into());
    }
    Ok(rooms)
}

/// One entry of the socket event log (open / message / close / error).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: u64,
    pub at_ms: f64,
    pub kind: &'static str,
    pub detail: String,
}

/// A problem to show the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub title: String,
    pub detail: String,
}

#[derive(Clone, Copy)]
pub struct Session {
    pub my_name: StoredValue<String>,
    pub conn: RwSignal<ConnState>,
    /// The way the connection goes (WebSocket, SSE, long-polling).
    pub transport: RwSignal<Transport>,
    pub peer_addr: RwSignal<Option<String>>,
    pub server_version: RwSignal<Option<String>>,
    pub limits: RwSignal<Option<Limits>>,
    pub max_rooms: RwSignal<usize>,
    pub stats: RwSignal<VecDeque<Stats>>,
    pub problem: RwSignal<Option<Problem>>,
    pub log: RwSignal<VecDeque<LogEntry>>,
    /// Frames received since the page loaded.
    pub received: RwSignal<u64>,
    /// The joined rooms, in the order they were joined.
    pub rooms: RwSignal<Vec<RoomState>>,
    /// The room shown.
    pub active: RwSignal<Option<RoomId>>,
    hellos: StoredValue<u32>,
    /// Whether the current connection has said `hello`: joins sent before it would be sent
    /// again by the `hello` handler (and refused as `already_joined`).
    ready: StoredValue<bool>,
    connection: StoredValue<Option<Connection>, LocalStorage>,
}

impl Session {
    /// Opens the connection to `server` (a `ws(s)://` base) as `name` and joins `rooms`; the
    /// first room is shown.
    pub fn start(server: &str, name: String, rooms: Vec<RoomId>) -> Self {
        let session = Self {
            my_name: StoredValue::new(name.clone()),
            conn: RwSignal::new(ConnState::Connecting),
            transport: RwSignal::new(Transport::WebSocket),
            peer_addr: RwSignal::new(None),
            server_version: RwSignal::new(None),
            limits: RwSignal::new(None),
            max_rooms: RwSignal::new(DEFAULT_MAX_ROOMS),
            stats: RwSignal::new(VecDeque::new()),
            problem: RwSignal::new(None),
            log: RwSignal::new(VecDeque::new()),
            received: RwSignal::new(0),
            rooms: RwSignal::new(Vec::new()),
            active: RwSignal::new(None),
            hellos: StoredValue::new(0),
            ready: StoredValue::new(false),
            connection: StoredValue::new_local(None),
        };
        for room in rooms {
            session.add_room(room);
        }
        session.active.set(
            session
                .rooms
                .with_untracked(|r| r.first().map(RoomState::id)),
        );
        let url = endpoint::chat_url(server, &name, &identity::token());
        let connection = Connection::open(move || url.clone(), move |e| session.apply(e));
        session.connection.set_value(Some(connection));
        session
    }

    /// Closes the connection (leaving every room) and stops reconnecting.
    pub fn close(&self) {
        self.connection
            .with_value(|c| c.as_ref().map(Connection::close));
    }

    pub fn reconnect_now(&self) {
        self.connection
            .with_value(|c| c.as_ref().map(Connection::reconnect_now));
    }

    fn send(&self, command: &Command) -> bool {
        self.connection
            .with_value(|c| c.as_ref().is_some_and(|c| c.send(command).is_ok()))
    }

    pub fn room(&self, room: &str) -> Option<RoomState> {
        self.rooms
            .with_untracked(|rooms| rooms.iter().find(|r| r.is(room)).copied())
    }

    /// The room shown (tracked).
    pub fn active_room(&self) -> Option<RoomState> {
        let active = self.active.get()?;
        self.rooms
            .with(|rooms| rooms.iter().find(|r| r.is(active.as_str())).copied())
    }

    /// Shows `room`, joining it first if needed. Returns an error to show if it cannot be
    /// joined (too many rooms).
    pub fn open_room(&self, room: RoomId) -> Result<(), String> {
        if self.room(room.as_str()).is_none() {
            let max = self.max_rooms.get_untracked();
            if self.rooms.with_untracked(Vec::len) >= max {
                return Err(format!(
                    "You are in {max} rooms, the most this server allows; leave one first."
                ));
            }
            let state = self.add_room(room.clone());
            self.join(state);
            self.remember_rooms();
        }
        self.select(room);
        Ok(())
    }

    fn add_room(&self, room: RoomId) -> RoomState {
        let state = RoomState::new(room, self.my_name.get_value());
        self.rooms.update(|rooms| rooms.push(state));
        state
    }

    /// Shows `room` and clears its unread count.
    pub fn select(&self, room: RoomId) {
        if let Some(state) = self.room(room.as_str()) {
            state.unread.set(0);
        }
        self.active.set(Some(room));
        self.update_title();
    }

    /// Leaves `room`: the server releases the name there at once; the next room is shown.
    pub fn leave(&self, room: &RoomId) {
        let Some(index) = self
            .rooms
            .with_untracked(|rooms| rooms.iter().position(|r| r.is(room.as_str())))
        else {
            return;
        };
        let left = self.rooms.try_update(|rooms| rooms.remove(index));
        if let Some(left) = left {
            // Unsent messages of a room left are dropped, here and in storage, so a later
            // join of the room does not send them after all.
            left.discard_outbox();
            // The server knows the room only if this connection asked for it: a join sent
            // (after `hello`) and not refused.
            let asked = matches!(
                left.status.get_untracked(),
                RoomStatus::Joining | RoomStatus::Joined
            );
            if asked && self.ready.get_value() {
                self.send(&Command::Leave { room: room.clone() });
            }
        }
        if self.active.get_untracked().as_ref() == Some(room) {
            let next = self.rooms.with_untracked(|rooms| {
                rooms.get(index).or_else(|| rooms.last()).map(RoomState::id)
            });
            match next {
                Some(next) => self.select(next),
                None => self.active.set(None),
            }
        }
        self.remember_rooms();
        self.update_title();
    }

    /// Sends `join` for `room` with its history position (once the connection has said
    /// `hello`; until then the `hello` handler joins every room).
    fn join(&self, room: RoomState) {
        room.status.set(RoomStatus::Joining);
        if !self.ready.get_value() {
            return;
        }
        let position = room.position();
        self.send(&Command::Join {
            room: room.id(),
            epoch: position.as_ref().map(|(e, _)| e.clone()),
            seq: position.map(|(_, s)| s),
        });
    }

    /// Asks again for a room the server refused or dropped.
    pub fn retry(&self, room: &RoomId) {
        if let Some(state) = self.room(room.as_str()) {
            self.join(state);
        }
    }

    /// Queues `text` in the shown room's outbox and sends it if connected. A message whose
    /// frame would exceed the server's size limit is refused here: queued, it would close
    /// the connection (1009) on every resend.
    pub fn send_chat(&self, text: String) -> Result<(), String> {
        let Some(room) = self
            .active
            .get_untracked()
            .and_then(|r| self.room(r.as_str()))
        else {
            return Err("Join a room first.".into());
        };
        if let Some(max) = self.limits.get_untracked().map(|l| l.max_message_bytes) {
            let frame = Command::Chat {
                room: room.id(),
                msg: text.clone(),
                id: Some("0".repeat(24)),
            }
            .encode()
            .len();
            if frame > max {
                return Err(format!(
                    "Message too long: this server takes frames of up to {max} bytes."
                ));
            }
        }
        let pending = room.queue(text);
        if room.status.get_untracked() == RoomStatus::Joined {
            self.send(&Command::Chat {
                room: room.id(),
                msg: pending.text,
                id: Some(pending.id),
            });
        }
        Ok(())
    }

    /// Asks for the next page of a large room's member list.
    pub fn more_members(&self, room: &RoomState) {
        let after = room
            .members
            .with_untracked(|m| m.last().map(|m| m.name.clone()));
        self.send(&Command::Members {
            room: room.id(),
            after,
        });
    }

    pub fn typing(&self) {
        if let Some(room) = self.active.get_untracked() {
            self.send(&Command::Typing { room });
        }
    }

    fn flush_outbox(&self, room: RoomState) {
        for p in room.unacked() {
            let sent = self.send(&Command::Chat {
                room: room.id(),
                msg: p.text,
                id: Some(p.id),
            });
            if !sent {
                break;
            }
        }
    }

    fn remember_rooms(&self) {
        let list = self.rooms.with_untracked(|rooms| {
            rooms
                .iter()
                .map(|r| r.id().to_string())
                .collect::<Vec<_>>()
                .join(",")
        });
        if let Some(s) = identity::storage() {
            let _ = s.set_item(ROOMS_KEY, &list);
        }
    }

    /// The rooms joined on the last visit.
    pub fn remembered_rooms() -> Option<String> {
        identity::storage()?.get_item(ROOMS_KEY).ok()?
    }

    /// "(3) Switchboard" while messages wait unread in other rooms.
    fn update_title(&self) {
        let unread: u32 = self
            .rooms
            .with_untracked(|rooms| rooms.iter().map(|r| r.unread.get_untracked()).sum());
        if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
            doc.set_title(&if unread == 0 {
                "Switchboard".to_owned()
            } else {
                format!("({unread}) Switchboard")
            });
        }
    }

    fn log_event(&self, kind: &'static str, detail: String) {
        let entry = LogEntry {
            id: next_id(),
            at_ms: js_sys::Date::now(),
            kind,
            detail,
        };
        self.log.update(|log| {
            log.push_front(entry);
            log.truncate(MAX_EVENTS);
        });
    }

    fn for_each_room(&self, f: impl Fn(RoomState)) {
        self.rooms
            .with_untracked(|rooms| rooms.iter().copied().for_each(f));
    }

    /// Applies one connection event.
    pub fn apply(&self, event: ConnEvent) {
        match event {
            ConnEvent::State(state) => self.conn.set(state),
            ConnEvent::Transport(transport) => {
                if transport != self.transport.get_untracked() {
                    self.log_event("transport", transport.label().into());
                }
                self.transport.set(transport);
            }
            ConnEvent::Opened => {
                self.ready.set_value(false);
                self.log_event("open", String::new());
            }
            ConnEvent::Error => self.log_event("error", "the connection failed".into()),
            ConnEvent::BadFrame(why) => {
                self.log_event("message", format!("unreadable frame: {why}"))
            }
            ConnEvent::Closed {
                code,
                reason,
                clean,
            } => {
                let mut detail = format!("code {code}");
                if !reason.is_empty() {
                    detail = format!("{detail}: {reason}");
                }
                if !clean {
                    detail.push_str(" (unclean)");
                }
                self.log_event("close", detail);
                self.ready.set_value(false);
                let was_open = self.hellos.get_value() > 0 && self.conn.get_untracked().is_open();
                self.for_each_room(|room| {
                    if was_open && room.status.get_untracked() == RoomStatus::Joined {
                        room.notice("Connection lost; messages you send now wait in the outbox");
                    }
                    room.disconnected();
                });
            }
            ConnEvent::Message(msg) => {
                self.received.update(|n| *n += 1);
                self.on_message(msg);
            }
        }
    }

    fn on_message(&self, msg: ServerMsg) {
        let room_of = |name: &str| self.room(name);
        match msg {
            ServerMsg::Hello(h) => {
                self.log_event("message", format!("hello, session {}", h.session));
                if h.protocol != PROTOCOL_V3 {
                    self.problem.set(Some(Problem {
                        title: "A new version is available \u{2014} reload".into(),
                        detail: format!(
                            "The server speaks protocol {} and this page speaks {PROTOCOL_V3}.",
                            h.protocol
                        ),
                    }));
                }
                // With signed user tokens the server names the user.
                if let Some(name) = h.name {
                    self.my_name.set_value(name);
                }
                self.hellos.update_value(|n| *n += 1);
                self.peer_addr.set(Some(h.peer_addr));
                self.server_version.set(Some(h.server_version));
                self.limits.set(Some(h.limits));
                self.max_rooms.set(h.max_rooms);
                self.ready.set_value(true);
                // Every room again, each from its own position.
                self.for_each_room(|room| self.join(room));
            }
            ServerMsg::Subscribed(s) => {
                if let Some(room) = room_of(&s.room) {
                    room.subscribed(s);
                    self.flush_outbox(room);
                }
            }
            ServerMsg::Chat(c) => {
                if let Some(room) = room_of(&c.room) {
                    let shown = self
                        .active
                        .get_untracked()
                        .is_some_and(|a| room.is(a.as_str()));
                    if room.chat(c) && !shown {
                        room.unread.update(|n| *n += 1);
                        self.update_title();
                    }
                }
            }
            ServerMsg::Ack { id, seq, room, .. } => {
                if let Some(room) = room.and_then(|r| room_of(&r)) {
                    room.ack(&id, seq);
                }
            }
            ServerMsg::Nack {
                id,
                code,
                reason,
                room,
            } => {
                self.log_event("message", format!("nack {}", code.name()));
                if let Some(room) = room.and_then(|r| room_of(&r)) {
                    room.nack(&id);
                }
                self.problem.set(Some(Problem {
                    title: "Message refused".into(),
                    detail: reason,
                }));
            }
            ServerMsg::Joined { room, member } => {
                if let Some(room) = room_of(&room) {
                    room.joined(member);
                }
            }
            ServerMsg::Presence { room, member } => {
                if let Some(room) = room_of(&room) {
                    room.presence(member);
                }
            }
            ServerMsg::Left { room, member } => {
                if let Some(room) = room_of(&room) {
                    room.left(member);
                }
            }
            ServerMsg::PresenceBatch {
                room,
                online,
                changed,
                left,
                full,
            } => {
                if let Some(state) = room_of(&room)
                    && state.presence_batch(online, changed, left, full)
                {
                    self.send(&Command::Members {
                        room: state.id(),
                        after: None,
                    });
                }
            }
            ServerMsg::Members {
                room,
                members,
                online,
                ..
            } => {
                if let Some(room) = room_of(&room) {
                    room.members_page(members, online);
                }
            }
            ServerMsg::Typing { room, name } => {
                if let Some(room) = room_of(&room) {
                    room.typing(name);
                }
            }
            ServerMsg::Data(d) => {
                if let Some(room) = room_of(&d.room) {
                    room.data(d);
                }
            }
            ServerMsg::Stats(s) => self.stats.update(|points| {
                points.push_back(s);
                while points.len() > CHART_POINTS {
                    points.pop_front();
                }
            }),
            ServerMsg::JoinRefused { room, code, reason } => {
                self.log_event("message", format!("join_refused {}", code.name()));
                // Joined already (a join raced a reconnect's): the first answer stands.
                if code == ErrorCode::AlreadyJoined {
                    return;
                }
                if let Some(state) = room_of(&room) {
                    state.status.set(RoomStatus::Refused(reason.clone()));
                }
                self.problem.set(Some(Problem {
                    title: format!("{} in #{room}", error_title(code)),
                    detail: reason,
                }));
            }
            ServerMsg::Unsubscribed { room } => {
                // After a leave the room is gone from the list already (or, left and opened
                // again, is joining anew: this answers the old leave); otherwise the server
                // dropped it (its error came first) and the room offers a retry.
                if let Some(state) = room_of(&room)
                    && state.status.get_untracked() == RoomStatus::Joined
                {
                    state.status.set(RoomStatus::Refused(
                        "The server left this room; join it again to resume.".into(),
                    ));
                }
            }
            ServerMsg::Error { code, reason, room } => {
                self.log_event("message", format!("error {}", code.name()));
                let title = match room {
                    Some(room) => format!("{} in #{room}", error_title(code)),
                    None => error_title(code).to_owned(),
                };
                self.problem.set(Some(Problem {
                    title,
                    detail: reason,
                }));
            }
            // The connection fetches and sends the new token itself.
            ServerMsg::TokenExpiring { .. } => self.log_event("message", "token expiring".into()),
            ServerMsg::TokenRefreshed { .. } => {
                self.log_event("message", "token refreshed".into());
            }
            ServerMsg::Reload { reason, .. } => self.problem.set(Some(Problem {
                title: "A new version is available \u{2014} reload".into(),
                detail: reason,
            })),
            ServerMsg::Shutdown { retry_after_ms } => {
                let text = format!(
                    "The server is restarting; reconnecting in {} s",
                    retry_after_ms.div_ceil(1000)
                );
                self.for_each_room(|room| room.notice(text.clone()));
            }
            // Protocol v2's first frame; this client speaks v3 only.
            ServerMsg::Welcome(_) => {
                self.log_event("message", "unexpected protocol v2 frame".into())
            }
        }
    }

    /// Drops typing notices that have expired, in every room.
    pub fn expire_typing(&self, now_ms: f64) {
        self.for_each_room(|room| room.expire_typing(now_ms));
    }
}

/// How an error is headed for the user.
fn error_title(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NameTaken => "That name is taken",
        ErrorCode::NameInvalid => "That name cannot be used",
        ErrorCode::RoomInvalid => "That room name cannot be used",
        ErrorCode::RateLimited => "Slow down",
        ErrorCode::TextInvalid => "Message not sent",
        ErrorCode::StoreUnavailable => "Message not stored yet",
        ErrorCode::StoreRejected => "Message refused",
        ErrorCode::TooManyRooms => "Too many rooms",
        _ => "The server refused a request",
    }
}
