//! Messages on the wire. Every frame is one JSON object tagged by `type`.
//!
//! Compatibility with the classic tutorial chat: a client may send the untagged
//! `{"name":"…","msg":"…"}` frame ([`Inbound::Legacy`]), and every chat message the server sends
//! carries top-level `name` and `msg` fields, so `JSON.parse(evt.data).name` still works.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::RoomId;

/// Bumped on every incompatible change. A client whose version differs is told to reload.
pub const PROTOCOL_VERSION: u32 = 2;

/// How long a typing notice stays visible without a refresh.
pub const TYPING_TTL_MS: u64 = 5_000;
/// A client sends [`ClientMsg::Typing`] at most this often.
pub const TYPING_INTERVAL_MS: u64 = 2_000;

/// Identifies one WebSocket session on one server.
pub type SessionId = u64;

/// Protocol v3: one connection, many rooms. A client asks for it with this WebSocket
/// subprotocol; the first frame it gets is [`ServerMsg::Hello`].
pub const SUBPROTOCOL_V3: &str = "switchboard.v3";
/// Protocol v2 (one room per connection, from the query), asked for with this subprotocol.
/// Without any subprotocol a connection is a plain client (a tutorial page).
pub const SUBPROTOCOL_V2: &str = "switchboard.v2";
/// The protocol number [`ServerMsg::Hello`] carries.
pub const PROTOCOL_V3: u32 = 3;
/// What every `switchboard.v<N>` subprotocol starts with. A client asking for a version the
/// server does not speak gets [`ServerMsg::Reload`] and close
/// [`close_code::PROTOCOL_VERSION`].
pub const SUBPROTOCOL_PREFIX: &str = "switchboard.v";

/// Client → server in protocol v3. Every room-scoped command names its room; the room is a
/// validated [`RoomId`] (a bad one is an `invalid_message` error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Subscribe to a room, resuming after `seq` of history `epoch` when given. Answered with
    /// [`ServerMsg::Subscribed`] (or [`ServerMsg::JoinRefused`]), then the replay, then live
    /// frames.
    Join {
        room: RoomId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// Unsubscribe; answered with [`ServerMsg::Unsubscribed`]. The name is released at once.
    Leave { room: RoomId },
    /// A chat message to a joined room; with an `id`, acknowledged ([`ServerMsg::Ack`] with
    /// its `room`) once stored.
    Chat {
        room: RoomId,
        msg: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// "I am typing" in a joined room.
    Typing { room: RoomId },
    /// Turn the live feed ([`ServerMsg::Stats`]) on or off for the connection.
    Feed { enabled: bool },
    /// A new signed user token for the same user (`sub`), sent after
    /// [`ServerMsg::TokenExpiring`]; answered with [`ServerMsg::TokenRefreshed`].
    Refresh { token: String },
    /// A page of a joined room's members, in name order after `after` (from the start
    /// without it); answered with [`ServerMsg::Members`]. For rooms too large to list in
    /// [`Subscribed::members`] and presence changes ([`ServerMsg::PresenceBatch`]).
    Members {
        room: RoomId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
}

impl Command {
    /// Decodes one v3 text frame. Never panics.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(text).map_err(|e| {
            if e.is_data() {
                DecodeError::Invalid(e.to_string())
            } else {
                DecodeError::Malformed(e.to_string())
            }
        })
    }

    /// The room a command is about, if any.
    pub fn room(&self) -> Option<&RoomId> {
        match self {
            Self::Join { room, .. }
            | Self::Leave { room }
            | Self::Chat { room, .. }
            | Self::Typing { room }
            | Self::Members { room, .. } => Some(room),
            Self::Feed { .. } | Self::Refresh { .. } => None,
        }
    }
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Send a chat message to the session's room. With an `id` (unique per message, chosen by
    /// the client) the server answers with [`ServerMsg::Ack`] once the message is durably
    /// stored, and a resend of the same id is acknowledged again but never stored twice.
    Chat {
        msg: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// "I am typing": shown to the others in the room for a few seconds. Never stored.
    Typing,
    /// Turn the once-a-second [`ServerMsg::Stats`] feed on or off for this session.
    Feed { enabled: bool },
    /// A new signed user token for the same user; see [`Command::Refresh`].
    Refresh { token: String },
}

/// The longest client message id accepted.
pub const MAX_CLIENT_ID_CHARS: usize = 64;

/// Whether a client message id is acceptable: 1..=64 printable ASCII characters.
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CLIENT_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The tutorial's chat frame: `{"name":"…","msg":"…"}` with no `type`. The name only matters for
/// a session that has none yet; after that the session's name is used, whatever the frame says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyChat {
    pub name: String,
    pub msg: String,
}

