//! Messages on the wire. Every frame is one JSON object tagged by `type`.
//!
//! Compatibility with the classic tutorial chat: a client may send the untagged
//! `{"name":"…","msg":"…"}` frame ([`Inbound::Legacy`]), and every chat message the server sends
//! carries top-level `name` and `msg` fields, so `JSON.parse(evt.data).name` still works.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Bumped on every incompatible change. A client whose version differs is told to reload.
pub const PROTOCOL_VERSION: u32 = 1;

/// Identifies one WebSocket session on one server.
pub type SessionId = u64;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Send a chat message to the session's room.
    Chat { msg: String },
    /// Turn the once-a-second [`ServerMsg::Stats`] feed on or off for this session.
    Feed { enabled: bool },
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
    /// Somebody joined the room.
    Joined { room: String, member: Member },
    /// Somebody left the room.
    Left { room: String, member: Member },
    /// The live feed, once a second.
    Stats(Stats),
    /// A request could not be served. Unless the code is fatal the session continues.
    Error { code: ErrorCode, reason: String },
    /// The server is going away (close 1001 follows). Reconnect after `retry_after_ms`.
    Shutdown { retry_after_ms: u64 },
}

impl ServerMsg {
    pub fn error(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self::Error {
            code,
            reason: reason.into(),
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
    pub limits: Limits,
    /// Recent live-feed points (oldest first), so a chart is full on arrival.
    pub recent_stats: Vec<Stats>,
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

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub session: SessionId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMsg {
    pub room: String,
    /// Sender's name, from the session, never from the message body.
    pub name: String,
    pub msg: String,
    /// Sender's session, so a client can mark its own messages.
    pub session: SessionId,
    /// Server time, milliseconds since the Unix epoch.
    pub ts: u64,
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
}

impl ErrorCode {
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

    /// Whether a client should reconnect automatically after this close code.
    pub fn should_reconnect(code: u16) -> bool {
        !matches!(code, REJECTED | NAME_TAKEN | 1008)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member() -> Member {
        Member {
            name: "ada".into(),
            session: 7,
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
                name: "ada".into(),
                msg: "hi".into(),
                session: 1,
                ts: 2,
            }),
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
    fn every_client_message_round_trips() {
        for msg in [
            ClientMsg::Chat { msg: "hi".into() },
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
            let typed = ClientMsg::Chat { msg: msg.clone() };
            let json = serde_json::to_string(&typed).unwrap();
            prop_assert_eq!(Inbound::decode(&json), Ok(Inbound::Typed(typed)));
            let legacy = serde_json::to_string(&LegacyChat { name: name.clone(), msg: msg.clone() }).unwrap();
            prop_assert_eq!(Inbound::decode(&legacy), Ok(Inbound::Legacy(LegacyChat { name, msg })));
        }

        #[test]
        fn any_chat_broadcast_round_trips(msg in any::<String>(), name in any::<String>(), ts in any::<u64>()) {
            let out = ServerMsg::Chat(ChatMsg { room: "r".into(), name, msg, session: 3, ts });
            prop_assert_eq!(serde_json::from_str::<ServerMsg>(&out.to_json()).unwrap(), out);
        }

        #[test]
        fn validation_never_panics(s in any::<String>(), max in 0usize..64) {
            let _ = crate::Username::parse(&s, max);
            let _ = crate::RoomId::parse(&s);
            let _ = crate::MessageText::parse(&s, max);
        }
    }
}
