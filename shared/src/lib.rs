//! The Switchboard protocol, shared by the server and the browser client.
//!
//! - [`protocol`]: the typed messages ([`ClientMsg`], [`ServerMsg`]) and their JSON form.
//! - [`model`]: validation newtypes ([`Username`], [`RoomId`], [`MessageText`]).
//! - [`json`]: a small JSON reader and writer, so the browser client needs no serde_json.
//!
//! Builds for the host and for `wasm32-unknown-unknown`.

mod decode;
pub use decode::send_body;
pub mod json;
pub mod model;
pub mod protocol;

pub use model::{MessageText, RoomId, Username, ValidationError, is_deceptive_char};
pub use protocol::{
    ChatMsg, ClientMsg, Command, DataMsg, DecodeError, Delivery, ErrorCode, GapReason, Hello,
    HistoryPage, HttpClose, Inbound, LegacyChat, Limits, MAX_CLIENT_ID_CHARS, Member, PROTOCOL_V3,
    PROTOCOL_VERSION, PollAnswer, RawJson, Resume, SUBPROTOCOL_PREFIX, SUBPROTOCOL_V2,
    SUBPROTOCOL_V3, ServerMsg, SessionId, Stats, Subscribed, TYPING_INTERVAL_MS, TYPING_TTL_MS,
    Welcome, close_code, valid_client_id,
};