/// A decoded client text frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Typed(ClientMsg),
    Legacy(LegacyChat),
}

/// Why a client frame could not be decoded. The session continues after either.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Not JSON at all, or truncated.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON, but not a message this server knows (unknown `type`, missing or wrong fields).
    #[error("invalid message: {0}")]
    Invalid(String),
}

impl DecodeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) => ErrorCode::Malformed,
            Self::Invalid(_) => ErrorCode::InvalidMessage,
        }
    }
}

impl Inbound {
    /// Decodes one text frame. Never panics; nesting depth is bounded by serde_json's limit.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        match serde_json::from_str::<ClientMsg>(text) {
            Ok(msg) => Ok(Self::Typed(msg)),
            Err(e) if e.is_data() => serde_json::from_str::<LegacyChat>(text)
                .map(Self::Legacy)
                .map_err(|_| DecodeError::Invalid(e.to_string())),
            Err(e) => Err(DecodeError::Malformed(e.to_string())),
        }
    }
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First frame of every chat session.
    Welcome(Welcome),
    /// A chat message, sent to every member of the room (the sender included).
    Chat(ChatMsg),
    /// A chat message was durably stored with this `seq` (answer to a chat with an `id`). In
    /// protocol v3 it names the `room`.
    Ack {
        id: String,
        seq: u64,
        ts: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// A chat message with an `id` was not stored and never will be: the store refused it for
    /// good (`code` is [`ErrorCode::StoreRejected`]). The client shows it as failed and must
    /// not send it again. (A transient failure is not a nack: it is an `error` with
    /// `store_unavailable` and close 1013, and the client resends.)
    Nack {
        id: String,
        code: ErrorCode,
        reason: String,
        /// v3: the room the message was sent to (message ids are unique per room and sender).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Somebody new is online in the room.
    Joined { room: String, member: Member },
    /// A member's connection count changed (0 means reconnecting: the name is held for a grace
    /// period).
    Presence { room: String, member: Member },
    /// Somebody left the room (their last connection has been gone for the grace period).
    Left { room: String, member: Member },
    /// Several presence changes in a room at once, sent at most once per presence interval
    /// per room (a single change goes out as `joined`, `presence` or `left`). `online` is the
    /// room's member count after them. `changed`: members who arrived or whose connection
    /// count changed (0: reconnecting, the name held for a grace period); `left`: names gone.
    /// With `full`, `changed` is the whole member list, to replace the one the client holds.
    /// In a room of more members than the server lists (`--presence-list-max`), `changed` and
    /// `left` are empty: only the count is announced, and the list is paged with `members`.
    PresenceBatch {
        room: String,
        online: u32,
        changed: Vec<Member>,
        left: Vec<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        full: bool,
    },
    /// v3: a page of a room's members, in name order (the answer to `members`); `next`, when
    /// there are more, is the `after` of the next page.
    Members {
        room: String,
        members: Vec<Member>,
        online: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Somebody is typing; show it for [`TYPING_TTL_MS`] unless refreshed.
    Typing { room: String, name: String },
    /// The live feed, once a second.
    Stats(Stats),
    /// A data publication in a room (see [`DataMsg`]): live, replayed (durable), or the
    /// latest value per key right after a join (latest).
    Data(DataMsg),
    /// A request could not be served. Unless the code is fatal the session continues. In
    /// protocol v3 an error about a room-scoped command names the `room`.
    Error {
        code: ErrorCode,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// The server is going away (close 1001 follows). Reconnect after `retry_after_ms`.
    Shutdown { retry_after_ms: u64 },
    /// v3: the first frame of a connection.
    Hello(Hello),
    /// v3: the answer to a `join`: the room's history position, what follows, who is there.
    Subscribed(Subscribed),
    /// v3: the answer to a `leave`.
    Unsubscribed { room: String },
    /// v3: a `join` was refused (name taken in that room, too many rooms, …); the connection
    /// and its other rooms go on.
    JoinRefused {
        room: String,
        code: ErrorCode,
        reason: String,
    },
    /// The client speaks a protocol this server does not: reload the page for the current
    /// client. Close [`close_code::PROTOCOL_VERSION`] follows.
    Reload { protocol: u32, reason: String },
    /// The connection's user token expires at `exp` (seconds since the Unix epoch): send a
    /// `refresh` with a new one before then, or the session closes with
    /// [`close_code::UNAUTHORIZED`].
    TokenExpiring { exp: u64 },
    /// A `refresh` was accepted: the session now lasts until `exp`.
    TokenRefreshed { exp: u64 },
}

fn is_false(b: &bool) -> bool {
    !b
}

impl ServerMsg {
    pub fn error(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self::Error {
            code,
            reason: reason.into(),
            room: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ServerMsg always serializes")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: u32,
    pub server_version: String,
    pub session: SessionId,
    /// `None` for a legacy client that connected without a name; it takes the name of its
    /// first `{name, msg}` frame.
    pub name: Option<String>,
    pub room: String,
    /// The client's address as the server sees it.
    pub peer_addr: String,
    /// Members online in the room, this session included when it has a name.
    pub members: Vec<Member>,
    /// The history's identity; a different epoch means the client's `seq` no longer applies.
    pub epoch: String,
    /// What the client missed and gets replayed right after this welcome, as `chat` frames in
    /// `seq` order, before anything live.
    pub resume: Resume,
    pub limits: Limits,
    /// Recent live-feed points (oldest first), so a chart is full on arrival.
    pub recent_stats: Vec<Stats>,
}

/// v3: the first frame of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub server_version: String,
    pub session: SessionId,
    /// The name the connection chats as in every room (`?name=`), if it gave one.
    pub name: Option<String>,
    /// The client's address as the server sees it.
    pub peer_addr: String,
    pub limits: Limits,
    /// Most rooms one connection may join (`--max-rooms-per-connection`).
    pub max_rooms: usize,
}

/// How an HTTP session ended (SSE and long-polling): the WebSocket close code and reason it
/// stands for. The data of an SSE `close` event, and a poll answer's `close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpClose {
    pub code: u16,
    pub reason: String,
}

/// The answer to `POST /v3/poll`: the session's secret, the number of the last frame it
/// carries (acknowledge it with the next poll), the frames, and the close once the session
/// ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PollAnswer {
    pub session: String,
    pub last: u64,
    pub frames: Vec<ServerMsg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<HttpClose>,
}

/// v3: a room joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub room: String,
    /// The room's history identity; keep it with the last `seq` to resume.
    pub epoch: String,
    /// What follows this frame, as `chat` frames of this room in `seq` order.
    pub resume: Resume,
    /// Members online in the room, this connection included when it has a name; in a room
    /// of more than the server lists, the first page (then `online` is larger).
    pub members: Vec<Member>,
    /// How many members the room has.
    #[serde(default)]
    pub online: u32,
}

/// Limits that the client should respect to avoid errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_text_chars: usize,
    pub max_name_chars: usize,
    /// Sustained messages per second allowed per connection.
    pub rate_per_sec: u32,
    /// Burst of messages allowed on top of the sustained rate.
    pub rate_burst: u32,
}

