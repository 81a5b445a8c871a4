//! The browser client's side of the wire without serde: server frames and history pages read
//! through [`crate::json`], commands written through it.
//!
//! The derived serde impls stay the definition of the protocol (the server uses them); what is
//! here accepts what they accept and writes what they write, byte for byte (tested in
//! `protocol.rs` on every message). It exists because serde_json's generic deserializer, its
//! float tables and error texts were the largest part of the client's WebAssembly bundle.

use crate::json::{self, Object, Value, Writer};
use crate::protocol::{
    ChatMsg, Command, DataMsg, DecodeError, Delivery, ErrorCode, GapReason, Hello, HistoryPage,
    HttpClose, Limits, Member, PollAnswer, RawJson, Resume, ServerMsg, Stats, Subscribed, Welcome,
};

fn invalid(what: String) -> DecodeError {
    DecodeError::Invalid(what)
}

impl ServerMsg {
    /// Decodes one server frame.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        Self::from_value(&json::parse(text)?)
    }

    /// Decodes one server frame already parsed (a frame inside a poll answer).
    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        let f = Object::of(value, "a frame")?;
        let kind = f.str("type")?;
        let the_member = || member(f.need("member")?);
        Ok(match kind.as_str() {
            "chat" => Self::Chat(chat(&f)?),
            "ack" => Self::Ack {
                id: f.str("id")?,
                seq: f.u64("seq")?,
                ts: f.u64("ts")?,
                room: f.opt_str("room")?,
            },
            "nack" => Self::Nack {
                id: f.str("id")?,
                code: code(&f)?,
                reason: f.str("reason")?,
                room: f.opt_str("room")?,
            },
            "error" => Self::Error {
                code: code(&f)?,
                reason: f.str("reason")?,
                room: f.opt_str("room")?,
            },
            "join_refused" => Self::JoinRefused {
                room: f.str("room")?,
                code: code(&f)?,
                reason: f.str("reason")?,
            },
            "joined" => Self::Joined {
                room: f.str("room")?,
                member: the_member()?,
            },
            "presence" => Self::Presence {
                room: f.str("room")?,
                member: the_member()?,
            },
            "left" => Self::Left {
                room: f.str("room")?,
                member: the_member()?,
            },
            "typing" => Self::Typing {
                room: f.str("room")?,
                name: f.str("name")?,
            },
            "unsubscribed" => Self::Unsubscribed {
                room: f.str("room")?,
            },
            "stats" => Self::Stats(stats(value)?),
            "data" => Self::Data(DataMsg {
                room: f.str("room")?,
                key: f.str("key")?,
                data: {
                    // `null` is a value here, not an absent member.
                    let mut text = String::new();
                    json::write_value(&mut text, f.raw("data")?);
                    RawJson::from_trusted(text)
                },
                delivery: {
                    let name = f.str("delivery")?;
                    Delivery::from_name(&name)
                        .ok_or_else(|| invalid(format!("unknown delivery `{name}`")))?
                },
                seq: f.opt_u64("seq")?,
                ts: f.u64("ts")?,
            }),
            "shutdown" => Self::Shutdown {
                retry_after_ms: f.u64("retry_after_ms")?,
            },
            "reload" => Self::Reload {
                protocol: f.int("protocol")?,
                reason: f.str("reason")?,
            },
            "token_expiring" => Self::TokenExpiring { exp: f.u64("exp")? },
            "token_refreshed" => Self::TokenRefreshed { exp: f.u64("exp")? },
            "subscribed" => Self::Subscribed(Subscribed {
                room: f.str("room")?,
                epoch: f.str("epoch")?,
                resume: resume(f.need("resume")?)?,
                members: f.array("members", member)?,
                online: match f.get("online")? {
                    Some(_) => f.int("online")?,
                    None => 0,
                },
            }),
            "presence_batch" => Self::PresenceBatch {
                room: f.str("room")?,
                online: f.int("online")?,
                changed: f.array("changed", member)?,
                left: f.array("left", |v| json::as_str(v, "left"))?,
                full: f.opt_bool("full")?.unwrap_or(false),
            },
            "members" => Self::Members {
                room: f.str("room")?,
                members: f.array("members", member)?,
                online: f.int("online")?,
                next: f.opt_str("next")?,
            },
            "hello" => Self::Hello(Hello {
                protocol: f.int("protocol")?,
                server_version: f.str("server_version")?,
                session: f.u64("session")?,
                name: f.opt_str("name")?,
                peer_addr: f.str("peer_addr")?,
                limits: limits(f.need("limits")?)?,
                max_rooms: f.int("max_rooms")?,
            }),
            "welcome" => Self::Welcome(Welcome {
                protocol: f.int("protocol")?,
                server_version: f.str("server_version")?,
                session: f.u64("session")?,
                name: f.opt_str("name")?,
                room: f.str("room")?,
                peer_addr: f.str("peer_addr")?,
                members: f.array("members", member)?,
                epoch: f.str("epoch")?,
                resume: resume(f.need("resume")?)?,
                limits: limits(f.need("limits")?)?,
                recent_stats: f.array("recent_stats", stats)?,
            }),
            other => return Err(invalid(format!("unknown frame type `{other}`"))),
        })
    }
}

