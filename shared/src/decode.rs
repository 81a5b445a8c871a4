//! A compact decoder for server frames, for the browser client.
//!
//! The derived `Deserialize` of an internally tagged enum buffers every frame into serde's
//! generic `Content` tree before it looks at `type`, and each variant's struct has a field
//! visitor of its own: together the largest part of the client's WebAssembly bundle. This
//! decoder reads every frame, whatever its `type`, into one flat struct of optional fields (one
//! visitor, no buffering), then builds the variant, requiring the fields it has. It accepts
//! what the derived `Deserialize` accepts for every message (tested in `protocol.rs`). One
//! difference: a frame carrying a field that only other frame types have, with a value of the
//! wrong type for them, is an error here where serde would ignore the field; the server never
//! sends one.

use serde::Deserialize;
use serde::de::Error as _;

use crate::protocol::{
    ChatMsg, ErrorCode, Hello, Limits, Member, Resume, ServerMsg, Stats, Subscribed, Welcome,
};

/// Every field of every server frame. Fields of the same name have the same type in every
/// frame that has them.
#[derive(Deserialize)]
struct Flat {
    #[serde(rename = "type")]
    kind: String,
    room: Option<String>,
    name: Option<String>,
    msg: Option<String>,
    id: Option<String>,
    seq: Option<u64>,
    ts: Option<u64>,
    code: Option<ErrorCode>,
    reason: Option<String>,
    member: Option<Member>,
    members: Option<Vec<Member>>,
    epoch: Option<String>,
    resume: Option<Resume>,
    limits: Option<Limits>,
    protocol: Option<u32>,
    server_version: Option<String>,
    session: Option<u64>,
    peer_addr: Option<String>,
    max_rooms: Option<usize>,
    recent_stats: Option<Vec<Stats>>,
    retry_after_ms: Option<u64>,
    connections: Option<u64>,
    rooms: Option<u64>,
    messages_per_sec: Option<u64>,
    uptime_secs: Option<u64>,
    server_time_ms: Option<u64>,
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

/// A field the frame's type requires.
fn need<T>(field: Option<T>, name: &'static str) -> Result<T, serde_json::Error> {
    field.ok_or_else(|| serde_json::Error::missing_field(name))
}

impl ServerMsg {
    /// Decodes one server frame (see the module doc).
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        let f: Flat = serde_json::from_str(text)?;
        let room = || need(f.room.clone(), "room");
        let code = || need(f.code, "code");
        let reason = || need(f.reason.clone(), "reason");
        let member = || need(f.member.clone(), "member");
        Ok(match f.kind.as_str() {
            "chat" => Self::Chat(ChatMsg {
                room: room()?,
                seq: need(f.seq, "seq")?,
                name: need(f.name, "name")?,
                msg: need(f.msg, "msg")?,
                id: f.id,
                ts: need(f.ts, "ts")?,
            }),
            "ack" => Self::Ack {
                id: need(f.id, "id")?,
                seq: need(f.seq, "seq")?,
                ts: need(f.ts, "ts")?,
                room: f.room,
            },
            "nack" => Self::Nack {
                code: code()?,
                reason: reason()?,
                id: need(f.id, "id")?,
                room: f.room,
            },
            "error" => Self::Error {
                code: code()?,
                reason: reason()?,
                room: f.room,
            },
            "join_refused" => Self::JoinRefused {
                room: room()?,
                code: code()?,
                reason: reason()?,
            },
            "joined" => Self::Joined {
                room: room()?,
                member: member()?,
            },
            "presence" => Self::Presence {
                room: room()?,
                member: member()?,
            },
            "left" => Self::Left {
                room: room()?,
                member: member()?,
            },
            "typing" => Self::Typing {
                room: room()?,
                name: need(f.name, "name")?,
            },
            "unsubscribed" => Self::Unsubscribed { room: room()? },
            "stats" => Self::Stats(Stats {
                connections: need(f.connections, "connections")?,
                rooms: need(f.rooms, "rooms")?,
                messages_per_sec: need(f.messages_per_sec, "messages_per_sec")?,
                uptime_secs: need(f.uptime_secs, "uptime_secs")?,
                server_time_ms: need(f.server_time_ms, "server_time_ms")?,
            }),
            "shutdown" => Self::Shutdown {
                retry_after_ms: need(f.retry_after_ms, "retry_after_ms")?,
            },
            "reload" => Self::Reload {
                protocol: need(f.protocol, "protocol")?,
                reason: reason()?,
            },
            "subscribed" => Self::Subscribed(Subscribed {
                room: room()?,
                epoch: need(f.epoch, "epoch")?,
                resume: need(f.resume, "resume")?,
                members: need(f.members, "members")?,
            }),
            "hello" => Self::Hello(Hello {
                protocol: need(f.protocol, "protocol")?,
                server_version: need(f.server_version, "server_version")?,
                session: need(f.session, "session")?,
                name: f.name,
                peer_addr: need(f.peer_addr, "peer_addr")?,
                limits: need(f.limits, "limits")?,
                max_rooms: need(f.max_rooms, "max_rooms")?,
            }),
            "welcome" => Self::Welcome(Welcome {
                protocol: need(f.protocol, "protocol")?,
                server_version: need(f.server_version, "server_version")?,
                session: need(f.session, "session")?,
                name: f.name,
                room: room()?,
                peer_addr: need(f.peer_addr, "peer_addr")?,
                members: need(f.members, "members")?,
                epoch: need(f.epoch, "epoch")?,
                resume: need(f.resume, "resume")?,
                limits: need(f.limits, "limits")?,
                recent_stats: need(f.recent_stats, "recent_stats")?,
            }),
            other => return Err(serde_json::Error::unknown_variant(other, TYPES)),
        })
    }
}
