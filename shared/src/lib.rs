//! The Switchboard protocol, shared by the server and the browser client.
//!
//! - [`protocol`]: the typed messages ([`ClientMsg`], [`ServerMsg`]) and their JSON form.
//! - [`model`]: validation newtypes ([`Username`], [`RoomId`], [`MessageText`]).
//!
//! Builds for the host and for `wasm32-unknown-unknown`.

pub mod model;
pub mod protocol;

pub use model::{MessageText, RoomId, Username, ValidationError, is_deceptive_char};
pub use protocol::{
    ChatMsg, ClientMsg, DecodeError, ErrorCode, Inbound, LegacyChat, Limits, Member,
    PROTOCOL_VERSION, ServerMsg, SessionId, Stats, Welcome, close_code,
};