impl HistoryPage {
    /// Decodes a page of older history (the body of `GET /api/rooms/{room}/messages`).
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let value = json::parse(text)?;
        let f = Object::of(&value, "a history page")?;
        Ok(Self {
            room: f.str("room")?,
            epoch: f.str("epoch")?,
            messages: f.array("messages", |m| chat(&Object::of(m, "a message")?))?,
            has_more: f.bool("has_more")?,
        })
    }
}

impl HttpClose {
    /// Decodes the data of an SSE `close` event (or a poll answer's `close`).
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        Self::from_value(&json::parse(text)?)
    }

    fn from_value(value: &Value) -> Result<Self, DecodeError> {
        let f = Object::of(value, "a close")?;
        Ok(Self {
            code: f.int("code")?,
            reason: f.str("reason")?,
        })
    }
}

impl PollAnswer {
    /// Decodes the answer to `POST /v3/poll`.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let value = json::parse(text)?;
        let f = Object::of(&value, "a poll answer")?;
        Ok(Self {
            session: f.str("session")?,
            last: f.u64("last")?,
            frames: f.array("frames", ServerMsg::from_value)?,
            close: f.get("close")?.map(HttpClose::from_value).transpose()?,
        })
    }

    /// The body of a poll that acknowledges frames up to `last` of `session`.
    pub fn request(session: &str, last: u64) -> String {
        Writer::object()
            .str("session", session)
            .u64("last", last)
            .finish()
    }
}

/// The body of `POST /v3/send`: `frames` (each a command's JSON text) for `session`, and
/// with `leave`, the end of the session (as a WebSocket's close 1000).
pub fn send_body(session: &str, frames: &[String], leave: bool) -> String {
    let mut out = Writer::object().str("session", session).finish();
    out.pop(); // reopen the object
    out.push_str(",\"frames\":[");
    out.push_str(&frames.join(","));
    out.push(']');
    if leave {
        out.push_str(",\"leave\":true");
    }
    out.push('}');
    out
}

impl Command {
    /// The command's JSON text, as its derived `Serialize` writes it.
    pub fn encode(&self) -> String {
        let w = Writer::object();
        match self {
            Self::Join { room, epoch, seq } => w
                .str("type", "join")
                .str("room", room.as_str())
                .opt_str("epoch", epoch.as_deref())
                .opt_u64("seq", *seq),
            Self::Leave { room } => w.str("type", "leave").str("room", room.as_str()),
            Self::Chat { room, msg, id } => w
                .str("type", "chat")
                .str("room", room.as_str())
                .str("msg", msg)
                .opt_str("id", id.as_deref()),
            Self::Typing { room } => w.str("type", "typing").str("room", room.as_str()),
            Self::Feed { enabled } => w.str("type", "feed").bool("enabled", *enabled),
            Self::Refresh { token } => w.str("type", "refresh").str("token", token),
            Self::Members { room, after } => w
                .str("type", "members")
                .str("room", room.as_str())
                .opt_str("after", after.as_deref()),
        }
        .finish()
    }
}

fn chat(f: &Object<'_>) -> Result<ChatMsg, DecodeError> {
    Ok(ChatMsg {
        room: f.str("room")?,
        seq: f.u64("seq")?,
        name: f.str("name")?,
        msg: f.str("msg")?,
        id: f.opt_str("id")?,
        ts: f.u64("ts")?,
        key: f.opt_str("key")?,
    })
}

fn code(f: &Object<'_>) -> Result<ErrorCode, DecodeError> {
    let name = f.str("code")?;
    ErrorCode::from_name(&name).ok_or_else(|| invalid(format!("unknown error code `{name}`")))
}

fn member(v: &Value) -> Result<Member, DecodeError> {
    let f = Object::of(v, "a member")?;
    Ok(Member {
        name: f.str("name")?,
        connections: f.int("connections")?,
    })
}

fn stats(v: &Value) -> Result<Stats, DecodeError> {
    let f = Object::of(v, "stats")?;
    Ok(Stats {
        connections: f.u64("connections")?,
        rooms: f.u64("rooms")?,
        messages_per_sec: f.u64("messages_per_sec")?,
        uptime_secs: f.u64("uptime_secs")?,
        server_time_ms: f.u64("server_time_ms")?,
    })
}

fn limits(v: &Value) -> Result<Limits, DecodeError> {
    let f = Object::of(v, "limits")?;
    Ok(Limits {
        max_message_bytes: f.int("max_message_bytes")?,
        max_text_chars: f.int("max_text_chars")?,
        max_name_chars: f.int("max_name_chars")?,
        rate_per_sec: f.int("rate_per_sec")?,
        rate_burst: f.int("rate_burst")?,
    })
}

fn resume(v: &Value) -> Result<Resume, DecodeError> {
    let f = Object::of(v, "resume")?;
    let count = || f.u64("count");
    Ok(match f.str("kind")?.as_str() {
        "fresh" => Resume::Fresh { count: count()? },
        "live" => Resume::Live,
        "recovered" => Resume::Recovered { count: count()? },
        "gap" => Resume::Gap {
            reason: match f.str("reason")?.as_str() {
                "epoch_changed" => GapReason::EpochChanged,
                "trimmed" => GapReason::Trimmed,
                other => return Err(invalid(format!("unknown gap reason `{other}`"))),
            },
            count: count()?,
        },
        other => return Err(invalid(format!("unknown resume kind `{other}`"))),
    })
}
