//! Every Redis key and channel a cluster uses, in one place. All live under `sb:`.
//!
//! | key / channel | type | holds | written by | expires |
//! |---|---|---|---|---|
//! | `sb:epoch` | string | the history's identity; a new one means Redis lost its data | first append / bounds / heartbeat (`SET NX`) | never |
//! | `sb:{room}:seq` | string (integer) | the room's last seq | the append script (`INCR`) | never |
//! | `sb:{room}:log` | stream | the room's messages, entry id `<seq>-0`, fields `n` name, `t` text, `ts`, `id`, and `k` the key of a durable data point (then `t` is its JSON) | the append script (`XADD MAXLEN`) | trimmed to `--retention-max-messages` |
//! | `sb:{room}:latest` | hash | the latest value of each data key: key → `"<ts>:<json>"` | the server API (`latest` data) | never |
//! | `sb:{room}:id:{sender}:{id}` | string `"seq:ts"` | a sender's message id, for dedup | the append script | `--dedup-ttl-secs` |
//! | `sb:name:{room}:{name}` | string | who holds a name: [`Identity::key`](crate::hub::Identity::key) | claim script, refreshed by each heartbeat; released by compare-and-delete | `--presence-ttl-secs` |
//! | `sb:node:{node}` | string (JSON) | a node's members: room → name → connections | each node's heartbeat | `--presence-ttl-secs` |
//! | `sb:nodes` | set | the nodes that have announced themselves | heartbeat (`SADD`); `SREM` on a clean stop or when a node's entry expired | never |
//! | channel `sb:chat` | pub/sub | every stored message, as a [`NodeMsg::Chat`](crate::cluster::NodeMsg) in JSON | the append script | |
//! | channel `sb:typing` | pub/sub | typing notices, as a [`NodeMsg::Typing`](crate::cluster::NodeMsg) in JSON | the node of the typist | |
//! | channel `sb:data` | pub/sub | `latest` and `volatile` data points, as a [`NodeMsg::Data`](crate::cluster::NodeMsg) in JSON | the node that took the server API call | |
//! | channel `sb:users` | pub/sub | orders about users of signed tokens (`DisconnectUser`), as [`NodeMsg`](crate::cluster::NodeMsg) JSON | the node that took the server API call | |
//! | channel `sb:to:{node}` | pub/sub | what other nodes forward to `node`'s HTTP sessions (`SessionInput`, `Poll`) and answers to its forwarded polls (`PollAnswer`), as [`NodeMsg`](crate::cluster::NodeMsg) JSON | any node | |

use shared::{RoomId, Username};

/// The pub/sub channel every stored message is published on.
pub const CHAT_CHANNEL: &str = "sb:chat";
/// The pub/sub channel typing notices travel on.
pub const TYPING_CHANNEL: &str = "sb:typing";
/// The pub/sub channel of data points not stored in history (`latest`, `volatile`).
pub const DATA_CHANNEL: &str = "sb:data";
/// The pub/sub channel of orders about users (every node acts on them).
pub const USERS_CHANNEL: &str = "sb:users";
/// The history's identity.
pub const EPOCH: &str = "sb:epoch";
/// The set of nodes.
pub const NODES: &str = "sb:nodes";

/// A room's last seq.
pub fn room_seq(room: &RoomId) -> String {
    format!("sb:{room}:seq")
}

/// The latest value of each data key of a room (a hash: key → `"<ts>:<json>"`).
pub fn room_latest(room: &RoomId) -> String {
    format!("sb:{room}:latest")
}

/// A room's messages (a stream).
pub fn room_log(room: &RoomId) -> String {
    format!("sb:{room}:log")
}

/// A sender's message id in a room, for dedup.
pub fn message_id(room: &RoomId, sender: &str, id: &str) -> String {
    format!("sb:{room}:id:{sender}:{id}")
}

/// Who holds a name in a room.
pub fn name(room: &RoomId, name: &Username) -> String {
    format!("sb:name:{room}:{name}")
}

/// A node's own channel (forwarded HTTP session traffic).
pub fn node_channel(node: &str) -> String {
    format!("sb:to:{node}")
}

/// A node's members.
pub fn node(node: &str) -> String {
    format!("sb:node:{node}")
}