/// The outcome of (re)joining a room, in the welcome. Never silent about a gap.
///
/// Serialized tagged by `kind`; read through a flat struct (`ResumeWire`), which accepts the
/// same JSON without serde's buffering of internally tagged enums (a large part of the client
/// bundle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "ResumeWire")]
pub enum Resume {
    /// First join (no position given): the last `count` messages follow.
    Fresh { count: u64 },
    /// Nothing was missed.
    Live,
    /// Exactly the `count` missed messages follow.
    Recovered { count: u64 },
    /// Some messages cannot be recovered; the `count` messages that can follow.
    Gap { reason: GapReason, count: u64 },
}

/// How [`Resume`] is read: its `kind` and whichever fields that kind has.
#[derive(Deserialize)]
struct ResumeWire {
    kind: ResumeKind,
    #[serde(default)]
    count: Option<u64>,
    #[serde(default)]
    reason: Option<GapReason>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ResumeKind {
    Fresh,
    Live,
    Recovered,
    Gap,
}

impl TryFrom<ResumeWire> for Resume {
    type Error = &'static str;

    fn try_from(w: ResumeWire) -> Result<Self, Self::Error> {
        let count = w.count.ok_or("missing field `count`");
        Ok(match w.kind {
            ResumeKind::Fresh => Self::Fresh { count: count? },
            ResumeKind::Live => Self::Live,
            ResumeKind::Recovered => Self::Recovered { count: count? },
            ResumeKind::Gap => Self::Gap {
                reason: w.reason.ok_or("missing field `reason`")?,
                count: count?,
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The history was recreated (new epoch): the client's `seq` means nothing here.
    EpochChanged,
    /// Messages after the client's `seq` were removed by retention.
    Trimmed,
}

/// One name online in a room, with how many connections hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub connections: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMsg {
    pub room: String,
    /// Position in the room's history: gap-free, increasing by one per message.
    pub seq: u64,
    /// Sender's name, from the session, never from the message body. A name is held by one
    /// person (token) per room, so a client marks its own messages by name.
    pub name: String,
    pub msg: String,
    /// The sender's id for this message, so its outbox can match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: u64,
    /// Set on a stored data point (a `durable` publication) instead of a chat message: its
    /// key, with its JSON in `msg`. Live and replayed, such an entry is sent as a
    /// [`ServerMsg::Data`] frame, never as a chat; a history page carries it as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// How a data publication reaches a room's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Stored with the room's next `seq`, replayed on resume like a chat message.
    Durable,
    /// The last value per key is kept and sent to each member on join.
    Latest,
    /// Never stored; the first thing dropped for a reader that falls behind.
    Volatile,
}

impl Delivery {
    pub fn name(self) -> &'static str {
        match self {
            Self::Durable => "durable",
            Self::Latest => "latest",
            Self::Volatile => "volatile",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Durable, Self::Latest, Self::Volatile]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

/// Any JSON value, carried as its compact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawJson(String);

impl RawJson {
    /// The compact text of a parsed value.
    pub fn of(value: &serde_json::Value) -> Self {
        Self(value.to_string())
    }

    /// Text known to be one JSON value (read from the store, or written by
    /// [`crate::json::write_value`]).
    pub fn from_trusted(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.0.clone())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// Read as a value and written compact (a raw value cannot be read inside `ServerMsg`: serde
/// buffers an internally tagged enum's content first).
impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(|v| Self::of(&v))
    }
}

/// A data publication in a room (`POST /api/v1/rooms/{room}/data`): the app's own live data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMsg {
    pub room: String,
    /// What the value is of (a metric's name, a document's id): the latest value per key is
    /// what a live panel shows.
    pub key: String,
    pub data: RawJson,
    pub delivery: Delivery,
    /// The room's `seq` of a durable publication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Server time of the publication, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// A page of older history: `GET /api/rooms/{room}/messages?before=&limit=`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub room: String,
    pub epoch: String,
    /// Oldest first.
    pub messages: Vec<ChatMsg>,
    /// Whether older messages exist before the first one here.
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub connections: u64,
    pub rooms: u64,
    pub messages_per_sec: u64,
    pub uptime_secs: u64,
    /// Server time, milliseconds since the Unix epoch.
    pub server_time_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON.
    Malformed,
    /// JSON, but not a known message.
    InvalidMessage,
    /// A binary frame on the chat socket (it speaks JSON text only).
    BinaryNotSupported,
    /// The name is empty, too long or contains forbidden characters. Fatal.
    NameInvalid,
    /// Another session in the room holds the name. Fatal.
    NameTaken,
    /// The session has no name yet: connect with `?name=` or send a legacy `{name, msg}` frame.
    NameRequired,
    /// The room name is invalid. Fatal.
    RoomInvalid,
    /// The message text is empty, too long or contains forbidden characters.
    TextInvalid,
    /// Too many messages; this one was dropped.
    RateLimited,
    /// The message id is empty, too long or not printable ASCII.
    IdInvalid,
    /// The history store could not take the message; it was not stored. Resend later.
    StoreUnavailable,
    /// The history store refused the message for good (it refuses it again if resent, or its
    /// data needs an operator). The message was not stored; do not resend it.
    StoreRejected,
    /// The token is malformed: a name-holding `?token=` with wrong characters or length, or a
    /// signed user token that does not verify (signature, algorithm, claims). Fatal.
    TokenInvalid,
    /// v3: the connection has joined `--max-rooms-per-connection` rooms already.
    TooManyRooms,
    /// v3: a command for a room the connection has not joined.
    NotJoined,
    /// v3: a `join` for a room the connection has joined already.
    AlreadyJoined,
    /// The server requires a signed user token (`?access_token=`) and none was given.
    TokenRequired,
    /// The user token's `exp` has passed (at connect, in a `refresh`, or during the session:
    /// then the session closes with [`close_code::UNAUTHORIZED`]).
    TokenExpired,
    /// The user token's `nbf` (or `iat`) is in the future.
    TokenNotYetValid,
    /// The user token does not allow this room (its `rooms` claim).
    RoomForbidden,
}

impl ErrorCode {
    /// Every code (for reading a code by its name; a new code goes here too).
    pub const ALL: [Self; 20] = [
        Self::Malformed,
        Self::InvalidMessage,
        Self::BinaryNotSupported,
        Self::NameInvalid,
        Self::NameTaken,
        Self::NameRequired,
        Self::RoomInvalid,
        Self::TextInvalid,
        Self::RateLimited,
        Self::IdInvalid,
        Self::StoreUnavailable,
        Self::StoreRejected,
        Self::TokenInvalid,
        Self::TooManyRooms,
        Self::NotJoined,
        Self::AlreadyJoined,
        Self::TokenRequired,
        Self::TokenExpired,
        Self::TokenNotYetValid,
        Self::RoomForbidden,
    ];

    /// The code's name on the wire (as serde writes it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::InvalidMessage => "invalid_message",
            Self::BinaryNotSupported => "binary_not_supported",
            Self::NameInvalid => "name_invalid",
            Self::NameTaken => "name_taken",
            Self::NameRequired => "name_required",
            Self::RoomInvalid => "room_invalid",
            Self::TextInvalid => "text_invalid",
            Self::RateLimited => "rate_limited",
            Self::IdInvalid => "id_invalid",
            Self::StoreUnavailable => "store_unavailable",
            Self::StoreRejected => "store_rejected",
            Self::TokenInvalid => "token_invalid",
            Self::TooManyRooms => "too_many_rooms",
            Self::NotJoined => "not_joined",
            Self::AlreadyJoined => "already_joined",
            Self::TokenRequired => "token_required",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::RoomForbidden => "room_forbidden",
        }
    }

    /// The code named `name` on the wire.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the server closes the session after this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            Self::NameInvalid | Self::NameTaken | Self::RoomInvalid
        )
    }
}

/// WebSocket close codes the server uses beyond the standard ones (1001 going away,
/// 1008 policy, 1009 too big, 1011 internal error).
pub mod close_code {
    /// The connection request was refused (invalid name or room). Do not reconnect as is.
    pub const REJECTED: u16 = 4400;
    /// The name is held by another session. Do not reconnect as is.
    pub const NAME_TAKEN: u16 = 4409;
    /// The client did not read fast enough and its outbound queue overflowed. Reconnect.
    pub const SLOW_CONSUMER: u16 = 4429;
    /// The client stopped answering pings. Reconnect.
    pub const HEARTBEAT_TIMEOUT: u16 = 4408;
    /// RFC 6455 "try again later": a message could not be stored; reconnect and resend.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The client speaks a protocol version this server does not: reload, do not reconnect.
    pub const PROTOCOL_VERSION: u16 = 4426;
    /// The user token expired without a refresh, or the app disconnected the user through the
    /// server API. Get a new token before reconnecting; do not reconnect with the old one.
    pub const UNAUTHORIZED: u16 = 4401;

    /// Whether a client should reconnect automatically after this close code.
    pub fn should_reconnect(code: u16) -> bool {
        !matches!(code, REJECTED | NAME_TAKEN | PROTOCOL_VERSION | 1008)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member() -> Member {
        Member {
            name: "ada".into(),
            connections: 2,
        }
    }

    fn stats() -> Stats {
        Stats {
            connections: 3,
            rooms: 1,
            messages_per_sec: 12,
            uptime_secs: 60,
            server_time_ms: 1,
        }
    }

    fn every_server_msg() -> Vec<ServerMsg> {
        vec![
            ServerMsg::Welcome(Welcome {
                protocol: PROTOCOL_VERSION,
                server_version: "0.1.0".into(),
                session: 1,
                name: Some("ada".into()),
                room: "lobby".into(),
                peer_addr: "127.0.0.1:5000".into(),
                members: vec![member()],
                epoch: "e1".into(),
                resume: Resume::Gap {
                    reason: GapReason::Trimmed,
                    count: 3,
                },
                limits: Limits {
                    max_message_bytes: 65536,
                    max_text_chars: 4000,
                    max_name_chars: 32,
                    rate_per_sec: 10,
                    rate_burst: 20,
                },
                recent_stats: vec![stats()],
            }),
            ServerMsg::Chat(ChatMsg {
                room: "lobby".into(),
                seq: 9,
                name: "ada".into(),
                msg: "hi".into(),
                id: Some("c1".into()),
                ts: 2,
                key: None,
            }),
            ServerMsg::Ack {
                id: "c1".into(),
                seq: 9,
                ts: 2,
                room: Some("lobby".into()),
            },
            ServerMsg::Hello(Hello {
                protocol: PROTOCOL_V3,
                server_version: "0.1.0".into(),
                session: 4,
                name: Some("ada".into()),
                peer_addr: "127.0.0.1:5000".into(),
                limits: Limits {
                    max_message_bytes: 1,
                    max_text_chars: 2,
                    max_name_chars: 3,
                    rate_per_sec: 4,
                    rate_burst: 5,
                },
                max_rooms: 32,
            }),
            ServerMsg::Subscribed(Subscribed {
                room: "lobby".into(),
                epoch: "e1".into(),
                resume: Resume::Recovered { count: 3 },
                members: vec![member()],
                online: 1,
            }),
            ServerMsg::PresenceBatch {
                room: "lobby".into(),
                online: 2,
                changed: vec![
                    member(),
                    Member {
                        name: "bo".into(),
                        connections: 0,
                    },
                ],
                left: vec!["cy".into()],
                full: false,
            },
            ServerMsg::PresenceBatch {
                room: "lobby".into(),
                online: 5000,
                changed: vec![],
                left: vec![],
                full: true,
            },
            ServerMsg::Members {
                room: "lobby".into(),
                members: vec![member()],
                online: 5000,
                next: Some("ada".into()),
            },
            ServerMsg::Members {
                room: "lobby".into(),
                members: vec![],
                online: 0,
                next: None,
            },
            ServerMsg::Unsubscribed {
                room: "lobby".into(),
            },
            ServerMsg::JoinRefused {
                room: "lobby".into(),
                code: ErrorCode::TooManyRooms,
                reason: "at most 32 rooms".into(),
            },
            ServerMsg::Reload {
                protocol: PROTOCOL_V3,
                reason: "reload".into(),
            },
            ServerMsg::TokenExpiring { exp: 1_900_000_000 },
            ServerMsg::Data(DataMsg {
                room: "ops".into(),
                key: "load".into(),
                data: RawJson::of(
                    &serde_json::json!({"one": 0.42, "cpus": [1, -2, 3.5e-7], "ok": true, "x": null, "s": "é\n"}),
                ),
                delivery: Delivery::Durable,
                seq: Some(7),
                ts: 1_764_650_000_000,
            }),
            ServerMsg::Data(DataMsg {
                room: "ops".into(),
                key: "mem".into(),
                data: RawJson::of(&serde_json::json!(null)),
                delivery: Delivery::Volatile,
                seq: None,
                ts: 1,
            }),
            ServerMsg::TokenRefreshed { exp: 1_900_000_060 },
            ServerMsg::Nack {
                id: "c2".into(),
                code: ErrorCode::StoreRejected,
                reason: "refused".into(),
                room: Some("lobby".into()),
            },
            ServerMsg::Presence {
                room: "lobby".into(),
                member: member(),
            },
            ServerMsg::Typing {
                room: "lobby".into(),
                name: "ada".into(),
            },
            ServerMsg::Joined {
                room: "lobby".into(),
                member: member(),
            },
            ServerMsg::Left {
                room: "lobby".into(),
                member: member(),
            },
            ServerMsg::Stats(stats()),
            ServerMsg::error(ErrorCode::NameTaken, "taken"),
            ServerMsg::Shutdown {
                retry_after_ms: 500,
            },
        ]
    }

    #[test]
    fn every_server_message_round_trips() {
        for msg in every_server_msg() {
            let json = msg.to_json();
            assert_eq!(
                serde_json::from_str::<ServerMsg>(&json).unwrap(),
                msg,
                "{json}"
            );
        }
    }

    #[test]
    fn the_compact_decoder_agrees_with_serde_on_every_message() {
        for msg in every_server_msg() {
            let json = msg.to_json();
            assert_eq!(ServerMsg::decode(&json).unwrap(), msg, "{json}");
        }
        // Order of fields and unknown extra fields do not matter to either.
        let reordered = r#"{"seq":3,"ts":4,"extra":[1,{"type":"x"}],"id":"a","type":"ack"}"#;
        assert_eq!(
            ServerMsg::decode(reordered).unwrap(),
            serde_json::from_str::<ServerMsg>(reordered).unwrap()
        );
        for bad in [
            "",
            "{",
            "[]",
            r#"{"type":"launch"}"#,
            r#"{"type":"ack","id":"a"}"#,
            r#"{"type":"join_refused","code":"name_taken","reason":"r"}"#,
            r#"{"type":"nack","code":"nope","reason":"r","id":"a"}"#,
            r#"{"msg":"no type"}"#,
            r#"{"type":"nack","code":"store_rejected","reason":"r"}"#,
            r#"{"type":"typing","room":"r"}"#,
            r#"{"type":"subscribed","room":"r","epoch":"e","members":[],"resume":{"kind":"gap","count":1}}"#,
            r#"{"type":"subscribed","room":"r","epoch":"e","members":[],"resume":{"kind":"fresh"}}"#,
            r#"{"type":"subscribed","room":"r","epoch":"e","members":[],"resume":{"kind":"later"}}"#,
            r#"{"type":"ack","id":"a","seq":-1,"ts":4}"#,
            r#"{"type":"ack","id":"a","seq":1.5,"ts":4}"#,
            r#"{"type":"ack","id":"a","seq":"1","ts":4}"#,
            r#"{"type":"ack","id":null,"seq":1,"ts":4}"#,
            r#"{"type":"reload","protocol":4294967296,"reason":"r"}"#,
            r#"{"type":"joined","room":"r","member":{"name":"a"}}"#,
            r#"{"type":"unsubscribed","room":"r"} x"#,
        ] {
            assert!(ServerMsg::decode(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<ServerMsg>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_error_code_is_named_as_serde_names_it() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.name()));
            assert_eq!(ErrorCode::from_name(code.name()), Some(code));
        }
        assert_eq!(ErrorCode::from_name("nope"), None);
    }

    fn every_command() -> Vec<Command> {
        let room = || crate::model::RoomId::parse("lobby").unwrap();
        vec![
            Command::Join {
                room: room(),
                epoch: None,
                seq: None,
            },
            Command::Join {
                room: room(),
                epoch: Some("e\"1".into()),
                seq: Some(u64::MAX),
            },
            Command::Leave { room: room() },
            Command::Chat {
                room: room(),
                msg: "hi \u{1}\n\u{1F600}".into(),
                id: None,
            },
            Command::Chat {
                room: room(),
                msg: "hi".into(),
                id: Some("c-1".into()),
            },
            Command::Typing { room: room() },
            Command::Feed { enabled: true },
            Command::Feed { enabled: false },
            Command::Refresh {
                token: "eyJ.a.b".into(),
            },
            Command::Members {
                room: room(),
                after: None,
            },
            Command::Members {
                room: room(),
                after: Some("ada \"b\"".into()),
            },
        ]
    }

    #[test]
    fn commands_are_encoded_byte_for_byte_as_serde_encodes_them() {
        for command in every_command() {
            let ours = command.encode();
            assert_eq!(ours, serde_json::to_string(&command).unwrap());
            assert_eq!(Command::decode(&ours).unwrap(), command);
        }
    }

    #[test]
    fn history_pages_decode_as_serde_decodes_them() {
        let page = HistoryPage {
            room: "lobby".into(),
            epoch: "e1".into(),
            messages: vec![
                ChatMsg {
                    room: "lobby".into(),
                    seq: 3,
                    name: "ada".into(),
                    msg: "hi".into(),
                    id: None,
                    ts: 7,
                    key: None,
                },
                ChatMsg {
                    room: "lobby".into(),
                    seq: 4,
                    name: "api".into(),
                    msg: "{\"cpu\":0.5}".into(),
                    id: None,
                    ts: 8,
                    key: Some("load".into()),
                },
            ],
            has_more: true,
        };
        let json = serde_json::to_string(&page).unwrap();
        assert_eq!(HistoryPage::decode(&json).unwrap(), page);
        // The HTTP transports' bodies: a poll answer (with and without its close), the close
        // of an SSE stream, and the bodies the client writes.
        for close in [
            None,
            Some(HttpClose {
                code: 4429,
                reason: "slow consumer".into(),
            }),
        ] {
            let answer = PollAnswer {
                session: "s3cr3t".into(),
                last: 9,
                frames: vec![
                    ServerMsg::Chat(page.messages[0].clone()),
                    ServerMsg::Unsubscribed { room: "r".into() },
                ],
                close,
            };
            let json = serde_json::to_string(&answer).unwrap();
            assert_eq!(PollAnswer::decode(&json).unwrap(), answer, "{json}");
        }
        let close = r#"{"code":1001,"reason":"server shutting down"}"#;
        assert_eq!(
            HttpClose::decode(close).unwrap(),
            serde_json::from_str::<HttpClose>(close).unwrap()
        );
        let poll: serde_json::Value =
            serde_json::from_str(&PollAnswer::request("s\"x", 4)).unwrap();
        assert_eq!(poll, serde_json::json!({ "session": "s\"x", "last": 4 }));
        let frames = [Command::Feed { enabled: false }.encode()];
        let send: serde_json::Value =
            serde_json::from_str(&crate::send_body("s", &frames, true)).unwrap();
        assert_eq!(
            send,
            serde_json::json!({ "session": "s", "frames": [{"type": "feed", "enabled": false}], "leave": true })
        );
        let send: serde_json::Value =
            serde_json::from_str(&crate::send_body("s", &[], false)).unwrap();
        assert_eq!(send, serde_json::json!({ "session": "s", "frames": [] }));
        for bad in [
            r#"{"room":"r","epoch":"e","messages":[]}"#,
            r#"{"room":"r","epoch":"e","messages":[{"room":"r"}],"has_more":false}"#,
            r#"{"room":"r","epoch":"e","messages":{},"has_more":false}"#,
        ] {
            assert!(HistoryPage::decode(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<HistoryPage>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_client_message_round_trips() {
        for msg in [
            ClientMsg::Chat {
                msg: "hi".into(),
                id: None,
            },
            ClientMsg::Chat {
                msg: "hi".into(),
                id: Some("c-1".into()),
            },
            ClientMsg::Typing,
            ClientMsg::Feed { enabled: false },
        ] {
            let json = serde_json::to_string(&msg).unwrap();
            assert_eq!(Inbound::decode(&json), Ok(Inbound::Typed(msg)));
        }
    }

    #[test]
    fn chat_broadcast_carries_top_level_name_and_msg_for_legacy_pages() {
        let json = every_server_msg()[1].to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "chat");
        assert_eq!(v["name"], "ada");
        assert_eq!(v["msg"], "hi");
    }

    #[test]
    fn the_tutorial_frame_decodes_as_legacy_chat() {
        assert_eq!(
            Inbound::decode(r#"{"name":"bob","msg":"hello"}"#),
            Ok(Inbound::Legacy(LegacyChat {
                name: "bob".into(),
                msg: "hello".into()
            }))
        );
    }

    #[test]
    fn bad_frames_get_typed_errors() {
        assert!(matches!(
            Inbound::decode("{"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Inbound::decode("not json"),
            Err(DecodeError::Malformed(_))
        ));
        let unknown = Inbound::decode(r#"{"type":"launch","msg":"x"}"#).unwrap_err();
        assert_eq!(unknown.code(), ErrorCode::InvalidMessage);
        assert!(unknown.to_string().contains("launch"), "{unknown}");
        assert!(matches!(
            Inbound::decode(r#"{"type":"chat"}"#),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            Inbound::decode("[1,2]"),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            Inbound::decode(r#"{"name":"a","msg":"b","x":1}"#),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Inbound::decode(&deep).is_err());
        let deep_obj = format!(r#"{{"type":"chat","msg":{}}}"#, "{\"a\":".repeat(50_000));
        assert!(Inbound::decode(&deep_obj).is_err());
    }

    #[test]
    fn client_ids_are_short_printable_ascii() {
        assert!(valid_client_id("3f2a-01"));
        assert!(!valid_client_id(""));
        assert!(!valid_client_id("has space"));
        assert!(!valid_client_id(&"x".repeat(65)));
        assert!(!valid_client_id("é"));
    }

    #[test]
    fn only_request_errors_are_fatal() {
        assert!(ErrorCode::NameTaken.is_fatal());
        assert!(!ErrorCode::RateLimited.is_fatal());
        assert!(!close_code::should_reconnect(close_code::NAME_TAKEN));
        assert!(close_code::should_reconnect(1001));
        assert!(close_code::should_reconnect(close_code::SLOW_CONSUMER));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".*") {
            let _ = Inbound::decode(&s);
        }

        #[test]
        fn arbitrary_json_shaped_text_never_panics(
            s in r#"[\{\}\[\]":,a-z0-9 ]{0,200}"#
        ) {
            let _ = Inbound::decode(&s);
        }

        #[test]
        fn any_chat_text_round_trips(msg in any::<String>(), name in any::<String>()) {
            let typed = ClientMsg::Chat { msg: msg.clone(), id: None };
            let json = serde_json::to_string(&typed).unwrap();
            prop_assert_eq!(Inbound::decode(&json), Ok(Inbound::Typed(typed)));
            let legacy = serde_json::to_string(&LegacyChat { name: name.clone(), msg: msg.clone() }).unwrap();
            prop_assert_eq!(Inbound::decode(&legacy), Ok(Inbound::Legacy(LegacyChat { name, msg })));
        }

        #[test]
        fn any_chat_broadcast_round_trips(msg in any::<String>(), name in any::<String>(), ts in any::<u64>()) {
            let out = ServerMsg::Chat(ChatMsg { room: "r".into(), seq: ts / 2, name, msg, id: None, ts, key: None });
            prop_assert_eq!(serde_json::from_str::<ServerMsg>(&out.to_json()).unwrap(), out.clone());
            prop_assert_eq!(ServerMsg::decode(&out.to_json()).unwrap(), out);
        }

        #[test]
        fn any_chat_command_is_encoded_as_serde_encodes_it(msg in any::<String>(), id in proptest::option::of("[!-~]{1,64}")) {
            let command = Command::Chat { room: crate::model::RoomId::parse("r").unwrap(), msg, id };
            prop_assert_eq!(command.encode(), serde_json::to_string(&command).unwrap());
        }

        #[test]
        fn validation_never_panics(s in any::<String>(), max in 0usize..64) {
            let _ = crate::model::Username::parse(&s, max);
            let _ = crate::model::RoomId::parse(&s);
            let _ = crate::model::MessageText::parse(&s, max);
        }
    }
}
